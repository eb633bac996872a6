"""Exact direct attribution of a residual-stream direction to its writers (docs/design.md §5).

Setting: a processed HookedTransformer (fold_ln, so every LayerNorm is `LNPre`: centre, then divide
by a per-token scale) with transcoders spliced in at some layers, or one cross-layer transcoder (CLT)
in place of every MLP. replacement.py presents both as *feature layers*: the features of layer l read
MLP input l and write, through decoder W_dec[l -> l'], into MLP output l' (only l' = l for a
per-layer transcoder; every l' >= l for a CLT). A *root* is a vector v read at one residual-stream
point (layer L, sublayer, token t) through the LayerNorm that reads it there:

    resid_pre L   the residual before attention L, read by ln1 of layer L (resid_pre n_layers is the
                  final residual, read by ln_final: logit directions live here);
    resid_mid L   the residual after attention L, read by ln2 of layer L, i.e. the MLP / transcoder
                  input of layer L (transcoder features live here).

The root's *value* is `v·LN(x_t)`, the quantity the model actually computes from the residual x_t
(for a transcoder feature j at layer L: its pre-activation minus its effective encoder bias; for a
logit difference: the logit difference minus the unembedding bias difference). `Root.offset` holds
that input-independent constant, so `value + offset` is the quantity the root stands for.

Algorithm (one `attribute` call; everything input-dependent comes from one cached forward pass,
`AttributionContext.from_tokens`):

1. Cache. Run the model once and keep, in float64: embeddings W_E[tok] + W_pos, residual streams
   (resid_pre of every layer and the final residual, resid_mid of every layer), LN scales and LN
   outputs (attention inputs LN1(x), MLP inputs LN2(x), the final LN output), attention patterns
   A[l, h, dest, src], attention and MLP outputs. For every feature layer compute its activations
   z_l = encode(LN2_l(x)) (in the transcoder's dtype, exactly as when spliced) and for every
   replaced MLP its error (replacement.reconstruction_errors: `mlp_out - reconstruction`, in
   float64, from the same z), so that, for every such layer l' and token t, exactly
       mlp_out_l'[t] = Σ_{l <= l'} Σ_i z_{l,i}[t] W_dec[l -> l'][i] + b_dec_out_l'
                       + LN2(x)[t] W_skip + error_l'[t]
   (one source layer, l = l', for a per-layer transcoder; no skip term in a CLT).

2. Freeze the root's LayerNorm. LNPre's output is centred, so v·LN(x) = v'·LN(x) with
   v' = v - mean(v): a reader of a LayerNorm is only defined up to the all-ones direction, and
   we use its centred representative. The ratio of docs/design.md §5.2 for v',
   `c = (v'·LN(x)) / (v'·x)`, then equals 1 / scale_t exactly (v'·(x - mean x) = v'·x), which we
   take from the cached scale (no division of two possibly tiny numbers); `c = 0` when v'·x = 0
   holds automatically since the value is then 0. The *frozen vector* u = c v' satisfies
   u·x_t = v·LN(x_t) = value, and u is the gradient of the value with the LN scale held fixed, so
   every term below is also the exact first-order effect of removing that writer (scale and
   attention patterns frozen).
   `ln_freezing="ratio"` instead uses v itself with the ratio c = v·LN(x) / v·x, as in the
   paper's code: completeness still holds, but writers that are not centred (transcoder decoders
   and biases, transcoder errors) are then credited with a share of the all-ones component.

3. Decompose the residual at the root. x_t is the sum of its writers,
       x_t = (W_E[tok_t] + W_pos[t]) + Σ_{l < n_attn} attn_out_l[t] + Σ_{l < L} mlp_out_l[t],
   with n_attn = L for resid_pre L and L + 1 for resid_mid L (attention L writes before resid_mid
   L; MLP L writes after it, so MLPs strictly before L in both cases). Dot each writer with u:
   - embedding:            (W_E[tok_t] + W_pos[t])·u;
   - head h of layer l, source s (all heads and sources at once):
                           A[l, h, t, s] · LN1_l(x_s) W_V^h W_O^h u,
     plus the layer's attention bias (b_O + Σ_h b_V^h W_O^h)·u (b_V is 0 after
     fold_value_biases; it is kept in the formula so unprocessed values stay exact, as Σ_s A = 1);
   - feature layer l < L, feature i (all features at once, as one mat-vec):
                           z_i[t] · Σ_{l <= l' < L} (W_dec[l -> l'][i]·u)
     (activation × input-invariant pullback: the sum runs over the feature's decoders into the
     MLPs below the root, one term for a per-layer transcoder, L - l for a CLT; decoders into
     MLPs >= L write after the root and do not reach it), plus, per replaced MLP l < L, its
     output bias b_dec_out_l·u, the skip term LN2_l(x_t) W_skip u if any, and its error
     error_l[t]·u;
   - layer l < L without a transcoder: its whole MLP output mlp_out_l[t]·u (an exact leaf).
   Completeness: all these terms sum to the root's value, up to float error (tested).

4. Children, for recursion (`child_root`), each a new root whose value (+ offset) equals the
   contribution it came from:
   - feature i of layer l: vector P_i W_enc[:, i] at resid_mid l, token t, with offset
     P_i · b_eff_i, where P_i = Σ_{l <= l' < L} W_dec[l -> l'][i]·u is its pullback of step 3 and
     b_eff = b_enc - b_dec W_enc the effective encoder bias. For an active feature (ReLU, TopK or
     a CLT's JumpReLU) z_i = p_i = LN2(x)·W_enc[:, i] + b_eff_i, so child value + offset = z_i P_i:
     exact. The child's own LN freezing happens when it is attributed. Inactive features
     contribute 0 and have no child.
   - head h of layer l, source s: vector A[l, h, t, s] (W_V^h W_O^h) u at resid_pre l, token s
     (read through LN1 of layer l there), offset 0: exact, with the pattern held fixed.
   - skip term of layer l: vector W_skip u at resid_mid l, token t, offset 0.
   - embedding, transcoder errors, MLP outputs of layers without a transcoder, biases: leaves.
   Contributions of a path are then products of these terms in the root's units, which is what
   a beam search over `top_contributors` needs.

Ranking (`top_contributors`) turns the tensors of an `Attribution` into small `Contributor`
records with readable labels: `tc8[355]@37` (feature 355 of transcoder 8 at token 37; for a CLT,
of its layer-8 encoder),
`attn9.1@6` (head 9.1 reading token 6), `skip_tc3@37`, `emb@6`, `err_tc3@37` (transcoder error),
`mlp3@37` (an MLP without a transcoder) and `bias` (all attention and transcoder output biases).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from transcoder_lab.circuits.replacement import (
    FeatureLayer,
    Replacement,
    decoder_stack,
    feature_layers,
    reconstruction_errors,
)
from transcoder_lab.sources.hooks import mlp_in_hook, mlp_out_hook

Sublayer = Literal["resid_pre", "resid_mid"]
SUBLAYERS: tuple[str, ...] = ("resid_pre", "resid_mid")
LnFreezing = Literal["centered", "ratio"]
ContributorKind = Literal["feature", "head", "skip", "embedding", "tc_error", "mlp", "bias"]
EXPANDABLE_KINDS: frozenset[str] = frozenset({"feature", "head", "skip"})
LEAF_KINDS: frozenset[str] = frozenset({"embedding", "tc_error", "mlp", "bias"})

_F64 = torch.float64


# -- roots ------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Root:
    """A direction `vector` read at (layer, sublayer, position) through the LayerNorm there.

    `offset` is the input-independent constant that, added to the value `vector·LN(x)`, gives the
    quantity the root stands for (a feature's effective bias, a logit bias difference, or for a
    feature child the part of its parent contribution that comes from its effective bias).
    """

    layer: int
    sublayer: Sublayer
    position: int
    vector: Float[Tensor, " d_model"]
    label: str = "vector"
    offset: float = 0.0

    def __post_init__(self) -> None:
        if self.sublayer not in SUBLAYERS:
            raise ValueError(f"unknown sublayer {self.sublayer!r}; expected one of {SUBLAYERS}")
        if self.vector.ndim != 1:
            raise ValueError(f"a root's vector must be 1-d [d_model]; got shape {tuple(self.vector.shape)}")


def vector_root(
    layer: int, sublayer: Sublayer, position: int, vector: Tensor, label: str | None = None
) -> Root:
    """Any direction at a residual point (offset 0)."""
    return Root(layer, sublayer, position, vector.detach(), label or f"{sublayer}{layer}@{position}")


# -- the cached, input-dependent state --------------------------------------------------------------


@dataclass(eq=False)
class AttributionContext:
    """Everything input-dependent that attribution needs, from one forward pass on one prompt.

    Residual-stream tensors are float64 copies of the model's cached activations (index 0..n_layers
    of the `resid_pre`-like stacks: ln1 of each layer, then ln_final for the final residual).
    """

    model: HookedTransformer
    transcoders: dict[int, FeatureLayer]  # per-layer transcoders, or a CLT's slices (replacement.py)
    tokens: Int[Tensor, " pos"]
    embed: Float[Tensor, "pos d_model"]  # W_E[tok] + W_pos
    resid_pre: Float[Tensor, "n_layers_plus_1 pos d_model"]  # last: final residual
    resid_mid: Float[Tensor, "n_layers pos d_model"]
    ln_pre_scale: Float[Tensor, "n_layers_plus_1 pos"]  # ln1 scales; last: ln_final
    ln_pre_out: Float[Tensor, "n_layers_plus_1 pos d_model"]  # LN1(x) = attention inputs; last: ln_final
    ln_mid_scale: Float[Tensor, "n_layers pos"]
    mlp_in: Float[Tensor, "n_layers pos d_model"]  # LN2(x): what transcoders read
    patterns: Float[Tensor, "n_layers n_heads pos pos"]  # [layer, head, dest, src]
    attn_out: Float[Tensor, "n_layers pos d_model"]
    mlp_out: Float[Tensor, "n_layers pos d_model"]
    logits: Float[Tensor, "pos d_vocab"]  # in the model's dtype
    feature_acts: dict[int, Float[Tensor, "pos d_sae"]]  # by source layer, in each transcoder's dtype
    tc_errors: dict[int, Float[Tensor, "pos d_model"]]  # by MLP layer: mlp_out - its reconstruction, float64
    # float64 copies of each layer's (W_V, W_O, b_V, b_O), made once: every attribution reuses them
    ov_weights: dict[int, tuple[Tensor, Tensor, Tensor, Tensor]] = field(default_factory=dict, repr=False)
    # each transcoder's effective encoder bias (b_enc - b_dec W_enc), made once: feature roots reuse it
    effective_biases: dict[int, Tensor] = field(default_factory=dict, repr=False)

    @property
    def n_layers(self) -> int:
        return self.model.cfg.n_layers

    @property
    def n_pos(self) -> int:
        return int(self.tokens.shape[0])

    @classmethod
    @torch.no_grad()
    def from_tokens(
        cls,
        model: HookedTransformer,
        transcoders: Replacement,
        tokens: Int[Tensor, " pos"] | Int[Tensor, "1 pos"],
    ) -> AttributionContext:
        """Run `model` once on one prompt and cache what attribution needs (module docstring, 1).
        `transcoders`: per-layer transcoders (a map layer -> transcoder, or a sequence) or one CLT."""
        _check_model(model)
        transcoders = feature_layers(model, transcoders)
        tokens = torch.as_tensor(tokens)
        if tokens.ndim == 2 and tokens.shape[0] == 1:
            tokens = tokens[0]
        if tokens.ndim != 1:
            raise ValueError(
                f"attribution runs on one prompt: tokens [pos] or [1, pos]; got {tuple(tokens.shape)}"
            )
        n = model.cfg.n_layers
        final = f"blocks.{n - 1}.hook_resid_post"
        names = {"hook_embed", "hook_pos_embed", final, "ln_final.hook_scale", "ln_final.hook_normalized"}
        for layer in range(n):
            names |= {
                f"blocks.{layer}.hook_resid_pre",
                f"blocks.{layer}.hook_resid_mid",
                f"blocks.{layer}.ln1.hook_scale",
                f"blocks.{layer}.ln1.hook_normalized",
                f"blocks.{layer}.ln2.hook_scale",
                mlp_in_hook(layer),
                f"blocks.{layer}.attn.hook_pattern",
                f"blocks.{layer}.hook_attn_out",
                mlp_out_hook(layer),
            }
        tokens = tokens.to(model.cfg.device)
        logits, cache = model.run_with_cache(tokens[None], names_filter=lambda name: name in names)

        def one(name: str) -> Tensor:
            return cache[name][0].to(_F64)

        def stack(name: str | Callable[[int], str], extra: str | None = None) -> Tensor:
            name_of = name.format if isinstance(name, str) else name
            rows = [one(name_of(layer)) for layer in range(n)]
            return torch.stack(rows + ([one(extra)] if extra else []))

        mlp_in, mlp_out = stack(mlp_in_hook), stack(mlp_out_hook)
        inputs = {
            layer: cache[mlp_in_hook(layer)][0].to(tc.device, tc.dtype) for layer, tc in transcoders.items()
        }
        feature_acts = {layer: tc.encode(inputs[layer]) for layer, tc in transcoders.items()}
        tc_errors = reconstruction_errors(transcoders, feature_acts, inputs, mlp_out)
        return cls(
            model=model,
            transcoders=transcoders,
            tokens=tokens,
            embed=one("hook_embed") + one("hook_pos_embed"),
            resid_pre=stack("blocks.{}.hook_resid_pre", final),
            resid_mid=stack("blocks.{}.hook_resid_mid"),
            ln_pre_scale=stack("blocks.{}.ln1.hook_scale", "ln_final.hook_scale")[..., 0],
            ln_pre_out=stack("blocks.{}.ln1.hook_normalized", "ln_final.hook_normalized"),
            ln_mid_scale=stack("blocks.{}.ln2.hook_scale")[..., 0],
            mlp_in=mlp_in,
            patterns=stack("blocks.{}.attn.hook_pattern"),
            attn_out=stack("blocks.{}.hook_attn_out"),
            mlp_out=mlp_out,
            logits=logits[0],
            feature_acts=feature_acts,
            tc_errors=tc_errors,
        )

    # -- reading the cache at a root ----------------------------------------------------------------

    def position(self, position: int) -> int:
        """A token position, negative ones counted from the end, checked against the prompt."""
        if not -self.n_pos <= position < self.n_pos:
            raise IndexError(f"position {position} is outside the prompt of {self.n_pos} tokens")
        return position % self.n_pos

    def residual(self, layer: int, sublayer: Sublayer, position: int) -> Float[Tensor, " d_model"]:
        """x at a residual point (float64)."""
        self._check_point(layer, sublayer)
        stack = self.resid_pre if sublayer == "resid_pre" else self.resid_mid
        return stack[layer, self.position(position)]

    def ln_output(self, layer: int, sublayer: Sublayer, position: int) -> Float[Tensor, " d_model"]:
        """LN(x) as the model computed it at a residual point (ln1 / ln2 / ln_final output)."""
        self._check_point(layer, sublayer)
        stack = self.ln_pre_out if sublayer == "resid_pre" else self.mlp_in
        return stack[layer, self.position(position)]

    def ln_scale(self, layer: int, sublayer: Sublayer, position: int) -> float:
        self._check_point(layer, sublayer)
        stack = self.ln_pre_scale if sublayer == "resid_pre" else self.ln_mid_scale
        return float(stack[layer, self.position(position)])

    def _check_point(self, layer: int, sublayer: Sublayer) -> None:
        top = self.n_layers if sublayer == "resid_pre" else self.n_layers - 1
        if sublayer not in SUBLAYERS or not 0 <= layer <= top:
            raise ValueError(
                f"no residual point {sublayer} {layer}: resid_pre runs over layers 0..{self.n_layers} "
                f"(the last is the final residual), resid_mid over 0..{self.n_layers - 1}"
            )

    def transcoder(self, layer: int) -> FeatureLayer:
        if layer not in self.transcoders:
            raise KeyError(f"no transcoder at layer {layer}; transcoders cover {sorted(self.transcoders)}")
        return self.transcoders[layer]

    def effective_bias(self, layer: int) -> Tensor:
        """`effective_encoder_bias()` of layer `layer`'s transcoder, computed once per context."""
        if layer not in self.effective_biases:
            self.effective_biases[layer] = self.transcoder(layer).effective_encoder_bias().detach()
        return self.effective_biases[layer]


