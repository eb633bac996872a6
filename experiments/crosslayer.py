"""DVC stage `crosslayer`: train the profile's cross-layer transcoders, one per
`profile.crosslayer.l1_coefficients` value, over every layer's MLP input and output, on the
per-layer transcoders' batch stream, and write each one's held-out metrics beside it
(`dictionaries.crosslayer_sweep.train_crosslayer_sweep`, whose module docstring states the algorithm).

dvc.yaml runs one instance per coefficient by narrowing the list on the command line
(`profile.crosslayer.l1_coefficients=[0.001]`); run without the override, every CLT of the profile
trains, one after the other. `python experiments/crosslayer.py [hydra overrides]`.
"""

from transcoder_lab.config import Config
from transcoder_lab.dictionaries.crosslayer_sweep import train_crosslayer_sweep
from transcoder_lab.dictionaries.crosslayer_training import CrossLayerResult
from transcoder_lab.stage import stage_main


def run(cfg: Config) -> list[CrossLayerResult]:
    return train_crosslayer_sweep(cfg)


if __name__ == "__main__":
    stage_main(run)()
