"""What every case study shares: its settings for the profile, the transcoders circuits run on,
prompts (literal, templated, or cut from the labelled held-out corpus), the ground-truth selectivity
of features (AUROC) and where results and figures go.

Root selection by ground truth (organism profiles; `select_feature`):
1. Pack the held-out split into BOS-led contexts with their per-token labels (`labelled_heldout`).
2. For each candidate transcoder layer, encode the MLP input of every token.
3. For every feature, AUROC of its activation for target-label tokens against (a) every other
   token and (b) contrast-label tokens only; ties count one half (Mann-Whitney U).
4. The root is the feature with the largest min(a, b): it must single out the target among all
   tokens *and* separate it from the hard contrast (citation vs prose semicolons).
The root is chosen on the even held-out contexts (`LabelledTokens.selection_half`); its AUROCs,
the study's prompts and the dashboard come from the odd ones (`report_half`), so a root's numbers
are not measured on the tokens that chose it (selection would inflate them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from transcoder_lab.config import CaseStudyConfig, CaseStudyProfile, Config, ModelSource
from transcoder_lab.data import BOS_LABEL, load_split, pack_contexts
from transcoder_lab.dictionaries import Dictionary, load_dictionary
from transcoder_lab.organism.corpus import labels as corpus_labels
from transcoder_lab.paths import corpus_dir, dictionary_dir, figures_dir, published_dir, results_dir
from transcoder_lab.sources.hooks import mlp_in_hook

# held-out contexts scanned: the even ones choose a root, the odd ones report on it (prompts,
# AUROCs, dashboards), so a root is never confirmed on the tokens it was chosen on
HELDOUT_CONTEXTS = 400


def settings_for(cfg: Config, study: CaseStudyConfig, name: str) -> CaseStudyProfile:
    """The study's entry for this profile; organism-source profiles fall back to `organism`."""
    profile = cfg.profile
    if profile.name in study.profiles:
        return study.profiles[profile.name]
    if profile.model.source == ModelSource.organism and "organism" in study.profiles:
        return study.profiles["organism"]
    raise ValueError(
        f"case study '{name}' has no settings for profile '{profile.name}' (it has "
        f"{sorted(study.profiles)}); add a `profiles.{profile.name}` entry to conf/case_study/{name}.yaml."
    )


def circuit_transcoders(cfg: Config, device: str | torch.device = "cpu") -> dict[int, Dictionary]:
    """The transcoders circuits run on: the published ones (gpt2_small) or the trained ones at
    `evaluation.splice_all_l1` (every layer with a transcoder cell)."""
    if cfg.profile.published_transcoder_layers:
        return {
            layer: load_dictionary(published_dir(cfg, layer), device)
            for layer in cfg.profile.published_transcoder_layers
        }
    l1 = cfg.profile.evaluation.splice_all_l1
    layers = cfg.profile.dictionaries.layers_of("transcoder")
    if l1 is None or not layers:
        raise ValueError(
            "case studies need transcoders: list L<layer>_transcoder cells in profile.dictionaries.cells "
            "and set profile.evaluation.splice_all_l1 to one of profile.dictionaries.l1_coefficients."
        )
    return {layer: load_dictionary(dictionary_dir(cfg, layer, "transcoder", l1), device) for layer in layers}


def output_paths(cfg: Config, name: str) -> tuple[Path, Path]:
    """(results JSON, figures directory) of case study `name`."""
    return results_dir(cfg) / "case_studies" / f"{name}.json", figures_dir(cfg) / "case_studies" / name


@dataclass
class LabelledTokens:
    contexts: Int[Tensor, "n n_ctx"]  # BOS-led held-out contexts
    labels: Int[Tensor, "n n_ctx"]  # ground-truth label id per token (BOS_LABEL at BOS)
    names: tuple[str, ...]  # the corpus's label names; a label id indexes them

    def label_ids(self, names: list[str]) -> list[int]:
        unknown = [name for name in names if name not in self.names]
        if unknown:
            raise ValueError(
                f"unknown ground-truth labels {unknown}; the corpus labels are {list(self.names)}"
            )
        return [self.names.index(name) for name in names]

    def name_of(self, label: int) -> str:
        return "BOS" if label == BOS_LABEL else self.names[label]

    def selection_half(self) -> LabelledTokens:
        """The even contexts: where a root is chosen."""
        return LabelledTokens(self.contexts[0::2], self.labels[0::2], self.names)

    def report_half(self) -> LabelledTokens:
        """The odd contexts: where the chosen root's numbers are measured."""
        return LabelledTokens(self.contexts[1::2], self.labels[1::2], self.names)


