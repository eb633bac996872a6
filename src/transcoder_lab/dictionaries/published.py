"""Import the published GPT-2 small transcoders (pchlenski/gpt2-transcoders) without running their pickle.

The published weights are `torch.save`d pickles of
`{"cfg": sae_training.config.LanguageModelSAERunnerConfig(...), "state_dict": {W_enc, b_enc, W_dec,
b_dec, b_dec_out}}`; `torch.load(weights_only=True)` refuses the config class, and a plain
`torch.load` would import and run whatever globals the file names. So the import:

1. Opens the file as the zip archive torch writes (`<archive>/data.pkl` plus one raw record per
   storage, `<archive>/data/<key>`), refusing legacy (non-zip) files and TorchScript archives.
2. Unpickles `data.pkl` with `RestrictedUnpickler`, whose `find_class` is the only way a pickle
   can name a global (GLOBAL, STACK_GLOBAL, INST, OBJ and the EXT* opcodes all go through it).
   It answers from a fixed table and imports nothing:
   - `torch._utils._rebuild_tensor_v2` -> our `_rebuild_tensor`, which views the bytes of a
     storage record as a tensor (as_strided checks the bounds) and copies it;
   - `torch.FloatStorage` and the other dtype storage classes, `torch.UntypedStorage`
     -> inert `_StorageTag`s that only carry a dtype (they cannot be called);
   - `collections.OrderedDict` (the state_dict container), the `torch.<dtype>` constants and
     `torch.device` -> a function that formats a device name as a string (the runner config
     stores its dtype and device);
   - `sae_training.config.LanguageModelSAERunnerConfig` -> `PublishedRunnerConfig`, a plain
     stand-in whose `__setstate__` just records the pickled field dict;
   - anything else -> `pickle.UnpicklingError` naming the refused global, before it is resolved.
   Persistent ids (tensor storages) are resolved by our `persistent_load`, which only reads
   records of the same zip archive. Hence nothing outside that table is ever imported, looked
   up or called, whatever the file contains: no code from the file runs.
3. Reads the sparsity file (one tensor: log10 firing frequency, -10 = dead) with
   `torch.load(weights_only=True)`, torch's own restricted loader, which suffices for a tensor.
4. Checks names and shapes, and that the published config's hooks match the requested layer,
   builds our transcoder (`z = ReLU((x - b_dec) W_enc + b_enc)`, `ŷ = z W_dec + b_dec_out`) and
   saves it with `save_dictionary` (pre-bias folded for sae-lens), recording the published
   config's plain fields (l1_coefficient, lr, total_training_tokens, ...) and the source file's
   SHA-256 in the metadata.
"""

from __future__ import annotations

import _compat_pickle
import collections
import hashlib
import io as std_io
import math
import pickle
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from transcoder_lab.dictionaries.dictionary import Dictionary, DictionaryKind, DictionarySpec, save_dictionary
from transcoder_lab.sources.hooks import mlp_in_hook, mlp_out_hook
from transcoder_lab.sources.hub import explain, hub_advice, offline_reason

PUBLISHED_REPO = "pchlenski/gpt2-transcoders"
PUBLISHED_D_SAE = 24576
PUBLISHED_LAYERS = range(12)
CONFIG_GLOBAL = ("sae_training.config", "LanguageModelSAERunnerConfig")
STATE_DICT_NAMES = ("W_enc", "b_enc", "W_dec", "b_dec", "b_dec_out")


def published_weights_filename(layer: int) -> str:
    return f"final_sparse_autoencoder_gpt2-small_{mlp_in_hook(layer)}_{PUBLISHED_D_SAE}.pt"


def published_sparsity_filename(layer: int) -> str:
    return (
        f"final_sparse_autoencoder_gpt2-small_{mlp_in_hook(layer)}_{PUBLISHED_D_SAE}_log_feature_sparsity.pt"
    )


class PublishedTranscoderUnavailableError(RuntimeError):
    """The published files could be fetched neither from the hub nor from the local cache."""


# -- the restricted unpickler ----------------------------------------------------------------


