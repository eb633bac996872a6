"""Sparse dictionaries (transcoders and SAEs): the module, and saving/loading in sae-lens's format.

A dictionary reads an activation x at `hook_in` and predicts the activation y at `hook_out`:

1. Kinds (`DictionaryKind`): a *transcoder* reads the MLP input `blocks.L.ln2.hook_normalized`
   and predicts the MLP output `blocks.L.hook_mlp_out`; an *SAE* reads and reconstructs one hook
   (`sae_mlp_out`: the MLP output, the Pareto baseline; `sae_mlp_in`: the MLP input, the blind-
   study baseline).
2. Encode (docs/design.md §4.1): pre-activations `p = (x - b_dec) W_enc + b_enc`, where b_dec is the input
   pre-bias; features `z = ReLU(p)`. TopK keeps the k largest of ReLU(p) and zeroes the rest.
3. Decode: `ŷ = z W_dec + b_dec_out`, plus `x W_skip` for a skip-transcoder. For an SAE the
   output bias *is* the pre-bias (`ŷ = ReLU((y - b_dec) W_enc + b_enc) W_dec + b_dec`), so
   `b_dec_out` is an alias of the one `b_dec` parameter, never a second copy.
4. Training helpers: `normalize_decoder_` rescales decoder rows to unit norm, and
   `remove_parallel_decoder_grad_` removes from each row's gradient its component along the row
   (so an Adam step moves rows mostly within the unit sphere's tangent plane).
5. Saving (`save_dictionary`) writes a directory that `sae_lens.SAE.load_from_disk` loads:
   `cfg.json` + `sae_weights.safetensors` (+ `sparsity.safetensors`, log10 firing frequency).
   - SAEs: architecture "standard" (ReLU) or "topk", `apply_b_dec_to_input = true`, tensors
     W_enc, b_enc, W_dec, b_dec: exactly sae-lens's formula, nothing to convert.
   - Transcoders: sae-lens has no input pre-bias on transcoders, so it is folded into the encoder
     bias, `b_enc' = b_enc - b_dec W_enc` (then `x W_enc + b_enc' = (x - b_dec) W_enc + b_enc`),
     saved with `apply_b_dec_to_input = false`; sae-lens's `b_dec` is our output bias b_dec_out.
     Architecture "transcoder" (ReLU) or "skip_transcoder" (W_skip saved transposed, [d_out,
     d_in], sae-lens's layout).
   - TopK transcoders: sae-lens 6.54 has no TopK transcoder class. They are saved in the same
     layout with architecture "topk_transcoder" / "topk_skip_transcoder", names sae-lens does
     not know, so `SAE.load_from_disk` refuses them (KeyError) instead of silently loading a
     ReLU transcoder with different outputs; `load_dictionary` here loads them.
   Our own fields (kind, layer, architecture, k, skip, model name, and any extra metadata such
   as the L1 coefficient) go in a top-level "transcoder_lab" section of cfg.json, which
   sae-lens ignores. Every file is written atomically (transcoder_lab.io); an old cfg.json is
   removed first and the new one written last (`write_weight_files`, which the cross-layer
   transcoders' files share), so a directory holding a cfg.json is complete.
6. Loading (`load_dictionary`) reads cfg.json and the safetensors files (never a pickle) and
   checks every tensor's name and shape. A folded transcoder loads back with b_dec = 0 and the
   folded b_enc: different parameters, identical outputs; saving it again is exact.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from safetensors import safe_open
from torch import nn

from transcoder_lab import io
from transcoder_lab.config import Architecture, DictionaryKind, arm_name
from transcoder_lab.sources.hooks import mlp_in_hook, mlp_out_hook

CFG_FILENAME = "cfg.json"
WEIGHTS_FILENAME = "sae_weights.safetensors"
SPARSITY_FILENAME = "sparsity.safetensors"
SPARSITY_TENSOR = "sparsity"
OUR_SECTION = "transcoder_lab"  # the cfg.json key that holds our own fields
FORMAT_VERSION = 1

ARCHITECTURES = tuple(Architecture)

# sae-lens architecture names for each (kind is transcoder, architecture, skip); the topk
# transcoder names are ours: sae-lens 6.54 has no such class and refuses to load them.
_SAE_LENS_ARCHITECTURE = {
    (False, Architecture.relu, False): "standard",
    (False, Architecture.topk, False): "topk",
    (True, Architecture.relu, False): "transcoder",
    (True, Architecture.relu, True): "skip_transcoder",
    (True, Architecture.topk, False): "topk_transcoder",
    (True, Architecture.topk, True): "topk_skip_transcoder",
}
SAE_LENS_LOADABLE = frozenset({"standard", "topk", "transcoder", "skip_transcoder"})


@dataclass
class DictionarySpec:
    """Shape and wiring of one dictionary. `kind` and `architecture` may be given as plain strings."""

    kind: DictionaryKind
    layer: int
    d_in: int
    d_sae: int
    d_out: int
    architecture: Architecture = Architecture.relu
    k: int | None = None  # topk only: features kept per token
    skip: bool = False  # skip-transcoder (ŷ += x W_skip); transcoders only
    model_name: str = ""

    def __post_init__(self) -> None:
        try:
            self.kind = DictionaryKind(self.kind)
        except ValueError:
            valid = ", ".join(kind.value for kind in DictionaryKind)
            raise ValueError(f"unknown dictionary kind {self.kind!r}; expected one of {valid}") from None
        try:
            self.architecture = Architecture(self.architecture)
        except ValueError:
            valid = ", ".join(ARCHITECTURES)
            raise ValueError(f"unknown architecture {self.architecture!r}; expected one of {valid}") from None
        if self.architecture is Architecture.topk:
            if self.k is None or not 1 <= self.k <= self.d_sae:
                raise ValueError(f"a topk dictionary needs 1 <= k <= d_sae ({self.d_sae}); got k={self.k}")
        elif self.k is not None:
            raise ValueError(
                f"k={self.k} is only meaningful for architecture 'topk', not {self.architecture}"
            )
        if self.skip and not self.is_transcoder:
            raise ValueError(f"skip connections are for transcoders only, not kind {self.kind.value!r}")
        if not self.is_transcoder and self.d_in != self.d_out:
            raise ValueError(
                f"an SAE reconstructs its input: d_in ({self.d_in}) must equal d_out ({self.d_out})"
            )
        if min(self.d_in, self.d_sae, self.d_out) < 1 or self.layer < 0:
            raise ValueError(f"dimensions must be positive and the layer non-negative: {self}")

    @property
    def is_transcoder(self) -> bool:
        return self.kind is DictionaryKind.transcoder

    @property
    def arm(self) -> str:
        """The arm it belongs to (config.ARMS): "transcoder", "skip_transcoder", "topk_transcoder", ..."""
        return arm_name(self.kind, self.architecture, self.skip)

    @property
    def hook_in(self) -> str:
        reads_mlp_out = self.kind is DictionaryKind.sae_mlp_out
        return mlp_out_hook(self.layer) if reads_mlp_out else mlp_in_hook(self.layer)

    @property
    def hook_out(self) -> str:
        return mlp_in_hook(self.layer) if self.kind is DictionaryKind.sae_mlp_in else mlp_out_hook(self.layer)

    @property
    def sae_lens_architecture(self) -> str:
        return _SAE_LENS_ARCHITECTURE[(self.is_transcoder, self.architecture, self.skip)]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind.value}


class Dictionary(nn.Module):
    """A transcoder or SAE: `z = act((x - b_dec) W_enc + b_enc)`, `ŷ = z W_dec + b_dec_out (+ x W_skip)`.

    The constructor makes zero weights (fill them, or use `initialise`). For SAEs, `b_dec_out`
    is the same Parameter object as `b_dec` (tied), so optimisers and state_dicts see it once.
    """

    W_enc: nn.Parameter
    b_enc: nn.Parameter
    W_dec: nn.Parameter
    b_dec: nn.Parameter
    b_dec_out: nn.Parameter  # a transcoder's own parameter; an SAE's b_dec (see __getattr__)
    W_skip: nn.Parameter | None

    def __init__(self, spec: DictionarySpec, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.spec = spec
        d_in, d_sae, d_out = spec.d_in, spec.d_sae, spec.d_out
        self.W_enc = nn.Parameter(torch.zeros(d_in, d_sae, dtype=dtype))
        self.b_enc = nn.Parameter(torch.zeros(d_sae, dtype=dtype))
        self.W_dec = nn.Parameter(torch.zeros(d_sae, d_out, dtype=dtype))
        self.b_dec = nn.Parameter(torch.zeros(d_in, dtype=dtype))
        if spec.is_transcoder:
            # Registered only for transcoders; SAEs read b_dec through __getattr__ below.
            self.b_dec_out = nn.Parameter(torch.zeros(d_out, dtype=dtype))
        self.W_skip = nn.Parameter(torch.zeros(d_in, d_out, dtype=dtype)) if spec.skip else None

    def __getattr__(self, name: str) -> Any:
        # nn.Module keeps parameters outside __dict__, so this runs for every parameter access;
        # only an SAE's missing `b_dec_out` is redirected, to the tied pre-bias.
        if name == "b_dec_out" and "b_dec_out" not in self._parameters and "spec" in self.__dict__:
            if not self.spec.is_transcoder:
                return self._parameters["b_dec"]
        return super().__getattr__(name)

    @classmethod
    def initialise(
        cls,
        spec: DictionarySpec,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Dictionary:
        """Random init: kaiming-uniform decoder with unit-norm rows, encoder = decoder transposed
        for SAEs (its own unit-norm columns for transcoders, whose input and output spaces
        differ), zero biases, zero skip matrix. `generator` makes it deterministic."""
        dictionary = cls(spec, dtype=dtype)
        with torch.no_grad():
            W_dec = torch.empty(spec.d_sae, spec.d_out, dtype=dtype)
            nn.init.kaiming_uniform_(W_dec, a=math.sqrt(5), generator=generator)
            W_dec /= W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8)
            dictionary.W_dec.copy_(W_dec)
            if spec.is_transcoder:
                W_enc = torch.empty(spec.d_in, spec.d_sae, dtype=dtype)
                nn.init.kaiming_uniform_(W_enc, a=math.sqrt(5), generator=generator)
                dictionary.W_enc.copy_(W_enc / W_enc.norm(dim=0, keepdim=True).clamp_min(1e-8))
            else:
                dictionary.W_enc.copy_(W_dec.T)
        return dictionary

    # -- forward pass ------------------------------------------------------------------------

    def pre_activations(self, x: Float[torch.Tensor, "... d_in"]) -> Float[torch.Tensor, "... d_sae"]:
        # addmm adds the bias inside the matrix product: one pass less over the [tokens, d_sae] result
        flat = (x - self.b_dec).reshape(-1, x.shape[-1])
        return torch.addmm(self.b_enc, flat, self.W_enc).reshape(*x.shape[:-1], -1)

    def activation(self, pre: Float[torch.Tensor, "... d_sae"]) -> Float[torch.Tensor, "... d_sae"]:
        """ReLU, or for TopK: ReLU then keep the k largest values per row (the rest set to 0)."""
        z = torch.relu(pre)
        if self.spec.architecture is Architecture.topk:
            assert self.spec.k is not None  # checked by DictionarySpec
            values, indices = z.topk(self.spec.k, dim=-1, sorted=False)
            z = torch.zeros_like(z).scatter(-1, indices, values)
        return z

    def encode(self, x: Float[torch.Tensor, "... d_in"]) -> Float[torch.Tensor, "... d_sae"]:
        return self.activation(self.pre_activations(x))

    def decode(
        self, z: Float[torch.Tensor, "... d_sae"], x: Float[torch.Tensor, "... d_in"] | None = None
    ) -> Float[torch.Tensor, "... d_out"]:
        """`z W_dec + b_dec_out`; a skip-transcoder also adds `x W_skip`, so it needs x."""
        y_hat = torch.addmm(self.b_dec_out, z.reshape(-1, z.shape[-1]), self.W_dec).reshape(*z.shape[:-1], -1)
        if self.W_skip is not None:
            if x is None:
                raise ValueError("a skip-transcoder's decode needs the input x for its skip term x W_skip")
            y_hat = y_hat + x @ self.W_skip
        return y_hat

    def forward(
        self, x: Float[torch.Tensor, "... d_in"]
    ) -> tuple[Float[torch.Tensor, "... d_out"], Float[torch.Tensor, "... d_sae"]]:
        z = self.encode(x)
        return self.decode(z, x), z

    def effective_encoder_bias(self) -> Float[torch.Tensor, " d_sae"]:
        """The encoder bias with the pre-bias folded in: p = x W_enc + (b_enc - b_dec W_enc)."""
        return self.b_enc - self.b_dec @ self.W_enc

    # -- training helpers --------------------------------------------------------------------

    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        """Rescale every decoder row to unit L2 norm (in place)."""
        self.W_dec /= self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8)

    @torch.no_grad()
    def remove_parallel_decoder_grad_(self) -> None:
        """Remove from each decoder row's gradient its component along that row (in place)."""
        grad = self.W_dec.grad
        if grad is None:
            return
        # Project on the unit direction, so this is exact even if a row is not yet unit norm.
        direction = self.W_dec / self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        grad -= (grad * direction).sum(-1, keepdim=True) * direction

    @property
    def dtype(self) -> torch.dtype:
        return self.W_enc.dtype

    @property
    def device(self) -> torch.device:
        return self.W_enc.device