def _check_model(model: HookedTransformer) -> None:
    cfg = model.cfg
    if cfg.normalization_type != "LNPre":
        raise ValueError(
            f"attribution needs a processed model whose LayerNorms are LNPre (fold_ln=True); this one "
            f"has normalization_type={cfg.normalization_type!r} (load it with transcoder_lab.sources.models)"
        )
    if cfg.parallel_attn_mlp:
        # The decomposition of step 3 puts attention l before the MLP input of layer l (resid_mid l);
        # with parallel blocks (GPT-NeoX, Pythia) both read resid_pre l and attention l never reaches
        # MLP l, so its terms would be wrong, not just approximate: refuse rather than mis-attribute.
        raise ValueError(
            f"attribution does not support '{cfg.model_name}': its blocks run attention and MLP in "
            "parallel (parallel_attn_mlp=True, as in GPT-NeoX / Pythia), so the MLP and its transcoder "
            "read resid_pre, not resid_mid, and attention of the same layer does not feed them. The "
            "attribution engine assumes sequential GPT-2-style blocks; use a GPT-2-architecture model "
            "(organism, gpt2_small)."
        )
    if cfg.positional_embedding_type != "standard":
        raise ValueError(
            f"attribution does not support '{cfg.model_name}': its positions are "
            f"'{cfg.positional_embedding_type}', while the embedding term W_E[tok] + W_pos[t] assumes "
            "learned absolute positions (GPT-2 style); use a GPT-2-architecture model (organism, gpt2_small)."
        )
    if cfg.attn_only:
        raise ValueError(
            f"attribution does not support '{cfg.model_name}': it is attention-only, with no MLPs for "
            "transcoders to replace."
        )
    if cfg.use_attn_in or cfg.use_split_qkv_input or getattr(cfg, "n_key_value_heads", None):
        raise ValueError("attribution expects plain multi-head attention reading ln1's output")