class PublishedRunnerConfig:
    """Plain stand-in for `sae_training.config.LanguageModelSAERunnerConfig`: only its fields."""

    def __init__(self, fields: dict[str, Any] | None = None) -> None:
        self.fields: dict[str, Any] = dict(fields or {})

    def __setstate__(self, state: Any) -> None:
        # A dataclass pickles as NEWOBJ (no __init__ call) then BUILD with its __dict__; a class
        # with __slots__ would send (dict, slots_dict). Either way, keep the data and nothing else.
        if isinstance(state, tuple) and len(state) == 2:
            parts = [part for part in state if part is not None]
        else:
            parts = [state]
        if not all(isinstance(part, dict) for part in parts):
            raise pickle.UnpicklingError(f"unexpected state for {'.'.join(CONFIG_GLOBAL)}: {type(state)}")
        self.fields = {str(key): value for part in parts for key, value in part.items()}

    def __repr__(self) -> str:
        return f"PublishedRunnerConfig({self.fields!r})"


class _StorageTag:
    """What a storage class name in a persistent id resolves to: just its dtype, not callable."""

    def __init__(self, name: str, dtype: torch.dtype) -> None:
        self.name, self.dtype = name, dtype


class _LoadedStorage:
    """The raw bytes of one storage record, viewed as a flat tensor of the storage's dtype."""

    def __init__(self, flat: torch.Tensor) -> None:
        self.flat = flat


_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "DoubleStorage": torch.float64,
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "ComplexFloatStorage": torch.complex64,
    "ComplexDoubleStorage": torch.complex128,
}
_UNTYPED_STORAGES = {("torch", "UntypedStorage"), ("torch.storage", "UntypedStorage")}
# Read from the module's namespace (vars), so no lazy torch submodule is ever imported by a lookup.
_DTYPE_NAMES = frozenset(name for name, value in vars(torch).items() if isinstance(value, torch.dtype))


def _device_name(*args: Any) -> str:
    """Stand-in for torch.device(type[, index]): the device as plain text, e.g. 'cuda:0'."""
    if not 1 <= len(args) <= 2 or not all(isinstance(arg, str | int) for arg in args):
        raise pickle.UnpicklingError(f"unexpected torch.device arguments {args!r}")
    return ":".join(str(arg) for arg in args)


