"""Evaluation of dictionaries on held-out activations.

`reconstruction_metrics` streams held-out (input, target) rows through a dictionary and
accumulates, over all rows:
1. fraction of variance unexplained, FVU = sum ||y - y_hat||^2 / sum ||y - mean(y)||^2, with the
   mean taken over the same rows (so predicting the mean scores exactly 1);
2. mean L0, the average number of features with z > 0 per row;
3. per-feature firing counts, giving log10 firing frequency and the dead (never fired), live
   (log10 frequency > -4, DESIGN §4.2) and dense (fires on more than 10% of rows) fractions.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from transcoder_lab.activations import Batch
from transcoder_lab.dictionaries import Dictionary

LIVE_LOG10_FREQUENCY = -4.0
DENSE_FREQUENCY = 0.1


@torch.no_grad()
def reconstruction_metrics(dictionary: Dictionary, batches: Iterable[Batch]) -> dict[str, float]:
    spec = dictionary.spec
    squared_error = torch.zeros((), dtype=torch.float64)
    target_sum = torch.zeros(spec.d_out, dtype=torch.float64)
    target_square_sum = torch.zeros((), dtype=torch.float64)
    active_sum = torch.zeros((), dtype=torch.float64)
    fire_counts = torch.zeros(spec.d_sae, dtype=torch.float64)
    n_rows = 0
    for batch in batches:
        x, y = batch[spec.hook_in], batch[spec.hook_out]
        y_hat, z = dictionary(x)
        squared_error += (y_hat - y).double().pow(2).sum()
        target_sum += y.double().sum(0)
        target_square_sum += y.double().pow(2).sum()
        fired = z > 0
        active_sum += fired.double().sum()
        fire_counts += fired.double().sum(0)
        n_rows += len(y)
    if n_rows == 0:
        raise ValueError("no held-out rows to evaluate on")
    # sum ||y - mean||^2 = sum ||y||^2 - n ||mean||^2
    total_variance = target_square_sum - target_sum.pow(2).sum() / n_rows
    frequency = fire_counts / n_rows
    log10_frequency = torch.where(frequency > 0, frequency.log10(), torch.full_like(frequency, -10.0))
    return {
        "fvu": (squared_error / total_variance).item(),
        "l0": (active_sum / n_rows).item(),
        "dead_fraction": (fire_counts == 0).double().mean().item(),
        "live_fraction": (log10_frequency > LIVE_LOG10_FREQUENCY).double().mean().item(),
        "dense_fraction": (frequency > DENSE_FREQUENCY).double().mean().item(),
        "n_rows": n_rows,
    }
