"""DVC stage `import_transcoders` (one instance per layer; none under the organism profile):
fetch a published GPT-2 small transcoder and convert it to our sae-lens-format directory."""

import sys
from pathlib import Path

from transcoder_lab.config import Config
from transcoder_lab.dictionaries.published import fetch_and_import_published_transcoder
from transcoder_lab.paths import published_dir
from transcoder_lab.stage import stage_main


def run(cfg: Config) -> list[Path]:
    layers = cfg.profile.published_transcoder_layers
    done = []
    for layer in layers:
        fetch_and_import_published_transcoder(layer, published_dir(cfg, layer))
        done.append(published_dir(cfg, layer))
        print(f"imported layer {layer} into {done[-1]}", file=sys.stderr)
    return done


if __name__ == "__main__":
    stage_main(run)()
