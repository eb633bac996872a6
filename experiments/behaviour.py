"""DVC stage `behaviour`: one held-out metric per planted mechanism, beside its chance level
(organism profiles), or the paper's greater-than task as far as the tokenizer allows (pretrained
profiles); see transcoder_lab.organism.behaviour and transcoder_lab.behaviour."""

import json

from transcoder_lab import io
from transcoder_lab.behaviour import pretrained_behaviour
from transcoder_lab.config import Config
from transcoder_lab.organism.behaviour import organism_behaviour
from transcoder_lab.paths import results_dir
from transcoder_lab.sources.models import load_model
from transcoder_lab.stage import stage_main


def run(cfg: Config) -> dict:
    profile = cfg.profile
    model = load_model(profile, cfg.paths.models)
    if profile.corpus is not None:
        report = organism_behaviour(model, profile.corpus, profile.behaviour)
    else:
        report = pretrained_behaviour(model, profile.behaviour)
    report = {"profile": profile.name, **report}
    io.write_json(results_dir(cfg) / "behaviour.json", report)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    stage_main(run)()