# -- root constructors ------------------------------------------------------------------------------


@torch.no_grad()
def feature_root(ctx: AttributionContext, layer: int, feature: int, position: int) -> Root:
    """Transcoder feature `feature` of `layer` at token `position`: W_enc[:, j] read at resid_mid
    `layer`; value = pre-activation - effective bias, offset = effective bias b_enc_j - W_enc[:, j]·b_dec."""
    tc = ctx.transcoder(layer)
    position = ctx.position(position)
    vector = tc.W_enc[:, feature].detach().to(_F64)
    offset = float(ctx.effective_bias(layer)[feature])
    return Root(layer, "resid_mid", position, vector, f"tc{layer}[{feature}]@{position}", offset)


@torch.no_grad()
def logit_diff_root(ctx: AttributionContext, token_a: int, token_b: int, position: int = -1) -> Root:
    """The logit difference logit[a] - logit[b] at `position`: W_U[:, a] - W_U[:, b] read through
    ln_final (resid_pre n_layers); offset = b_U[a] - b_U[b]."""
    model = ctx.model
    position = ctx.position(position)
    vector = (model.W_U[:, token_a] - model.W_U[:, token_b]).detach().to(_F64)
    offset = float(model.b_U[token_a] - model.b_U[token_b])
    return Root(
        ctx.n_layers, "resid_pre", position, vector, f"logit[{token_a}]-logit[{token_b}]@{position}", offset
    )


