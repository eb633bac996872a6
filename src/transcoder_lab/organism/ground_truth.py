"""Scoring features against the organism corpus's ground-truth token labels: the one definition of
"active" and of label F1 that the blind study's ground-truth rater (`study.rater`) and the graph
viewer's feature labels (`case_studies.feature_labels`) share.

Over the counted tokens (those that carry a label: BOS tokens never count):

1. Active tokens (`active_tokens`): where the feature's activation is > 0 and exceeds
   `active_fraction` times its largest activation on the counted tokens (a human judges the
   strong examples, so faint firing does not count against an explanation).
2. Candidate explanations (`label_sets`), each a set of label ids: every label except `exclude`
   (the rater's "background", which covers ordinary text and explains nothing), and every label
   family of two or more labels (those sharing a prefix before "/", e.g. "citation/*"). Their sizes
   depend only on the tokens, so they are counted once (`label_candidates`).
3. Each candidate E's F1 against the active set A (`f1`): 2·|A ∩ E| / (|A| + |E|), 0 when both are
   empty. |A ∩ E| is the active tokens' per-label counts summed over E's labels (a product with the
   candidates' membership matrix), so any number of features is scored at once (`best_labels`).
4. Best label: the first candidate with the largest F1; none when that F1 is 0 (no candidate
   overlaps the active tokens, or the feature is never active).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

NO_LABEL = -1  # `best_labels`' index where no candidate overlaps the active tokens


def active_tokens(
    acts: Float[Tensor, " n *features"],
    active_fraction: float,
    top: Float[Tensor, " *features"] | None = None,
) -> Bool[Tensor, " n *features"]:
    """Step 1: the counted tokens (rows of `acts`) where each feature (column) is active. `top` is
    the largest activation over every counted token, where `acts` holds only some of them."""
    if top is None:
        if len(acts) == 0:
            return torch.zeros_like(acts, dtype=torch.bool)
        top = acts.amax(dim=0)
    return (acts > 0) & (acts > active_fraction * top)


def label_sets(label_names: list[str], exclude: list[str]) -> dict[str, list[int]]:
    """Step 2: candidate label explanations, each label and each family, as lists of label ids."""
    sets: dict[str, list[int]] = {}
    for index, name in enumerate(label_names):
        if name in exclude:
            continue
        sets[name] = [index]
        if "/" in name:
            sets.setdefault(name.split("/")[0] + "/*", []).append(index)
    return {name: ids for name, ids in sets.items() if not (name.endswith("/*") and len(ids) < 2)}


def label_counts(labels: Int[Tensor, " n"], n_labels: int) -> Float[Tensor, " n_labels"]:
    """Tokens per label id (float64). Ids past the names (none in a well-formed corpus) fall into a
    spare bin that no candidate holds."""
    return torch.bincount(labels.clamp(max=n_labels), minlength=n_labels + 1)[:n_labels].double()


@dataclass
class LabelCandidates:
    """Step 2's candidates over a set of counted tokens, computed once for every feature scored."""

    names: list[str]  # candidate explanations, in `label_sets` order
    membership: Float[Tensor, "candidate n_labels"]  # 1 where the label belongs to the candidate
    sizes: Float[Tensor, " candidate"]  # counted tokens per candidate


def label_candidates(
    labels: Int[Tensor, " n"], label_names: list[str], exclude: list[str]
) -> LabelCandidates:
    """Step 2 over the counted tokens' label ids `labels`."""
    sets = label_sets(label_names, exclude)
    membership = torch.zeros(len(sets), len(label_names), dtype=torch.float64)
    for row, ids in enumerate(sets.values()):
        membership[row, ids] = 1
    return LabelCandidates(list(sets), membership, membership @ label_counts(labels, len(label_names)))


def f1(hits: Tensor, n_active: Tensor | int, sizes: Tensor) -> Float[Tensor, " *shape"]:
    """Step 3: 2·hits / (n_active + sizes), broadcast; 0 where the denominator is 0."""
    denominator = (n_active + sizes).double()
    return torch.where(
        denominator > 0, 2 * hits.double() / denominator.clamp(min=1), torch.zeros_like(denominator)
    )


def best_labels(
    hits_per_label: Float[Tensor, "*features n_labels"],
    n_active: Int[Tensor, " *features"],
    c: LabelCandidates,
) -> tuple[Int[Tensor, " *features"], Float[Tensor, " *features"]]:
    """Steps 3-4 for any number of features: (index into `c.names`, or NO_LABEL; its F1), from each
    feature's active tokens counted per label id and its number of active tokens."""
    shape = n_active.shape
    if not c.names:
        return torch.full(shape, NO_LABEL, dtype=torch.long), torch.zeros(shape, dtype=torch.float64)
    label_f1 = f1(hits_per_label.double() @ c.membership.T, n_active[..., None], c.sizes)
    best = label_f1.argmax(dim=-1)  # the first of equal maxima, as the rater always broke ties
    score = label_f1.gather(-1, best[..., None])[..., 0]
    return torch.where(score > 0, best, NO_LABEL), torch.where(score > 0, score, 0.0)
