"""Cross-layer transcoders (CLTs): the module, its training settings, and its files.

A CLT replaces every MLP of an n-layer model at once. Layer l has d_sae features that read the MLP
input of layer l (`blocks.l.ln2.hook_normalized`, what the per-layer transcoders read) and write,
through one decoder per output layer l' >= l, into every later-or-equal MLP output
(`blocks.l'.hook_mlp_out`). So a feature can "bridge" several MLPs (Anthropic, "Circuit Tracing",
2025; Ameisen et al.). Step by step:

1. Encode, per layer l: `p_l = (x_l - b_dec_l) W_enc_l + b_enc_l` (b_dec is the input pre-bias, as
   in dictionary.py); features `z_l = ReLU(p_l)`, or for JumpReLU `z_l = p_l * [p_l > exp(t_l)]`
   with a learned per-feature log threshold t.
2. Decode, per output layer l': `y_hat_l' = b_dec_out_l' + sum_{l <= l'} z_l W_dec[l -> l']`.
   `W_dec[l]` is one tensor [d_sae, n_layers - l, d_out]: index j is the decoder into layer l + j
   (circuit-tracer's layout, so exporting it is a transpose-free copy).
3. A feature's decoder norm is the norm of all its decoders concatenated,
   `||W_dec[l, i]|| = sqrt(sum_j ||W_dec[l][i, j]||^2)`; both sparsity penalties weight by it, so
   rescaling a feature (z up, decoders down) cannot dodge them and decoders need no renormalising.
4. Recipes (`CrossLayerRecipe`), the loss being sum over output layers of the per-layer trainer's
   normalised MSE plus:
   - `l1_decoder_norm` (the CLT papers' L1 form): ReLU features and
     `lambda * mean_b sum_{l,i} z_{l,i} ||W_dec[l, i]||`;
   - `tanh_jumprelu` (Anthropic's January 2025 update, used for "Circuit Tracing"): JumpReLU
     features, `lambda * mean_b sum_{l,i} tanh(c ||W_dec[l, i]|| z_{l,i})` plus the small
     pre-activation term `lambda_p * mean_b sum_{l,i} ReLU(-p_{l,i})` that lifts dead features'
     pre-activations towards firing. The step's gradient: d z / d p = [p > exp(t)] and, for the
     threshold, the rectangle-kernel pseudo-derivative `d z / d t = -(exp(t) / eps) *
     rect((p - exp(t)) / eps)` (rect = 1 on (-1/2, 1/2)), with bandwidth eps a training setting.
   The organism's default is `l1_decoder_norm`: its per-layer transcoders train with ReLU and an L1
   penalty at unit decoder norm, which is this loss for a one-layer CLT, so a per-layer vs
   cross-layer comparison then differs in the architecture only, not in the sparsity recipe.
5. Init (`CrossLayerTranscoder.initialise`, on the CPU from a seeded generator): per layer, encoder
   columns kaiming-uniform then unit norm (as the per-layer transcoders), each feature's concatenated
   decoder kaiming-uniform then unit norm, zero biases, thresholds at `init_threshold`.
6. Files (`save_crosslayer` / `load_crosslayer`), a directory of:
   - `clt_weights.safetensors`: W_enc [n_layers, d_in, d_sae], b_enc [n_layers, d_sae], b_dec
     [n_layers, d_in] (input pre-bias), b_dec_out [n_layers, d_out], W_dec_<l> [d_sae, n_layers - l,
     d_out] for each l, and log_threshold [n_layers, d_sae] for `tanh_jumprelu` only. Our own
     parameters, unfolded, so saving and loading is exact;
   - `sparsity.safetensors` (optional): tensor `sparsity`, log10 firing frequency [n_layers, d_sae];
   - `cfg.json`: {"architecture": "crosslayer_transcoder", "transcoder_lab": {"format_version",
     "spec", "hooks_in", "hooks_out", "metadata"}}. sae-lens cannot load a CLT; the top-level
     architecture says so to anyone who tries.
   Every file is written atomically (transcoder_lab.io); an old cfg.json is removed first and the new
   one written last, so a directory holding cfg.json is complete. The loader reads JSON and
   safetensors only (never a pickle) and checks every tensor's name and shape against the spec.
   circuit-tracer's layout is written by transcoder_lab.circuits.circuit_tracer.export_crosslayer.
7. Settings: `CrossLayerTrainingConfig` (the trainer's), and `CrossLayerConfig`, a profile's
   `crosslayer:` block (which config.py keeps as a plain dict; `crosslayer_config` checks it): the
   L1 coefficients of the CLTs the `crosslayer` stage trains (crosslayer_sweep.py), the recipe, the
   width and the training block. Splicing a CLT layer by layer uses `encode_layer`/`decode_layer`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from transcoder_lab.config import Config, ConfigError
from transcoder_lab.dictionaries.dictionary import (
    CFG_FILENAME,
    SPARSITY_FILENAME,
    SPARSITY_TENSOR,
    read_sparsity,
    read_tensors,
    require_file,
    write_weight_files,
)
from transcoder_lab.sources.hooks import mlp_in_hook, mlp_out_hook

WEIGHTS_FILENAME = "clt_weights.safetensors"
OUR_SECTION = "transcoder_lab"
ARCHITECTURE = "crosslayer_transcoder"
WHAT = "cross-layer transcoder"  # in the errors naming a missing file
FORMAT_VERSION = 1


class CrossLayerRecipe(StrEnum):
    l1_decoder_norm = "l1_decoder_norm"  # ReLU, lambda * z * ||W_dec|| (the organism's default)
    tanh_jumprelu = "tanh_jumprelu"  # JumpReLU, lambda * tanh(c * ||W_dec|| * z) + pre-activation term


@dataclass
class CrossLayerSpec:
    """Shape and wiring of a CLT over layers 0..n_layers-1. `recipe` may be given as a string."""

    n_layers: int
    d_in: int
    d_out: int
    d_sae: int  # features per layer
    recipe: CrossLayerRecipe = CrossLayerRecipe.l1_decoder_norm
    model_name: str = ""

    def __post_init__(self) -> None:
        try:
            self.recipe = CrossLayerRecipe(self.recipe)
        except ValueError:
            valid = ", ".join(repr(recipe.value) for recipe in CrossLayerRecipe)
            raise ValueError(f"unknown cross-layer recipe {self.recipe!r}; expected one of {valid}") from None
        if min(self.n_layers, self.d_in, self.d_out, self.d_sae) < 1:
            raise ValueError(f"a CLT's layer count and dimensions must be positive: {self}")

    @property
    def jumprelu(self) -> bool:
        return self.recipe is CrossLayerRecipe.tanh_jumprelu

    @property
    def hooks_in(self) -> list[str]:
        return [mlp_in_hook(layer) for layer in range(self.n_layers)]

    @property
    def hooks_out(self) -> list[str]:
        return [mlp_out_hook(layer) for layer in range(self.n_layers)]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "recipe": self.recipe.value}


@dataclass
class CrossLayerTrainingConfig:
    """The CLT trainer (crosslayer_training.py): a profile's `crosslayer.training` (CrossLayerConfig)."""

    seed: int = 42
    lr: float = 4e-4
    n_steps: int = 120
    warmup_steps: int = 20  # the learning rate ramps up linearly over these steps
    sparsity_coefficient: float = 1e-3  # lambda, of either recipe's sparsity term
    # lambda ramps linearly from 0 over this share of n_steps (the per-layer trainer's
    # l1_warmup_fraction; the organism's per-layer transcoders use 0.8)
    sparsity_warmup_fraction: float = 0.0
    tanh_scale: float = 4.0  # c in tanh(c ||W_dec|| z) (tanh_jumprelu)
    pre_act_coefficient: float = 3e-6  # lambda_p of the pre-activation term (tanh_jumprelu)
    jumprelu_bandwidth: float = 0.1  # eps of the threshold's rectangle pseudo-derivative
    jumprelu_init_threshold: float = 0.05  # exp(t) at initialisation
    dead_window_steps: int = 50  # a feature silent this long counts as dead (reported only)
    frequency_window_steps: int = 50  # steps at the end over which firing frequency is measured
    checkpoint_every: int = 50

    def __post_init__(self) -> None:
        positive = {"lr": self.lr, "n_steps": self.n_steps, "checkpoint_every": self.checkpoint_every,
                    "jumprelu_bandwidth": self.jumprelu_bandwidth, "tanh_scale": self.tanh_scale,
                    "jumprelu_init_threshold": self.jumprelu_init_threshold}  # fmt: skip
        for name, value in positive.items():
            if not value > 0:
                raise ConfigError(f"crosslayer training: {name} is {value}; it must be positive")
        for name in ("sparsity_coefficient", "pre_act_coefficient", "warmup_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"crosslayer training: {name} is {getattr(self, name)}; it must be >= 0")
        if not 0.0 <= self.sparsity_warmup_fraction <= 1.0:
            raise ConfigError(
                f"crosslayer training: sparsity_warmup_fraction is {self.sparsity_warmup_fraction}; "
                "it is a share of n_steps, between 0 and 1"
            )

    def sparsity_at(self, step: int) -> float:
        """lambda at `step` (0-based): ramped linearly over the warm-up, then sparsity_coefficient."""
        warmup_steps = round(self.sparsity_warmup_fraction * self.n_steps)
        return self.sparsity_coefficient * min(1.0, (step + 1) / max(1, warmup_steps))


@dataclass
class CrossLayerConfig:
    """A profile's `crosslayer:` block, which config.py keeps as a plain dict (`crosslayer_config`
    checks it against this): the CLTs the `crosslayer` stage trains over every layer, one per
    L1 coefficient (lambda). Their batches are the per-layer transcoders' (the harvest's shuffle
    buffer with profile.dictionaries.training's seed and batch_size), so a CLT sees the same
    tokens in the same order; `training.sparsity_coefficient` is each CLT's lambda, not a setting."""

    l1_coefficients: list[float] = field(default_factory=list)  # one CLT each; empty: none
    recipe: CrossLayerRecipe = CrossLayerRecipe.l1_decoder_norm
    expansion_factor: int = 8  # features per layer = expansion_factor * d_model
    training: CrossLayerTrainingConfig = field(default_factory=CrossLayerTrainingConfig)

    def __post_init__(self) -> None:
        if self.expansion_factor < 1 or any(not l1 > 0 for l1 in self.l1_coefficients):
            raise ConfigError(
                f"profile.crosslayer: expansion_factor ({self.expansion_factor}) and every L1 coefficient "
                f"({self.l1_coefficients}) must be positive"
            )
        for l1 in self.l1_coefficients:  # dvc.yaml names a CLT's folder "l1_${item}": str(l1)
            if f"{l1:g}" != str(l1):
                raise ConfigError(
                    f"profile.crosslayer.l1_coefficients: {l1!r} names its folder 'l1_{l1:g}' but "
                    f"dvc.yaml's 'l1_{l1}'; write it as a value both spell alike (e.g. 0.0012)"
                )
        if len(set(self.l1_coefficients)) != len(self.l1_coefficients):
            raise ConfigError(
                f"profile.crosslayer.l1_coefficients lists a value twice: {self.l1_coefficients}"
            )


def crosslayer_config(cfg: Config) -> CrossLayerConfig:
    """`cfg.profile.crosslayer` checked against CrossLayerConfig: an unknown key or a wrong type is
    a ConfigError naming it (as config.load_config's are). A profile without the block trains none."""
    raw = cfg.profile.crosslayer
    if "sparsity_coefficient" in (raw.get("training") or {}):
        raise ConfigError(
            "profile.crosslayer.training.sparsity_coefficient is set per CLT from "
            "profile.crosslayer.l1_coefficients; remove it from the training block"
        )
    try:
        checked = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(CrossLayerConfig), raw))
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or "?"
        reason = str(getattr(error, "msg", error)).splitlines()[0]
        raise ConfigError(
            f"invalid config at key 'profile.crosslayer.{key}': {reason}. Compare with CrossLayerConfig "
            "in transcoder_lab/dictionaries/crosslayer.py"
        ) from error
    assert isinstance(checked, CrossLayerConfig)
    return checked


