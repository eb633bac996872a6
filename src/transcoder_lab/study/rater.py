"""The organism's ground-truth rater: rates each card from its feature's activations and the labels.

It reads only the scan data (`packet.load_scan`): the scanned tokens, their ground-truth labels
and, per card number, where the card's feature is active. It never reads the key, so it is as
blind to the arm as a human rater. For each card:

1. Active tokens: counted (non-BOS) scanned tokens where the activation exceeds
   `active_fraction` times the feature's largest scanned activation (`organism.ground_truth`
   step 1, the definition the graph viewer's feature labels share).
2. Candidate explanations, each a set of tokens: every ground-truth label except
   `exclude_labels` (default "background", which covers ordinary text and explains nothing), every
   label family (the labels sharing a prefix before "/", e.g. all of "citation/..."), and every
   single token identity (all counted tokens with one token id).
3. Each candidate's F1 against the active set, F1 = 2·|A ∩ E| / (|A| + |E|) over counted tokens
   (`organism.ground_truth` steps 2-4 for the labels and families). Let F1_label be the best label
   or family and F1_token the best token identity (ties: the first in label order, the lowest token
   id). The candidates' sizes depend only on the scan, so they are counted once (`candidates`) and
   every card or feature reuses them (`evidence_of`).
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
from transcoder_lab.organism.ground_truth import (
    LabelCandidates,
    active_tokens,
    best_labels,
    f1,
    label_candidates,
    label_counts,
)
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


@dataclass
class Candidates:
    """Step 2's candidate explanations over a scan's counted tokens, computed once per scan."""

    tokens: Tensor  # flat token ids of the scan
    labels: Tensor  # flat label ids
    token_sizes: Tensor  # counted tokens per token id
    label: LabelCandidates  # the labels and families, with their sizes


def candidates(scan: ScanData, cfg: GroundTruthRaterConfig) -> Candidates:
    if scan.labels is None or scan.label_names is None:
        raise ValueError("the ground-truth rater needs labelled scan data (organism profiles only)")
    tokens, labels = scan.tokens.reshape(-1), scan.labels.reshape(-1)
    counted = scan.counted.reshape(-1)
    return Candidates(
        tokens=tokens,
        labels=labels,
        token_sizes=torch.bincount(tokens[counted], minlength=int(tokens.max()) + 1),
        label=label_candidates(labels[counted], scan.label_names, cfg.exclude_labels),
    )


def evidence_of(index: Tensor, values: Tensor, c: Candidates, cfg: GroundTruthRaterConfig) -> Evidence:
    """Steps 1-3 for one feature, from the flat token indices where it is active and its values."""
    if len(values) == 0:
        return Evidence(0, None, 0.0, None, 0.0, 0.0)
    active = index[active_tokens(values, cfg.active_fraction)]
    n_active = len(active)
    token_hits = torch.bincount(c.tokens[active], minlength=len(c.token_sizes))
    token_f1 = f1(token_hits, n_active, c.token_sizes)
    best_token = int(token_f1.argmax())

    per_label = label_counts(c.labels[active], c.label.membership.shape[1])
    best, label_f1 = best_labels(per_label, torch.tensor(n_active), c.label)
    return Evidence(
        n_active=n_active,
        best_label=c.label.names[int(best)] if best >= 0 else None,
        best_label_f1=float(label_f1),
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
