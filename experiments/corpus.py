"""DVC stage `corpus`: generate the organism's labelled corpus and train its tokenizer."""

from transcoder_lab import io
from transcoder_lab.config import Config
from transcoder_lab.organism.build import build_corpus
from transcoder_lab.paths import corpus_dir
from transcoder_lab.stage import stage_main


def run(cfg: Config) -> dict:
    out_dir = corpus_dir(cfg)
    if cfg.profile.corpus is None:  # a pretrained profile streams its own text (OpenWebText)
        manifest = {
            "profile": cfg.profile.name,
            "generated": False,
            "reason": "pretrained models bring their own text",
        }
        io.write_json(out_dir / "manifest.json", manifest)
        return manifest
    manifest = build_corpus(cfg.profile.corpus, out_dir)
    print(f"corpus: {manifest['splits']['train']['n_tokens']:,} training tokens in {out_dir}")
    return manifest


if __name__ == "__main__":
    stage_main(run)()
