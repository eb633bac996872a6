"""A feature-circuit case study: why does one transcoder feature fire? (citation, "caught",
walkthrough, local context, and the template for new ones.)

Algorithm (`run_feature_study`, a sequence of the public step functions named below, which the
study's notebook calls one a cell, in the same order):
1. Root (`choose_root`). A configured (layer, feature), or on organism profiles the feature most
   selective for the study's target labels (`common.select_feature` on `heldout_tokens`), with its
   AUROC against every other token and against the contrast labels.
2. Blind hypothesis (`blind_hypothesis`, when `blind`): no activating examples, only the model and
   the transcoder: the feature's response to every token alone ([BOS, t]; the current token it
   wants) and to every token before the best one ([BOS, t, best]; the context that raises it),
   beside the weights-only de-embedding. (The de-embedding alone misleads above layer 0: the
   layer-0 MLP acts as an extended embedding, so token identity reaches later features mostly
   through it.) The probes compute that one feature's pre-activation only, batch by batch of
   synthetic rows.
3. Activations at the last token of the study's prompts and of its contrast prompts
   (`study_prompts`, `prompt_activations`).
4. Circuit on the prompt where the root is most active: direct attribution of the root
   (`attribute_root`; exact, transcoder_lab.circuits), grouped into the root token's own features,
   attention from other positions (by ground-truth label of the source token when known),
   embedding, errors and biases (`contribution_groups`); beam search from the root and the graph
   (`search_circuit`), its verification by ablation (`verify_circuit`), and the result's summary
   of it (`circuit_summary`). Then (`circuit_evidence`) the circuit tested by intervention on its
   prompt and on every prompt, and with `context_labels` the ground-truth check of the attention
   the root should read (case_studies.faithfulness: sufficiency, necessity, random baselines,
   attribution against ablation of every active feature, verdicts) and the matched pairs with the
   context made neutral (case_studies.contrastive: attribution and patching of the difference).
5. Interventions: (a) the token swap of `replace_earlier` (`token_swap`; [old, new]: every earlier
   `old` token of a prompt becomes `new`, e.g. semicolons before the last one become commas),
   reported as the mean activation before and after and their ratio; (b) the walkthrough's splice
   experiment (`splice_experiment`): the root's activation with the MLPs of layers 1..L-1, then
   0..L-1, replaced by their transcoders (no error term).
6. Dashboard after the hypothesis (`dashboard_check`): the top-activating held-out tokens (report
   half); the hypothesis counts as confirmed when most of them are current tokens it named *and*
   most of them have one of the context tokens it named within the 8 tokens before.
Figures: `graph_figure` of the graph and `activation_figure` of step 3.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from jaxtyping import Float, Int
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from transcoder_lab.case_studies.common import (
    LabelledTokens,
    Prompt,
    Selection,
    corpus_prompts,
    feature_activations,
    feature_pre_activation,
    labelled_heldout,
    output_paths,
    root_activations,
    select_feature,
    text_prompts,
)
from transcoder_lab.case_studies.contrastive import contrastive_check
from transcoder_lab.case_studies.faithfulness import (
    feature_root_at_end,
    graph_features,
    ground_truth_check,
    study_faithfulness,
)
from transcoder_lab.circuits import (
    Attribution,
    AttributionContext,
    Graph,
    Path,
    Root,
    attribute,
    beam_search,
    build_graph,
    de_embedding,
    feature_root,
    graph_figure,
    graph_to_json,
    top_contributors,
    verify_graph,
)
from transcoder_lab.config import CaseStudyConfig, CaseStudyProfile, Config, SearchConfig
from transcoder_lab.dictionaries import Dictionary
from transcoder_lab.dictionaries.evaluation import spliced
from transcoder_lab.sources.hooks import mlp_in_hook

TOP_TOKENS = 10  # tokens a hypothesis names; activating tokens a dashboard shows
CONTEXT_WINDOW = 8  # tokens before an activating example searched for the hypothesis's context


def _decode(model: HookedTransformer, token: int) -> str:
    return model.tokenizer.decode([int(token)])


PROBE_BATCH = 1024  # synthetic rows per model pass of a token probe
PROBE_SAMPLE_SEED = 0  # the vocabulary sample of a probe with `probe_tokens` set


def probe_vocabulary(n_vocab: int, probe_tokens: int | None) -> Int[torch.Tensor, " n"]:
    """The tokens a probe tries: the whole vocabulary, or with `probe_tokens` set (smoke runs) a
    fixed random sample of that many, in id order (the same sample on every run and machine)."""
    if probe_tokens is None or probe_tokens >= n_vocab:
        return torch.arange(n_vocab)
    if probe_tokens < TOP_TOKENS:
        raise ValueError(f"probe_tokens must be at least {TOP_TOKENS} (the tokens a hypothesis names)")
    sample = torch.randperm(n_vocab, generator=torch.Generator().manual_seed(PROBE_SAMPLE_SEED))
    return sample[:probe_tokens].sort().values


@torch.no_grad()
def _token_probe(
    model: HookedTransformer,
    transcoder: Dictionary,
    feature: int,
    prefix: list[int],
    suffix: list[int],
    tokens: Int[torch.Tensor, " n"] | None = None,
) -> Float[torch.Tensor, " n"]:
    """The feature's pre-activation at the last position of [BOS, *prefix, t, *suffix] for every
    token t of `tokens` (default: the tokenizer's whole vocabulary, so entry t is token t's; synthetic
    inputs, not examples from any data set). Per batch of rows: the model up to the feature's layer,
    then that one feature's pre-activation only (GPT-2's 50,257 tokens x 24,576 features would
    otherwise be computed, and held, to keep one column)."""
    vocab = torch.arange(len(model.tokenizer)) if tokens is None else tokens
    rows = torch.cat(
        [
            torch.full((len(vocab), 1), model.tokenizer.bos_token_id),
            torch.tensor(prefix, dtype=torch.long).expand(len(vocab), len(prefix)),
            vocab[:, None],
            torch.tensor(suffix, dtype=torch.long).expand(len(vocab), len(suffix)),
        ],
        dim=1,
    )
    hook, out = mlp_in_hook(transcoder.spec.layer), []
    batches = rows.split(PROBE_BATCH)
    for batch in tqdm(
        batches, desc=f"token probe of feature {feature}", leave=False, disable=len(batches) < 4
    ):
        _, cache = model.run_with_cache(
            batch.to(model.cfg.device), names_filter=hook, stop_at_layer=transcoder.spec.layer + 1
        )
        out.append(feature_pre_activation(transcoder, feature, cache[hook][:, -1]).float().cpu())
    return torch.cat(out)


def blind_hypothesis(
    model: HookedTransformer, transcoder: Dictionary, feature: int, probe_tokens: int | None = None
) -> dict[str, Any]:
    """Step 2: a hypothesis without activating examples: the feature's response to every token
    alone ([BOS, t]: which current token it wants) and to every token placed before the best one
    ([BOS, t, best]: which earlier context raises it), plus the weights-only de-embedding.
    `probe_tokens` (the study's setting; smoke runs) tries a fixed sample of the vocabulary instead
    of every token (`probe_vocabulary`)."""
    vocab = probe_vocabulary(len(model.tokenizer), probe_tokens)

    def best(suffix: list[int]) -> list[int]:
        scores = _token_probe(model, transcoder, feature, [], suffix, vocab)
        return vocab[scores.topk(TOP_TOKENS).indices].tolist()

    current = best([])
    context = best([current[0]])
    direct = de_embedding(model, transcoder, feature)
    assert direct is not None
    weights_only = direct.topk(TOP_TOKENS).indices.tolist()
    return {
        "current_token_ids": current,
        "context_token_ids": context,
        "current_tokens": [_decode(model, t) for t in current],
        "context_tokens": [_decode(model, t) for t in context],
        "de_embedding_tokens": [_decode(model, t) for t in weights_only],
        "probed_tokens": len(vocab),
        "statement": (
            f"fires on the current token {', '.join(repr(_decode(model, t)) for t in current[:3])}, "
            f"more so after {', '.join(repr(_decode(model, t)) for t in context[:3])}"
        ),
    }


def saved_step(cfg: Config, name: str, root: StudyRoot, key: str) -> Any | None:
    """What study `name`'s stage saved under the dotted `key` of its JSON, when that JSON exists
    and is for the same root; else None. The notebooks read an expensive step (the blind probe)
    from it rather than pay for it again, and say so; they recompute on request or without it."""
    path, _ = output_paths(cfg, name)
    if not path.exists():
        return None
    value: Any = json.loads(path.read_text())
    if value.get("root") != root.summary(CaseStudyProfile())["root"]:
        return None  # the stage ran on another root (other outputs, other settings): not this one's
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is not None:  # named from results/ on, not by this machine's absolute path
        shown = "/".join(path.parts[-4:])
        print(f"{key}: read from {shown} (the stage's result; set RECOMPUTE = True to compute it here)")
    return value


def dashboard_check(
    model: HookedTransformer,
    transcoder: Dictionary,
    feature: int,
    heldout: LabelledTokens,
    hypothesis: dict[str, Any] | None,
    activations: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Step 6: the top-activating held-out tokens of the report half (and their labels) against
    the hypothesis. `activations`: the feature on that half when already computed (the root's
    `selection`)."""
    heldout = heldout.report_half()
    if activations is None:
        activations = feature_activations(model, transcoder, heldout.contexts)[..., feature]
    acts = activations.reshape(-1)
    tokens, labels = heldout.contexts.reshape(-1), heldout.labels.reshape(-1)
    n_active = int((acts > 0).sum())
    top = acts.topk(min(TOP_TOKENS * 2, n_active)).indices if n_active else torch.zeros(0, dtype=torch.long)
    top_tokens = [int(t) for t in tokens[top]]
    out: dict[str, Any] = {
        "frequency": n_active / acts.numel(),
        "top_tokens": [_decode(model, t) for t in top_tokens],
        "top_labels": dict(Counter(heldout.name_of(int(label)) for label in labels[top]).most_common(5)),
    }
    if hypothesis is not None:
        n_top = max(1, len(top_tokens))
        named = sum(t in set(hypothesis["current_token_ids"]) for t in top_tokens)
        # the context half: a named context token within CONTEXT_WINDOW tokens before the example
        n_ctx = heldout.contexts.shape[1]
        context_ids = set(hypothesis.get("context_token_ids", []))
        with_context = 0
        for index in top.tolist():
            row, position = divmod(index, n_ctx)
            before = heldout.contexts[row, max(1, position - CONTEXT_WINDOW) : position].tolist()
            with_context += bool(context_ids & set(before))
        out["share_of_top_tokens_named_by_hypothesis"] = named / n_top
        out["share_of_top_tokens_after_named_context"] = with_context / n_top
        out["confirmed"] = named / n_top >= 0.5 and with_context / n_top >= 0.5
    return out


def contribution_groups(
    ctx: AttributionContext, root_attribution, labels: torch.Tensor | None, heldout: LabelledTokens | None
) -> dict[str, float]:
    """Step 4: the root's direct contributions summed by where they come from (root units); by
    ground-truth label of the source token too, when the prompt has `labels` (of `heldout`'s corpus)."""
    a, t = root_attribution, root_attribution.root.position
    heads_by_source = a.heads.sum(dim=(0, 1))  # [pos]
    groups = {
        "root_token_features": sum(float(f.sum()) for f in a.features.values()),
        "attention_from_root_token": float(heads_by_source[t]),
        "attention_from_other_tokens": float(heads_by_source.sum() - heads_by_source[t]),
        "embedding": a.embedding,
        "errors_and_mlps": sum(a.tc_errors.values()) + sum(a.mlps.values()) + sum(a.skips.values()),
        "biases": a.bias,
    }
    if labels is not None and heldout is not None:
        by_label: Counter[str] = Counter()
        for s in range(len(labels)):
            if s != t:
                by_label[heldout.name_of(int(labels[s]))] += float(heads_by_source[s])
        groups["attention_by_source_label"] = dict(by_label.most_common(6))
    return groups


def swap_earlier(prompt: Prompt, old: int, new: int) -> Prompt | None:
    """Step 5a: the prompt with every `old` token before the last position replaced by `new`."""
    body = prompt.tokens.clone()
    earlier = body[:-1] == old
    if not earlier.any():
        return None
    body[:-1][earlier] = new
    return Prompt(body, prompt.labels)


@torch.no_grad()
def splice_experiment(
    model: HookedTransformer,
    transcoders: dict[int, Dictionary],
    root_layer: int,
    feature: int,
    prompts: list[Prompt],
) -> dict[str, float]:
    """Step 5b: mean root activation clean and with earlier MLPs replaced by transcoders."""
    transcoder = transcoders[root_layer]
    out = {"clean": float(np.mean(root_activations(model, transcoder, feature, prompts)))}
    for first in (1, 0):
        layers = [layer for layer in range(first, root_layer) if layer in transcoders]
        if not layers:
            continue
        with spliced(model, [transcoders[layer] for layer in layers]):
            out[f"mlp{first}-{root_layer - 1}_spliced"] = float(
                np.mean(root_activations(model, transcoder, feature, prompts))
            )
    return out


def _single_token_id(model: HookedTransformer, text: str) -> int:
    ids = model.to_tokens(text, prepend_bos=False)[0]
    if len(ids) != 1:
        raise ValueError(
            f"replace_earlier: {text!r} is {len(ids)} tokens for this tokenizer; use single tokens"
        )
    return int(ids[0])


def _prompts(
    model: HookedTransformer, heldout: LabelledTokens | None, texts: list[str], labels: list[str], n: int
):
    if texts:
        return text_prompts(model, texts[:n] if n else texts)
    if heldout is not None and labels:
        return corpus_prompts(heldout, labels, n)
    return []


@dataclass
class StudyRoot:
    """Step 1's answer: the root feature, and how it was chosen (`selection`: by AUROC on the
    organism; None when the profile's settings name it)."""

    layer: int
    feature: int
    selection: Selection | None = None

    @property
    def label(self) -> str:
        return f"tc{self.layer}[{self.feature}]"

    def summary(self, settings: CaseStudyProfile) -> dict[str, Any]:
        """The result's `selection` (when chosen by AUROC) and `root` entries."""
        out: dict[str, Any] = {}
        if self.selection is not None:
            out["selection"] = self.selection.summary() | {
                "target_labels": settings.target_labels,
                "contrast_labels": settings.contrast_labels,
            }
        out["root"] = {"layer": self.layer, "feature": self.feature, "label": self.label}
        return out


def heldout_tokens(cfg: Config, model: HookedTransformer) -> LabelledTokens | None:
    """The labelled held-out contexts the root is chosen on and the dashboard reads (organism
    profiles, whose corpus labels every token); None on profiles without ground truth."""
    return labelled_heldout(cfg, model.tokenizer.bos_token_id) if cfg.profile.corpus is not None else None


def choose_root(
    settings: CaseStudyProfile,
    model: HookedTransformer,
    transcoders: dict[int, Dictionary],
    heldout: LabelledTokens | None,
) -> StudyRoot:
    """Step 1: the configured (layer, feature), or the feature most selective for the settings'
    target labels against every other token and the contrast labels (`select_feature`), chosen on
    the selection half of `heldout` and scored on its report half (`common` module docstring)."""
    if settings.feature is not None and settings.layer is not None:
        return StudyRoot(settings.layer, settings.feature)
    if heldout is not None and settings.target_labels:
        labels = (settings.target_labels, settings.contrast_labels)
        chosen = select_feature(
            model, transcoders, heldout.selection_half(), *labels, settings.candidate_layers
        )
        reported = select_feature(  # its scores where it was not chosen
            model, transcoders, heldout.report_half(), *labels, [], (chosen.layer, chosen.feature)
        )
        return StudyRoot(chosen.layer, chosen.feature, reported)
    raise ValueError(
        "a feature case study needs `layer` and `feature`, or `target_labels` on an organism profile"
    )


def study_prompts(
    model: HookedTransformer, heldout: LabelledTokens | None, settings: CaseStudyProfile
) -> tuple[list[Prompt], list[Prompt]]:
    """Step 3's inputs: the study's prompts and contrast prompts (literal texts, or on the organism
    cut from the held-out corpus so that they end at a token with the target / contrast labels)."""
    report = heldout.report_half() if heldout is not None else None  # not the tokens that chose the root
    prompts = _prompts(model, report, settings.prompts, settings.target_labels, settings.n_prompts)
    contrast = _prompts(
        model, report, settings.contrast_prompts, settings.contrast_labels, settings.n_prompts
    )
    if not prompts:
        raise ValueError("the case study has no prompts: give `prompts` or (organism) `target_labels`")
    return prompts, contrast


def prompt_activations(
    model: HookedTransformer,
    transcoder: Dictionary,
    feature: int,
    prompts: list[Prompt],
    contrast: list[Prompt],
) -> dict[str, Any]:
    """Step 3: the root's activation at the last token of every prompt and contrast prompt, and
    their means (the result's `activations`)."""
    target_acts = root_activations(model, transcoder, feature, prompts)
    contrast_acts = root_activations(model, transcoder, feature, contrast) if contrast else []
    return {
        "prompts_mean": float(np.mean(target_acts)),
        "contrast_mean": float(np.mean(contrast_acts)) if contrast_acts else None,
        "prompts": target_acts,
        "contrast": contrast_acts,
    }


@dataclass(eq=False)
class FeatureCircuit:
    """Step 4, built up one step at a time: the prompt, its attribution context and root node
    (`attribute_root`), the root's direct attribution, then the beam-search paths and the graph
    (`search_circuit`) and the graph's verification by ablation (`verify_circuit`)."""

    prompt: Prompt
    activation: float  # the root's activation on the prompt
    str_tokens: list[str]
    ctx: AttributionContext
    root: Root
    attribution: Attribution
    paths: list[Path] = field(default_factory=list)
    graph: Graph | None = None
    verification: dict[str, Any] | None = None


def attribute_root(
    model: HookedTransformer,
    transcoders: dict[int, Dictionary],
    root: StudyRoot,
    prompts: list[Prompt],
    activations: list[float],
) -> FeatureCircuit:
    """Step 4a: on the prompt where the root is most active, the root's exact direct attribution
    to every earlier feature, head, embedding, error and bias."""
    best = int(np.argmax(activations))
    prompt = prompts[best]
    ctx = AttributionContext.from_tokens(model, transcoders, prompt.tokens)
    node = feature_root(ctx, root.layer, root.feature, len(prompt.tokens) - 1)
    return FeatureCircuit(
        prompt,
        activations[best],
        [_decode(model, t) for t in prompt.tokens],
        ctx,
        node,
        attribute(ctx, node),
    )


def search_circuit(circuit: FeatureCircuit, search: SearchConfig) -> FeatureCircuit:
    """Step 4b: beam search backwards from the root (`search`: iterations, branches per step,
    children per node) and the graph of the paths found; fills `circuit.paths` and `.graph`."""
    circuit.paths = beam_search(
        circuit.ctx, circuit.root, search.n_iterations, search.n_branches, per_node=search.per_node
    )
    circuit.graph = build_graph(circuit.ctx, circuit.root, circuit.paths)
    return circuit


def verify_circuit(
    model: HookedTransformer, transcoders: dict[int, Dictionary], circuit: FeatureCircuit
) -> dict[str, Any]:
    """Step 4c: the graph's share of the root's activation and the Spearman correlation between
    its edges' attributions and the effects of ablating them (`circuits.verify_graph`)."""
    assert circuit.graph is not None, "search_circuit first"
    circuit.verification = verify_graph(
        model, transcoders, circuit.prompt.tokens, circuit.root, circuit.graph
    )
    return circuit.verification


def circuit_summary(circuit: FeatureCircuit, heldout: LabelledTokens | None, title: str) -> dict[str, Any]:
    """The result's `circuit`: top contributors, contributions grouped by source, the strongest
    paths, the verification and the graph as JSON (study `title` in its metadata)."""
    assert circuit.graph is not None and circuit.verification is not None, "search and verify first"
    top = top_contributors(circuit.attribution, k=5)
    return {
        "prompt": "".join(circuit.str_tokens[1:]),
        "root_activation": circuit.activation,
        "top_contributors": [{"label": c.label, "value": c.value} for c in top],
        "contribution_groups": contribution_groups(
            circuit.ctx, circuit.attribution, circuit.prompt.labels, heldout
        ),
        "paths": [{"nodes": p.labels, "value": p.value} for p in circuit.paths[:10]],
        "fraction_explained": circuit.verification["fraction_explained"],
        "ablation_spearman": circuit.verification["spearman"],
        "graph": graph_to_json(
            circuit.graph,
            circuit.str_tokens,
            {"case_study": title, "token_ids": circuit.prompt.tokens.tolist()},
        ),
    }


def circuit_evidence(
    model: HookedTransformer,
    transcoders: dict[int, Dictionary],
    root: StudyRoot,
    prompts: list[Prompt],
    circuit: FeatureCircuit,
    heldout: LabelledTokens | None,
    settings: CaseStudyProfile,
    study: CaseStudyConfig,
) -> dict[str, Any]:
    """Step 4d: the circuit tested by intervention on its prompt and on every prompt (the result's
    `faithfulness`), and with `context_labels` on the organism the ground-truth check of its
    attention (`ground_truth`; case_studies.faithfulness) and the matched-pair contrast of the
    planted context against the neutral token (`contrastive`; case_studies.contrastive)."""
    assert circuit.graph is not None, "search_circuit first"
    make_root = feature_root_at_end(root.layer, root.feature)
    out: dict[str, Any] = {
        "faithfulness": study_faithfulness(
            model,
            transcoders,
            circuit.prompt.tokens,
            (circuit.root, graph_features(circuit.graph)),
            [(p.tokens, make_root) for p in prompts],
            study.search,
            study.faithfulness,
        )
    }
    if heldout is not None and settings.context_labels:
        if settings.neutral_token is None:
            raise ValueError("context_labels needs neutral_token: the token the context is swapped for")
        args = (
            model,
            transcoders,
            root.layer,
            root.feature,
            prompts[: study.faithfulness.n_prompts],
            heldout,
            settings.context_labels,
            _single_token_id(model, settings.neutral_token),
            study.faithfulness,
        )
        out["ground_truth"] = ground_truth_check(*args)
        out["contrastive"] = contrastive_check(*args)  # matched pairs (case_studies.contrastive)
    return out


def token_swap(
    model: HookedTransformer,
    transcoder: Dictionary,
    feature: int,
    prompts: list[Prompt],
    replace_earlier: list[str],
) -> dict[str, Any] | None:
    """Step 5a: the root's mean activation before and after every earlier `old` token of each
    prompt becomes `new` (`replace_earlier` = [old, new], single tokens), and their ratio; None
    when no prompt has an earlier `old`."""
    old, new = (_single_token_id(model, text) for text in replace_earlier)
    pairs = [(p, swap_earlier(p, old, new)) for p in prompts]
    pairs = [(p, q) for p, q in pairs if q is not None]
    if not pairs:
        return None
    before = root_activations(model, transcoder, feature, [p for p, _ in pairs])
    after = root_activations(model, transcoder, feature, [q for _, q in pairs])
    mean_before, mean_after = float(np.mean(before)), float(np.mean(after))
    return {
        "replace_earlier": replace_earlier,
        "n_prompts": len(pairs),
        "mean_before": mean_before,
        "mean_after": mean_after,
        # the swap's effect relative to the activation, comparable across prompts
        "after_over_before": mean_after / mean_before if mean_before != 0 else None,
    }


def activation_figure(target: list[float], contrast: list[float], title: str) -> plt.Figure:
    """Histogram of the root's activation on the prompts and on the contrast prompts."""
    figure, axis = plt.subplots(figsize=(5.5, 3.5))
    bins = np.linspace(0, max(target + contrast + [1e-6]), 30)
    axis.hist(target, bins=bins, alpha=0.7, label=f"prompts (n={len(target)})")
    if contrast:
        axis.hist(contrast, bins=bins, alpha=0.7, label=f"contrast (n={len(contrast)})")
    axis.set(xlabel="root activation at the last token", ylabel="prompts", title=title)
    axis.legend(fontsize=8)
    return figure


def run_feature_study(
    cfg: Config,
    study: CaseStudyConfig,
    settings: CaseStudyProfile,
    model: HookedTransformer,
    transcoders: dict[int, Dictionary],
) -> tuple[dict[str, Any], dict[str, plt.Figure]]:
    """Steps 1-6, each a public function the study's notebook calls too; returns the JSON-ready
    result and the figures by file stem."""
    heldout = heldout_tokens(cfg, model)
    root = choose_root(settings, model, transcoders, heldout)  # step 1
    transcoder = transcoders[root.layer]
    result: dict[str, Any] = root.summary(settings)
    hypothesis = (  # step 2
        blind_hypothesis(model, transcoder, root.feature, study.probe_tokens) if study.blind else None
    )
    if hypothesis is not None:
        result["blind"] = {"hypothesis": hypothesis}  # written before any activating example is looked at
    prompts, contrast = study_prompts(model, heldout, settings)  # step 3
    result["activations"] = prompt_activations(model, transcoder, root.feature, prompts, contrast)
    circuit = attribute_root(model, transcoders, root, prompts, result["activations"]["prompts"])  # 4
    search_circuit(circuit, study.search)
    verify_circuit(model, transcoders, circuit)
    result["circuit"] = circuit_summary(circuit, heldout, study.title)
    result |= circuit_evidence(model, transcoders, root, prompts, circuit, heldout, settings, study)  # 4d
    if settings.replace_earlier:  # step 5
        swap = token_swap(model, transcoder, root.feature, prompts, settings.replace_earlier)
        if swap is not None:
            result["intervention"] = swap
    result["splice"] = splice_experiment(model, transcoders, root.layer, root.feature, prompts)
    if heldout is not None:  # step 6
        selected = root.selection.activations if root.selection is not None else None
        result["dashboard"] = dashboard_check(model, transcoder, root.feature, heldout, hypothesis, selected)
        if hypothesis is not None:
            result["blind"]["confirmed_by_dashboard"] = result["dashboard"]["confirmed"]
    figures = {
        "graph": graph_figure(circuit.graph, circuit.str_tokens, f"{study.title}: {root.label}"),
        "activations": activation_figure(
            result["activations"]["prompts"], result["activations"]["contrast"], root.label
        ),
    }
    return result, figures


def describe(result: dict[str, Any]) -> str:
    """A plain-text summary of a feature study's result, for notebooks and logs."""
    lines = [f"root {result['root']['label']}"]
    if "selection" in result:
        s = result["selection"]
        lines.append(
            f"chosen for {s['target_labels']}: AUROC vs every other token {s['auroc_vs_rest']:.3f}"
            + (
                f", vs {s['contrast_labels']} {s['auroc_vs_contrast']:.3f}"
                if s["auroc_vs_contrast"] is not None
                else ""
            )
        )
    a = result["activations"]
    lines.append(f"mean activation: prompts {_fmt(a['prompts_mean'])}, contrast {_fmt(a['contrast_mean'])}")
    c = result["circuit"]
    lines.append(f"circuit on {c['prompt']!r} (activation {c['root_activation']:.3f}):")
    lines += [f"  {t['value']:+.3f}  {t['label']}" for t in c["top_contributors"]]
    lines.append("strongest paths (root <- ... <- source):")
    lines += [f"  {p['value']:+.3f}  " + " <- ".join(p["nodes"]) for p in c["paths"][:5]]
    lines.append(
        f"graph explains {_fmt(c['fraction_explained'])} of the root; "
        f"ablation Spearman {_fmt(c['ablation_spearman'])}"
    )
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
