"""DVC stage `dictionaries`: train the configured grid (layer x kind x L1 coefficient).

dvc.yaml runs one instance per (layer, kind) by narrowing the grid on the command line
(`profile.dictionaries.layers=[2] profile.dictionaries.kinds=[transcoder]`); all L1 values of
that cell train side by side on one pass over the activation shards.
"""

from pathlib import Path

from transcoder_lab.activations import shard_training_batches
from transcoder_lab.config import Config
from transcoder_lab.dictionaries import DictionarySpec
from transcoder_lab.stage import stage_main
from transcoder_lab.training import DictionaryJob, train_dictionaries


def dictionary_dir(cfg: Config, layer: int, kind: str, l1_coefficient: float) -> Path:
    return Path(cfg.paths.dictionaries) / cfg.profile.name / f"L{layer}_{kind}" / f"l1_{l1_coefficient:g}"


def jobs(cfg: Config) -> list[DictionaryJob]:
    grid, model = cfg.profile.dictionaries, cfg.profile.model
    out = []
    for layer in grid.layers:
        for kind in grid.kinds:
            spec = DictionarySpec(
                kind=kind,
                layer=layer,
                d_in=model.d_model,
                d_sae=grid.expansion_factor * model.d_model,
                d_out=model.d_model,
                architecture=grid.architecture,
                k=grid.k,
                skip=grid.skip and kind == "transcoder",
                model_name=model.pretrained_name or cfg.profile.name,
            )
            out += [
                DictionaryJob(spec, l1, dictionary_dir(cfg, layer, kind, l1)) for l1 in grid.l1_coefficients
            ]
    return out


def run(cfg: Config) -> list:
    grid = cfg.profile.dictionaries
    if grid.harvest.mode != "shards":
        raise NotImplementedError(
            "streaming harvest for pretrained profiles is run with transcoder_lab.training"
        )
    shard_dir = Path(cfg.paths.activations) / cfg.profile.name
    todo = jobs(cfg)
    hooks = sorted({hook for job in todo for hook in (job.spec.hook_in, job.spec.hook_out)})
    training = grid.training

    def batches():
        return shard_training_batches(
            shard_dir, hooks, training.batch_size, grid.harvest.buffer_tokens, training.seed
        )

    checkpoints = (
        Path("checkpoints")
        / cfg.profile.name
        / "dictionaries"
        / "-".join(f"L{layer}" for layer in grid.layers)
        / "-".join(grid.kinds)
    )
    results = train_dictionaries(todo, batches, training, checkpoints, data_id=str(shard_dir))
    for result in results:
        print(
            f"{result.name}: mse {result.final_mse_loss:.4f}, L0 {result.final_l0:.1f}, "
            f"dead {result.dead_fraction:.2f}"
        )
    return results


if __name__ == "__main__":
    stage_main(run)()
