"""The shapes and formulas the estimates are built from (the package docstring): the model's shape
with the facts a profile does not carry, a dictionary's shape and parameters, the FLOPs of a model
pass and of a dictionary per token, and the bytes the shuffle buffer copies on the host."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from transcoder_lab.config import ARMS, Config, DictionaryKind, ModelSource
from transcoder_lab.dictionaries.published import PUBLISHED_D_SAE
from transcoder_lab.standins.gpt2 import GPT2_HUB_CONFIG, GPT2_REPO
from transcoder_lab.standins.pythia import PYTHIA_HUB_CONFIGS, TRANSFORMER_LENS_NAMES

GB = 1e9
FLOAT32 = 4
N_PROMPT_GREATER_THAN = 100  # one prompt per YY (case_studies.greater_than.prompts_for)
PROBE_TOKENS = (2, 3)  # the blind hypothesis's probes: [BOS, t] and [BOS, t, best]
CORPUS_PROMPT_TOKENS = 25  # organism feature studies: corpus windows of 24 tokens + BOS
CHARS_PER_TOKEN = 4.0  # English text under a BPE tokenizer, for prompt lengths
ACTIVATION_COPIES = 4  # pre-activations, activations and their gradients (one dictionary at a time)
LOGIT_COPIES = 4  # evaluate: clean log-probs, their exponent, spliced log-probs, the KL product
SPLICED_BYTES_PER_FEATURE = 24  # evaluate: float32 z, a bool mask, its float64 copies
LOAD_COPIES = 3  # host copies while a hub model is converted to TransformerLens
TRAINING_BUFFER_COPIES = 2  # the shuffle buffer and its shuffled copy


@dataclass
class ModelShape:
    n_layers: int
    d_model: int
    d_mlp: int
    n_heads: int
    d_head: int
    vocab: int
    n_positions: int  # learned positional embeddings (0: rotary)
    tied_unembedding: bool
    hub_bytes_per_param: int  # how the hub stores the weights
    hub_repo: str | None = None

    @property
    def block_params(self) -> int:
        """Weight matrices of one block: W_Q, W_K, W_V, W_O (d x d each) and the MLP's two."""
        return 4 * self.d_model**2 + 2 * self.d_model * self.d_mlp

    @property
    def n_params(self) -> int:
        """TransformerLens's parameters (it keeps a separate W_U even when the hub ties it), biases
        and LayerNorms included."""
        d, m = self.d_model, self.d_mlp
        block = self.block_params + 4 * d + m + d + 4 * d  # attention biases, MLP biases, two LNs
        return (
            self.vocab * d
            + self.n_positions * d
            + self.n_layers * block
            + 2 * d
            + self.vocab * d
            + self.vocab
        )

    @property
    def hub_params(self) -> int:
        """Parameters in the hub's weights file (a tied unembedding is stored once)."""
        return self.n_params - (self.vocab * self.d_model + self.vocab if self.tied_unembedding else 0)


def model_shape(cfg: Config, vocab: int | None = None) -> ModelShape:
    """The profile's model with the facts the profile does not carry (vocabulary, tied unembedding,
    learned positions, the stored dtype): the organism corpus's vocabulary, or the hub's config.json
    as the offline stand-ins write it (transcoder_lab.standins.gpt2*); `vocab` overrides the vocabulary."""
    model = cfg.profile.model
    name = model.pretrained_name
    facts: dict[str, Any] = {
        "n_positions": model.n_ctx, "tied": False, "bytes": FLOAT32, "repo": None, "vocab": None,
    }  # fmt: skip
    if model.source == ModelSource.organism and cfg.profile.corpus is not None:
        facts["vocab"] = cfg.profile.corpus.vocab_size
    elif name == "gpt2":
        facts.update(vocab=GPT2_HUB_CONFIG["vocab_size"], tied=True, repo=GPT2_REPO)
    elif name is not None:
        repo = TRANSFORMER_LENS_NAMES.get(name, name)
        if repo in PYTHIA_HUB_CONFIGS:
            hub = PYTHIA_HUB_CONFIGS[repo]
            stored = {"float16": 2, "bfloat16": 2, "float32": 4}[hub.get("torch_dtype", "float32")]
            facts.update(
                vocab=hub["vocab_size"],
                tied=hub["tie_word_embeddings"],
                n_positions=0,
                bytes=stored,
                repo=repo,
            )
    if vocab is not None:
        facts["vocab"] = vocab
    if facts["vocab"] is None:
        raise SystemExit(f"the vocabulary of '{name}' is not known here: pass --vocab")
    return ModelShape(
        model.n_layers, model.d_model, model.d_mlp, model.n_heads, model.d_head, facts["vocab"],
        facts["n_positions"], facts["tied"], facts["bytes"], facts["repo"],
    )  # fmt: skip


