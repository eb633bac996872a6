"""Greater-than, step 6: do the top transcoder features do the planted task? (docs/design.md §6.3)

1. For each of the `N_TESTED` top features of the headline analysis (ranked by activation variance
   over the prompts; `year_profiles`): the years that activate it (its activation-weighted mean YY,
   the activating-year centre) and its direct logit effects on the 100 year tokens "00".."99".
2. A feature "favours later years" when its mean logit effect on years above its centre exceeds
   its mean effect on years at or below it (the planted task: after "from the year 17YY to the year
   17", the later years are the right answers). A feature that never fires on the prompts has no
   centre and is not counted.
3. `planted_task_check`: the share of counted features that favour later years, and the one-sided
   binomial test against a coin (share 1/2 under "the features are unrelated to the task"): the
   probability of at least that many favouring later years if each did with probability 1/2.
   With 20 features, p <= 0.05 needs 15 or more (P(X >= 15) = 0.021, P(X >= 14) = 0.058).
Figure (`effects_figure`): de-embedding and logit effect over YY for the top `N_SHOWN` features.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor
from transformer_lens import HookedTransformer

from transcoder_lab.circuits import de_embedding, logit_effects
from transcoder_lab.dictionaries import Dictionary

N_TESTED = 20  # top features in the planted-task check
N_SHOWN = 5  # of them, in the effects figure


@dataclass
class YearProfile:
    """Step 1, one feature: which years activate it (activation-weighted mean YY), its direct
    logit effects and its de-embedding over the 100 year tokens, and whether it favours later years."""

    feature: int
    activating_year_centre: float  # nan when it never fires on the prompts
    effects: Tensor  # [100] logit effect on "00".."99"
    de_embedding: Tensor  # [100]
    favours_later_years: bool


@torch.no_grad()
def year_profiles(
    model: HookedTransformer, transcoder: Dictionary, analysis: dict[str, Any], yy: Tensor, ids: list[int]
) -> list[YearProfile]:
    """Steps 1-2: `YearProfile` of each of the N_TESTED top features of `analysis`."""
    feature_acts, out = analysis["feature_acts"], []
    years = torch.arange(100, dtype=torch.float64)
    for feature in analysis["feature_order"][:N_TESTED].tolist():
        acts = feature_acts[:, feature].double().clamp(min=0)
        centre = float((acts * yy).sum() / acts.sum()) if acts.sum() > 0 else float("nan")
        effects = logit_effects(model, transcoder, feature)[ids].double()
        embeds = de_embedding(model, transcoder, feature)[ids].double()
        later = years > centre
        favours_later = bool(
            later.any() and (~later).any() and effects[later].mean() > effects[~later].mean()
        )
        out.append(YearProfile(feature, centre, effects, embeds, favours_later))
    return out


def binomial_tail(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2)."""
    return sum(comb(n, i) for i in range(k, n + 1)) / 2**n


def planted_task_check(profiles: list[YearProfile]) -> dict[str, Any]:
    """Step 3, the result's `planted_task_check`: each feature's centre and verdict, the share of
    counted features favouring later years and its one-sided binomial p-value against 1/2."""
    counted = [p for p in profiles if not np.isnan(p.activating_year_centre)]
    n_later = sum(p.favours_later_years for p in counted)
    return {
        "features": [
            {
                "feature": p.feature,
                "activating_year_centre": p.activating_year_centre,
                "favours_later_years": p.favours_later_years,
            }
            for p in profiles
        ],
        "n_counted": len(counted),
        "n_favouring_later_years": n_later,
        "share_favouring_later_years": n_later / len(counted) if counted else None,
        "binomial_p": binomial_tail(n_later, len(counted)) if counted else None,
    }


def effects_figure(profiles: list[YearProfile], layer: int) -> plt.Figure:
    """Per shown feature: de-embedding and logit effect over YY, with its activating-year centre."""
    shown = profiles[:N_SHOWN]
    figure = plt.figure(figsize=(4.0 * len(shown), 3.4))
    years = np.arange(100)
    for i, p in enumerate(shown):
        axis = figure.add_subplot(1, len(shown), i + 1)
        axis.plot(years, p.de_embedding, label="de-embedding (which YY activate it)")
        axis.plot(years, p.effects, label="logit effect (which YY it promotes)")
        if not np.isnan(p.activating_year_centre):
            axis.axvline(
                p.activating_year_centre, color="grey", linestyle=":", label="activating-year centre"
            )
        axis.set(title=f"tc{layer}[{p.feature}]", xlabel="YY")
        if i == 0:
            axis.legend(fontsize=6)
    figure.tight_layout()
    return figure
