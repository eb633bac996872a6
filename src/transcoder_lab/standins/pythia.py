"""An offline stand-in for the Pythia models on the Hugging Face hub, in the real file formats.

The Pythia profiles (`pythia_410m`, `pythia_1_4b`) load `EleutherAI/pythia-410m` or
`EleutherAI/pythia-1.4b` with `HookedTransformer.from_pretrained` and read their text from parquet
files of a dataset repo. Both go through huggingface_hub's local cache, so a cache holding stand-ins
in the same layout (`transcoder_lab.standins.gpt2.put_repo`) lets the pipeline run through its real
loading code with `HF_HUB_OFFLINE=1`:

    python -m transcoder_lab.standins.pythia /tmp/hf_home  # Pythia-410M and its text
    HF_HOME=/tmp/hf_home HF_HUB_OFFLINE=1 dvc exp run -S profile=pythia_410m -S budget=smoke

Steps (`write_pythia`):
1. The model config: the repo's `config.json` as the hub publishes it (`PYTHIA_HUB_CONFIGS`: the
   GPT-NeoX architecture with parallel attention and MLP, rotary embeddings on a quarter of each
   head, untied unembedding, a vocabulary padded to 50,304), written literally rather than by
   transformers, so TransformerLens reads the same fields it reads from the hub.
2. The weights: `transformers.GPTNeoXForCausalLM` built from that config with random weights
   (seeded), cast to float16 as the hub's checkpoints are, saved by `save_pretrained`
   (model.safetensors, generation_config.json).
3. The tokenizer: GPT-NeoX's tokenizer is not reachable offline, so a small byte-level BPE is
   trained with `tokenizers` on generated documents (`standins.gpt2.standin_documents`) with NeoX's
   special tokens: `<|endoftext|>` at id 0 (BOS, EOS and UNK, as in NeoX) and `<|padding|>` at id 1,
   no BOS added by the post-processor (NeoX adds none), saved as `tokenizer.json`,
   `tokenizer_config.json` and `special_tokens_map.json`. Its ids are a subset of the model's
   50,304 rows, so every id it produces has an embedding.
4. The text source: generated documents in one parquet file at the repo, revision and path the
   profile reads (`profile.text`, `standins.gpt2.write_text_source`).
Weights and tokenizer are stand-ins: they exercise code paths and shapes, never the paper's numbers.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from transcoder_lab.config import load_profile
from transcoder_lab.standins.gpt2 import (
    _folder_files,
    hub_cache,
    put_repo,
    standin_documents,
    standin_text_file,
    write_text_source,
)

END_OF_TEXT = "<|endoftext|>"  # id 0 in GPT-NeoX's tokenizer: BOS, EOS and UNK
PADDING = "<|padding|>"  # id 1 in GPT-NeoX's tokenizer
NEOX_MODEL_MAX_LENGTH = 2048  # Pythia's context length

# config.json of the Pythia repos as the hub holds them (main branch). Every size shares these fields
# (the fields TransformerLens's GPT-NeoX conversion reads: layer_norm_eps, vocab_size, hidden_act,
# use_parallel_residual, rotary_pct, max_position_embeddings; and the rest of the published file)
# and differs only in its shapes, below.
_PYTHIA_COMMON = {
    "architectures": ["GPTNeoXForCausalLM"], "bos_token_id": 0, "eos_token_id": 0, "hidden_act": "gelu",
    "initializer_range": 0.02, "layer_norm_eps": 1e-05, "max_position_embeddings": 2048,
    "model_type": "gpt_neox", "rotary_emb_base": 10000, "rotary_pct": 0.25, "tie_word_embeddings": False,
    "torch_dtype": "float16", "transformers_version": "4.24.0", "use_cache": True,
    "use_parallel_residual": True, "vocab_size": 50304,
}  # fmt: skip
# (num_hidden_layers, hidden_size, num_attention_heads); intermediate_size is 4 x hidden_size
_PYTHIA_SHAPES = {
    "EleutherAI/pythia-70m": (6, 512, 8),
    "EleutherAI/pythia-160m": (12, 768, 12),
    "EleutherAI/pythia-410m": (24, 1024, 16),
    "EleutherAI/pythia-1b": (16, 2048, 8),
    "EleutherAI/pythia-1.4b": (24, 2048, 16),
    "EleutherAI/pythia-2.8b": (32, 2560, 32),
}
PYTHIA_HUB_CONFIGS: dict[str, dict[str, Any]] = {
    repo: {**_PYTHIA_COMMON, "hidden_size": hidden, "intermediate_size": 4 * hidden,
           "num_attention_heads": heads, "num_hidden_layers": layers}
    for repo, (layers, hidden, heads) in _PYTHIA_SHAPES.items()
}  # fmt: skip
# TransformerLens's short names of the repos above (transformer_lens.supported_models aliases)
TRANSFORMER_LENS_NAMES = {repo.split("/")[1]: repo for repo in PYTHIA_HUB_CONFIGS}

STANDIN_VOCAB_SIZE = 8192  # the stand-in tokenizer's vocabulary (the model has 50,304 rows)
STANDIN_TOKENIZER_DOCUMENTS = 1000  # generated documents the stand-in tokenizer is trained on


def hub_repo(name: str) -> str:
    """The hub repo of a Pythia model named either way ("pythia-410m" or "EleutherAI/pythia-410m")."""
    repo = TRANSFORMER_LENS_NAMES.get(name, name)
    if repo not in PYTHIA_HUB_CONFIGS:
        raise KeyError(
            f"no stand-in config for '{name}'; known: {sorted(TRANSFORMER_LENS_NAMES)} "
            f"({sorted(PYTHIA_HUB_CONFIGS)}). Add its hub config.json to PYTHIA_HUB_CONFIGS."
        )
    return repo


# -- the tokenizer ------------------------------------------------------------------------------


def train_standin_tokenizer(
    texts: list[str], vocab_size: int = STANDIN_VOCAB_SIZE
) -> Any:  # transformers.PreTrainedTokenizerFast
    """A byte-level BPE shaped like GPT-NeoX's: `<|endoftext|>` id 0, `<|padding|>` id 1, ByteLevel
    pre-tokenizer without a prefix space, ByteLevel decoder, no special tokens added on encoding."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[END_OF_TEXT, PADDING],  # ids 0 and 1, in this order
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    if backend.token_to_id(END_OF_TEXT) != 0 or backend.token_to_id(PADDING) != 1:
        raise RuntimeError("the stand-in tokenizer must hold <|endoftext|> at id 0 and <|padding|> at id 1")
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        unk_token=END_OF_TEXT,
        model_max_length=NEOX_MODEL_MAX_LENGTH,
    )


