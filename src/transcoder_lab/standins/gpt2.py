"""An offline stand-in for the Hugging Face hub: what the paper profiles read, in the real formats.

The paper profiles load GPT-2 (or Pythia) with `HookedTransformer.from_pretrained`, stream
OpenWebText from parquet files of a dataset repo and fetch the published GPT-2 transcoders with
`hf_hub_download`. All three go through huggingface_hub's local cache, so a cache filled with
stand-ins in the same layout lets the pipeline run through its real loading code with
`HF_HUB_OFFLINE=1` and no network, exactly as it runs for a user after the first download:

    python -m transcoder_lab.standins.gpt2 /tmp/hf_home    # GPT-2 small, OWT, transcoders
    HF_HOME=/tmp/hf_home HF_HUB_OFFLINE=1 dvc exp run -S profile=gpt2_small -S budget=smoke

The same folder can also be served in the hub's protocol (`python -m transcoder_lab.standins.hub_server
/tmp/hf_home`), so that a run with HF_ENDPOINT at that server downloads it into an empty cache.

Steps:
1. The cache layout (`put_repo`): `<HF_HOME>/hub/<type>s--<owner>--<name>/` holding
   `blobs/<sha256>` (each file's bytes), `snapshots/<commit>/<path>` (a relative symlink to the
   blob) and `refs/<revision>` (the commit). The commit id is a hash of the files' names and
   contents, so the same stand-in always has the same commit.
2. `gpt2`: `transformers.GPT2LMHeadModel` with GPT-2 small's config and random weights (seeded),
   saved by `save_pretrained` (config.json, generation_config.json, model.safetensors), and GPT-2's
   real tokenizer built from its BPE ranks (`transcoder_lab.sources.gpt2_tokenizer`).
3. The text source: generated English-like documents (the organism's grammar and mechanisms) in
   one parquet file with a `text` column, at the repo and revision the profile reads
   (`profile.text`), as `STANDIN_TEXT_FILE`, a path its `files` glob matches.
4. `pchlenski/gpt2-transcoders`: one transcoder per layer pickled in the published structure,
   `{"cfg": sae_training.config.LanguageModelSAERunnerConfig(...), "state_dict": {W_enc, b_enc,
   W_dec, b_dec, b_dec_out}}`, and its log10 feature-sparsity tensor beside it. The config class
   is made importable only while pickling, so the pickle names the real global.
Weights are random: the stand-in tests the code paths and shapes, never the paper's numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import hashlib
import json
import os
import sys
import tempfile
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformer_lens import HookedTransformerConfig

from transcoder_lab import io
from transcoder_lab.config import CorpusConfig, ModelConfig, ModelSource, load_profile
from transcoder_lab.dictionaries.published import (
    PUBLISHED_D_SAE,
    PUBLISHED_LAYERS,
    PUBLISHED_REPO,
    published_sparsity_filename,
    published_weights_filename,
)
from transcoder_lab.organism.corpus import generate_documents
from transcoder_lab.sources.gpt2_tokenizer import save_gpt2_tokenizer_files
from transcoder_lab.sources.hooks import mlp_in_hook, mlp_out_hook
from transcoder_lab.sources.models import hooked_config

# GPT-2 small's exact shapes, for random models that exercise the paper profile's code paths.
GPT2_SMALL_SHAPE = dict(
    n_layers=12, d_model=768, d_head=64, n_heads=12, d_mlp=3072, n_ctx=1024, d_vocab=50257, act_fn="gelu_new"
)


def gpt2_shaped_config(seed: int = 0, **overrides: Any) -> HookedTransformerConfig:
    """GPT-2 small's architecture with random weights (tests and benchmarks of the paper profile's paths)."""
    shape = {**GPT2_SMALL_SHAPE, **overrides}
    d_vocab = shape.pop("d_vocab")
    return hooked_config(
        ModelConfig(source=ModelSource.pretrained, pretrained_name="gpt2", **shape), d_vocab, seed
    )


GPT2_REPO = "gpt2"
# GPT-2 small's config.json as the hub holds it (TransformerLens reads n_ctx, which transformers
# no longer writes itself, so the file is written as published rather than by save_pretrained).
GPT2_HUB_CONFIG = {
    "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
    "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
    "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768, "n_head": 12,
    "n_layer": 12, "n_positions": 1024, "resid_pdrop": 0.1, "summary_activation": None,
    "summary_first_dropout": 0.1, "summary_proj_to_labels": True, "summary_type": "cls_index",
    "summary_use_proj": True, "vocab_size": 50257,
    "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
}  # fmt: skip


# -- 1. the cache layout ------------------------------------------------------------------------


def hub_cache(hf_home: str | Path) -> Path:
    """huggingface_hub's cache folder under an HF_HOME (its default: `$HF_HOME/hub`)."""
    return Path(hf_home) / "hub"


def repo_folder(hf_home: str | Path, repo_id: str, repo_type: str = "model") -> Path:
    return hub_cache(hf_home) / f"{repo_type}s--{repo_id.replace('/', '--')}"


