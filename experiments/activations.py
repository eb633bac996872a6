"""DVC stage `activations`: one model pass over corpus tokens, all configured layers' MLP inputs
and outputs saved as safetensors shards (the organism default, `harvest.mode: shards`):
`train/` from the training split for the trainer, `heldout/` from the held-out split for evaluation.
The model runs on `profile.device` ("auto": CUDA when present), under autocast when
`harvest.autocast_dtype` is set; shards are written from float32 rows either way. In stream mode
(pretrained profiles) only a manifest naming the text source is written.
`activations.harvest_activations` does the work (its module docstring states the algorithm).
`python experiments/activations.py [hydra overrides]`."""

from transcoder_lab.config import Config
from transcoder_lab.dictionaries.activations import harvest_activations
from transcoder_lab.stage import stage_main


def run(cfg: Config) -> dict:
    return harvest_activations(cfg)


if __name__ == "__main__":
    stage_main(run)()