# -- LayerNorm freezing -----------------------------------------------------------------------------


@torch.no_grad()
def frozen_vector(
    ctx: AttributionContext, root: Root, ln_freezing: LnFreezing = "centered"
) -> tuple[Float[Tensor, " d_model"], float, float]:
    """(u, c, value): the frozen vector u = c·v' with u·x = v·LN(x) = value (module docstring, 2).

    "centered": v' = v - mean(v) and c = 1/scale (the ratio of docs/design.md §5.2 for v');
    "ratio": v' = v and c = v·LN(x) / v·x (0 when v·x = 0), as in the paper's code.
    """
    x = ctx.residual(root.layer, root.sublayer, root.position)
    v = root.vector.to(x.device, _F64)
    value = float(v @ ctx.ln_output(root.layer, root.sublayer, root.position))
    if ln_freezing == "centered":
        reader = v - v.mean()
        c = 1.0 / ctx.ln_scale(root.layer, root.sublayer, root.position)
    elif ln_freezing == "ratio":
        reader = v
        dot = float(v @ x)
        c = value / dot if dot != 0.0 else 0.0
    else:
        raise ValueError(f"unknown ln_freezing {ln_freezing!r}; expected 'centered' or 'ratio'")
    return c * reader, c, value


def ln_constant(ctx: AttributionContext, root: Root, ln_freezing: LnFreezing = "centered") -> float:
    """The LayerNorm freezing constant c at the root (see `frozen_vector`)."""
    return frozen_vector(ctx, root, ln_freezing)[1]


