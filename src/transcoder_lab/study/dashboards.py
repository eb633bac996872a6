"""Feature dashboards: what a dictionary feature reads, where it fires, and what it writes.

For a dictionary (transcoder or SAE, `transcoder_lab.dictionaries`) on a processed
HookedTransformer and a token set `contexts` [n, n_ctx]:

1. Activations (`feature_activations`): the model runs batch by batch with `run_with_cache`,
   caching only the dictionary's input hook (plus ln2's scale when the dictionary reads the MLP
   input) and stopping after the dictionary's layer; the selected features are encoded for all
   features at once (a ReLU dictionary only needs the selected encoder columns; TopK needs every
   pre-activation to know which k survive, so it encodes all and then selects).
2. Statistics: firing frequency is the fraction of counted tokens with activation > 0; max
   activation is the largest activation over counted tokens. Tokens whose id is in
   `exclude_token_ids` (default: the model tokenizer's BOS id, when it has one) are not counted
   and never centre an example (they still appear, with their activations, inside windows).
3. Examples (`ActivationBand`): the top band holds the `n_examples` contexts with the largest
   per-context maximum, each a window of ±`window` tokens around that context's argmax. Then
   `n_quantile_bands` bands split the positive activations at their quantiles (highest band
   first); each holds up to `n_examples` tokens drawn at random (seeded) from its interval, one
   per context, from contexts not already shown in the top band, each centred in its window.
4. Logit effects: `W_dec[j] @ W_U`, the direct path of the feature's decoder vector to the
   logits (ignoring later layers and the final LayerNorm's scale, a positive per-token constant
   that does not change the ranking). Only for dictionaries whose output is the MLP output
   (transcoders, sae_mlp_out); an SAE on the MLP input writes to the MLP input, not the residual
   stream, so its dashboard has no logit effects (`logit_effects_*` are None, a note says so).
5. De-embedding: for dictionaries that read the MLP input (transcoders, sae_mlp_in), the direct
   path from the token embedding to the feature's pre-activation,
   `(W_E[t] - mean(W_E[t])) @ W_enc[:, j] / s`. Approximation: the MLP input is
   LN2(x) = (x - mean x) / scale(x) with x the whole residual stream; we keep only the token
   embedding's term of x (no positional embedding, attention or earlier MLPs, no biases) and
   freeze the LayerNorm scale at `s`, the mean ln2 scale over the dashboard's tokens. The
   ranking of tokens does not depend on s. An sae_mlp_out reads the MLP output, so it has none.

Rendering (`dashboard_html`): a self-contained HTML card with inline CSS; every token's text is
escaped with `html.escape`, and its background's opacity is its activation over the feature's
max (quantised to 11 levels, as CSS classes). `show_values=False` is for blind studies: no
number about the feature appears (no activations, frequency, index, layer or kind), only the
colours, the tokens and the token lists.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from transcoder_lab import io
from transcoder_lab.circuits.invariant import de_embedding, logit_effects
from transcoder_lab.config import Architecture
from transcoder_lab.dictionaries import Dictionary, DictionaryKind
from transcoder_lab.dictionaries.activations import context_batches

# -- data -------------------------------------------------------------------------------------


@dataclass
class Example:
    """A window of one context around a centre token (the context's max, for the top band)."""

    context_index: int
    position: int  # the centre token's position in the context
    start: int  # the window's first position in the context
    tokens: list[int]
    activations: list[float]

    @property
    def centre(self) -> int:
        """The centre token's index in `tokens`."""
        return self.position - self.start

    @property
    def activation(self) -> float:
        return self.activations[self.centre]


@dataclass
class ActivationBand:
    name: str  # "top" or "quantile"
    lower: float  # centre activations lie in [lower, upper]
    upper: float
    quantiles: tuple[float, float] | None  # the band's quantile range of the positive activations
    examples: list[Example]


@dataclass
class FeatureDashboard:
    feature: int
    layer: int
    kind: str
    n_tokens: int  # counted tokens
    frequency: float  # fraction of counted tokens with activation > 0
    max_activation: float
    bands: list[ActivationBand]
    logit_effects_top: list[tuple[int, float]] | None = None  # (token id, value), largest first
    logit_effects_bottom: list[tuple[int, float]] | None = None  # smallest first
    de_embedding_top: list[tuple[int, float]] | None = None
    de_embedding_bottom: list[tuple[int, float]] | None = None
    notes: list[str] = field(default_factory=list)


# -- activations ------------------------------------------------------------------------------


def _layer_of(hook: str) -> int:
    return int(hook.split(".")[1])


def _encode_selected(
    dictionary: Dictionary, x: Float[Tensor, "... d_in"], features: Tensor
) -> Float[Tensor, "... f"]:
    if dictionary.spec.architecture is Architecture.topk:
        return dictionary.encode(x)[..., features]
    pre = (x - dictionary.b_dec) @ dictionary.W_enc[:, features] + dictionary.b_enc[features]
    return torch.relu(pre)


def _runs(
    model: HookedTransformer,
    dictionary: Dictionary,
    contexts: Int[Tensor, "n n_ctx"],
    features: Tensor,
    batch_size: int,
    scale_hook: str | None,
) -> Iterator[tuple[Tensor, Tensor | None]]:
    hook = dictionary.spec.hook_in
    names = {hook} if scale_hook is None else {hook, scale_hook}
    stop = _layer_of(hook) + 1
    with torch.no_grad():
        for tokens in context_batches(contexts, batch_size):
            _, cache = model.run_with_cache(
                tokens.to(model.cfg.device), names_filter=lambda name: name in names, stop_at_layer=stop
            )
            x = cache[hook].to(dictionary.device, dictionary.dtype)
            acts = _encode_selected(dictionary, x, features.to(dictionary.device)).float().cpu()
            scale = cache[scale_hook].float().cpu() if scale_hook is not None else None
            yield acts, scale


def _feature_index(features: Sequence[int] | Tensor | None, d_sae: int) -> Tensor:
    index = torch.arange(d_sae) if features is None else torch.as_tensor(features, dtype=torch.long)
    if index.ndim != 1 or (index.numel() and (index.min() < 0 or index.max() >= d_sae)):
        raise ValueError(f"features must be a list of indices in [0, {d_sae}); got {features!r}")
    return index


def feature_activations(
    model: HookedTransformer,
    dictionary: Dictionary,
    contexts: Int[Tensor, "n n_ctx"],
    features: Sequence[int] | Tensor | None = None,
    batch_size: int = 32,
) -> Float[Tensor, "n n_ctx f"]:
    """Activations of `features` (all when None) on `contexts`, as float32 on the CPU.

    Equal to `dictionary.encode(cache[dictionary.spec.hook_in])[..., features]`."""
    index = _feature_index(features, dictionary.spec.d_sae)
    chunks = [acts for acts, _ in _runs(model, dictionary, contexts, index, batch_size, None)]
    if not chunks:
        return torch.zeros(0, contexts.shape[-1], len(index))
    return torch.cat(chunks)


# -- dashboards -------------------------------------------------------------------------------


def _window(
    contexts: Tensor, acts: Tensor, context: int, position: int, window: int
) -> Example:  # acts: [n, n_ctx] for one feature
    start = max(0, position - window)
    stop = min(contexts.shape[1], position + window + 1)
    return Example(
        context_index=context,
        position=position,
        start=start,
        tokens=contexts[context, start:stop].tolist(),
        activations=acts[context, start:stop].tolist(),
    )


def _bands(
    contexts: Tensor,
    acts: Tensor,  # [n, n_ctx], excluded tokens already set to -inf
    n_examples: int,
    window: int,
    n_quantile_bands: int,
    generator: torch.Generator,
) -> list[ActivationBand]:
    per_context, argmax = acts.max(dim=1)
    order = torch.argsort(per_context, descending=True, stable=True)
    top = [int(c) for c in order[:n_examples] if per_context[c] > 0]
    top_examples = [_window(contexts, acts, c, int(argmax[c]), window) for c in top]
    bands = []
    if top_examples:
        bands.append(
            ActivationBand("top", top_examples[-1].activation, top_examples[0].activation, None, top_examples)
        )
    positive = acts[acts > 0]
    if positive.numel() == 0 or n_quantile_bands < 1:
        return bands
    sorted_values = positive.sort().values
    fractions = [i / n_quantile_bands for i in range(n_quantile_bands + 1)]
    edges = [
        float(sorted_values[min(int(q * len(sorted_values)), len(sorted_values) - 1)]) for q in fractions
    ]
    edges[0], edges[-1] = float(sorted_values[0]), float(sorted_values[-1])
    used = set(top)
    flat = acts.reshape(-1)
    n_ctx = acts.shape[1]
    for i in reversed(range(n_quantile_bands)):
        lower, upper = edges[i], edges[i + 1]
        upper_ok = flat <= upper if i == n_quantile_bands - 1 else flat < upper
        inside = torch.nonzero((flat >= lower) & upper_ok & (flat > 0)).flatten()
        inside = inside[torch.randperm(len(inside), generator=generator)]
        examples, seen = [], set()
        for token in inside.tolist():
            context, position = divmod(token, n_ctx)
            if context in used or context in seen:
                continue
            seen.add(context)
            examples.append(_window(contexts, acts, context, position, window))
            if len(examples) == n_examples:
                break
        examples.sort(key=lambda e: -e.activation)
        bands.append(ActivationBand("quantile", lower, upper, (fractions[i], fractions[i + 1]), examples))
    return bands


def _top_bottom(values: Tensor, k: int) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    k = min(k, values.numel())
    top = values.topk(k)
    bottom = values.topk(k, largest=False)
    as_list = lambda t: [(int(i), float(v)) for v, i in zip(t.values, t.indices, strict=True)]  # noqa: E731
    return as_list(top), as_list(bottom)


def _bos_ids(model: HookedTransformer) -> list[int]:
    bos = getattr(getattr(model, "tokenizer", None), "bos_token_id", None)
    return [] if bos is None else [int(bos)]


def build_dashboards(
    model: HookedTransformer,
    dictionary: Dictionary,
    contexts: Int[Tensor, "n n_ctx"],
    features: Sequence[int],
    n_examples: int = 10,
    window: int = 8,
    n_quantile_bands: int = 4,
    n_tokens: int = 10,
    batch_size: int = 32,
    exclude_token_ids: Sequence[int] | None = None,
    seed: int = 0,
) -> list[FeatureDashboard]:
    """Dashboards of `features`, from one pass of the model over `contexts` for all of them.

    `n_tokens`: how many tokens each logit-effect / de-embedding list shows. `exclude_token_ids`:
    tokens not counted (None: the model tokenizer's BOS, if any; () counts every token)."""
    contexts = torch.as_tensor(contexts, dtype=torch.long).cpu()
    index = _feature_index(features, dictionary.spec.d_sae)
    spec = dictionary.spec
    reads_mlp_in = spec.kind is not DictionaryKind.sae_mlp_out
    scale_hook = f"blocks.{spec.layer}.ln2.hook_scale" if reads_mlp_in else None
    chunks, scales = [], []
    for acts, scale in _runs(model, dictionary, contexts, index, batch_size, scale_hook):
        chunks.append(acts)
        if scale is not None:
            scales.append(scale.reshape(-1))
    acts = torch.cat(chunks) if chunks else torch.zeros(0, contexts.shape[-1], len(index))

    exclude = _bos_ids(model) if exclude_token_ids is None else list(exclude_token_ids)
    counted = ~torch.isin(contexts, torch.as_tensor(exclude, dtype=torch.long))
    ln_scale = float(torch.cat(scales)[counted.reshape(-1)].mean()) if scales and counted.any() else 1.0
    n_counted = int(counted.sum())
    generator = torch.Generator().manual_seed(seed)

    dashboards = []
    for column, feature in enumerate(index.tolist()):
        feature_acts = acts[..., column]
        masked = feature_acts.masked_fill(~counted, float("-inf"))
        values = feature_acts[counted]
        frequency = float((values > 0).float().mean()) if n_counted else 0.0
        max_activation = float(values.max()) if n_counted else 0.0
        dashboard = FeatureDashboard(
            feature=feature,
            layer=spec.layer,
            kind=spec.kind.value,
            n_tokens=n_counted,
            frequency=frequency,
            max_activation=max_activation,
            bands=_bands(contexts, masked, n_examples, window, n_quantile_bands, generator),
        )
        # Windows show the real activations, excluded tokens included.
        for band in dashboard.bands:
            for example in band.examples:
                stop = example.start + len(example.tokens)
                example.activations = feature_acts[example.context_index, example.start : stop].tolist()
        effects = logit_effects(model, dictionary, feature)
        if effects is None:
            dashboard.notes.append(
                "no logit effects: an SAE on the MLP input does not write to the residual stream"
            )
        else:
            dashboard.logit_effects_top, dashboard.logit_effects_bottom = _top_bottom(effects, n_tokens)
        deembedding = de_embedding(model, dictionary, feature, ln_scale)
        if deembedding is None:
            dashboard.notes.append("no de-embedding: an SAE on the MLP output does not read the embedding")
        else:
            dashboard.de_embedding_top, dashboard.de_embedding_bottom = _top_bottom(deembedding, n_tokens)
        dashboards.append(dashboard)
    return dashboards


# -- HTML -------------------------------------------------------------------------------------

N_LEVELS = 11  # colour levels: class a0 (no activation) .. a10 (the feature's max)
_LEVEL_CLASSES = [f"a{chr(ord('a') + i)}" for i in range(N_LEVELS)]  # letters only: no digits leak

CSS = """
.tl-card{font-family:system-ui,sans-serif;border:1px solid #ccc;border-radius:6px;padding:8px 12px;
margin:10px 0;max-width:960px;background:#fff;color:#222}
.tl-card h3{margin:2px 0 6px 0;font-size:15px}
.tl-card h4{margin:8px 0 3px 0;font-size:13px;color:#555}
.tl-stats{font-size:12px;color:#444}
.tl-ex{font-family:ui-monospace,monospace;font-size:12px;margin:2px 0;line-height:170%}
.tl-tok{white-space:pre;border-radius:2px;padding:0 1px}
.tl-centre{outline:1px solid #333}
.tl-lists{display:flex;gap:24px;flex-wrap:wrap;font-size:12px}
.tl-lists table{border-collapse:collapse}
.tl-lists td{padding:0 6px;font-family:ui-monospace,monospace;white-space:pre}
.tl-note{font-size:11px;color:#777}
"""


def _level_css() -> str:
    # Opacity i/10 of orange (255, 140, 0) on white, written as hex so no decimal number appears.
    rules = []
    for i, name in enumerate(_LEVEL_CLASSES):
        blend = [round(255 - (255 - c) * i / (N_LEVELS - 1)) for c in (255, 140, 0)]
        rules.append(f".tl-card .{name}{{background:#{''.join(f'{c:02x}' for c in blend)}}}")
    return "\n".join(rules)


def _decoder(tokenizer: Any) -> Callable[[int], str]:
    if tokenizer is None:
        return lambda token: f"<{token}>"
    if callable(getattr(tokenizer, "decode", None)):
        return lambda token: tokenizer.decode([token])
    return tokenizer  # a callable id -> str


def _show_token(text: str) -> str:
    return html.escape(text.replace("\n", "\u21b5").replace("\t", "\u21e5"), quote=True)


def _fmt(value: float) -> str:
    return f"{value:.3f}"


def _level(value: float, max_activation: float) -> str:
    if max_activation <= 0 or value <= 0:
        return _LEVEL_CLASSES[0]
    fraction = min(value / max_activation, 1.0)
    return _LEVEL_CLASSES[round(fraction * (N_LEVELS - 1))]


def _example_html(example: Example, max_activation: float, decode: Callable[[int], str], show: bool) -> str:
    spans = []
    for i, (token, value) in enumerate(zip(example.tokens, example.activations, strict=True)):
        classes = f"tl-tok {_level(value, max_activation)}" + (" tl-centre" if i == example.centre else "")
        title = f' title="{_fmt(value)}"' if show else ""
        spans.append(f'<span class="{classes}"{title}>{_show_token(decode(token))}</span>')
    return f'<div class="tl-ex">{"".join(spans)}</div>'


def _token_table(title: str, rows: list[tuple[int, float]], decode: Callable[[int], str], show: bool) -> str:
    cells = "".join(
        f"<tr><td>{_show_token(repr(decode(token))[1:-1])}</td>"
        + (f"<td>{value:+.3f}</td>" if show else "")
        + "</tr>"
        for token, value in rows
    )
    return f"<div><h4>{html.escape(title)}</h4><table>{cells}</table></div>"


def _band_title(band: ActivationBand, position: int, show: bool) -> str:
    if band.name == "top":
        title = "Top activations"
        return f"{title} ({_fmt(band.lower)} to {_fmt(band.upper)})" if show else title
    if not show:
        return f"Band {chr(ord('A') + position)}"  # letters, highest first
    assert band.quantiles is not None
    low, high = band.quantiles
    values = f"{_fmt(band.lower)} to {_fmt(band.upper)}"
    return f"Quantiles {low:.0%} to {high:.0%} of positive activations ({values})"


def dashboard_html(
    d: FeatureDashboard, tokenizer: Any = None, show_values: bool = True, show_effects: bool = True
) -> str:
    """One dashboard as a self-contained HTML card (its own <style>).

    `tokenizer`: anything with `.decode([id])`, a callable id -> text, or None (ids shown).
    `show_values=False` (blind studies): no activation values, frequency, feature index, layer
    or kind; colours, tokens and token lists remain. `show_effects=False` drops the logit-effect
    and de-embedding sections (whose presence reveals the dictionary kind; see the notes)."""
    decode = _decoder(tokenizer)
    show = show_values
    parts = [f"<style>{CSS}{_level_css()}</style>", '<div class="tl-card">']
    if show:
        parts.append(f"<h3>Feature {d.feature} &middot; layer {d.layer} &middot; {html.escape(d.kind)}</h3>")
        parts.append(
            f'<div class="tl-stats">firing frequency {d.frequency:.4%} of {d.n_tokens} tokens '
            f"&middot; max activation {_fmt(d.max_activation)}</div>"
        )
    else:
        parts.append("<h3>Feature</h3>")
    quantile_position = 0
    for band in d.bands:
        parts.append(f"<h4>{html.escape(_band_title(band, quantile_position, show))}</h4>")
        if band.name != "top":
            quantile_position += 1
        parts.extend(_example_html(e, d.max_activation, decode, show) for e in band.examples)
        if not band.examples:
            parts.append('<div class="tl-note">(no examples)</div>')
    if show_effects:
        lists = []
        if d.logit_effects_top is not None and d.logit_effects_bottom is not None:
            lists.append(_token_table("Top logit effects", d.logit_effects_top, decode, show))
            lists.append(_token_table("Bottom logit effects", d.logit_effects_bottom, decode, show))
        if d.de_embedding_top is not None and d.de_embedding_bottom is not None:
            lists.append(_token_table("Top de-embedding", d.de_embedding_top, decode, show))
            lists.append(_token_table("Bottom de-embedding", d.de_embedding_bottom, decode, show))
        if lists:
            parts.append(f'<div class="tl-lists">{"".join(lists)}</div>')
        if show:
            parts.extend(f'<div class="tl-note">{html.escape(note)}</div>' for note in d.notes)
    parts.append("</div>")
    return "\n".join(parts)


def dashboards_page(
    dashboards: Sequence[FeatureDashboard],
    tokenizer: Any = None,
    show_values: bool = True,
    title: str = "Feature dashboards",
    show_effects: bool = True,
) -> str:
    cards = "\n".join(dashboard_html(d, tokenizer, show_values, show_effects) for d in dashboards)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>\n<body>\n{cards}\n</body></html>\n"
    )


def write_dashboards_html(
    path: str | Path,
    dashboards: Sequence[FeatureDashboard],
    tokenizer: Any = None,
    show_values: bool = True,
    title: str = "Feature dashboards",
    show_effects: bool = True,
) -> Path:
    """Write all cards as one HTML page, atomically (`io.write_text`)."""
    path = Path(path)
    io.write_text(path, dashboards_page(dashboards, tokenizer, show_values, title, show_effects))
    return path


def show(d: FeatureDashboard, tokenizer: Any = None, show_values: bool = True) -> Any:
    """For notebooks: an `IPython.display.HTML` of the card, or the HTML string without IPython."""
    text = dashboard_html(d, tokenizer, show_values)
    try:
        from IPython.display import HTML
    except ImportError:
        return text
    return HTML(text)