# -- saving and loading ----------------------------------------------------------------------


def _sae_lens_version() -> str:
    # sae-lens reads a config without a >= 6.0 version as a legacy one and rewrites its fields.
    try:
        return package_metadata.version("sae-lens")
    except package_metadata.PackageNotFoundError:
        return "6.0.0"


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _sae_lens_tensors(dictionary: Dictionary) -> dict[str, torch.Tensor]:
    """The weights under sae-lens's names, with a transcoder's pre-bias folded into b_enc."""
    with torch.no_grad():
        if dictionary.spec.is_transcoder:
            tensors = {
                "W_enc": dictionary.W_enc,
                "b_enc": dictionary.effective_encoder_bias(),
                "W_dec": dictionary.W_dec,
                "b_dec": dictionary.b_dec_out,
            }
        else:  # sae-lens's own SAE convention: pre-bias applied to the input, tied to the output bias
            tensors = {
                "W_enc": dictionary.W_enc,
                "b_enc": dictionary.b_enc,
                "W_dec": dictionary.W_dec,
                "b_dec": dictionary.b_dec,
            }
        if dictionary.W_skip is not None:
            tensors["W_skip"] = dictionary.W_skip.T  # sae-lens stores it as [d_out, d_in]
    return {name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}


def _sae_lens_config(spec: DictionarySpec, dtype: torch.dtype) -> dict[str, Any]:
    version = _sae_lens_version()
    metadata: dict[str, Any] = {
        "sae_lens_version": version,
        "sae_lens_training_version": version,
        "model_name": spec.model_name,
        "hook_name": spec.hook_in,
        "hook_head_index": None,
        "prepend_bos": True,
    }
    cfg: dict[str, Any] = {
        "architecture": spec.sae_lens_architecture,
        "d_in": spec.d_in,
        "d_sae": spec.d_sae,
        "dtype": _dtype_name(dtype),
        "device": "cpu",
        # Transcoders are saved with the pre-bias folded; sae-lens forbids it on transcoders.
        "apply_b_dec_to_input": not spec.is_transcoder,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": metadata,
    }
    if spec.is_transcoder:
        cfg["d_out"] = spec.d_out
        metadata["hook_name_out"] = spec.hook_out
    if spec.architecture is Architecture.topk:
        cfg["k"] = spec.k
        cfg["rescale_acts_by_decoder_norm"] = False
    return cfg