def root_value(ctx: AttributionContext, root: Root) -> float:
    """v·LN(x) at the root: the quantity the model computes from the residual there."""
    x_ln = ctx.ln_output(root.layer, root.sublayer, root.position)
    return float(root.vector.to(x_ln.device, _F64) @ x_ln)


# -- attribution ------------------------------------------------------------------------------------


@dataclass(eq=False)
class Attribution:
    """Every direct contribution to a root's value (module docstring, 3); all sum to `value`.

    Per-layer entries cover only the root's upstream writers: attention layers 0..n_attn-1
    (`heads`, `attn_biases`), MLP layers 0..L-1 (features, skips, errors and output biases of
    transcoder layers; `mlps` for layers without a transcoder). `features` is keyed by the source
    layer; with a CLT each entry already sums the feature's decoders into MLPs l..L-1.
    """

    root: Root
    value: float
    ln_constant: float
    ln_freezing: LnFreezing
    frozen_vector: Float[Tensor, " d_model"]  # u = c v': writer w contributes w·u
    embedding: float
    heads: Float[Tensor, "attn_layers n_heads pos"]  # [layer, head, source]
    attn_biases: Float[Tensor, " attn_layers"]
    features: dict[int, Float[Tensor, " d_sae"]]  # at the root's token
    skips: dict[int, float]
    tc_errors: dict[int, float]
    tc_biases: dict[int, float]
    mlps: dict[int, float]

    @property
    def bias(self) -> float:
        """All output biases: attention (b_O + Σ_h b_V^h W_O^h) and transcoder b_dec_out."""
        return float(self.attn_biases.sum()) + sum(self.tc_biases.values())

    def total(self) -> float:
        """The sum of all contributions; equals `value` up to float error (completeness)."""
        features = sum(float(f.sum()) for f in self.features.values())
        scalars = sum(self.skips.values()) + sum(self.tc_errors.values()) + sum(self.mlps.values())
        return self.embedding + float(self.heads.sum()) + features + scalars + self.bias

    @property
    def completeness_gap(self) -> float:
        return self.value - self.total()


