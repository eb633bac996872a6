"""The full-power study: the ground-truth rater on every live feature of both arms, one primary test.

The blind packet's 50 + 50 cards are what humans can rate, and at that size a difference of the
paper's order is found about one time in ten. The organism's ground-truth rater needs no
dashboards, so on organism profiles it also rates every live feature of both arms. These ratings
are not blind-sampled cards: they are stored apart from the packet's (`full_ratings.json`, and
summary.json's "full_power"), and the packet is left as it is.

1. Arms: the dictionaries the key records (the arms the packet was built from). Live features as
   in sampling (`sample.live_features`: saved log10 firing frequency > `study.min_log10_frequency`).
2. Activations (`arm_scan`): one model pass over the scan's contexts to the arms' shared input
   hook (`sample.hook_inputs`); each dictionary encodes it in chunks of `study.batch_size`
   contexts (`sample.encode`, as the packet's card activations were computed, so a sampled
   feature gets the same numbers). Of every live feature, the counted tokens where it is active
   (> 0) and its values there are kept, in the scan file's sparse layout with one "card" per
   live feature in ascending feature order, so the rater reads them as it reads cards.
3. Ratings (`rate_arm`): the rater's steps 1-5 (transcoder_lab.study.rater) on every live
   feature, with its evidence. Features active on fewer than `study.min_activating_tokens`
   scanned tokens (which the packet's sampling would replace) are rated too, by the same rule,
   and counted as "n_few_activating".
4. Cross-check (`cards_agree`): each packet card's ground-truth rating must equal its feature's
   full-power rating (same rule, same activations).
5. Statistics (`full_power_summary`), over each arm's rated features, from one numpy generator
   seeded `study.seed`, always drawn in this order whichever test is primary:
   a. the two differences transcoder - SAE, each with per-arm and difference 95% percentile
      bootstrap intervals (`stats.bootstrap_means`, arms resampled independently):
      "yes_share_difference" (share rated yes) and "mean_f1_difference" (mean best F1,
      max(F1_label, F1_token), the score behind the rating);
   b. context-free among interpretable (`stats.context_free_among_interpretable`): per arm, the
      share of yes-or-maybe features that are context-free, with intervals, and its difference;
   c. Fisher's exact tests on the yes / maybe / no and context-free counts (`stats.fisher_tests`).
6. Primary test: the difference `study.primary_test` names, fixed in the config before the run;
   verdict "ok" when its interval's lower bound is > 0 (transcoder better, the paper's claim),
   else "BELOW" (`stats.verdict`). Every other number is reported beside it as secondary.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from transformer_lens import HookedTransformer

from transcoder_lab.config import GroundTruthRaterConfig, PrimaryTest, StudyConfig
from transcoder_lab.dictionaries import Dictionary, load_dictionary
from transcoder_lab.study import stats
from transcoder_lab.study.packet import ScanData
from transcoder_lab.study.rater import Evidence, candidates, evidence, judge
from transcoder_lab.study.ratings import Rating, RatingsFile
from transcoder_lab.study.sample import ARMS, encode, hook_inputs, live_features

LEVEL = 0.95
VERDICT_RULE = "ok when the primary difference's 95% bootstrap interval has its lower bound > 0, else BELOW"


@dataclass
class ArmRatings:
    """One arm's full-power rating: every live feature (ascending), its rating and evidence."""

    arm: str
    dictionary: str
    features: list[int]
    ratings: list[Rating]
    evidence: list[Evidence]
    n_activating: list[int]  # counted scanned tokens where the feature is active (> 0)

    def best_f1(self) -> np.ndarray:
        return np.array([max(e.best_label_f1, e.best_token_f1) for e in self.evidence], dtype=float)

    def to_json(self) -> dict[str, Any]:
        return {
            "dictionary": self.dictionary,
            "n_rated": len(self.features),
            "features": [
                {"feature": f, "rating": r.rating, "context_free": r.context_free, "n_activating": n}
                | asdict(e)
                for f, r, e, n in zip(
                    self.features, self.ratings, self.evidence, self.n_activating, strict=True
                )
            ],
        }


def arm_scan(
    scan: ScanData, dictionary: Dictionary, x: Tensor, features: Tensor, batch_size: int
) -> ScanData:
    """Step 2: `scan` with one card per feature of `features` (card i + 1 is features[i]).

    `x`: the dictionary's input on every scanned context (`sample.hook_inputs`)."""
    n_ctx = scan.tokens.shape[1]
    flat_index, columns, values = [], [], []
    for start in range(0, len(x), batch_size):
        acts = encode(dictionary, x[start : start + batch_size], features.tolist(), batch_size)
        active = (acts > 0) & scan.counted[start : start + batch_size, :, None]
        context, position, column = torch.nonzero(active, as_tuple=True)
        flat_index.append((start + context) * n_ctx + position)
        columns.append(column)
        values.append(acts[context, position, column])
    column = torch.cat(columns)
    order = torch.sort(column, stable=True).indices  # by feature, tokens in scan order within one
    counts = torch.bincount(column, minlength=len(features))
    return ScanData(
        tokens=scan.tokens, counted=scan.counted, labels=scan.labels, label_names=scan.label_names,
        active_offsets=torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)]),
        active_index=torch.cat(flat_index)[order], active_values=torch.cat(values)[order],
    )  # fmt: skip