def save_dictionary(
    dictionary: Dictionary,
    path: str | Path,
    log10_frequency: Float[torch.Tensor, " d_sae"] | None = None,
    extra_metadata: dict[str, Any] | None = None,
) -> Path:
    """Write `dictionary` to directory `path` in sae-lens's format (see the module docstring).

    `log10_frequency` (log10 firing frequency per feature) becomes sparsity.safetensors; without
    it any old sparsity file in the directory is removed, so it cannot describe other weights.
    `extra_metadata` (JSON-serialisable, e.g. {"l1_coefficient": ...}) is stored with our fields.
    """
    path = Path(path)
    spec = dictionary.spec
    weights = _sae_lens_tensors(dictionary)
    cfg = _sae_lens_config(spec, dictionary.dtype)
    cfg[OUR_SECTION] = {
        "format_version": FORMAT_VERSION,
        "spec": spec.to_json(),
        "pre_bias_folded": spec.is_transcoder,
        "sae_lens_loadable": spec.sae_lens_architecture in SAE_LENS_LOADABLE,
        "metadata": extra_metadata or {},
    }
    # Serialise before writing anything, so unserialisable metadata leaves no partial directory.
    cfg_text = json.dumps(cfg, indent=2) + "\n"
    frequency = None
    if log10_frequency is not None:
        frequency = log10_frequency.detach().float().cpu().reshape(-1)
        if frequency.shape != (spec.d_sae,):
            raise ValueError(
                f"log10_frequency has shape {tuple(log10_frequency.shape)}; "
                f"expected ({spec.d_sae},), one value per feature"
            )
    return write_weight_files(path, WEIGHTS_FILENAME, weights, frequency, cfg_text)