def _pullback(tc: FeatureLayer, u: Tensor, n_out: int) -> Float[Tensor, " d_sae"]:
    """Σ_{j < n_out} W_dec[l -> l + j] u for all features: the decoders into the MLPs below the root
    (one for a per-layer transcoder), in the transcoder's dtype (no float64 copy of the decoders)."""
    decoders = decoder_stack(tc)[:, :n_out]
    return (decoders @ u.to(tc.device, tc.dtype)).sum(dim=-1).to(u.device, _F64)


def _ov_vectors(
    ctx: AttributionContext, layer: int, u: Tensor
) -> tuple[Float[Tensor, "n_heads d_model"], float]:
    """(W_V^h W_O^h u for every head h, the layer's attention bias (b_O + Σ_h b_V^h W_O^h)·u)."""
    if layer not in ctx.ov_weights:
        attn = ctx.model.blocks[layer].attn
        weights = (attn.W_V, attn.W_O, attn.b_V, attn.b_O)
        ctx.ov_weights[layer] = tuple(w.detach().to(u.device, _F64) for w in weights)  # type: ignore[assignment]
    W_V, W_O, b_V, b_O = ctx.ov_weights[layer]
    out = W_O @ u  # [head, d_head]
    ov = (W_V @ out[..., None])[..., 0]  # [head, d_model]
    bias = b_O @ u + (b_V * out).sum()
    return ov, float(bias)


