"""The organism's ground-truth rater: rates each card from its feature's activations and the labels.

It reads only the scan data (`packet.load_scan`): the scanned tokens, their ground-truth labels
and, per card number, where the card's feature is active. It never reads the key, so it is as
blind to the arm as a human rater. For each card:

1. Active tokens: counted (non-BOS) scanned tokens where the activation exceeds
   `active_fraction` times the feature's largest scanned activation (a human judges the
   strong examples, so faint firing does not count against an explanation).
2. Candidate explanations, each a set of tokens: every ground-truth label except
   `exclude_labels` (default "background", which covers ordinary text and explains nothing), every
   label family (the labels sharing a prefix before "/", e.g. all of "citation/..."), and every
   single token identity (all counted tokens with one token id).
3. Each candidate's F1 against the active set, F1 = 2·|A ∩ E| / (|A| + |E|) over counted tokens.
   Let F1_label be the best label or family and F1_token the best token identity (ties: the
   first in label order, the lowest token id). The candidates' sizes depend only on the scan, so
   they are counted once (`candidates`) and every card or feature reuses them (`evidence_of`).
4. Rating from the best F1 over all candidates: "yes" when >= `yes_f1` (0.6 by default), "maybe"
   when >= `maybe_f1` (0.3), "no" otherwise.
5. Context-free (single-token): a "yes" or "maybe" card whose best token identity explains it
   about as well as any label, F1_token >= F1_label - `context_free_margin` (0.05). A feature that
   fires on ";" inside citations but not in prose is not context-free (the citation label beats
   the token ";"); one that fires on every ";" is. A label that is itself one token id ties with
   that token, so it counts as context-free too.
The evidence (best label and token with their F1s, the active count, the share of active
tokens that are the most common token id) goes into the ratings file beside each rating.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from transcoder_lab.config import GroundTruthRaterConfig
from transcoder_lab.study.packet import ScanData
from transcoder_lab.study.ratings import GROUND_TRUTH, Rating, RatingsFile


@dataclass
class Evidence:
    n_active: int
    best_label: str | None
    best_label_f1: float
    best_token: int | None
    best_token_f1: float
    top_token_share: float  # share of active tokens that are the most common token id


def _f1(hits: torch.Tensor, n_active: int, sizes: torch.Tensor) -> torch.Tensor:
    denominator = (n_active + sizes).double()
    return torch.where(
        denominator > 0, 2 * hits.double() / denominator.clamp(min=1), torch.zeros_like(denominator)
    )


def label_sets(label_names: list[str], exclude: list[str]) -> dict[str, list[int]]:
    """Candidate label explanations (step 2): each label and each family, as lists of label ids."""
    sets: dict[str, list[int]] = {}
    for index, name in enumerate(label_names):
        if name in exclude:
            continue
        sets[name] = [index]
        if "/" in name:
            sets.setdefault(name.split("/")[0] + "/*", []).append(index)
    return {name: ids for name, ids in sets.items() if not (name.endswith("/*") and len(ids) < 2)}


@dataclass
class Candidates:
    """Step 2's candidate explanations over a scan's counted tokens, computed once per scan."""

    tokens: Tensor  # flat token ids of the scan
    labels: Tensor  # flat label ids
    token_sizes: Tensor  # counted tokens per token id
    label_names: list[str]  # candidate label explanations, in `label_sets` order
    membership: Tensor  # [candidate, label id]: 1 where the label belongs to the candidate
    label_sizes: Tensor  # counted tokens per candidate


def candidates(scan: ScanData, cfg: GroundTruthRaterConfig) -> Candidates:
    if scan.labels is None or scan.label_names is None:
        raise ValueError("the ground-truth rater needs labelled scan data (organism profiles only)")
    tokens, labels = scan.tokens.reshape(-1), scan.labels.reshape(-1)
    counted = scan.counted.reshape(-1)
    n_labels = len(scan.label_names)
    sets = label_sets(scan.label_names, cfg.exclude_labels)
    membership = torch.zeros(len(sets), n_labels, dtype=torch.float64)
    for row, ids in enumerate(sets.values()):
        membership[row, ids] = 1
    # Label ids past the names (none in a well-formed scan) fall into a spare bin that no set holds.
    per_label = torch.bincount(labels[counted].clamp(max=n_labels), minlength=n_labels + 1)[:n_labels]
    return Candidates(
        tokens=tokens,
        labels=labels,
        token_sizes=torch.bincount(tokens[counted], minlength=int(tokens.max()) + 1),
        label_names=list(sets),
        membership=membership,
        label_sizes=membership @ per_label.double(),
    )


def evidence_of(index: Tensor, values: Tensor, c: Candidates, cfg: GroundTruthRaterConfig) -> Evidence:
    """Steps 1-3 for one feature, from the flat token indices where it is active and its values."""
    if len(values) == 0:
        return Evidence(0, None, 0.0, None, 0.0, 0.0)
    active = index[values > cfg.active_fraction * values.max()]
    n_active = len(active)
    token_hits = torch.bincount(c.tokens[active], minlength=len(c.token_sizes))
    token_f1 = _f1(token_hits, n_active, c.token_sizes)
    best_token = int(token_f1.argmax())

    n_labels = c.membership.shape[1]
    per_label = torch.bincount(c.labels[active].clamp(max=n_labels), minlength=n_labels + 1)[:n_labels]
    label_f1 = _f1(c.membership @ per_label.double(), n_active, c.label_sizes)
    # The first candidate with the largest F1, and none when no label overlaps the active tokens.
    best = int(label_f1.argmax()) if len(label_f1) else 0
    has_label = len(label_f1) > 0 and float(label_f1[best]) > 0
    return Evidence(
        n_active=n_active,
        best_label=c.label_names[best] if has_label else None,
        best_label_f1=float(label_f1[best]) if has_label else 0.0,
        best_token=best_token,
        best_token_f1=float(token_f1[best_token]),
        top_token_share=float(token_hits.max()) / n_active,
    )


def evidence(scan: ScanData, card: int, cfg: GroundTruthRaterConfig, c: Candidates | None = None) -> Evidence:
    """Steps 1-3 for one card (`c`: the scan's candidates, when already computed)."""
    index, values = scan.card(card)
    return evidence_of(index, values, c if c is not None else candidates(scan, cfg), cfg)


def judge(e: Evidence, cfg: GroundTruthRaterConfig) -> Rating:
    """Steps 4-5."""
    best = max(e.best_label_f1, e.best_token_f1)
    rating = "yes" if best >= cfg.yes_f1 else "maybe" if best >= cfg.maybe_f1 else "no"
    context_free = rating != "no" and e.best_token_f1 >= e.best_label_f1 - cfg.context_free_margin
    return Rating(rating, context_free, _note(e))


def _note(e: Evidence) -> str:
    if e.n_active == 0:
        return "never active on the scanned tokens"
    return (
        f"best label {e.best_label} (F1 {e.best_label_f1:.2f}), best token id {e.best_token} "
        f"(F1 {e.best_token_f1:.2f}), {e.n_active} active tokens"
    )


def rate_all(scan: ScanData, cfg: GroundTruthRaterConfig, packet_id: str) -> RatingsFile:
    """Every card of the packet, as a ratings file of the reserved rater 'ground_truth' (no time
    stamps, so the same packet always gives the same file)."""
    ratings, evidences = {}, {}
    c = candidates(scan, cfg)
    for card in range(1, scan.n_cards + 1):
        e = evidence(scan, card, cfg, c)
        ratings[card] = judge(e, cfg)
        evidences[str(card)] = asdict(e)
    extra = {"rule": asdict(cfg), "evidence": evidences}
    return RatingsFile(GROUND_TRUTH, packet_id, ratings, extra)