class _JumpReLU(torch.autograd.Function):
    """z = p [p > exp(t)]; dz/dp = [p > exp(t)]; dz/dt = -(exp(t) / eps) rect((p - exp(t)) / eps)."""

    @staticmethod
    def forward(ctx, pre: torch.Tensor, log_threshold: torch.Tensor, bandwidth: float) -> torch.Tensor:
        threshold = log_threshold.exp().unsqueeze(1)  # [n_layers, 1, d_sae], broadcast over the batch
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return pre * (pre > threshold)

    @staticmethod
    def backward(ctx, grad_z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        pre, threshold = ctx.saved_tensors
        bandwidth = ctx.bandwidth
        grad_pre = grad_z * (pre > threshold)
        in_window = ((pre - threshold).abs() < bandwidth / 2).to(pre.dtype)
        grad_log_threshold = (-(threshold / bandwidth) * in_window * grad_z).sum(1)
        return grad_pre, grad_log_threshold, None


class CrossLayerTranscoder(nn.Module):
    """A CLT (module docstring steps 1-3). The constructor makes zero weights; see `initialise`.

    Activations come stacked over layers: x [n_layers, batch, d_in] (layer l's MLP input at index
    l), outputs [n_layers, batch, d_out]. `W_dec[l]` is [d_sae, n_layers - l, d_out].
    """

    log_threshold: nn.Parameter | None

    def __init__(self, spec: CrossLayerSpec, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.spec = spec
        L, d_in, d_sae, d_out = spec.n_layers, spec.d_in, spec.d_sae, spec.d_out
        self.W_enc = nn.Parameter(torch.zeros(L, d_in, d_sae, dtype=dtype))
        self.b_enc = nn.Parameter(torch.zeros(L, d_sae, dtype=dtype))
        self.b_dec = nn.Parameter(torch.zeros(L, d_in, dtype=dtype))
        self.W_dec = nn.ParameterList(
            [nn.Parameter(torch.zeros(d_sae, L - layer, d_out, dtype=dtype)) for layer in range(L)]
        )
        self.b_dec_out = nn.Parameter(torch.zeros(L, d_out, dtype=dtype))
        # Registered for JumpReLU only, so a ReLU CLT's optimiser and files hold no unused tensor.
        self.log_threshold = nn.Parameter(torch.zeros(L, d_sae, dtype=dtype)) if spec.jumprelu else None

    @classmethod
    def initialise(
        cls,
        spec: CrossLayerSpec,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        init_threshold: float = 0.05,
    ) -> CrossLayerTranscoder:
        """Random init (module docstring step 5); `generator` makes it deterministic."""
        clt = cls(spec, dtype=dtype)
        L, d_sae = spec.n_layers, spec.d_sae
        with torch.no_grad():
            for layer in range(L):
                W_enc = torch.empty(spec.d_in, d_sae, dtype=dtype)
                nn.init.kaiming_uniform_(W_enc, a=math.sqrt(5), generator=generator)
                clt.W_enc[layer] = W_enc / W_enc.norm(dim=0, keepdim=True).clamp_min(1e-8)
                W_dec = torch.empty(d_sae, (L - layer) * spec.d_out, dtype=dtype)
                nn.init.kaiming_uniform_(W_dec, a=math.sqrt(5), generator=generator)
                W_dec /= W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8)
                clt.W_dec[layer].copy_(W_dec.view(d_sae, L - layer, spec.d_out))
            if clt.log_threshold is not None:
                clt.log_threshold.fill_(math.log(init_threshold))
        return clt

    # -- forward pass ------------------------------------------------------------------------

    def pre_activations(
        self, x: Float[torch.Tensor, "n_layers b d_in"]
    ) -> Float[torch.Tensor, "n_layers b d_sae"]:
        # one batched product over layers: p_l = (x_l - b_dec_l) W_enc_l + b_enc_l
        return torch.baddbmm(self.b_enc.unsqueeze(1), x - self.b_dec.unsqueeze(1), self.W_enc)

    def activation(
        self, pre: Float[torch.Tensor, "n_layers b d_sae"], bandwidth: float | None = None
    ) -> Float[torch.Tensor, "n_layers b d_sae"]:
        """ReLU, or JumpReLU at the learned thresholds. Training passes the JumpReLU `bandwidth`
        (the threshold's pseudo-derivative needs it); without it the thresholds get no gradient."""
        if self.log_threshold is None:
            return torch.relu(pre)
        if bandwidth is None:
            return pre * (pre > self.log_threshold.detach().exp().unsqueeze(1))
        return _JumpReLU.apply(pre, self.log_threshold, bandwidth)

    def encode(
        self, x: Float[torch.Tensor, "n_layers b d_in"], bandwidth: float | None = None
    ) -> Float[torch.Tensor, "n_layers b d_sae"]:
        return self.activation(self.pre_activations(x), bandwidth)

    def decode(self, z: Float[torch.Tensor, "n_layers b d_sae"]) -> Float[torch.Tensor, "n_layers b d_out"]:
        """y_hat_l' = b_dec_out_l' + sum_{l <= l'} z_l W_dec[l -> l']: one product per source layer."""
        L, n_rows, d_out = self.spec.n_layers, z.shape[1], self.spec.d_out
        contributions: list[list[torch.Tensor]] = [[] for _ in range(L)]
        for layer in range(L):
            written = (z[layer] @ self.W_dec[layer].flatten(1)).view(n_rows, L - layer, d_out)
            for j in range(L - layer):  # decoder j of layer `layer` writes to layer + j
                contributions[layer + j].append(written[:, j])
        return torch.stack([self.b_dec_out[out] + sum(contributions[out]) for out in range(L)])

    def forward(
        self, x: Float[torch.Tensor, "n_layers b d_in"]
    ) -> tuple[Float[torch.Tensor, "n_layers b d_out"], Float[torch.Tensor, "n_layers b d_sae"]]:
        z = self.encode(x)
        return self.decode(z), z

    # -- layer by layer, for splicing into a model (dictionaries/evaluation.py) --------------------

    def encode_layer(
        self, x: Float[torch.Tensor, "... d_in"], layer: int
    ) -> Float[torch.Tensor, "... d_sae"]:
        """Layer `layer`'s features from its MLP input alone (step 1), as dictionary.py's transcoder
        computes them (one addmm), so a spliced model can encode each layer as the pass reaches it."""
        flat = (x - self.b_dec[layer]).reshape(-1, x.shape[-1])
        pre = torch.addmm(self.b_enc[layer], flat, self.W_enc[layer]).reshape(*x.shape[:-1], -1)
        if self.log_threshold is None:
            return torch.relu(pre)
        return pre * (pre > self.log_threshold[layer].exp())

    def decode_layer(
        self, z: Sequence[Float[torch.Tensor, "... d_sae"]], out: int
    ) -> Float[torch.Tensor, "... d_out"]:
        """MLP output `out` (step 2) from the features of layers 0..out (`z[l]`, later ones unused):
        its own layer's decoder first, as dictionary.py's transcoder decodes, then the earlier layers'."""
        flat = [z_layer.reshape(-1, z_layer.shape[-1]) for z_layer in z[: out + 1]]
        y_hat = torch.addmm(self.b_dec_out[out], flat[out], self.W_dec[out][:, 0])
        for source in range(out):
            y_hat = y_hat + flat[source] @ self.W_dec[source][:, out - source]
        return y_hat.reshape(*z[out].shape[:-1], -1)

    def decoder_norms(self) -> Float[torch.Tensor, "n_layers d_sae"]:
        """Each feature's decoder norm over all the layers it writes to (module docstring step 3)."""
        return torch.stack([W_dec.flatten(1).norm(dim=-1) for W_dec in self.W_dec])

    def effective_encoder_bias(self) -> Float[torch.Tensor, "n_layers d_sae"]:
        """The encoder bias with the pre-bias folded in: p_l = x_l W_enc_l + (b_enc_l - b_dec_l W_enc_l)."""
        return self.b_enc - torch.einsum("ld,lds->ls", self.b_dec, self.W_enc)

    @property
    def dtype(self) -> torch.dtype:
        return self.W_enc.dtype


# -- saving and loading ----------------------------------------------------------------------


def _file_tensors(clt: CrossLayerTranscoder) -> dict[str, torch.Tensor]:
    """The parameters under their file names (W_dec.<l> -> W_dec_<l>), on the CPU."""
    tensors = {name.replace("W_dec.", "W_dec_"): p for name, p in clt.named_parameters()}
    return {name: t.detach().cpu().contiguous() for name, t in tensors.items()}


def expected_shapes(spec: CrossLayerSpec) -> dict[str, tuple[int, ...]]:
    """Every tensor of clt_weights.safetensors and its shape, as the spec implies them."""
    L, d_in, d_sae, d_out = spec.n_layers, spec.d_in, spec.d_sae, spec.d_out
    shapes = {"W_enc": (L, d_in, d_sae), "b_enc": (L, d_sae), "b_dec": (L, d_in), "b_dec_out": (L, d_out)}
    shapes |= {f"W_dec_{layer}": (d_sae, L - layer, d_out) for layer in range(L)}
    if spec.jumprelu:
        shapes["log_threshold"] = (L, d_sae)
    return shapes


def save_crosslayer(
    clt: CrossLayerTranscoder,
    path: str | Path,
    log10_frequency: Float[torch.Tensor, "n_layers d_sae"] | None = None,
    extra_metadata: dict[str, Any] | None = None,
) -> Path:
    """Write `clt` to directory `path` (module docstring step 6). Without `log10_frequency` an old
    sparsity file is removed, so it cannot describe other weights."""
    path, spec = Path(path), clt.spec
    cfg = {
        "architecture": ARCHITECTURE,
        OUR_SECTION: {
            "format_version": FORMAT_VERSION,
            "spec": spec.to_json(),
            "hooks_in": spec.hooks_in,
            "hooks_out": spec.hooks_out,
            "metadata": extra_metadata or {},
        },
    }
    cfg_text = json.dumps(cfg, indent=2) + "\n"  # serialise first: bad metadata writes nothing
    frequency = None
    if log10_frequency is not None:
        frequency = log10_frequency.detach().float().cpu()
        if tuple(frequency.shape) != (spec.n_layers, spec.d_sae):
            raise ValueError(
                f"log10_frequency has shape {tuple(frequency.shape)}; expected "
                f"({spec.n_layers}, {spec.d_sae}), one value per layer and feature"
            )
    return write_weight_files(path, WEIGHTS_FILENAME, _file_tensors(clt), frequency, cfg_text)


def read_crosslayer_config(path: str | Path) -> dict[str, Any]:
    """Our section of a saved CLT's cfg.json, after checking it is one, in a format we read."""
    cfg_path = require_file(Path(path) / CFG_FILENAME, WHAT)
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("architecture") != ARCHITECTURE or OUR_SECTION not in cfg:
        raise ValueError(f"{cfg_path} does not describe a cross-layer transcoder written by save_crosslayer")
    ours = cfg[OUR_SECTION]
    if ours.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{cfg_path}: unsupported format_version {ours.get('format_version')!r}")
    return ours


def load_crosslayer(path: str | Path, device: str | torch.device = "cpu") -> CrossLayerTranscoder:
    """Load a directory written by `save_crosslayer` (safetensors and JSON only, never a pickle)."""
    path = Path(path)
    spec = CrossLayerSpec(**read_crosslayer_config(path)["spec"])
    weights = path / WEIGHTS_FILENAME
    tensors = read_tensors(weights, WHAT)
    expected = expected_shapes(spec)
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{weights}: missing tensors {missing}, unexpected tensors {unexpected} for a "
            f"{spec.n_layers}-layer {spec.recipe.value} cross-layer transcoder"
        )
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != shape:
            raise ValueError(
                f"{weights}: tensor '{name}' has shape {tuple(tensors[name].shape)}, but cfg.json implies "
                f"{shape} (n_layers={spec.n_layers}, d_in={spec.d_in}, d_sae={spec.d_sae}, "
                f"d_out={spec.d_out})"
            )
    dtypes = {tensor.dtype for tensor in tensors.values()}
    if len(dtypes) != 1:
        raise ValueError(f"{weights}: tensors of several dtypes {sorted(map(str, dtypes))}; expected one")
    clt = CrossLayerTranscoder(spec, dtype=dtypes.pop())
    with torch.no_grad():
        for name, parameter in clt.named_parameters():
            parameter.copy_(tensors[name.replace("W_dec.", "W_dec_")])
    return clt.to(device)


def load_crosslayer_log10_frequency(path: str | Path) -> Float[torch.Tensor, "n_layers d_sae"]:
    """The per-layer, per-feature log10 firing frequency saved beside a CLT (-10 marks dead ones)."""
    path = Path(path)
    spec = CrossLayerSpec(**read_crosslayer_config(path)["spec"])
    frequency = read_sparsity(path, WHAT)
    if tuple(frequency.shape) != (spec.n_layers, spec.d_sae):
        raise ValueError(
            f"{path / SPARSITY_FILENAME}: tensor '{SPARSITY_TENSOR}' has shape {tuple(frequency.shape)}, "
            f"but cfg.json implies ({spec.n_layers}, {spec.d_sae})"
        )
    return frequency