def _rebuild_tensor(
    storage: Any,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> torch.Tensor:
    """Stand-in for torch._utils._rebuild_tensor_v2: a copied strided view of a storage record.

    Hooks and requires_grad are dropped (weights only); conj/neg metadata is refused.
    """
    if not isinstance(storage, _LoadedStorage):
        raise pickle.UnpicklingError(f"_rebuild_tensor_v2 got {type(storage).__name__}, not a storage record")
    if metadata:
        raise pickle.UnpicklingError(f"tensor metadata {metadata!r} is not supported")
    # as_strided raises if the view would reach outside the record's bytes.
    view = storage.flat.as_strided(tuple(size), tuple(stride), int(storage_offset))
    return view.clone(memory_format=torch.contiguous_format)


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only the globals a published transcoder checkpoint needs.

    `read_record(key)` returns the bytes of storage record `key` of the archive; without it any
    persistent id (tensor storage) is refused.
    """

    def __init__(self, file: Any, read_record: Callable[[str], bytes] | None = None, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self._read_record = read_record
        self._storages: dict[str, _LoadedStorage] = {}

    def find_class(self, module: str, name: str) -> Any:
        written = f"{module}.{name}"
        # Protocol-2 pickles (torch.save's default) write Python 2 names such as __builtin__.eval;
        # translate them as pickle itself would, so the allow-list and the errors use today's names.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        key = (module, name)
        if key == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if key == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if key == CONFIG_GLOBAL:
            return PublishedRunnerConfig
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageTag(name, _STORAGE_DTYPES[name])
        if key in _UNTYPED_STORAGES:
            return _StorageTag(name, torch.uint8)
        if module == "torch" and name in _DTYPE_NAMES:
            return vars(torch)[name]
        if key == ("torch", "device"):
            return _device_name
        alias = f" (written as '{written}')" if written != f"{module}.{name}" else ""
        raise pickle.UnpicklingError(
            f"refusing to unpickle global '{module}.{name}'{alias}: a published transcoder checkpoint only "
            "needs tensors, an OrderedDict and sae_training.config.LanguageModelSAERunnerConfig"
        )

    def persistent_load(self, pid: Any) -> _LoadedStorage:
        # torch's zip format: ('storage', storage type, record key, location, element count).
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, tag, key, _location, numel = pid
        if not isinstance(tag, _StorageTag) or not isinstance(key, str) or not isinstance(numel, int):
            raise pickle.UnpicklingError(f"malformed storage persistent id {pid!r}")
        if self._read_record is None:
            raise pickle.UnpicklingError("this pickle refers to tensor storages but no archive was given")
        if key not in self._storages:
            try:
                data = self._read_record(key)
            except KeyError:
                raise pickle.UnpicklingError(f"storage record '{key}' is missing from the archive") from None
            itemsize = torch.empty((), dtype=tag.dtype).element_size()
            # (For an untyped storage, numel counts bytes and the dtype is uint8: the same check.)
            if len(data) != numel * itemsize:
                raise pickle.UnpicklingError(
                    f"storage record '{key}' holds {len(data)} bytes, expected {numel} x {itemsize}"
                )
            # bytearray: a writable copy the tensor can own (frombuffer shares its memory).
            flat = (
                torch.frombuffer(bytearray(data), dtype=tag.dtype)
                if data
                else torch.empty(0, dtype=tag.dtype)
            )
            self._storages[key] = _LoadedStorage(flat)
        return self._storages[key]


def restricted_torch_load(path: str | Path) -> Any:
    """Read a torch.save zip checkpoint through RestrictedUnpickler (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path.name} not found ({path})")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a torch zip checkpoint; legacy (pre-1.6) pickles are not supported")
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        pickles = [name for name in names if name.endswith("/data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            raise ValueError(f"{path}: expected one '<archive>/data.pkl' record, found {sorted(pickles)}")
        prefix = pickles[0].removesuffix("data.pkl")
        if f"{prefix}constants.pkl" in names:
            raise ValueError(f"{path} is a TorchScript archive, not a checkpoint of tensors")
        byteorder_record = f"{prefix}byteorder"
        byteorder = archive.read(byteorder_record).decode() if byteorder_record in names else "little"
        if byteorder != sys.byteorder:
            raise ValueError(f"{path} was written {byteorder}-endian; this machine is {sys.byteorder}-endian")

        def read_record(key: str) -> bytes:
            return archive.read(f"{prefix}data/{key}")

        unpickler = RestrictedUnpickler(
            std_io.BytesIO(archive.read(pickles[0])), read_record, encoding="utf-8"
        )
        return unpickler.load()


# -- import -----------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A JSON-safe copy of a config value (dtypes and other objects become text)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return str(value)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_published_cfg(fields: dict[str, Any], layer: int, source: Path) -> None:
    """The published config must describe a transcoder from this layer's MLP input to its output."""
    expected = {
        "is_transcoder": True,
        "hook_point": mlp_in_hook(layer),
        "hook_point_layer": layer,
        "out_hook_point": mlp_out_hook(layer),
        "out_hook_point_layer": layer,
    }
    for name, value in expected.items():
        if name in fields and fields[name] != value:
            raise ValueError(
                f"{source}: published cfg has {name}={fields[name]!r}, expected {value!r} for layer {layer}"
            )


def _published_state(payload: Any, source: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise ValueError(
            f"{source}: expected a dict with 'cfg' and 'state_dict', got {type(payload).__name__}"
        )
    state = payload["state_dict"]
    cfg = payload.get("cfg")
    fields = cfg.fields if isinstance(cfg, PublishedRunnerConfig) else {}
    if not isinstance(state, dict):
        raise ValueError(f"{source}: 'state_dict' is a {type(state).__name__}, not a dict of tensors")
    missing = [name for name in STATE_DICT_NAMES if name not in state]
    unexpected = sorted(set(state) - set(STATE_DICT_NAMES))
    if missing or unexpected:
        raise ValueError(f"{source}: state_dict is missing {missing} and has unexpected entries {unexpected}")
    for name in STATE_DICT_NAMES:
        if not isinstance(state[name], torch.Tensor):
            raise ValueError(
                f"{source}: state_dict entry '{name}' is a {type(state[name]).__name__}, not a tensor"
            )
    return {name: state[name] for name in STATE_DICT_NAMES}, fields


def published_transcoder(
    weights_path: str | Path, layer: int, model_name: str = "gpt2"
) -> tuple[Dictionary, dict]:
    """The published transcoder as our Dictionary (pre-bias kept unfolded) and its config fields."""
    weights_path = Path(weights_path)
    state, fields = _published_state(restricted_torch_load(weights_path), weights_path)
    _check_published_cfg(fields, layer, weights_path)
    if state["W_enc"].ndim != 2 or state["W_dec"].ndim != 2:
        raise ValueError(f"{weights_path}: W_enc and W_dec must be matrices")
    (d_in, d_sae), d_out = state["W_enc"].shape, state["W_dec"].shape[1]
    dims = {"d_in": d_in, "d_sae": d_sae, "d_out": d_out}
    expected = {
        "W_enc": (d_in, d_sae),
        "b_enc": (d_sae,),
        "W_dec": (d_sae, d_out),
        "b_dec": (d_in,),
        "b_dec_out": (d_out,),
    }
    for name, shape in expected.items():
        if tuple(state[name].shape) != shape:
            raise ValueError(
                f"{weights_path}: tensor '{name}' has shape {tuple(state[name].shape)}, expected {shape} "
                f"({dims}, read from W_enc and W_dec)"
            )
    for name, value in dims.items():
        if isinstance(fields.get(name), int) and fields[name] != value:
            raise ValueError(f"{weights_path}: published cfg says {name}={fields[name]}, the weights {value}")

    spec = DictionarySpec(DictionaryKind.transcoder, layer, d_in, d_sae, d_out, model_name=model_name)
    dictionary = Dictionary(spec)
    with torch.no_grad():
        for name, tensor in state.items():
            getattr(dictionary, name).copy_(tensor.float())
    return dictionary, fields


def load_published_log10_frequency(sparsity_path: str | Path, d_sae: int) -> torch.Tensor:
    sparsity_path = Path(sparsity_path)
    if not sparsity_path.is_file():
        raise FileNotFoundError(f"sparsity file {sparsity_path.name} not found ({sparsity_path})")
    frequency = torch.load(sparsity_path, map_location="cpu", weights_only=True)
    if not isinstance(frequency, torch.Tensor) or frequency.reshape(-1).shape != (d_sae,):
        shape = tuple(frequency.shape) if isinstance(frequency, torch.Tensor) else type(frequency).__name__
        raise ValueError(f"{sparsity_path}: expected one tensor of {d_sae} log10 frequencies, got {shape}")
    return frequency.reshape(-1).float()


def import_published_transcoder(
    weights_path: str | Path,
    sparsity_path: str | Path | None,
    layer: int,
    out_dir: str | Path,
    model_name: str = "gpt2",
) -> Dictionary:
    """Convert one published transcoder to our sae-lens-format directory `out_dir`.

    Returns the imported transcoder with its pre-bias unfolded (the saved copy is folded; both
    give the same outputs).
    """
    weights_path = Path(weights_path)
    dictionary, fields = published_transcoder(weights_path, layer, model_name)
    frequency = None
    if sparsity_path is not None:
        frequency = load_published_log10_frequency(sparsity_path, dictionary.spec.d_sae)
    plain_fields = {name: _plain(value) for name, value in fields.items()}
    metadata = {
        "source": {
            "repo": PUBLISHED_REPO,
            "weights_file": weights_path.name,
            "weights_sha256": _sha256(weights_path),
            "sparsity_file": Path(sparsity_path).name if sparsity_path is not None else None,
        },
        # The training recipe's key numbers, lifted out of the published config for convenience.
        **{
            name: plain_fields[name]
            for name in ("l1_coefficient", "lr", "total_training_tokens", "train_batch_size", "context_size")
            if name in plain_fields
        },
        "published_cfg": plain_fields,
    }
    save_dictionary(dictionary, out_dir, frequency, metadata)
    return dictionary


def download_published_transcoder(layer: int, cache_dir: str | Path | None = None) -> tuple[Path, Path]:
    """Fetch (or find in the cache) one layer's published weights and sparsity files."""
    from huggingface_hub import hf_hub_download

    if layer not in PUBLISHED_LAYERS:
        raise ValueError(f"the published GPT-2 small transcoders cover layers 0-11, not {layer}")
    offline_reason()  # an unreachable hub: straight to the cache, without retries
    paths = []
    for filename in (published_weights_filename(layer), published_sparsity_filename(layer)):
        try:
            paths.append(Path(hf_hub_download(PUBLISHED_REPO, filename, cache_dir=cache_dir)))
        except Exception as error:  # offline, missing from the cache, network or hub errors
            finding = explain(error, PUBLISHED_REPO, filename=filename)
            raise PublishedTranscoderUnavailableError(
                f"could not fetch {filename} from the hub repo {PUBLISHED_REPO} or the local cache: "
                f"{finding}. The gpt2_small profile needs them from the hub once; {hub_advice(finding)}"
            ) from error
    return paths[0], paths[1]


def fetch_and_import_published_transcoder(
    layer: int, out_dir: str | Path, cache_dir: str | Path | None = None, model_name: str = "gpt2"
) -> Dictionary:
    weights_path, sparsity_path = download_published_transcoder(layer, cache_dir)
    return import_published_transcoder(weights_path, sparsity_path, layer, out_dir, model_name)