def rate_arm(
    name: str, dictionary: str, features: Tensor, scan: ScanData, cfg: GroundTruthRaterConfig
) -> ArmRatings:
    """Step 3 on an `arm_scan`: the rater's evidence and rating of every feature."""
    c = candidates(scan, cfg)
    evidences = [evidence(scan, card, cfg, c) for card in range(1, scan.n_cards + 1)]
    n_activating = (scan.active_offsets[1:] - scan.active_offsets[:-1]).tolist()
    return ArmRatings(
        name, dictionary, features.tolist(), [judge(e, cfg) for e in evidences], evidences, n_activating
    )


def rate_every_live_feature(
    model: HookedTransformer, scan: ScanData, key: dict[str, Any], study: StudyConfig
) -> dict[str, ArmRatings]:
    """Steps 1-3 for both arms of the key; the model runs once per input hook."""
    inputs: dict[str, Tensor] = {}
    result = {}
    for name in ARMS:
        path = key["arms"][name]["path"]
        dictionary = load_dictionary(path, model.cfg.device)
        hook = dictionary.spec.hook_in
        if hook not in inputs:
            inputs[hook] = hook_inputs(model, hook, scan.tokens, study.batch_size)
        live = live_features(path, study.min_log10_frequency)
        sparse = arm_scan(scan, dictionary, inputs[hook], live, study.batch_size)
        result[name] = rate_arm(name, path, live, sparse, study.ground_truth)
    return result


def cards_agree(ground_truth: RatingsFile, key: dict[str, Any], arms: dict[str, ArmRatings]) -> dict:
    """Step 4: how many packet cards the full-power rating rates exactly as the card was rated."""
    disagree = []
    for entry in key["cards"]:
        arm = arms[entry["arm"]]
        full = arm.ratings[arm.features.index(int(entry["feature"]))]
        card = ground_truth.ratings[int(entry["card"])]
        if (full.rating, full.context_free) != (card.rating, card.context_free):
            disagree.append(int(entry["card"]))
    return {"n_cards": len(key["cards"]), "agree": len(key["cards"]) - len(disagree), "disagree": disagree}


def full_power_summary(arms: dict[str, ArmRatings], study: StudyConfig) -> dict[str, Any]:
    """Steps 5-6: counts, both differences, the primary test's verdict, context-free, Fisher."""
    ratings = {name: arm.ratings for name, arm in arms.items()}
    counts = stats.arm_counts(ratings)
    generator = np.random.default_rng(study.seed)
    yes = {name: np.array([r.rating == "yes" for r in rs], dtype=float) for name, rs in ratings.items()}
    differences = {
        PrimaryTest.yes_share_difference.value: stats.bootstrap_means(
            yes, study.n_bootstrap, generator, LEVEL
        ),
        PrimaryTest.mean_f1_difference.value: stats.bootstrap_means(
            {name: arm.best_f1() for name, arm in arms.items()}, study.n_bootstrap, generator, LEVEL
        ),
    }
    context_free = stats.context_free_among_interpretable(ratings, study.n_bootstrap, generator, LEVEL)
    primary = differences[study.primary_test.value].get("difference")
    few = study.min_activating_tokens
    return {
        "population": (
            f"every live feature of each arm (saved log10 firing frequency > {study.min_log10_frequency:g}), "
            "rated by the ground-truth rater; not the packet's blind-sampled cards"
        ),
        "n_rated": {name: len(arm.features) for name, arm in arms.items()},
        "n_few_activating": {name: sum(n < few for n in arm.n_activating) for name, arm in arms.items()},
        "min_activating_tokens": few,
        "counts": counts,  # context_free here: over all rated features
        "primary_test": {
            "name": study.primary_test.value,
            "difference": primary,
            "verdict": stats.verdict(primary),
            "rule": VERDICT_RULE,
        },
        "differences": differences,
        "context_free_among_interpretable": context_free,
        "fisher": stats.fisher_tests(counts),
        "n_bootstrap": study.n_bootstrap,
        "level": LEVEL,
        "seed": study.seed,
    }


def full_ratings_json(arms: dict[str, ArmRatings], cfg: GroundTruthRaterConfig, packet_id: str) -> dict:
    """`full_ratings.json`: the rule and, per arm, every live feature's rating and evidence."""
    return {
        "rater": "ground_truth",
        "packet_id": packet_id,  # the packet whose key named the arms (its cards are not resampled)
        "rule": asdict(cfg),
        "arms": {name: arm.to_json() for name, arm in arms.items()},
    }