def save_standin_tokenizer(tokenizer: Any, out_dir: Path) -> None:
    """tokenizer.json (the trained backend) and the two small JSON files NeoX's repos hold beside it."""
    tokenizer.backend_tokenizer.save(str(out_dir / "tokenizer.json"))
    config = {  # the fields of NeoX's tokenizer_config.json (its class reads tokenizer.json)
        "add_prefix_space": False, "bos_token": END_OF_TEXT, "eos_token": END_OF_TEXT,
        "unk_token": END_OF_TEXT, "tokenizer_class": "GPTNeoXTokenizer",
    }  # fmt: skip
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    special = {"bos_token": END_OF_TEXT, "eos_token": END_OF_TEXT, "unk_token": END_OF_TEXT}
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


# -- the model repo -----------------------------------------------------------------------------


def write_pythia(
    hf_home: str | Path,
    name: str = "pythia-410m",
    seed: int = 0,
    tokenizer_documents: int = STANDIN_TOKENIZER_DOCUMENTS,
    vocab_size: int = STANDIN_VOCAB_SIZE,
) -> Path:
    """A Pythia model repo (`EleutherAI/<name>`) with random float16 weights and a stand-in tokenizer
    (module docstring, steps 1-3). Returns the snapshot folder."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    repo = hub_repo(name)
    hub_config = PYTHIA_HUB_CONFIGS[repo]
    hub_cache(hf_home).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=hub_cache(hf_home).parent) as tmp:
        folder = Path(tmp)
        torch.manual_seed(seed)
        model = GPTNeoXForCausalLM(GPTNeoXConfig(**hub_config))
        model.to(torch.float16).save_pretrained(folder)
        del model
        (folder / "config.json").write_text(json.dumps(hub_config, indent=2) + "\n")
        tokenizer = train_standin_tokenizer(standin_documents(tokenizer_documents, seed + 1), vocab_size)
        save_standin_tokenizer(tokenizer, folder)
        return put_repo(hf_home, repo, _folder_files(folder))


def write_pythia_standin(
    hf_home: str | Path, profile: str = "pythia_410m", n_documents: int = 2000, seed: int = 0
) -> dict[str, Path]:
    """Everything a Pythia profile reads, under `hf_home`: its model repo and its text source."""
    cfg = load_profile(profile).profile
    if cfg.model.pretrained_name is None or cfg.text is None:
        raise ValueError(f"profile '{profile}' is not a pretrained profile with a text source")
    text = cfg.text
    text_file = standin_text_file(text.files)
    return {
        "model": write_pythia(hf_home, cfg.model.pretrained_name, seed),
        "text": write_text_source(
            hf_home, text.repo, text.revision, text_file, n_documents, text.text_field, seed
        ),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m transcoder_lab.standins.pythia",
        description="Fill a Hugging Face cache (an HF_HOME folder) with an offline stand-in of a Pythia "
        "model (random float16 weights in the hub's format, a stand-in tokenizer) and its profile's text.",
    )
    parser.add_argument("hf_home", type=Path, help="the folder to use as HF_HOME")
    parser.add_argument("--profile", default="pythia_410m", help="pythia_410m or pythia_1_4b")
    parser.add_argument("--documents", type=int, default=2000, help="generated documents in the text source")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    written = write_pythia_standin(args.hf_home, args.profile, args.documents, args.seed)
    for what, snapshot in written.items():
        print(f"{what}: {snapshot}")
    print(
        f"now: HF_HOME={args.hf_home} HF_HUB_OFFLINE=1 dvc exp run -S profile={args.profile} -S budget=smoke"
    )


if __name__ == "__main__":
    main()