def write_weight_files(
    path: str | Path,
    weights_name: str,
    weights: dict[str, torch.Tensor],
    frequency: torch.Tensor | None,
    cfg_text: str,
) -> Path:
    """A saved dictionary's (or cross-layer transcoder's) files, in this order: any old cfg.json
    removed, the weights, the sparsity file (without `frequency`, an old one is removed, so it cannot
    describe other weights), cfg.json last; each written atomically, so a directory that holds a
    cfg.json is complete."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / CFG_FILENAME).unlink(missing_ok=True)
    io.write_safetensors(path / weights_name, weights, metadata={"format": "pt"})
    if frequency is not None:
        io.write_safetensors(path / SPARSITY_FILENAME, {SPARSITY_TENSOR: frequency}, {"format": "pt"})
    else:
        (path / SPARSITY_FILENAME).unlink(missing_ok=True)
    io.write_text(path / CFG_FILENAME, cfg_text)
    return path


def require_file(path: Path, what: str = "dictionary") -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {path.name} is missing from {path.parent} ({path})")
    return path


def read_dictionary_config(path: str | Path) -> dict[str, Any]:
    """The full cfg.json of a saved dictionary (sae-lens fields plus our 'transcoder_lab' section)."""
    cfg_path = require_file(Path(path) / CFG_FILENAME)
    cfg = json.loads(cfg_path.read_text())
    if OUR_SECTION not in cfg:
        raise ValueError(
            f"{cfg_path} has no '{OUR_SECTION}' section: it was not written by save_dictionary, "
            "so its kind and layer are unknown (load it with sae_lens.SAE.load_from_disk instead)"
        )
    return cfg


def load_dictionary_spec(path: str | Path) -> DictionarySpec:
    return DictionarySpec(**read_dictionary_config(path)[OUR_SECTION]["spec"])


def load_dictionary_metadata(path: str | Path) -> dict[str, Any]:
    """The extra metadata given to save_dictionary (e.g. l1_coefficient, training settings)."""
    return read_dictionary_config(path)[OUR_SECTION]["metadata"]


def read_tensors(path: Path, what: str = "dictionary") -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file (never a pickle); a missing file is named."""
    with safe_open(str(require_file(path, what)), framework="pt", device="cpu") as handle:
        return {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118


def read_sparsity(path: Path, what: str = "dictionary") -> torch.Tensor:
    """The log10 firing frequencies of a sparsity file, after checking it holds them."""
    tensors = read_tensors(path / SPARSITY_FILENAME, what)
    if SPARSITY_TENSOR not in tensors:
        raise ValueError(
            f"{path / SPARSITY_FILENAME} has no tensor '{SPARSITY_TENSOR}' (it holds {sorted(tensors)})"
        )
    return tensors[SPARSITY_TENSOR]


def load_dictionary(path: str | Path, device: str | torch.device = "cpu") -> Dictionary:
    """Load a directory written by `save_dictionary` (safetensors only, never a pickle)."""
    path = Path(path)
    cfg = read_dictionary_config(path)
    ours = cfg[OUR_SECTION]
    if ours.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path / CFG_FILENAME}: unsupported format_version {ours.get('format_version')!r}")
    spec = DictionarySpec(**ours["spec"])
    sae_lens_dims = {"d_in": spec.d_in, "d_sae": spec.d_sae, "architecture": spec.sae_lens_architecture}
    for field, value in sae_lens_dims.items():
        if cfg.get(field) != value:
            raise ValueError(
                f"{path / CFG_FILENAME}: sae-lens field '{field}' is {cfg.get(field)!r}, "
                f"but the '{OUR_SECTION}' spec implies {value!r}"
            )
    tensors = read_tensors(path / WEIGHTS_FILENAME)

    d_in, d_sae, d_out = spec.d_in, spec.d_sae, spec.d_out
    expected = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_out), "b_dec": (d_out,)}
    if spec.skip:
        expected["W_skip"] = (d_out, d_in)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{path / WEIGHTS_FILENAME}: missing tensors {missing}, unexpected tensors {unexpected} "
            f"for a {spec.sae_lens_architecture} dictionary"
        )
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != shape:
            raise ValueError(
                f"{path / WEIGHTS_FILENAME}: tensor '{name}' has shape {tuple(tensors[name].shape)}, "
                f"but cfg.json implies {shape} (d_in={d_in}, d_sae={d_sae}, d_out={d_out})"
            )

    dtype = tensors["W_enc"].dtype
    dictionary = Dictionary(spec, dtype=dtype)
    with torch.no_grad():
        dictionary.W_enc.copy_(tensors["W_enc"])
        dictionary.b_enc.copy_(tensors["b_enc"])
        dictionary.W_dec.copy_(tensors["W_dec"])
        if spec.is_transcoder:
            # The pre-bias was folded into b_enc on saving, so it stays zero here.
            dictionary.b_dec_out.copy_(tensors["b_dec"])
        else:
            dictionary.b_dec.copy_(tensors["b_dec"])
        if dictionary.W_skip is not None:
            dictionary.W_skip.copy_(tensors["W_skip"].T)
    return dictionary.to(device)


def load_log10_frequency(path: str | Path) -> Float[torch.Tensor, " d_sae"]:
    """The per-feature log10 firing frequency saved beside a dictionary (-10 marks dead ones)."""
    path = Path(path)
    frequency = read_sparsity(path)
    cfg_path = path / CFG_FILENAME
    if cfg_path.is_file():
        d_sae = json.loads(cfg_path.read_text()).get("d_sae")
        if d_sae is not None and tuple(frequency.shape) != (d_sae,):
            raise ValueError(
                f"{path / SPARSITY_FILENAME}: tensor '{SPARSITY_TENSOR}' has shape {tuple(frequency.shape)}, "
                f"but cfg.json says d_sae = {d_sae}"
            )
    return frequency