# -- FLOP formulas (the package docstring) -------------------------------------------------------


def model_pass_flops(shape: ModelShape, n_blocks: int, context: int, unembed: bool) -> float:
    """Per token: 2 x the blocks' weight matrices + attention 2 x n x T x d (+ 2 d V logits)."""
    flops = n_blocks * 2 * shape.block_params + 2 * n_blocks * context * shape.d_model
    return flops + (2 * shape.d_model * shape.vocab if unembed else 0)


@dataclass
class DictShape:
    d_in: int
    d_sae: int
    d_out: int
    transcoder: bool = False
    skip: bool = False

    @property
    def params(self) -> int:
        extra = self.d_out if self.transcoder else 0  # b_dec_out (an SAE's is tied to b_dec)
        skip = self.d_in * self.d_out if self.skip else 0
        return self.d_in * self.d_sae + self.d_sae * self.d_out + self.d_sae + self.d_in + extra + skip

    @property
    def train_flops_per_token(self) -> float:
        """Forward 2 (d_in + d_out) d_sae, backward twice that."""
        return 6 * (self.d_in + self.d_out) * self.d_sae + (6 * self.d_in * self.d_out if self.skip else 0)

    @property
    def forward_flops_per_token(self) -> float:
        return 2 * (self.d_in + self.d_out) * self.d_sae + (2 * self.d_in * self.d_out if self.skip else 0)

    @property
    def encode_flops_per_token(self) -> float:
        return 2 * self.d_in * self.d_sae

    @property
    def training_bytes(self) -> float:
        """Weights, gradients and Adam's two moments, float32."""
        return 4 * self.params * FLOAT32


@dataclass
class CrossLayerShape:
    """A CLT over n layers: n encoders d_in x d_sae and n(n+1)/2 decoders d_sae x d_out (layer l
    writes to every layer from l on), with their biases."""

    n_layers: int
    d_in: int
    d_sae: int
    d_out: int

    @property
    def encoder_params(self) -> int:
        return self.n_layers * self.d_in * self.d_sae

    @property
    def decoder_params(self) -> int:
        return self.n_layers * (self.n_layers + 1) // 2 * self.d_sae * self.d_out

    @property
    def params(self) -> int:
        biases = self.n_layers * (self.d_sae + self.d_in + self.d_out)
        return self.encoder_params + self.decoder_params + biases

    @property
    def train_flops_per_token(self) -> float:
        """A token (one position, every layer): forward 2 x (encoders + decoders), backward twice it."""
        return 6 * (self.encoder_params + self.decoder_params)

    @property
    def forward_flops_per_token(self) -> float:
        return 2 * (self.encoder_params + self.decoder_params)

    @property
    def training_bytes(self) -> float:
        """Weights, gradients and Adam's two moments, float32."""
        return 4 * self.params * FLOAT32


def grid_dictionary(cfg: Config, arm: str) -> DictShape:
    grid, d = cfg.profile.dictionaries, cfg.profile.model.d_model
    transcoder = ARMS[arm].kind is DictionaryKind.transcoder
    return DictShape(d, grid.expansion_factor * d, d, transcoder, ARMS[arm].skip)


def published_dictionary(cfg: Config) -> DictShape:
    d = cfg.profile.model.d_model
    return DictShape(d, PUBLISHED_D_SAE, d, True)


def cell_hooks(arm: str) -> int:
    """Hooks a cell harvests: a transcoder reads the MLP input and output, an SAE one of them."""
    return 2 if ARMS[arm].kind is DictionaryKind.transcoder else 1


def prompt_tokens(text: str) -> int:
    return 1 + math.ceil(len(text) / CHARS_PER_TOKEN)  # BOS + the text


def buffer_copy_bytes(
    capacity: int, incoming_rows: int, n_incoming: int, row_bytes: int, batch_rows: int, flush: bool = False
) -> float:
    """Bytes `transcoder_lab.dictionaries.activations.ShuffleBuffer` writes on the host for
    `n_incoming` harvested batches: incoming batches are listed until the buffer is full, then
    concatenated with the kept rows once (the whole buffer is copied), permuted (copied again) and its
    first half, in whole training batches of `batch_rows`, handed out (a view, not a copy). `flush`:
    the stream then ends and the rest is shuffled out (one more copy). Each row is thus copied a
    bounded number of times."""
    size, pending, rows = 0, 0, 0
    for _ in range(n_incoming):
        size, pending = size + incoming_rows, pending + incoming_rows
        while size >= capacity:
            rows += size if pending else 0  # torch.cat([kept, *pending]): the gathered buffer
            rows += size  # rows[order]: the shuffled copy
            size, pending = size - size // 2 // batch_rows * batch_rows, 0  # the first half is yielded
    if flush:
        rows += size if pending else 0
        rows += size
    return rows * row_bytes