def put_repo(
    hf_home: str | Path,
    repo_id: str,
    files: Mapping[str, Path],
    repo_type: str = "model",
    revision: str = "main",
) -> Path:
    """Place `files` (path in the repo -> local file) in the cache as `repo_id` at `revision`.

    Returns the snapshot folder. Blobs are moved in (the local files are consumed).
    """
    folder = repo_folder(hf_home, repo_id, repo_type)
    hashes = {name: io.sha256_file(Path(path)) for name, path in sorted(files.items())}
    commit = hashlib.sha1(json.dumps(hashes, sort_keys=True).encode()).hexdigest()
    snapshot = folder / "snapshots" / commit
    for name, path in files.items():
        blob = folder / "blobs" / hashes[name]
        blob.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, blob) if not blob.exists() else Path(path).unlink()
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    ref = folder / "refs" / revision
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(commit)
    return snapshot


def _folder_files(folder: Path) -> dict[str, Path]:
    return {str(path.relative_to(folder)): path for path in sorted(folder.rglob("*")) if path.is_file()}


# -- 2. GPT-2 small ---------------------------------------------------------------------------


def write_gpt2(
    hf_home: str | Path,
    seed: int = 0,
    ranks_path: str | Path | None = None,
    config_overrides: Mapping[str, object] | None = None,
) -> Path:
    """The `gpt2` model repo: random GPT-2 small weights saved by transformers, the real tokenizer.
    `config_overrides` replaces fields of the hub's config.json (e.g. fewer and narrower layers, for
    a quick test of the loading path; the vocabulary stays GPT-2's)."""
    from transformers import GPT2Config, GPT2LMHeadModel  # slow to import; only this function needs it

    config = {**GPT2_HUB_CONFIG, **(config_overrides or {})}
    hub_cache(hf_home).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=hub_cache(hf_home).parent) as tmp:
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(GPT2Config(**config))
        model.save_pretrained(tmp)
        (Path(tmp) / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        save_gpt2_tokenizer_files(tmp, ranks_path)
        return put_repo(hf_home, GPT2_REPO, _folder_files(Path(tmp)))


# -- 3. the text source -----------------------------------------------------------------------


def standin_documents(n_documents: int, seed: int = 0) -> list[str]:
    """English-like documents (the organism's grammar and planted sentences), several paragraphs long."""
    corpus = CorpusConfig(sentences_per_document=(8, 40))
    return [document.text for document in generate_documents(corpus, n_documents, seed, progress=False)]


# The text stand-in's one parquet file: the first file of OpenWebText's parquet conversion, which the
# paper profiles' `text.files` glob (plain_text/*train/*.parquet) matches.
STANDIN_TEXT_FILE = "plain_text/train/0000.parquet"


def standin_text_file(files: str) -> str:
    """The path of the text stand-in's file, checked against a text source's `files` glob (matched as
    transcoder_lab.sources.text_source matches the repo's paths)."""
    if not fnmatch.fnmatch(STANDIN_TEXT_FILE, files):
        raise ValueError(
            f"the text stand-in's file {STANDIN_TEXT_FILE} does not match profile.text.files '{files}'; "
            "change STANDIN_TEXT_FILE in transcoder_lab/standins/gpt2.py to a path the glob matches"
        )
    return STANDIN_TEXT_FILE


def write_text_source(
    hf_home: str | Path,
    repo_id: str,
    revision: str,
    path_in_repo: str,
    n_documents: int,
    text_field: str = "text",
    seed: int = 0,
    row_group_size: int = 1000,
) -> Path:
    """A dataset repo holding one parquet file of generated documents, as the hub's converter writes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({text_field: standin_documents(n_documents, seed)})
    with tempfile.TemporaryDirectory(dir=hub_cache(hf_home).parent) as tmp:
        local = Path(tmp) / "data.parquet"
        pq.write_table(table, local, row_group_size=row_group_size)
        return put_repo(hf_home, repo_id, {path_in_repo: local}, repo_type="dataset", revision=revision)


# -- 4. the published transcoders -------------------------------------------------------------


@dataclass
class LanguageModelSAERunnerConfig:
    """Shaped like the published runner config: plain fields plus a torch dtype and device."""

    model_name: str = "gpt2-small"
    hook_point: str = ""
    hook_point_layer: int = 0
    out_hook_point: str = ""
    out_hook_point_layer: int = 0
    is_transcoder: bool = True
    d_in: int = 768
    d_out: int = 768
    d_sae: int = PUBLISHED_D_SAE
    expansion_factor: int = 32
    l1_coefficient: float = 1.4e-4
    lr: float = 4e-4
    total_training_tokens: int = 60_000_000
    train_batch_size: int = 4096
    context_size: int = 128
    dtype: torch.dtype = torch.float32
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 42


LanguageModelSAERunnerConfig.__module__ = "sae_training.config"


@contextlib.contextmanager
def sae_training_importable() -> Iterator[None]:
    """Make `sae_training.config` importable only while pickling, so a loader cannot lean on it."""
    package = types.ModuleType("sae_training")
    config_module = types.ModuleType("sae_training.config")
    config_module.LanguageModelSAERunnerConfig = LanguageModelSAERunnerConfig  # type: ignore[attr-defined]
    package.config = config_module  # type: ignore[attr-defined]
    saved = {name: sys.modules.get(name) for name in ("sae_training", "sae_training.config")}
    sys.modules["sae_training"], sys.modules["sae_training.config"] = package, config_module
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def published_payload(layer: int, d_model: int, d_sae: int, generator: torch.Generator) -> dict:
    """One layer's pickle content in the published structure, with random weights of sensible scale:
    unit-norm decoder rows, encoder columns their transposes, a negative encoder bias so that a
    few percent of features fire on a unit-scale input."""
    W_dec = torch.randn(d_sae, d_model, generator=generator)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    state = {
        "W_enc": W_dec.T.contiguous() * 2.0,
        "b_enc": torch.full((d_sae,), -2.0) + 0.1 * torch.randn(d_sae, generator=generator),
        "W_dec": W_dec,
        "b_dec": 0.01 * torch.randn(d_model, generator=generator),
        "b_dec_out": 0.01 * torch.randn(d_model, generator=generator),
    }
    cfg = LanguageModelSAERunnerConfig(
        hook_point=mlp_in_hook(layer), hook_point_layer=layer, out_hook_point=mlp_out_hook(layer),
        out_hook_point_layer=layer, d_in=d_model, d_out=d_model, d_sae=d_sae,
        expansion_factor=max(1, d_sae // d_model),
    )  # fmt: skip
    return {"cfg": cfg, "state_dict": state}


def write_published_file(folder: Path, layer: int, d_model: int, d_sae: int, seed: int) -> dict[str, Path]:
    """Write one layer's weights pickle and sparsity tensor into `folder` under the published names."""
    generator = torch.Generator().manual_seed(seed + layer)
    weights = folder / published_weights_filename(layer)
    sparsity = folder / published_sparsity_filename(layer)
    with sae_training_importable():
        torch.save(published_payload(layer, d_model, d_sae, generator), weights)
    # log10 firing frequency; -10 marks a dead feature, as in the published files
    log10 = -1.0 - 3.0 * torch.rand(d_sae, generator=generator)
    log10[torch.rand(d_sae, generator=generator) < 0.02] = -10.0
    torch.save(log10, sparsity)
    return {weights.name: weights, sparsity.name: sparsity}


def write_published_transcoders(
    hf_home: str | Path, d_sae: int = PUBLISHED_D_SAE, d_model: int = 768, seed: int = 0
) -> Path:
    """The `pchlenski/gpt2-transcoders` repo: every layer's pickle and sparsity file."""
    with tempfile.TemporaryDirectory(dir=hub_cache(hf_home).parent) as tmp:
        files: dict[str, Path] = {}
        for layer in PUBLISHED_LAYERS:
            files |= write_published_file(Path(tmp), layer, d_model, d_sae, seed)
        return put_repo(hf_home, PUBLISHED_REPO, files)


# -- the command ------------------------------------------------------------------------------


def write_gpt2_small_standin(
    hf_home: str | Path,
    n_documents: int = 2000,
    transcoder_width: int = PUBLISHED_D_SAE,
    seed: int = 0,
) -> dict[str, Path]:
    """Everything the gpt2_small profile reads, under `hf_home` (the text source as configured)."""
    text = load_profile("gpt2_small").profile.text
    assert text is not None  # the paper profile reads a hub dataset
    text_file = standin_text_file(text.files)
    hub_cache(hf_home).mkdir(parents=True, exist_ok=True)
    return {
        "model": write_gpt2(hf_home, seed),
        "text": write_text_source(
            hf_home, text.repo, text.revision, text_file, n_documents, text.text_field, seed
        ),
        "transcoders": write_published_transcoders(hf_home, transcoder_width, seed=seed),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m transcoder_lab.standins.gpt2",
        description="Fill a Hugging Face cache (an HF_HOME folder) with offline stand-ins of what the "
        "paper profiles read: random weights in the real formats, generated documents.",
    )
    parser.add_argument("hf_home", type=Path, help="the folder to use as HF_HOME")
    parser.add_argument("--documents", type=int, default=2000, help="generated documents in the text source")
    parser.add_argument("--transcoder-width", type=int, default=PUBLISHED_D_SAE)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    written = write_gpt2_small_standin(args.hf_home, args.documents, args.transcoder_width, args.seed)
    for name, snapshot in written.items():
        print(f"{name}: {snapshot}")
    skip = args.documents * 3 // 4  # the held-out set starts after three quarters of the documents
    print(
        f"now: HF_HOME={args.hf_home} HF_HUB_OFFLINE=1 dvc exp run -S profile=gpt2_small -S budget=smoke "
        f"-S profile.text.heldout_skip_documents={skip}"
    )


if __name__ == "__main__":
    main()