@torch.no_grad()
def attribute(ctx: AttributionContext, root: Root, ln_freezing: LnFreezing = "centered") -> Attribution:
    """All direct contributions to `root`'s value at its token (module docstring, steps 2-3)."""
    ctx._check_point(root.layer, root.sublayer)
    t = ctx.position(root.position)
    if t != root.position:
        root = Root(root.layer, root.sublayer, t, root.vector, root.label, root.offset)
    u, c, value = frozen_vector(ctx, root, ln_freezing)
    n_heads, n_pos = ctx.model.cfg.n_heads, ctx.n_pos
    n_attn = root.layer + (root.sublayer == "resid_mid")

    heads = torch.zeros(n_attn, n_heads, n_pos, dtype=_F64, device=u.device)
    attn_biases = torch.zeros(n_attn, dtype=_F64, device=u.device)
    for layer in range(n_attn):
        ov, attn_biases[layer] = _ov_vectors(ctx, layer, u)
        # A[h, t, s] · LN1(x_s)·(W_V^h W_O^h u), for all heads h and sources s at once
        heads[layer] = ctx.patterns[layer, :, t, :] * (ov @ ctx.ln_pre_out[layer].T)

    features: dict[int, Tensor] = {}
    skips: dict[int, float] = {}
    tc_errors: dict[int, float] = {}
    tc_biases: dict[int, float] = {}
    mlps: dict[int, float] = {}
    for layer in range(root.layer):
        tc = ctx.transcoders.get(layer)
        if tc is None:
            mlps[layer] = float(ctx.mlp_out[layer, t] @ u)
            continue
        # a CLT feature of layer l writes into every MLP l..L-1 below the root: its decoders add up
        pullback = _pullback(tc, u, root.layer - layer)
        features[layer] = ctx.feature_acts[layer][t].to(u.device, _F64) * pullback
        tc_biases[layer] = float(tc.b_dec_out.detach().to(u.device, _F64) @ u)
        tc_errors[layer] = float(ctx.tc_errors[layer][t] @ u)
        if tc.W_skip is not None:
            skips[layer] = float(ctx.mlp_in[layer, t] @ (tc.W_skip.detach().to(u.device, _F64) @ u))

    return Attribution(
        root=root,
        value=value,
        ln_constant=c,
        ln_freezing=ln_freezing,
        frozen_vector=u,
        embedding=float(ctx.embed[t] @ u),
        heads=heads,
        attn_biases=attn_biases,
        features=features,
        skips=skips,
        tc_errors=tc_errors,
        tc_biases=tc_biases,
        mlps=mlps,
    )


# -- contributors: ranking and recursion ------------------------------------------------------------


@dataclass(frozen=True)
class Contributor:
    """One direct contribution to a root, with where its input lives.

    `layer`: the writer's layer; `index`: the feature id or head; `position`: the token its input
    is read at (the root's token for features, skips, errors and MLPs; the source token for heads).
    """

    kind: ContributorKind
    value: float
    layer: int | None = None
    index: int | None = None
    position: int | None = None

    @property
    def label(self) -> str:
        match self.kind:
            case "feature":
                return f"tc{self.layer}[{self.index}]@{self.position}"
            case "head":
                return f"attn{self.layer}.{self.index}@{self.position}"
            case "skip":
                return f"skip_tc{self.layer}@{self.position}"
            case "embedding":
                return f"emb@{self.position}"
            case "tc_error":
                return f"err_tc{self.layer}@{self.position}"
            case "mlp":
                return f"mlp{self.layer}@{self.position}"
            case _:
                return "bias"

    @property
    def expandable(self) -> bool:
        """Whether `child_root` can turn it into a new root (features, heads, skip terms)."""
        return self.kind in EXPANDABLE_KINDS

    def __str__(self) -> str:
        return f"{self.label}: {self.value:+.4g}"


@dataclass(frozen=True)
class _Block:
    """A run of candidate contributions in the flat vector `top_contributors` ranks."""

    kind: ContributorKind
    layer: int | None
    start: int
    size: int


def _candidates(
    attribution: Attribution, kinds: Iterable[str] | None
) -> tuple[Float[Tensor, " n"], list[_Block]]:
    wanted = set(kinds) if kinds is not None else EXPANDABLE_KINDS | LEAF_KINDS
    unknown = wanted - (EXPANDABLE_KINDS | LEAF_KINDS)
    if unknown:
        raise ValueError(f"unknown contributor kinds {sorted(unknown)}")
    a = attribution
    device = a.frozen_vector.device
    pieces: list[tuple[ContributorKind, int | None, Tensor]] = []

    def scalar(value: float) -> Tensor:
        return torch.tensor([value], dtype=_F64, device=device)

    if "feature" in wanted:
        pieces += [("feature", layer, values) for layer, values in a.features.items()]
    if "head" in wanted:
        pieces += [("head", layer, a.heads[layer].reshape(-1)) for layer in range(a.heads.shape[0])]
    if "skip" in wanted:
        pieces += [("skip", layer, scalar(value)) for layer, value in a.skips.items()]
    if "embedding" in wanted:
        pieces.append(("embedding", None, scalar(a.embedding)))
    if "tc_error" in wanted:
        pieces += [("tc_error", layer, scalar(value)) for layer, value in a.tc_errors.items()]
    if "mlp" in wanted:
        pieces += [("mlp", layer, scalar(value)) for layer, value in a.mlps.items()]
    if "bias" in wanted:
        pieces.append(("bias", None, scalar(a.bias)))
    blocks, start = [], 0
    for kind, layer, values in pieces:
        blocks.append(_Block(kind, layer, start, values.numel()))
        start += values.numel()
    flat = torch.cat([values for _, _, values in pieces]) if pieces else torch.zeros(0, dtype=_F64)
    return flat, blocks