def labelled_heldout(cfg: Config, bos_id: int, n_contexts: int = HELDOUT_CONTEXTS) -> LabelledTokens:
    data = load_split(corpus_dir(cfg), "heldout")
    n_ctx = cfg.profile.dictionaries.harvest.context_size
    contexts, labels = pack_contexts(data["tokens"], data["doc_offsets"], n_ctx, bos_id, data["labels"])
    assert labels is not None
    names = corpus_labels(cfg.profile.corpus)
    return LabelledTokens(
        torch.from_numpy(contexts[:n_contexts]), torch.from_numpy(labels[:n_contexts]), names
    )


def feature_pre_activation(
    transcoder: Dictionary, feature: int, x: Float[Tensor, "*batch d_in"]
) -> Float[Tensor, " *batch"]:
    """One feature's pre-activation `(x - b_dec) · W_enc[:, j] + b_enc[j]` (docs/design.md §4.1), computed
    alone: `pre_activations(x)[..., j]` would build all d_sae columns to keep one, and its result
    is a view that keeps the whole [rows, d_sae] product alive for as long as it is held."""
    x = x.to(transcoder.dtype)
    return (x - transcoder.b_dec) @ transcoder.W_enc[:, feature] + transcoder.b_enc[feature]


@torch.no_grad()
def feature_activations(
    model: HookedTransformer, transcoder: Dictionary, contexts: Int[Tensor, "n n_ctx"], batch_size: int = 64
) -> Float[Tensor, "n n_ctx d_sae"]:
    """Every feature's activation on every token (one model pass per batch, stopped at the layer)."""
    layer = transcoder.spec.layer
    return layer_activations(model, {layer: transcoder}, contexts, batch_size)[layer]


@torch.no_grad()
def layer_activations(
    model: HookedTransformer,
    transcoders: dict[int, Dictionary],
    contexts: Int[Tensor, "n n_ctx"],
    batch_size: int = 64,
) -> dict[int, Float[Tensor, "n n_ctx d_sae"]]:
    """`feature_activations` for several transcoders from one model pass per batch."""
    hooks = {mlp_in_hook(layer): layer for layer in transcoders}
    out: dict[int, list[Tensor]] = {layer: [] for layer in transcoders}
    for start in range(0, len(contexts), batch_size):
        batch = contexts[start : start + batch_size].to(model.cfg.device)
        _, cache = model.run_with_cache(
            batch, names_filter=lambda name: name in hooks, stop_at_layer=max(transcoders) + 1
        )
        for hook, layer in hooks.items():
            tc = transcoders[layer]
            out[layer].append(tc.encode(cache[hook].to(tc.dtype)).float().cpu())
    return {layer: torch.cat(chunks) for layer, chunks in out.items()}


def auroc(positive: Float[Tensor, "f n_pos"], negative: Float[Tensor, "f n_neg"]) -> Float[Tensor, " f"]:
    """Per row, P(a positive value > a negative one) + P(equal) / 2 (the Mann-Whitney AUROC)."""
    if positive.shape[-1] == 0 or negative.shape[-1] == 0:
        raise ValueError("AUROC needs at least one positive and one negative example")
    ordered = negative.sort(dim=-1).values.contiguous()
    below = torch.searchsorted(ordered, positive.contiguous(), right=False)
    at_or_below = torch.searchsorted(ordered, positive.contiguous(), right=True)
    wins = below.double() + 0.5 * (at_or_below - below).double()
    return (wins.mean(-1) / negative.shape[-1]).float()


@dataclass
class Selection:
    layer: int
    feature: int
    auroc_vs_rest: float
    auroc_vs_contrast: float | None
    n_target: int
    n_contrast: int
    # the chosen feature on every held-out token, kept so the dashboard need not encode them again
    activations: Float[Tensor, "n_ctx pos"] | None = field(default=None, repr=False)

    def summary(self) -> dict[str, Any]:
        return {key: value for key, value in vars(self).items() if key != "activations"}


