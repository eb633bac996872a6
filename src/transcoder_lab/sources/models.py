"""Load a processed HookedTransformer for a profile, and name its hooks.

Every model analysed here is in TransformerLens's default processed form (docs/design.md §7.1):
`fold_ln`, `center_writing_weights`, `center_unembed`, `fold_value_biases`. With `fold_ln`,
`blocks.L.ln2.hook_normalized` is exactly the MLP's input, which is what transcoders read.

Two sources:
1. `organism`: the raw (unprocessed) trained weights saved by the organism stage are loaded
   into a fresh HookedTransformer and processed here, exactly as `from_pretrained` processes
   hub weights, so both profiles go through the same processing. Only parameters are saved and
   loaded (`parameter_state_dict`, `saved_parameters`): TransformerLens's non-parameter buffers
   (causal mask, -inf constant, rotary tables) change shape between versions, so a file that
   holds them (organisms saved before this rule) has them dropped and the model keeps its own.
2. `pretrained`: `HookedTransformer.from_pretrained(name)` with the same flags. Without hub
   access and without a local cache this raises `ModelUnavailableError`, which says what is
   missing and how to run the organism profile instead. It never falls back silently.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from transformer_lens import HookedTransformer, HookedTransformerConfig

from transcoder_lab.config import ModelConfig, ModelSource, ProfileConfig
from transcoder_lab.sources.hub import HubFinding, Kind, explain, hub_advice, offline_reason
from transcoder_lab.sources.tokens import load_tokenizer

# TransformerLens 3.x marks HookedTransformer deprecated in favour of TransformerBridge;
# the lab pins HookedTransformer (<4; docs/design.md §7.1), so the warning carries no information here.
warnings.filterwarnings("ignore", message="HookedTransformer.* deprecated", category=DeprecationWarning)

PROCESSING = dict(fold_ln=True, center_writing_weights=True, center_unembed=True, fold_value_biases=True)

MODEL_WEIGHTS = "model.safetensors"
MODEL_CONFIG = "config.json"
TOKENIZER_FILE = "tokenizer.json"

# Leaf names of the buffers TransformerLens registers on attention: constants every model rebuilds
# from its config. Versions disagree on their shapes (3.9 keeps `attn.mask` as an empty [0, 0]
# placeholder and builds the mask per forward pass; 3.2 stores the full [n_ctx, n_ctx] mask), so a
# saved buffer can fail to load under another version; they are never saved nor loaded. The names
# cover buffers of other versions that the running model may lack.
BUFFER_LEAF_NAMES = frozenset({"mask", "IGNORE", "rotary_sin", "rotary_cos"})


class ModelUnavailableError(RuntimeError):
    """A pretrained model could be fetched neither from the hub nor from the local cache."""


def resolve_device(device: str) -> str:
    """`profile.device` as a torch device name: "auto" is CUDA when present, else the CPU.

    Any other value ("cpu", "cuda", "cuda:1", "mps") is used as given, after a check that it
    exists here, so a config asking for a GPU on a machine without one stops at once with the fix.
    """
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except RuntimeError as error:
        raise ValueError(
            f"profile.device is '{device}', not a torch device; use 'auto', 'cpu' or 'cuda[:index]'."
        ) from error
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"profile.device is '{device}' but torch sees no CUDA device (torch {torch.__version__}); "
            "use profile.device=auto (CUDA when present, else the CPU) or profile.device=cpu."
        )
    return device


def hooked_config(
    model: ModelConfig, d_vocab: int, seed: int = 0, device: str = "cpu"
) -> HookedTransformerConfig:
    """A GPT-2-architecture config (LayerNorm, learned positions, GELU) of the given sizes."""
    return HookedTransformerConfig(
        n_layers=model.n_layers,
        d_model=model.d_model,
        d_head=model.d_head,
        n_heads=model.n_heads,
        d_mlp=model.d_mlp,
        n_ctx=model.n_ctx,
        d_vocab=d_vocab,
        act_fn=model.act_fn,
        normalization_type="LN",
        positional_embedding_type="standard",
        tokenizer_name=None,
        default_prepend_bos=True,
        seed=seed,
        device=device,
    )


def parameter_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's learned parameters (detached copies), without buffers: what a weights file holds."""
    return {name: param.detach().clone() for name, param in model.named_parameters()}


def saved_parameters(
    state_dict: dict[str, torch.Tensor], model: torch.nn.Module, source: str = "the state dict"
) -> dict[str, torch.Tensor]:
    """The parameters of a saved state dict, checked strictly against `model`'s; buffers dropped.

    A key that is not a parameter of `model` is dropped when it names a buffer (of `model`, or one
    of BUFFER_LEAF_NAMES, which other TransformerLens versions register); any other extra key, a
    missing parameter or a wrong shape is an error naming them all.
    """
    expected = {name: tuple(param.shape) for name, param in model.named_parameters()}
    buffers = {name for name, _ in model.named_buffers()}

    def is_buffer(name: str) -> bool:
        return name in buffers or name.rsplit(".", 1)[-1] in BUFFER_LEAF_NAMES

    parameters = {name: t for name, t in state_dict.items() if name in expected or not is_buffer(name)}
    missing = sorted(set(expected) - set(parameters))
    unexpected = sorted(set(parameters) - set(expected))
    wrong_shape = [
        f"{name} {tuple(parameters[name].shape)} (model: {shape})"
        for name, shape in expected.items()
        if name in parameters and tuple(parameters[name].shape) != shape
    ]
    if missing or unexpected or wrong_shape:
        raise ValueError(
            f"{source} does not match the model's parameters: missing {missing}, "
            f"unexpected {unexpected}, wrong shape {wrong_shape}"
        )
    return parameters


