"""Evaluation of dictionaries: reconstruction on held-out activations, and splicing into the model.

Reconstruction (`ReconstructionStats`), accumulated over all rows (tokens):
1. fraction of variance unexplained, FVU = sum ||y - y_hat||^2 / sum ||y - mean(y)||^2, with the
   mean taken over the same rows (so predicting the mean scores exactly 1);
2. mean L0, the average number of features with z > 0 per row, over all positions and also
   over non-BOS positions only;
3. per-feature firing counts, giving log10 firing frequency and the dead (never fired), live
   (log10 frequency > -4, docs/design.md §4.6) and dense (fires on more than 10% of rows) fractions.

Splicing (`spliced`, docs/design.md §4.6), one code path for every kind:
- transcoder at layer L: the MLP output (`blocks.L.hook_mlp_out`) is replaced by the transcoder's
  prediction from the MLP input (`blocks.L.ln2.hook_normalized`, captured on the way);
- SAE on the MLP output: the MLP output is replaced by its reconstruction;
- SAE on the MLP input: the MLP input is replaced by its reconstruction;
- cross-layer transcoder (crosslayer.py), spliced into every layer at once: at layer l's MLP input
  its layer-l features are encoded and kept, and layer l's MLP output is replaced by the decoders
  of the features of layers 0..l (`CrossLayerTranscoder.encode_layer`, `decode_layer`); its
  reconstruction metrics are kept per layer (`new_stats`: one ReconstructionStats per layer, for
  that MLP output and that layer's features).
Feature edits (`edit_features(layer, z)`: an ablation, a patch) see the features of one layer, a
per-layer dictionary's or a CLT's layer-l features, and the output is decoded from the edited ones (a
CLT's edit at layer l reaches every MLP output l..n-1 through its decoders).
With `keep_error=True` the dictionary's error (original minus reconstruction) is added back, so
the forward pass is unchanged while gradients and interventions flow through the features.
Several dictionaries splice at once (e.g. one transcoder per layer). Zero ablation sets the MLP
outputs of the same layers to zero.

`splice_metrics` then measures, on the same held-out tokens, next-token cross-entropy clean,
spliced and zero-ablated, `loss_recovered = (CE_zero - CE_spliced) / (CE_zero - CE_clean)`, and
the per-token KL(clean || spliced), averaged over every predicted position; with `per_context`,
also each context's own mean spliced cross-entropy (what a bootstrap over contexts resamples).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from jaxtyping import Float, Int
from transformer_lens import HookedTransformer

from transcoder_lab.dictionaries.activations import Batch
from transcoder_lab.dictionaries.crosslayer import CrossLayerTranscoder
from transcoder_lab.dictionaries.dictionary import Dictionary, DictionaryKind
from transcoder_lab.sources.hooks import mlp_in_hook, mlp_out_hook

LIVE_LOG10_FREQUENCY = -4.0
DENSE_FREQUENCY = 0.1
DEAD_LOG10_FREQUENCY = -10.0


@dataclass
class ReconstructionStats:
    """Running sums for FVU, L0 and firing frequencies of one dictionary."""

    d_sae: int
    d_out: int
    squared_error: float = 0.0
    target_square_sum: float = 0.0
    active: float = 0.0
    active_without_bos: float = 0.0
    n_rows: int = 0
    n_rows_without_bos: int = 0
    target_sum: torch.Tensor = field(init=False)
    fire_counts: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.target_sum = torch.zeros(self.d_out, dtype=torch.float64)
        self.fire_counts = torch.zeros(self.d_sae, dtype=torch.float64)

    @torch.no_grad()
    def update(
        self,
        y: Float[torch.Tensor, "rows d_out"],
        y_hat: Float[torch.Tensor, "rows d_out"],
        z: Float[torch.Tensor, "rows d_sae"],
        is_bos: torch.Tensor | None = None,
    ) -> None:
        y, y_hat, fired = y.double(), y_hat.double(), (z > 0)
        self.squared_error += (y_hat - y).pow(2).sum().item()
        self.target_square_sum += y.pow(2).sum().item()
        self.target_sum += y.sum(0).cpu()
        counts = fired.double().sum(-1)
        self.active += counts.sum().item()
        self.fire_counts += fired.double().sum(0).cpu()
        self.n_rows += len(y)
        keep = ~is_bos if is_bos is not None else torch.ones(len(y), dtype=torch.bool, device=y.device)
        self.active_without_bos += counts[keep].sum().item()
        self.n_rows_without_bos += int(keep.sum().item())

    def log10_frequency(self) -> torch.Tensor:
        frequency = self.fire_counts / max(1, self.n_rows)
        return torch.where(frequency > 0, frequency.log10(), torch.full_like(frequency, DEAD_LOG10_FREQUENCY))

    def result(self) -> dict[str, float]:
        if self.n_rows == 0:
            raise ValueError("no held-out rows to evaluate on")
        # sum ||y - mean||^2 = sum ||y||^2 - n ||mean||^2
        total_variance = self.target_square_sum - self.target_sum.pow(2).sum().item() / self.n_rows
        log10_frequency = self.log10_frequency()
        return {
            "fvu": self.squared_error / total_variance,
            "l0": self.active / self.n_rows,
            "l0_without_bos": self.active_without_bos / max(1, self.n_rows_without_bos),
            "dead_fraction": (self.fire_counts == 0).double().mean().item(),
            "live_fraction": (log10_frequency > LIVE_LOG10_FREQUENCY).double().mean().item(),
            "dense_fraction": (self.fire_counts / self.n_rows > DENSE_FREQUENCY).double().mean().item(),
            "n_rows": self.n_rows,
        }


@torch.no_grad()
def reconstruction_metrics(dictionary: Dictionary, batches: Iterable[Batch]) -> dict[str, float]:
    """FVU, L0 and feature-frequency fractions of a dictionary on harvested (input, target) rows."""
    spec = dictionary.spec
    stats = ReconstructionStats(spec.d_sae, spec.d_out)
    for batch in batches:
        x, y = batch[spec.hook_in], batch[spec.hook_out]
        y_hat, z = dictionary(x)
        stats.update(y, y_hat, z)
    return stats.result()


def new_stats(dictionary: Dictionary | CrossLayerTranscoder) -> list[ReconstructionStats]:
    """Empty reconstruction sums for what `dictionary` splices: one, or one per layer of a CLT."""
    spec = dictionary.spec
    n_layers = spec.n_layers if isinstance(dictionary, CrossLayerTranscoder) else 1
    return [ReconstructionStats(spec.d_sae, spec.d_out) for _ in range(n_layers)]


def replaced_hooks(dictionary: Dictionary | CrossLayerTranscoder) -> list[str]:
    """The activations `dictionary` replaces when spliced (a CLT: every layer's MLP output)."""
    if isinstance(dictionary, CrossLayerTranscoder):
        return dictionary.spec.hooks_out
    spec = dictionary.spec
    return [spec.hook_out if spec.kind != DictionaryKind.sae_mlp_in else spec.hook_in]


FeatureEdit = Callable[[int, torch.Tensor], torch.Tensor]  # (layer, z [batch, pos, d_sae]) -> edited z


def _crosslayer_hooks(
    clt: CrossLayerTranscoder,
    keep_error: bool,
    stats: Sequence[ReconstructionStats] | None,
    is_bos: torch.Tensor | None,
    edit_features: FeatureEdit | None,
) -> list[tuple[str, Callable]]:
    """The hooks that splice `clt` into every layer (the module docstring): layer l's features are
    encoded from its MLP input as the pass reaches it (and edited), and its MLP output decoded from
    layers 0..l; with `keep_error`, the error is that of the unedited features' reconstruction."""
    z: dict[int, torch.Tensor] = {}  # each layer's features in the current forward pass
    edited: dict[int, torch.Tensor] = {}
    hooks: list[tuple[str, Callable]] = []
    for layer in range(clt.spec.n_layers):

        def encode(activation, hook, layer=layer):
            z[layer] = clt.encode_layer(activation, layer)
            edited[layer] = edit_features(layer, z[layer]) if edit_features is not None else z[layer]
            return activation

        def replace(activation, hook, layer=layer):
            y_hat = clt.decode_layer([z[source] for source in range(layer + 1)], layer)
            error = activation - y_hat
            if edit_features is not None:
                y_hat = clt.decode_layer([edited[source] for source in range(layer + 1)], layer)
            if stats is not None:
                flat_bos = is_bos.reshape(-1) if is_bos is not None else None
                flat = (activation.reshape(-1, activation.shape[-1]), y_hat.reshape(-1, y_hat.shape[-1]))
                stats[layer].update(*flat, edited[layer].reshape(-1, z[layer].shape[-1]), flat_bos)
            if keep_error:
                return y_hat + error.detach()
            return y_hat

        hooks += [(mlp_in_hook(layer), encode), (mlp_out_hook(layer), replace)]
    return hooks


@contextmanager
def spliced(
    model: HookedTransformer,
    dictionaries: Sequence[Dictionary | CrossLayerTranscoder],
    keep_error: bool = False,
    stats: Sequence[ReconstructionStats] | None = None,
    is_bos: torch.Tensor | None = None,
    edit_features: FeatureEdit | None = None,
) -> Iterator[None]:
    """Run the model with `dictionaries` spliced in (see the module docstring).

    `edit_features(layer, z)` may return edited activations of that layer's features (an ablation,
    a patch); the output is decoded from them. With `keep_error`, the error added back is that of the unedited
    reconstruction, so an edit changes the forward pass by exactly its decoded difference.
    `stats`, one per dictionary (per layer of a cross-layer transcoder: `new_stats`), accumulate
    reconstruction metrics of each dictionary on the activations it sees; `is_bos` [batch, pos]
    marks BOS positions for L0 without BOS.
    """
    replaced = [hook for dictionary in dictionaries for hook in replaced_hooks(dictionary)]
    if len(set(replaced)) != len(replaced):
        raise ValueError(f"two dictionaries replace the same activation ({replaced}); splice one per hook")
    hooks = []
    index = 0  # the dictionary's first entry in `stats`
    for dictionary in dictionaries:
        if isinstance(dictionary, CrossLayerTranscoder):
            n_layers = dictionary.spec.n_layers
            layer_stats = stats[index : index + n_layers] if stats is not None else None
            hooks += _crosslayer_hooks(dictionary, keep_error, layer_stats, is_bos, edit_features)
            index += n_layers
            continue
        captured: dict[str, torch.Tensor] = {}
        spec = dictionary.spec

        def capture(activation, hook, captured=captured):
            captured["x"] = activation
            return activation

        def replace(activation, hook, dictionary=dictionary, captured=captured, index=index):
            x = captured.pop("x") if dictionary.spec.is_transcoder else activation
            z = dictionary.encode(x)
            y_hat = dictionary.decode(z, x)
            error = activation - y_hat
            if edit_features is not None:
                z = edit_features(dictionary.spec.layer, z)
                y_hat = dictionary.decode(z, x)
            if stats is not None:
                flat_bos = is_bos.reshape(-1) if is_bos is not None else None
                flat = (activation.reshape(-1, activation.shape[-1]), y_hat.reshape(-1, y_hat.shape[-1]))
                stats[index].update(*flat, z.reshape(-1, z.shape[-1]), flat_bos)
            if keep_error:  # unedited: the forward value is the original; gradients flow through y_hat
                return y_hat + error.detach()
            return y_hat

        if spec.is_transcoder:
            hooks.append((spec.hook_in, capture))
        hooks.append((replaced_hooks(dictionary)[0], replace))
        index += 1
    with model.hooks(fwd_hooks=hooks):
        yield


@contextmanager
def zero_ablated(model: HookedTransformer, layers: Iterable[int]) -> Iterator[None]:
    hooks = [(mlp_out_hook(layer), lambda activation, hook: torch.zeros_like(activation)) for layer in layers]
    with model.hooks(fwd_hooks=hooks):
        yield


def layers_of(dictionaries: Sequence[Dictionary | CrossLayerTranscoder]) -> list[int]:
    """The layers the dictionaries splice into (a cross-layer transcoder: all of its layers)."""
    return sorted(
        {
            layer
            for d in dictionaries
            for layer in (range(d.spec.n_layers) if isinstance(d, CrossLayerTranscoder) else [d.spec.layer])
        }
    )


def summed_nll(log_probs: Float[torch.Tensor, "b pos vocab"], tokens: Int[torch.Tensor, "b pos"]) -> float:
    """Negative log-likelihood of each next token, summed over the predicted positions."""
    return -log_probs[:, :-1].gather(-1, tokens[:, 1:, None]).sum().item()


def context_nll(
    log_probs: Float[torch.Tensor, "b pos vocab"], tokens: Int[torch.Tensor, "b pos"]
) -> Float[torch.Tensor, " b"]:
    """Each context's next-token negative log-likelihood, averaged over its predicted positions
    (float64, on the CPU)."""
    return -log_probs[:, :-1].gather(-1, tokens[:, 1:, None]).squeeze(-1).double().mean(-1).cpu()


@dataclass
class _LossSums:
    spliced: float = 0.0
    zero: float = 0.0
    kl: float = 0.0


@torch.no_grad()
def splice_metrics(
    model: HookedTransformer,
    dictionary_sets: dict[str, Sequence[Dictionary | CrossLayerTranscoder]],
    tokens: Int[torch.Tensor, "n_contexts n_ctx"],
    batch_size: int = 32,
    bos_id: int | None = None,
    per_context: bool = False,
) -> dict[str, dict]:
    """Clean / spliced / zero-ablated cross-entropy, loss recovered, KL, and each dictionary's
    reconstruction metrics, for every named set of dictionaries, on the same tokens.

    Batches are the outer loop so the clean log-probs of a batch are computed once for all sets,
    and each distinct set of zero-ablated layers once per batch. `bos_id` (default: the
    tokenizer's) marks the positions left out of `l0_without_bos`. With `per_context`, each
    result also holds "ce_spliced_per_context" (a float64 tensor [n_contexts], `context_nll`), and
    the clean run's is under every result's "ce_clean_per_context". The totals are summed as before
    either way, so asking for them changes no other number.
    """
    bos = bos_id if bos_id is not None else getattr(model.tokenizer, "bos_token_id", None)
    stats = {name: [s for d in ds for s in new_stats(d)] for name, ds in dictionary_sets.items()}
    sums = {name: _LossSums() for name in dictionary_sets}
    by_context: dict[str, list[torch.Tensor]] = {name: [] for name in [*dictionary_sets, "clean"]}
    clean_sum, n_predictions = 0.0, 0
    for start in range(0, len(tokens), batch_size):
        batch = tokens[start : start + batch_size].to(model.cfg.device)
        targets = batch[:, 1:]
        is_bos = batch == bos if bos is not None else None

        clean = model(batch).log_softmax(-1)
        clean_probs = clean.exp()
        clean_sum += summed_nll(clean, batch)
        if per_context:
            by_context["clean"].append(context_nll(clean, batch))
        n_predictions += targets.numel()
        zero_cache: dict[tuple[int, ...], float] = {}
        for name, dictionaries in dictionary_sets.items():
            with spliced(model, dictionaries, stats=stats[name], is_bos=is_bos):
                patched = model(batch).log_softmax(-1)
            sums[name].spliced += summed_nll(patched, batch)
            if per_context:
                by_context[name].append(context_nll(patched, batch))
            kl = (clean_probs * (clean - patched)).sum(-1)[:, :-1]
            sums[name].kl += kl.sum().item()
            layers = tuple(layers_of(dictionaries))
            if layers not in zero_cache:
                with zero_ablated(model, layers):
                    zero_cache[layers] = summed_nll(model(batch).log_softmax(-1), batch)
            sums[name].zero += zero_cache[layers]
    ce_clean = clean_sum / n_predictions
    results = {}
    for name, dictionaries in dictionary_sets.items():
        ce_spliced, ce_zero = sums[name].spliced / n_predictions, sums[name].zero / n_predictions
        results[name] = {
            "layers": layers_of(dictionaries),
            "ce_clean": ce_clean,
            "ce_spliced": ce_spliced,
            "ce_zero_ablation": ce_zero,
            "loss_recovered": (ce_zero - ce_spliced) / (ce_zero - ce_clean),
            "kl": sums[name].kl / n_predictions,
            "n_predictions": n_predictions,
            "dictionaries": [s.result() for s in stats[name]],
        }
        if per_context:
            results[name]["ce_spliced_per_context"] = torch.cat(by_context[name])
            results[name]["ce_clean_per_context"] = torch.cat(by_context["clean"])
    return results


def token_hash(tokens: torch.Tensor) -> str:
    """sha256 of the int64 token ids: the held-out set's identity, recorded beside every result."""
    return hashlib.sha256(tokens.to(torch.int64).contiguous().numpy().tobytes()).hexdigest()