def select_feature(
    model: HookedTransformer,
    transcoders: dict[int, Dictionary],
    tokens: LabelledTokens,
    target_labels: list[str],
    contrast_labels: list[str],
    candidate_layers: list[int],
    feature: tuple[int, int] | None = None,
) -> Selection:
    """The feature most selective for the target labels (module docstring, steps 1-4), searched in
    `candidate_layers` that have a transcoder (all of them when none has, e.g. on small profiles);
    with `feature` = (layer, index), that feature's scores on `tokens` instead (no search)."""
    target_ids, contrast_ids = tokens.label_ids(target_labels), tokens.label_ids(contrast_labels)
    flat_labels = tokens.labels.reshape(-1)
    is_target = torch.isin(flat_labels, torch.tensor(target_ids))
    is_contrast = torch.isin(flat_labels, torch.tensor(contrast_ids)) if contrast_ids else None
    is_rest = ~is_target & (flat_labels != BOS_LABEL)
    if not is_target.any() or (is_contrast is not None and not is_contrast.any()):
        raise ValueError(
            f"the held-out sample has no tokens labelled {target_labels} or {contrast_labels}; "
            "scan more contexts or check the label names"
        )
    best: Selection | None = None
    best_score = -1.0
    if feature is not None:
        layers = [feature[0]]
    else:
        layers = [layer for layer in candidate_layers if layer in transcoders] or sorted(transcoders)
    by_layer = layer_activations(model, {layer: transcoders[layer] for layer in layers}, tokens.contexts)
    for layer in layers:
        acts = by_layer[layer].reshape(-1, transcoders[layer].spec.d_sae).T
        if feature is not None:
            acts = acts[feature[1] : feature[1] + 1]
        vs_rest = auroc(acts[:, is_target], acts[:, is_rest])
        vs_contrast = auroc(acts[:, is_target], acts[:, is_contrast]) if is_contrast is not None else None
        score = torch.minimum(vs_rest, vs_contrast) if vs_contrast is not None else vs_rest
        row = int(score.argmax())
        if float(score[row]) > best_score:
            best_score = float(score[row])
            index = feature[1] if feature is not None else row
            best = Selection(
                layer,
                index,
                float(vs_rest[row]),
                float(vs_contrast[row]) if vs_contrast is not None else None,
                int(is_target.sum()),
                int(is_contrast.sum()) if is_contrast is not None else 0,
                by_layer[layer][..., index].clone(),  # a copy: a view would keep every feature alive
            )
    assert best is not None
    return best


@dataclass
class Prompt:
    tokens: Int[Tensor, " pos"]  # BOS-led; the root reads the last token
    labels: Int[Tensor, " pos"] | None  # ground truth per token, when cut from the corpus


def corpus_prompts(tokens: LabelledTokens, labels: list[str], n: int, window: int = 24) -> list[Prompt]:
    """Up to n prompts cut from the held-out contexts, each ending at a token with one of `labels`
    (occurrences spread evenly over the sample), with up to `window` tokens of context after BOS."""
    wanted = torch.isin(tokens.labels, torch.tensor(tokens.label_ids(labels)))
    wanted[:, 0] = False
    where = wanted.nonzero().tolist()
    if not where:
        raise ValueError(f"no held-out token is labelled {labels}")
    chosen = [where[int(i)] for i in np.linspace(0, len(where) - 1, min(n, len(where)))]
    prompts = []
    for row, position in chosen:
        start = max(1, position - window + 1)
        body = slice(start, position + 1)
        bos = tokens.contexts[row, :1]
        prompts.append(
            Prompt(
                torch.cat([bos, tokens.contexts[row, body]]),
                torch.cat([tokens.labels[row, :1], tokens.labels[row, body]]),
            )
        )
    return prompts


def context_positions(prompt: Prompt, context_ids: Tensor) -> list[int]:
    """The positions before the prompt's last token (BOS excluded) whose ground-truth label is one of
    `context_ids`: where a root's planted context sits."""
    assert prompt.labels is not None, "context positions need prompts cut from the corpus"
    last = len(prompt.tokens) - 1
    return [p for p in range(1, last) if bool(torch.isin(prompt.labels[p], context_ids))]


def text_prompts(model: HookedTransformer, texts: list[str]) -> list[Prompt]:
    return [Prompt(model.to_tokens(text)[0].cpu(), None) for text in texts]


@torch.no_grad()
def root_activations(
    model: HookedTransformer, transcoder: Dictionary, feature: int, prompts: list[Prompt]
) -> list[float]:
    """The root feature's activation at each prompt's last token. Prompts are right-padded into one
    batch: attention is causal, so padding after a token never changes its activation."""
    if not prompts:
        return []
    lengths = torch.tensor([len(p.tokens) for p in prompts])
    batch = torch.zeros(len(prompts), int(lengths.max()), dtype=torch.long)
    for row, p in enumerate(prompts):
        batch[row, : len(p.tokens)] = p.tokens
    acts = feature_activations(model, transcoder, batch)[torch.arange(len(prompts)), lengths - 1, feature]
    return acts.tolist()
