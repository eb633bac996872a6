"""The organism's behaviour: each planted mechanism's own metric on held-out prompts, beside chance.

The metric helpers the mechanisms measure with (next-token masses, greater-than) sit below the
organism in transcoder_lab.behaviour, beside GPT-2's greater-than measurement for pretrained profiles.
"""

from __future__ import annotations

from transformer_lens import HookedTransformer

from transcoder_lab.config import BehaviourConfig, CorpusConfig
from transcoder_lab.organism.mechanisms import mechanisms_of


def organism_behaviour(model: HookedTransformer, corpus: CorpusConfig, cfg: BehaviourConfig) -> dict:
    """One metric per planted mechanism on held-out prompts (drawn with cfg.seed), with chance levels:
    each mechanism's own `behaviour` (transcoder_lab.organism.mechanisms), keyed by its name."""
    report: dict = {}
    for mechanism in mechanisms_of(corpus):
        result = mechanism.behaviour(model, corpus, cfg)
        if result is not None:  # a contrast family (prose semicolons) has no metric of its own
            report[mechanism.name] = result
    return report
