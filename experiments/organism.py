"""DVC stage `organism`: train the model organism (or, under a pretrained profile, fetch the model)."""

from transcoder_lab import io
from transcoder_lab.config import Config
from transcoder_lab.organism.train import train_organism
from transcoder_lab.paths import checkpoint_dir, corpus_dir, model_dir
from transcoder_lab.sources.models import load_pretrained
from transcoder_lab.stage import stage_main


def run(cfg: Config) -> dict:
    profile = cfg.profile
    if profile.model.source == "pretrained":  # fetch once (fails at once, clearly, when offline)
        assert profile.model.pretrained_name is not None
        model = load_pretrained(profile.model.pretrained_name)
        summary = {
            "source": "pretrained",
            "name": profile.model.pretrained_name,
            "n_params": model.cfg.n_params,
        }
        io.write_json(model_dir(cfg) / "model.json", summary)
        return summary
    assert profile.training is not None
    result = train_organism(
        profile.model, profile.training, corpus_dir(cfg), model_dir(cfg), checkpoint_dir(cfg, "organism")
    )
    print(
        f"organism: {result.steps} steps, {result.tokens_seen:,} tokens, "
        f"held-out loss {result.heldout_loss:.3f}, "
        f"{result.seconds:.0f} s"
    )
    return vars(result)


if __name__ == "__main__":
    stage_main(run)()