def _contributor(
    attribution: Attribution, blocks: list[_Block], flat_index: int, value: float
) -> Contributor:
    block = blocks[bisect.bisect_right([b.start for b in blocks], flat_index) - 1]
    offset = flat_index - block.start
    t = attribution.root.position
    if block.kind == "feature":
        return Contributor("feature", value, block.layer, offset, t)
    if block.kind == "head":
        n_pos = attribution.heads.shape[-1]
        return Contributor("head", value, block.layer, offset // n_pos, offset % n_pos)
    return Contributor(block.kind, value, block.layer, None, None if block.kind == "bias" else t)


def top_contributors(
    attribution: Attribution,
    k: int | None = 10,
    sign: Literal["abs", "positive", "negative"] = "abs",
    kinds: Iterable[str] | None = None,
) -> list[Contributor]:
    """The k largest contributions (all of them with k=None), largest first, as `Contributor`s.

    `sign`: rank by |value|, by value (positive ones only) or by -value (negative ones only);
    `kinds`: restrict to some contributor kinds (e.g. `EXPANDABLE_KINDS` for a beam search).
    Exact zeros (inactive features, masked future sources) are never listed.
    """
    flat, blocks = _candidates(attribution, kinds)
    if sign == "abs":
        key = flat.abs()
    elif sign == "positive":
        key = flat
    elif sign == "negative":
        key = -flat
    else:
        raise ValueError(f"unknown sign {sign!r}; expected 'abs', 'positive' or 'negative'")
    key = torch.where((flat != 0) & (key > 0), key, torch.full_like(key, -torch.inf))
    n = int(torch.isfinite(key).sum())
    k = n if k is None else min(k, n)
    top = key.topk(k).indices.tolist() if k > 0 else []
    return [_contributor(attribution, blocks, i, float(flat[i])) for i in top]


@torch.no_grad()
def child_root(ctx: AttributionContext, attribution: Attribution, contributor: Contributor) -> Root:
    """The root whose value + offset equals `contributor.value` (module docstring, step 4)."""
    u = attribution.frozen_vector
    t = attribution.root.position
    label = contributor.label
    layer = contributor.layer
    if contributor.kind == "feature":
        assert layer is not None and contributor.index is not None
        tc, i = ctx.transcoder(layer), contributor.index
        activation = float(ctx.feature_acts[layer][t, i])
        if activation <= 0:
            raise ValueError(f"{contributor.label} is inactive (activation {activation}): nothing to expand")
        # its decoders into the MLPs below the parent root (one, for a per-layer transcoder)
        decoders = decoder_stack(tc)[i, : attribution.root.layer - layer]
        pullback = float(decoders.flatten().to(u.device, _F64) @ u.repeat(decoders.shape[0]))
        vector = pullback * tc.W_enc[:, i].detach().to(u.device, _F64)
        offset = pullback * float(ctx.effective_bias(layer)[i])
        return Root(layer, "resid_mid", t, vector, label, offset)
    if contributor.kind == "head":
        assert layer is not None and contributor.index is not None and contributor.position is not None
        ov, _ = _ov_vectors(ctx, layer, u)
        s = contributor.position
        vector = ctx.patterns[layer, contributor.index, t, s] * ov[contributor.index]
        return Root(layer, "resid_pre", s, vector, label)
    if contributor.kind == "skip":
        assert layer is not None
        W_skip = ctx.transcoder(layer).W_skip
        assert W_skip is not None
        return Root(layer, "resid_mid", t, W_skip.detach().to(u.device, _F64) @ u, label)
    raise ValueError(f"{contributor.label} ({contributor.kind}) is a leaf: it has no input to expand")