def load_raw_weights_(
    model: HookedTransformer, raw_state_dict: dict[str, torch.Tensor], source: str = "the state dict"
) -> HookedTransformer:
    """Load raw (unprocessed) weights into `model` and apply PROCESSING, in place.

    Only the parameters are loaded (checked by `saved_parameters`); TransformerLens fills the
    missing buffer keys from the model's own freshly built buffers.
    """
    model.load_and_process_state_dict(saved_parameters(raw_state_dict, model, source), **PROCESSING)
    return model


def build_processed_model(
    config: HookedTransformerConfig,
    raw_state_dict: dict[str, torch.Tensor] | None = None,
    tokenizer: Any = None,
    source: str = "the state dict",
) -> HookedTransformer:
    """Instantiate `config`, load raw weights (or keep the random init) and apply PROCESSING."""
    # fold_ln rewrites the model's config in place (LN -> LNPre); a copy keeps the caller's config
    # describing raw weights, so a second model built from it has LayerNorm parameters to load.
    model = HookedTransformer(copy.deepcopy(config), tokenizer=tokenizer)
    state_dict = raw_state_dict if raw_state_dict is not None else parameter_state_dict(model)
    load_raw_weights_(model, state_dict, source)
    model.eval()
    return model


def load_organism(model_dir: Path, device: str = "cpu") -> HookedTransformer:
    """The organism from the files the organism stage wrote: config, raw weights, tokenizer."""
    model_dir = Path(model_dir)
    missing = [
        name for name in (MODEL_CONFIG, MODEL_WEIGHTS, TOKENIZER_FILE) if not (model_dir / name).exists()
    ]
    if missing:
        raise FileNotFoundError(
            f"the organism in {model_dir} lacks {', '.join(missing)}; run `dvc repro organism` to train it."
        )
    fields = json.loads((model_dir / MODEL_CONFIG).read_text())
    config = HookedTransformerConfig(**fields, device=device)
    tokenizer = load_tokenizer(model_dir / TOKENIZER_FILE)
    weights = model_dir / MODEL_WEIGHTS
    # safetensors: no pickle is ever run. Files saved before the parameters-only rule hold buffers too.
    return build_processed_model(config, load_file(weights), tokenizer, source=str(weights))


def _unavailable(name: str, finding: HubFinding, not_cached: bool = False) -> ModelUnavailableError:
    cache = ", and its files (config.json, weights) are not in the cache" if not_cached else ""
    return ModelUnavailableError(
        f"could not load '{name}' from the Hugging Face hub or the local cache: {finding}{cache}. A paper "
        f"profile needs its model's weights and tokenizer from the hub once (profile.model.pretrained_name "
        f"names the model); {hub_advice(finding)}"
    )


def _hub_repo(name: str) -> str:
    """The hub repo behind a TransformerLens name ("pythia-410m" -> "EleutherAI/pythia-410m")."""
    from transformer_lens.loading_from_pretrained import get_official_model_name

    try:
        return get_official_model_name(name)
    except ValueError:  # not a TransformerLens name: from_pretrained reports it
        return name


def _cached(name: str) -> bool:
    """Whether the model's hub repo has its config.json in the local cache."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(_hub_repo(name), "config.json"), str)


def load_pretrained(name: str, device: str = "cpu") -> HookedTransformer:
    """A hub model with TransformerLens default processing; a clear error when it cannot be had.

    Offline (the user's setting, or a hub that did not answer: `hub.offline_reason`) and without the
    model in the cache, it stops before TransformerLens starts. A failure inside from_pretrained is
    explained by `hub.explain` when it is a download's (a file the hub lacks, an unanswered request,
    a partial cache offline); any other error (e.g. a name TransformerLens does not know) is raised
    as TransformerLens raised it.
    """
    why = offline_reason()
    if why is not None and not _cached(name):
        raise _unavailable(name, why, not_cached=True)
    try:
        model = HookedTransformer.from_pretrained(name, device=device, **PROCESSING)
    except Exception as error:
        finding = explain(error, _hub_repo(name))
        if finding.kind is Kind.OTHER and not isinstance(error, OSError):
            raise
        raise _unavailable(name, finding) from error
    model.eval()
    return model


def load_model(profile: ProfileConfig, models_dir: str | Path = "models") -> HookedTransformer:
    """The processed model of a profile: the organism from `models_dir/<profile>` or a hub model."""
    device = resolve_device(profile.device)
    if profile.model.source == ModelSource.organism:
        return load_organism(Path(models_dir) / profile.name, device)
    assert profile.model.pretrained_name is not None  # checked by load_config
    return load_pretrained(profile.model.pretrained_name, device)
