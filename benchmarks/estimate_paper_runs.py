"""How long and how much memory each DVC stage of a profile needs: FLOPs and peak memory from the
config alone, turned into seconds with throughputs measured on this machine in the same run and an
assumed GPU. Nothing is stored: every number comes from the config, the formulas below and the
measurements of this run.

    python benchmarks/estimate_paper_runs.py gpt2_small                 # ~25 s on 2 shared cores
    python benchmarks/estimate_paper_runs.py pythia_410m
    python benchmarks/estimate_paper_runs.py gpt2_small budget=smoke    # any Hydra override
    python benchmarks/estimate_paper_runs.py gpt2_small --check         # + real trainer steps (~45 s)

The profile is composed as the pipeline composes it (`transcoder_lab.config.compose` +
`load_config`), and the stage instances are read from dvc.yaml (`foreach` expanded against the
composed config), so every stage `dvc exp run -S profile=<name>` would run is listed.

Notation: d = d_model, m = d_mlp, V = vocabulary, T = the context length actually run (the
harvest's 128-token contexts, not the model's maximum n_ctx), L = a cell's layer, B = training
batch (tokens), S = training steps, n_l1 = the number of L1 values (a cell trains one dictionary
per value, side by side). A dictionary reads d_in = d and writes d_out = d through
d_sae = expansion_factor x d features. One FLOP is one multiply or one add (a multiply-add is 2).

FLOPs (matrix products only; elementwise work is left out, and `--check` measures it):
- Model forward pass, per token, through n blocks (Kaplan et al. 2020's count):
      n x 2 x (4 d^2 + 2 d m)      2 x the non-embedding weights of the blocks run
                                   (W_Q, W_K, W_V, W_O and the MLP's two matrices)
    + 2 x n x T x d                attention over the context
    + 2 x d x V                    only where logits are computed (the unembedding)
  TransformerLens computes the whole T x T score matrix before masking, twice the attention
  term; at T = 128 that term is under 2% of a GPT-2 block either way.
- Harvesting (per `dictionaries` instance, stream mode): the model up to the cell's layer
  (n = L + 1 blocks, no unembedding) over S x B tokens.
- Dictionary training, per dictionary and token: forward x W_enc (2 d_in d_sae) and z W_dec
  (2 d_sae d_out); backward twice that (weight gradient and input gradient: the encoder's input
  is x - b_dec, and b_dec is trained): 6 x (d_in + d_out) x d_sae, times n_l1, over S x B tokens.
  Ghost grads add up to 6 x (dead features) x d_out per token while features are dead; left out.
- Held-out metrics (end of each `dictionaries` instance): the model to layer L over the held-out
  tokens (evaluation.n_contexts x T in stream mode), then 2 x (d_in + d_out) x d_sae per token
  per dictionary.
- evaluate: per held-out token, full passes with the unembedding: 1 clean + 1 per spliced set
  (every grid dictionary alone, the splice-all set, each splice subset) + 1 per distinct set of
  zero-ablated layers; plus each spliced dictionary's forward inside its pass.
- import_transcoders: I/O (a pickle of 2 x 768 x 24,576 float32 weights per layer); the bias
  folding is one 768 x 24,576 vector-matrix product.
- case_study@greater_than, from the structure of transcoder_lab.case_studies.greater_than on its
  100 prompts of T_p tokens (T_p ~ characters / 4 + BOS): the layer choice (2 full passes and 1
  partial per transcoder layer), scores with the MLP spliced / removed / a feature ablated, the
  features-vs-neurons curves ((n_components + 1) x 2 kinds x 2 protocols runs of the blocks after
  the studied layer on every prompt token) and the path search (per expanded node, a pullback
  W_dec v per earlier transcoder layer, 2 x d x d_sae each).
- case_study@<feature study>: the blind hypothesis's two token probes (when `blind`: every
  vocabulary token in [BOS, t] and in [BOS, t, best], the model up to the feature's layer), the
  path search and its check by ablation (one full pass per kept node, on the prompt).
- study_packet: the scanned tokens (study.n_tokens in whole contexts) go through the model up to
  the study's layer 3 times (the shared input pass, then one dashboard pass per arm); each arm's
  dictionary encodes them twice (firing counts, then the sampled features), 2 x d_in x d_sae.
- corpus, activations (stream mode), report, study_analysis: no matmul work; behaviour: a few
  hundred prompts.

Host copies (stream mode): `transcoder_lab.dictionaries.activations.ShuffleBuffer` collects harvested batches
(batch_contexts x T rows) until it is full, then concatenates them with the rows it kept (one copy
of the buffer) and permutes it (another), about four row copies per harvested row in all
(`buffer_copy_bytes` counts both, row by row). Those bytes are divided
by the rate at which the real ShuffleBuffer copies on this machine, measured in this run
(`buffer_bandwidth`: `--buffer-rows` of capacity, fed 3 x its capacity). Training synchronises
the GPU every step, so this host work adds to the GPU's time rather than overlapping it.

Peak memory (float32 = 4 bytes; GB = 1e9 bytes), on the device that runs the model and trains
(the GPU under `device: auto` on a GPU machine) and on the host:
- model: TransformerLens's parameters x 4 on the device; loading a hub model holds about 3 copies
  on the host (the transformers model, the converted state dict, the HookedTransformer) until the
  model is on the device, so a stage's host peak is the larger of that and what it keeps there.
- a dictionary in training: 4 x params x 4 bytes (weights, gradients, Adam's two moments), one per
  L1 value; the step's activations, 4 x B x d_sae x 4 bytes (pre-activations, activations and
  their gradients; dictionaries step one after another, so one at a time); the batch,
  B x hooks x d x 4.
- the shuffle buffer (host): 2 x buffer_tokens x hooks x d x 4 bytes (the buffer and the copy
  made while it is extended or permuted), plus the held-out rows kept for the held-out metrics.
- evaluate: every dictionary of every spliced set loaded at once (params x 4 each), a batch's
  logits about 4 times (clean log-probabilities, their exponent, the spliced ones, the KL
  product: batch x T x V x 4 each) and a spliced dictionary's features with their firing
  statistics, ~24 bytes per batch x T x d_sae element (float32 z, a bool mask, float64 copies).
- study_packet: the scanned inputs on the host (tokens x d x 4), an encoded chunk
  (study.batch_size x T x d_sae) on the device and, with its firing mask, on the host.
- Disk: a cell's checkpoint, rewritten every `checkpoint_every` steps, holds every dictionary's
  weights and both Adam moments, 3 x params x 4 bytes each.

Seconds: FLOPs / throughput. This CPU's throughput is measured in this run: the best of
`--repeats` float32 products [`--matmul-rows`, d_in] x [d_in, d_sae] (the encoder's shape, torch's
default threads; by default 256 rows, or more up to the training batch so that a product is at
least 5 GFLOP); the model's smaller products may run at another rate. The GPU's is
`--gpu-tflops` x `--utilisation`: float32 on CUDA cores, because the pipeline keeps PyTorch's
default, which does not use TF32 tensor cores for float32 matmuls. The harvest pass runs at
`--bf16-tflops` instead when `harvest.autocast_dtype` is set. The "GPU tf32" column is what TF32
tensor cores (`--tf32-tflops`) would give if they were allowed (torch.backends.cuda.matmul.
allow_tf32, which the pipeline does not set). Defaults: dense (no sparsity) datasheet figures of
the H100 PCIe, the slowest H100/H200-class part: FP32 51 TFLOP/s, TF32 378, BF16 756 (H100 SXM
and H200: 67, 495, 989).

`--check` measures what the FLOP count leaves out. It builds dictionaries of the smoke budget's
first cell (`budget=smoke`: the profile's shapes, `--check-l1-values` of its L1 values) with the
real trainer (`transcoder_lab.dictionaries.training.DictionaryTrainer`, real initialisation) on the CPU and
times `--check-steps` real steps (after one untimed warm-up step) on random activations of the
profile's shapes: at the smoke batch, and for one dictionary at `--check-batch`. It prints the
measured seconds against the FLOP estimate at the measured throughput (the ratio is the factor by
which the matmul count underestimates the CPU's time: Adam, the decoder renormalisation and
gradient projection, the L1 term, ReLU, the firing counters) and, from the two batch sizes, a fit
time = a + b x batch per dictionary and step, extrapolated to the profile's batch.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

from transcoder_lab.case_studies.common import HELDOUT_CONTEXTS, settings_for
from transcoder_lab.case_studies.greater_than import N_TOP_FEATURES
from transcoder_lab.config import ARMS, REPO_ROOT, CaseStudyConfig, Config, compose, load_config, parse_cell
from transcoder_lab.dictionaries.published import PUBLISHED_D_SAE, PUBLISHED_REPO

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
    if model.source == "organism" and cfg.profile.corpus is not None:
        facts["vocab"] = cfg.profile.corpus.vocab_size
    elif name == "gpt2":
        from transcoder_lab.standins.gpt2 import GPT2_HUB_CONFIG, GPT2_REPO

        facts.update(vocab=GPT2_HUB_CONFIG["vocab_size"], tied=True, repo=GPT2_REPO)
    elif name is not None:
        from transcoder_lab.standins.pythia import PYTHIA_HUB_CONFIGS, TRANSFORMER_LENS_NAMES

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


# -- FLOP formulas (module docstring) -----------------------------------------------------------


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


def grid_dictionary(cfg: Config, arm: str) -> DictShape:
    grid, d = cfg.profile.dictionaries, cfg.profile.model.d_model
    transcoder = ARMS[arm].kind == "transcoder"
    return DictShape(d, grid.expansion_factor * d, d, transcoder, ARMS[arm].skip)


def published_dictionary(cfg: Config) -> DictShape:
    d = cfg.profile.model.d_model
    return DictShape(d, PUBLISHED_D_SAE, d, True)


def cell_hooks(arm: str) -> int:
    """Hooks a cell harvests: a transcoder reads the MLP input and output, an SAE one of them."""
    return 2 if ARMS[arm].kind == "transcoder" else 1


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


# -- stages -------------------------------------------------------------------------------------


@dataclass
class Stage:
    """One DVC stage instance: its matmul FLOPs and peak memory, and what dominates them."""

    name: str
    model_flops: float = 0.0  # transformer passes
    dictionary_flops: float = 0.0  # dictionary products (always float32)
    device_bytes: float = 0.0  # peak on the device that runs the model and trains
    host_bytes: float = 0.0  # peak in host RAM
    dominant: str = ""
    autocast: bool = False  # model_flops run under harvest.autocast_dtype
    io: str = ""  # downloads or disk writes, when they are the point
    host_copy_bytes: float = 0.0  # bytes the shuffle buffer copies on the host (stream mode)
    parts: dict[str, float] = field(default_factory=dict)  # FLOPs by part, for `dominant`

    @property
    def flops(self) -> float:
        return self.model_flops + self.dictionary_flops


def _dominant(parts: dict[str, float]) -> str:
    total = sum(parts.values())
    if total <= 0:
        return ""
    name, flops = max(parts.items(), key=lambda item: item[1])
    return f"{name} ({flops / total:.0%})"


@dataclass
class Settings:
    """What the estimate assumes beyond the config (command-line options)."""

    vocab: int | None = None
    tokens_per_document: float = 1100.0
    documents_per_file: int = 100_000


def stage_instances(raw: DictConfig) -> list[tuple[str, str]]:
    """(stage, instance name) of every stage of dvc.yaml, `foreach` expanded against `raw` as DVC
    does (`stage@item` for a list, `stage@key` for a mapping)."""
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    out = []
    for name, body in stages.items():
        if "foreach" not in body:
            out.append((name, name))
            continue
        expression = str(body["foreach"]).strip()
        key = expression.removeprefix("${").removesuffix("}")
        items = OmegaConf.select(raw, key)
        if isinstance(items, DictConfig):
            keys = list(items.keys())
        elif isinstance(items, ListConfig | list):
            keys = list(items)
        else:
            keys = []
        out += [(name, f"{name}@{item}") for item in keys] or [
            (name, f"{name} (no instances: {key} is empty)")
        ]
    return out


class Estimator:
    """Per-stage FLOPs and memory of one composed config (module docstring)."""

    def __init__(self, cfg: Config, settings: Settings | None = None) -> None:
        self.cfg, self.settings = cfg, settings or Settings()
        self.shape = model_shape(cfg, self.settings.vocab)
        profile = cfg.profile
        self.pretrained = profile.model.source == "pretrained"
        self.stream = profile.dictionaries.harvest.mode == "stream"
        self.context = profile.dictionaries.harvest.context_size
        self.model_bytes = self.shape.n_params * FLOAT32
        self.load_bytes = LOAD_COPIES * self.model_bytes if self.pretrained else self.model_bytes

    # stage name -> method
    def estimate(self, stage: str, instance: str) -> Stage:
        item = instance.split("@", 1)[1] if "@" in instance else None
        method = getattr(self, f"stage_{stage}", None)
        if method is None:
            return Stage(instance, dominant="not estimated (a stage this script does not know)")
        if "(no instances" in instance:
            return Stage(instance, dominant="nothing to run")
        return method(instance, item) if item is not None else method(instance)

    # -- model loading and the organism's own stages -------------------------------------------

    def stage_corpus(self, name: str) -> Stage:
        if self.cfg.profile.corpus is None:
            return Stage(name, dominant="writes a manifest (pretrained models bring their own text)")
        return Stage(name, dominant="generates the organism's corpus in Python (not matmul work)")

    def stage_organism(self, name: str) -> Stage:
        profile = self.cfg.profile
        if self.pretrained:
            size = self.shape.hub_params * self.shape.hub_bytes_per_param
            return Stage(
                name, host_bytes=self.load_bytes, dominant="fetches the model once (I/O)",
                io=f"downloads ~{size / GB:.2f} GB of weights from {self.shape.hub_repo or 'the hub'}",
            )  # fmt: skip
        training = profile.training
        assert training is not None  # organism profiles have it (load_config)
        tokens = training.max_steps * training.batch_size * profile.model.n_ctx
        flops = 3 * tokens * model_pass_flops(self.shape, self.shape.n_layers, profile.model.n_ctx, True)
        return Stage(
            name, model_flops=flops, host_bytes=4 * self.model_bytes,
            dominant="organism training (forward + backward, 3 x a forward pass)",
        )  # fmt: skip

    def stage_behaviour(self, name: str) -> Stage:
        behaviour, shape = self.cfg.profile.behaviour, self.shape
        if self.pretrained:  # the paper's 100 prompts and Hanna et al.'s n_prompts
            from transcoder_lab.behaviour import HANNA_TEMPLATE

            paper = prompt_tokens("The war lasted from 1732 to 17")
            hanna = prompt_tokens(HANNA_TEMPLATE.format(noun="war", XX="17", YY="32"))
            counts = [(N_PROMPT_GREATER_THAN, paper), (behaviour.n_prompts, hanna)]
        else:  # five mechanisms, n_prompts each (two for citations), corpus sentences
            counts = [(6 * behaviour.n_prompts, CORPUS_PROMPT_TOKENS)]
        flops = sum(n * t * model_pass_flops(shape, shape.n_layers, t, True) for n, t in counts)
        logits = behaviour.batch_size * max(t for _, t in counts) * shape.vocab * FLOAT32
        return Stage(
            name, model_flops=flops, device_bytes=self.model_bytes + logits, host_bytes=self.load_bytes,
            dominant="prompt passes (tiny)",
        )  # fmt: skip

    def stage_activations(self, name: str) -> Stage:
        grid = self.cfg.profile.dictionaries
        if self.stream:
            return Stage(name, dominant="writes a manifest (stream mode: harvested while training)")
        harvest = grid.harvest
        tokens = harvest.n_tokens + harvest.heldout_tokens
        n_blocks = max(grid.layers) + 1
        flops = tokens * model_pass_flops(self.shape, n_blocks, self.context, False)
        hooks = 2 * len(grid.layers)
        pending = 2 * harvest.shard_tokens * hooks * self.shape.d_model * FLOAT32
        return Stage(
            name, model_flops=flops, device_bytes=self.model_bytes + self._pass_bytes(),
            host_bytes=max(self.load_bytes, pending), autocast=harvest.autocast_dtype is not None,
            dominant=f"harvesting {tokens:,} tokens through {n_blocks} blocks into shards",
        )  # fmt: skip

    # -- dictionaries --------------------------------------------------------------------------

    def _pass_bytes(self) -> float:
        """Transient activations of one block during a harvest pass (no gradients)."""
        harvest, shape = self.cfg.profile.dictionaries.harvest, self.shape
        rows = harvest.batch_contexts * self.context
        return rows * (shape.d_mlp + 4 * shape.d_model) * FLOAT32 + (
            harvest.batch_contexts * shape.n_heads * self.context**2 * FLOAT32 * 2
        )

    def heldout_tokens(self) -> int:
        """Rows the held-out metrics of a cell read."""
        if self.stream:
            return self.cfg.profile.evaluation.n_contexts * self.context
        return self.cfg.profile.dictionaries.harvest.heldout_tokens

    def stage_dictionaries(self, name: str, cell: str) -> Stage:
        layer, kind = parse_cell(str(cell))
        grid, shape = self.cfg.profile.dictionaries, self.shape
        training = grid.training
        dictionary, n_l1, hooks = grid_dictionary(self.cfg, kind), len(grid.sweep(kind)), cell_hooks(kind)
        tokens = training.n_steps * training.batch_size
        heldout = self.heldout_tokens()
        parts = {
            "dictionary training": tokens * n_l1 * dictionary.train_flops_per_token,
            "held-out metrics": heldout * n_l1 * dictionary.forward_flops_per_token,
        }
        model = {}
        if self.stream:
            per_token = model_pass_flops(shape, layer + 1, self.context, False)
            model = {"harvesting": tokens * per_token, "held-out harvest": heldout * per_token}
        device = (
            (self.model_bytes + self._pass_bytes() if self.stream else 0)
            + n_l1 * dictionary.training_bytes
            + ACTIVATION_COPIES * training.batch_size * dictionary.d_sae * FLOAT32
            + training.batch_size * hooks * shape.d_model * FLOAT32
        )
        buffer = TRAINING_BUFFER_COPIES * grid.harvest.buffer_tokens * hooks * shape.d_model * FLOAT32
        host = max(self.load_bytes if self.stream else 0, buffer + heldout * hooks * shape.d_model * FLOAT32)
        checkpoint = n_l1 * 3 * dictionary.params * FLOAT32
        saved = n_l1 * dictionary.params * FLOAT32
        copies = 0.0
        if self.stream:
            harvested = grid.harvest.batch_contexts * self.context
            copies = buffer_copy_bytes(
                grid.harvest.buffer_tokens, harvested, math.ceil(tokens / harvested),
                hooks * shape.d_model * FLOAT32, training.batch_size,
            )  # fmt: skip
        return Stage(
            name, model_flops=sum(model.values()), dictionary_flops=sum(parts.values()),
            device_bytes=device, host_bytes=host, autocast=grid.harvest.autocast_dtype is not None,
            dominant=_dominant(parts | model), parts=parts | model, host_copy_bytes=copies,
            io=f"checkpoint {checkpoint / GB:.1f} GB (rewritten every {training.checkpoint_every} steps), "
            f"saves {saved / GB:.2f} GB",
        )  # fmt: skip

    def stage_import_transcoders(self, name: str, layer: str) -> Stage:
        dictionary = published_dictionary(self.cfg)
        size = 2 * dictionary.d_in * dictionary.d_sae * FLOAT32
        return Stage(
            name, dictionary_flops=2 * dictionary.d_in * dictionary.d_sae, host_bytes=3 * size,
            dominant="I/O: two files from the hub, one dictionary converted",
            io=f"downloads ~{size / 1e6:.0f} MB (weights) + {dictionary.d_sae * FLOAT32 / 1e3:.0f} kB "
            f"(sparsity) from {PUBLISHED_REPO}",
        )  # fmt: skip

    # -- evaluation ----------------------------------------------------------------------------

    def splice_sets(self) -> tuple[dict[str, list[DictShape]], set[tuple[int, ...]]]:
        """The dictionary sets `evaluate` splices (experiments/evaluate.py), by name, and the distinct
        sets of layers it zero-ablates (one pass each per batch)."""
        evaluation, grid = self.cfg.profile.evaluation, self.cfg.profile.dictionaries
        sets: dict[str, list[DictShape]] = {}
        zero: set[tuple[int, ...]] = set()
        for layer, kind in grid.parsed_cells:
            for sparsity in grid.sweep(kind):
                sets[f"{kind}@L{layer} {sparsity.setting}"] = [grid_dictionary(self.cfg, kind)]
                zero.add((layer,))
        every = evaluation.splice_all_layers or grid.layers_of("transcoder")
        named = {"splice_all": every} | {f"subset:{k}": v for k, v in evaluation.splice_subsets.items()}
        for set_name, layers in named.items():
            one = (
                published_dictionary(self.cfg)
                if evaluation.splice_all_source == "published"
                else grid_dictionary(self.cfg, "transcoder")
            )
            sets[set_name] = [one] * len(layers)
            zero.add(tuple(sorted(layers)))
        return sets, zero

    def stage_evaluate(self, name: str) -> Stage:
        evaluation, shape = self.cfg.profile.evaluation, self.shape
        sets, zero_sets = self.splice_sets()
        tokens = evaluation.n_contexts * self.context
        full = model_pass_flops(shape, shape.n_layers, self.context, True)
        passes = 1 + len(sets) + len(zero_sets)
        splice = tokens * sum(d.forward_flops_per_token for ds in sets.values() for d in ds)
        parts = {f"{passes} full passes (1 clean, {len(sets)} spliced, {len(zero_sets)} zero-ablated)": passes
                 * tokens * full, "the spliced dictionaries": splice}  # fmt: skip
        rows = evaluation.batch_size * self.context
        largest = max(d.d_sae for ds in sets.values() for d in ds)
        device = (
            self.model_bytes
            + sum(d.params * FLOAT32 for ds in sets.values() for d in ds)
            + LOGIT_COPIES * rows * shape.vocab * FLOAT32
            + SPLICED_BYTES_PER_FEATURE * rows * largest
        )
        n_dicts = sum(len(ds) for ds in sets.values())
        return Stage(
            name, model_flops=passes * tokens * full, dictionary_flops=splice, device_bytes=device,
            host_bytes=self.load_bytes, dominant=_dominant(parts), parts=parts,
            io=f"{n_dicts} dictionaries loaded at once ({tokens:,} held-out tokens)",
        )  # fmt: skip

    # -- case studies --------------------------------------------------------------------------

    def circuit_dictionaries(self) -> dict[int, DictShape]:
        """The transcoders the circuits use (case_studies.common.circuit_transcoders)."""
        profile = self.cfg.profile
        if profile.published_transcoder_layers:
            return {layer: published_dictionary(self.cfg) for layer in profile.published_transcoder_layers}
        return {
            layer: grid_dictionary(self.cfg, "transcoder")
            for layer in profile.dictionaries.layers_of("transcoder")
        }

    def _paths_flops(self, study: CaseStudyConfig, layer: int, transcoders: dict[int, DictShape], t: int):
        """Attribution context (one spliced pass on the prompt), then one attribution per expanded
        node: a pullback W_dec v for every transcoder at or below the node's layer."""
        shape = self.shape
        nodes = 1 + (study.search.n_iterations - 1) * study.search.n_branches
        pullbacks = sum(2 * d.d_sae * d.d_out for at, d in transcoders.items() if at <= layer)
        heads = layer * shape.n_heads * t * 4 * shape.d_model * shape.d_head  # OV per head and source
        context = t * (model_pass_flops(shape, shape.n_layers, t, True)
                       + sum(d.forward_flops_per_token for d in transcoders.values()))  # fmt: skip
        return context + nodes * (pullbacks + heads), nodes

    def stage_case_study(self, name: str, study_name: str) -> Stage:
        study = self.cfg.case_study[study_name]
        try:
            settings = settings_for(self.cfg, study, study_name)
        except ValueError:
            return Stage(name, dominant=f"not configured for {self.cfg.profile.name}: writes a note")
        transcoders = self.circuit_dictionaries()
        memory = self.model_bytes + sum(d.params * FLOAT32 for d in transcoders.values())
        if study.analysis == "greater_than":
            parts = self.greater_than_parts(study, settings, transcoders)
        else:
            parts = self.feature_study_parts(study, settings, transcoders)
        model = sum(v for k, v in parts.items() if not k.startswith("dictionary"))
        return Stage(
            name, model_flops=model, dictionary_flops=sum(parts.values()) - model, device_bytes=memory,
            host_bytes=max(self.load_bytes, memory), dominant=_dominant(parts), parts=parts,
        )  # fmt: skip

    def greater_than_parts(self, study: CaseStudyConfig, settings, transcoders: dict[int, DictShape]):
        """case_studies.greater_than.run_greater_than, counted step by step (its module docstring)."""
        shape, n = self.shape, N_PROMPT_GREATER_THAN
        if self.cfg.profile.corpus is None:
            t = prompt_tokens("The war lasted from 1732 to 17")
        else:
            t = prompt_tokens("The siege lasted from the year 1732 to the year 17")
        tokens = n * t

        def full(count: int) -> float:
            return count * tokens * model_pass_flops(shape, shape.n_layers, t, True)

        def upto(layer: int, count: int = 1) -> float:
            return count * tokens * model_pass_flops(shape, layer + 1, t, False)

        # an unset layer is chosen from the data: count the most expensive one (layer 0)
        layer = settings.layer if settings.layer is not None else 0
        distinct = 1 if settings.layer is not None else 2
        dictionary = transcoders.get(layer) or next(iter(transcoders.values()))
        n_max = min(settings.n_components, max(dictionary.d_sae, shape.d_mlp))
        later = shape.n_layers - layer - 1
        # one evaluation of the blocks after the layer, per n and kind, on every prompt token
        after = (
            tokens * (later * 2 * shape.block_params + 2 * later * t * shape.d_model)
            + n * 2 * shape.d_model * 100
        )

        def curves(protocols: int) -> float:
            return protocols * (upto(layer) + 2 * (n_max + 1) * after)

        def basics() -> float:  # spliced, removed, ranking (encodes at the last token only)
            return full(2) + upto(layer)

        choose = full(1 + 2 * len(transcoders) + 1) + sum(upto(at) for at in transcoders)
        scores = distinct * basics() + (full(1) if settings.feature is not None else 0.0)
        resamples = settings.n_prompt_resamples * (full(1) + basics() + curves(1))
        paths, _ = self._paths_flops(study, layer, transcoders, t)
        effects = N_TOP_FEATURES * 4 * shape.d_model * shape.vocab
        dictionary_work = (distinct + 1) * tokens * dictionary.forward_flops_per_token + 2 * distinct * (
            tokens * dictionary.encode_flops_per_token
        )
        return {
            f"choosing the layer ({2 * len(transcoders) + 2} full passes)": choose,
            f"curves (2 protocols x 2 kinds x {n_max + 1} n, blocks after layer {layer})": curves(2),
            "scores spliced / removed / ablated": scores,
            f"prompt resamples ({settings.n_prompt_resamples})": resamples,
            "paths (attribution per node) and effects": paths + effects,
            "dictionary encodes and splices": dictionary_work,
        }

    def feature_study_parts(self, study: CaseStudyConfig, settings, transcoders: dict[int, DictShape]):
        """case_studies.feature.run_feature_study, counted step by step."""
        shape = self.shape
        organism = self.cfg.profile.corpus is not None
        layer = settings.layer if settings.layer is not None else max(transcoders)
        texts = settings.prompts + settings.contrast_prompts
        t = max((prompt_tokens(text) for text in texts), default=CORPUS_PROMPT_TOKENS)
        n_prompts = len(texts) if texts else 2 * settings.n_prompts
        parts: dict[str, float] = {}
        if study.blind:
            rows = shape.vocab * sum(PROBE_TOKENS)
            parts["blind token probes (every vocabulary token, 2 probes)"] = rows * model_pass_flops(
                shape, layer + 1, max(PROBE_TOKENS), False
            )
        paths, nodes = self._paths_flops(study, layer, transcoders, t)
        parts["paths (attribution per node)"] = paths
        spliced = sum(d.forward_flops_per_token for d in transcoders.values())
        parts[f"ablation check ({nodes} nodes) and splices"] = (
            (nodes + 2 + 2 * n_prompts) * t * (model_pass_flops(shape, shape.n_layers, t, True) + spliced)
        )
        if organism:  # the root's selection and the dashboard over labelled held-out contexts
            tokens = HELDOUT_CONTEXTS * self.context
            parts["selection and dashboard scans"] = (
                2 * tokens * model_pass_flops(shape, max(transcoders) + 1, self.context, False)
            )
            parts["dictionary encodes of the scans"] = (
                2 * tokens * sum(d.encode_flops_per_token for d in transcoders.values())
            )
        return parts

    # -- the rest --------------------------------------------------------------------------------

    def stage_report(self, name: str) -> Stage:
        return Stage(name, dominant="writes REPORT.md (no model work)")

    def stage_study_analysis(self, name: str) -> Stage:
        study = self.cfg.profile.study
        return Stage(name, dominant=f"ratings and {study.n_bootstrap:,} bootstrap draws (no model work)")

    def stage_study_packet(self, name: str) -> Stage:
        study, shape = self.cfg.profile.study, self.shape
        tokens = max(1, study.n_tokens // self.context) * self.context
        arms = [grid_dictionary(self.cfg, "transcoder"), grid_dictionary(self.cfg, "sae_mlp_in")]
        passes = 3 * tokens * model_pass_flops(shape, study.layer + 1, self.context, False)
        encodes = 2 * tokens * sum(d.encode_flops_per_token for d in arms)
        parts = {"3 passes to the study layer": passes, "2 encodes per arm": encodes}
        chunk = study.batch_size * self.context * max(d.d_sae for d in arms)
        device = self.model_bytes + sum(d.params * FLOAT32 for d in arms) + 2 * chunk * FLOAT32
        kept = (
            tokens * shape.d_model * FLOAT32 + chunk * (FLOAT32 + 2) + 2 * tokens * study.n_per_arm * FLOAT32
        )
        host = max(self.load_bytes, kept)
        return Stage(
            name, model_flops=passes, dictionary_flops=encodes, device_bytes=device, host_bytes=host,
            dominant=_dominant(parts), parts=parts, io=f"{tokens:,} scanned tokens",
        )  # fmt: skip

    # -- the text source ---------------------------------------------------------------------------

    def text_reach(self) -> dict[str, Any] | None:
        """How far into the text source a run reads: documents and, at `documents_per_file`, files."""
        source = self.cfg.profile.text
        if source is None:
            return None
        grid, profile = self.cfg.profile.dictionaries, self.cfg.profile
        per_document = self.settings.tokens_per_document + 1  # each document is led by one BOS

        def documents(tokens: int) -> int:
            contexts = math.ceil(tokens / self.context)  # every context: BOS + context - 1 text tokens
            return math.ceil(contexts * (self.context - 1) / per_document)

        training_tokens = grid.training.n_steps * grid.training.batch_size + grid.harvest.buffer_tokens
        heldout_tokens = max(
            profile.evaluation.n_contexts * self.context,
            max(1, profile.study.n_tokens // self.context) * self.context,
        )
        training_documents = documents(training_tokens)
        last = max(training_documents, source.heldout_skip_documents + documents(heldout_tokens))
        return {
            "repo": source.repo,
            "revision": source.revision,
            "files_glob": source.files,
            "training_tokens": training_tokens,
            "training_documents": training_documents,
            "heldout_skip_documents": source.heldout_skip_documents,
            "heldout_tokens": heldout_tokens,
            "last_document": last,
            "files": math.ceil(last / self.settings.documents_per_file),
            "training_reaches_heldout": training_documents > source.heldout_skip_documents,
        }


# -- throughput and timing ------------------------------------------------------------------------


def matmul_throughput(d_in: int, d_sae: int, rows: int, repeats: int) -> float:
    """FLOP/s of this CPU on a float32 [rows, d_in] @ [d_in, d_sae] product: best of `repeats`
    timed products after one untimed one (torch's default threads)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(rows, d_in, generator=generator)
    b = torch.randn(d_in, d_sae, generator=generator)
    a @ b
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * rows * d_in * d_sae / best


def buffer_bandwidth(d: int, hooks: int, capacity: int, incoming_rows: int) -> float:
    """Bytes/s at which the real ShuffleBuffer copies on this machine: it is fed 3 x its capacity of
    random rows (`hooks` hooks of width d) in batches of `incoming_rows`, and its modelled copies
    (`buffer_copy_bytes`) are divided by the time it took."""
    from transcoder_lab.dictionaries.activations import ShuffleBuffer

    generator = torch.Generator().manual_seed(0)
    pool = [
        {f"h{i}": torch.randn(incoming_rows, d, generator=generator) for i in range(hooks)} for _ in range(4)
    ]
    n_incoming = max(4, 3 * capacity // incoming_rows)
    buffer = ShuffleBuffer(capacity, incoming_rows, seed=0)
    start = time.perf_counter()
    for _ in buffer(pool[i % len(pool)] for i in range(n_incoming)):
        pass
    seconds = time.perf_counter() - start
    modelled = buffer_copy_bytes(
        capacity, incoming_rows, n_incoming, hooks * d * FLOAT32, incoming_rows, True
    )
    return modelled / seconds


class OtherCpu:
    """The share of the machine's CPU that other processes used while a part ran (/proc/stat busy
    time minus this process's own), so a timing taken beside other jobs says so; None without
    /proc/stat."""

    def __init__(self) -> None:
        self.start = self._read()

    @staticmethod
    def _read() -> tuple[float, float, float] | None:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        except (OSError, ValueError):
            return None
        busy = (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return time.perf_counter(), busy, usage.ru_utime + usage.ru_stime

    def share(self) -> float | None:
        end = self._read()
        if self.start is None or end is None or end[0] <= self.start[0]:
            return None
        other = (end[1] - self.start[1]) - (end[2] - self.start[2])
        return max(0.0, other) / ((end[0] - self.start[0]) * (os.cpu_count() or 1))


def human_seconds(seconds: float) -> str:
    if seconds <= 0:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s"


def human_bytes(size: float) -> str:
    return "-" if size <= 0 else f"{size / GB:.2f}" if size < 10 * GB else f"{size / GB:.0f}"


@dataclass
class Rates:
    cpu: float  # measured float32 matmul FLOP/s of this CPU
    host_copy: float  # measured bytes/s of the shuffle buffer's copies on this CPU
    gpu_fp32: float  # assumed FLOP/s (datasheet x utilisation)
    gpu_tf32: float
    gpu_bf16: float

    def cpu_seconds(self, stage: Stage) -> float:
        return stage.flops / self.cpu + stage.host_copy_bytes / self.host_copy

    def gpu_seconds(self, stage: Stage, fp32: float) -> float:
        """GPU matmul time; the host's buffer copies are printed apart (they add to it: training
        synchronises every step, so the host's work does not overlap the GPU's)."""
        model_rate = self.gpu_bf16 if stage.autocast else fp32
        return stage.model_flops / model_rate + stage.dictionary_flops / fp32

    def copy_seconds(self, stage: Stage) -> float:
        return stage.host_copy_bytes / self.host_copy


# -- the check ------------------------------------------------------------------------------------


def _timed_steps(trainers: list, batches: list[dict[str, torch.Tensor]]) -> float:
    """One untimed warm-up step (bias initialisation included), then the rest timed."""
    for trainer in trainers:
        trainer.initialise_biases(batches[0])
        trainer.step(batches[0], 0)
    start = time.perf_counter()
    for step, batch in enumerate(batches[1:], start=1):
        for trainer in trainers:
            trainer.step(batch, step)
    return time.perf_counter() - start


def run_check(name: str, overrides: list[str], rate: float, args: argparse.Namespace) -> dict[str, Any]:
    """Real DictionaryTrainer steps of the smoke budget's first cell on random activations of the
    profile's shapes, timed against the FLOP estimate at the measured throughput."""
    import tempfile

    from transcoder_lab.dictionaries import DictionarySpec
    from transcoder_lab.dictionaries.training import DictionaryJob, DictionaryTrainer, job_seeds

    cfg = load_config(compose([f"profile={name}", "budget=smoke", *overrides]))
    grid = cfg.profile.dictionaries
    layer, arm = parse_cell(grid.cells[0])
    shape = grid_dictionary(cfg, arm)
    k = grid.topk_k[0] if ARMS[arm].architecture == "topk" else None
    spec = DictionarySpec(
        ARMS[arm].kind, layer, shape.d_in, shape.d_sae, shape.d_out, ARMS[arm].architecture, k, shape.skip
    )
    generator = torch.Generator().manual_seed(1)
    hooks = sorted({spec.hook_in, spec.hook_out})

    def random_batches(rows: int, n: int) -> list[dict[str, torch.Tensor]]:
        return [
            {hook: torch.randn(rows, shape.d_in, generator=generator) for hook in hooks} for _ in range(n)
        ]

    l1_values = grid.l1_coefficients[: max(1, args.check_l1_values)]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [DictionaryJob(spec, l1, Path(tmp) / f"l1_{l1:g}") for l1 in l1_values]
        seeds = job_seeds(jobs, grid.training.seed)
        points = [("smoke batch", grid.training.batch_size, jobs, seeds)]
        if args.check_batch:
            points.append(("larger batch", args.check_batch, jobs[:1], seeds[:1]))
        for label, rows, point_jobs, point_seeds in points:
            trainers = [
                DictionaryTrainer(job, grid.training, seed, "cpu")
                for job, seed in zip(point_jobs, point_seeds, strict=True)
            ]
            batches = random_batches(rows, args.check_steps + 1)
            other = OtherCpu()
            measured = _timed_steps(trainers, batches)
            flops = args.check_steps * rows * len(trainers) * shape.train_flops_per_token
            results[label] = {
                "cell": grid.cells[0], "dictionaries": len(trainers), "batch": rows,
                "steps": args.check_steps, "flops": flops, "estimated_s": flops / rate,
                "measured_s": measured, "ratio": measured / (flops / rate), "other_cpu": other.share(),
            }  # fmt: skip
            del trainers
    return results


# -- output ---------------------------------------------------------------------------------------


def grouped(stages: list[Stage]) -> list[tuple[str, Stage]]:
    """Consecutive instances of one stage with identical estimates as one row, every instance named:
    (label, stage)."""

    def key(stage: Stage) -> tuple:
        return stage.name.split("@")[0], stage.flops, stage.device_bytes, stage.host_bytes, stage.dominant

    runs: list[list[Stage]] = []
    for stage in stages:
        if runs and "@" in stage.name and "@" in runs[-1][0].name and key(stage) == key(runs[-1][0]):
            runs[-1].append(stage)
        else:
            runs.append([stage])
    rows = []
    for run in runs:
        if len(run) == 1:
            rows.append((run[0].name, run[0]))
            continue
        items = ", ".join(stage.name.split("@", 1)[1] for stage in run)
        rows.append((f"{run[0].name.split('@')[0]}@{{{items}}} ({len(run)} instances, each)", run[0]))
    return rows


def print_report(
    label: str, cfg: Config, stages: list[Stage], estimator: Estimator, rates: Rates,
    args: argparse.Namespace, other_cpu: float | None,
) -> None:  # fmt: skip
    shape, grid = estimator.shape, cfg.profile.dictionaries
    d_sae = grid.expansion_factor * shape.d_model
    print(f"# Per-stage estimates: profile {label}")
    print(
        f"model: {cfg.profile.model.pretrained_name or cfg.profile.name}, {shape.n_layers} layers, "
        f"d_model {shape.d_model}, d_mlp {shape.d_mlp}, vocab {shape.vocab:,} ({shape.n_params / 1e6:.0f}M "
        f"parameters in TransformerLens, {estimator.model_bytes / GB:.2f} GB float32); dictionaries d_sae "
        f"{d_sae:,} x {len(grid.l1_coefficients)} L1 values per cell; {grid.training.n_steps:,} steps x "
        f"{grid.training.batch_size:,} tokens; device {cfg.profile.device}"
    )
    share = f"; other processes used {other_cpu:.0%} of the CPU meanwhile" if other_cpu is not None else ""
    print(
        f"this CPU, measured now: {rates.cpu / 1e9:.1f} GFLOP/s (float32 [{args.matmul_rows}, "
        f"{shape.d_model}] x [{shape.d_model}, {d_sae}], best of {args.repeats}, {torch.get_num_threads()} "
        f"threads); shuffle-buffer copies {rates.host_copy / 1e9:.2f} GB/s (the real ShuffleBuffer, "
        f"{args.buffer_rows:,} rows x 2 hooks x {shape.d_model}){share}"
    )
    autocast = grid.harvest.autocast_dtype
    line = (
        f"GPU (assumed): float32 {args.gpu_tflops:g} TFLOP/s x utilisation {args.utilisation:g} = "
        f"{rates.gpu_fp32 / 1e12:.1f} TFLOP/s (CUDA cores: PyTorch's default uses no TF32)"
    )
    if args.tf32_tflops:
        line += f"; column 'GPU tf32': {args.tf32_tflops:g} x {args.utilisation:g}, if TF32 were allowed"
    if autocast:
        line += f"; harvesting under {autocast} autocast at {args.bf16_tflops:g} x {args.utilisation:g}"
    print(line)
    header = ["stage", "FLOPs", "this CPU", "GPU fp32"]
    header += ["GPU tf32"] if args.tf32_tflops else []
    header += ["host copies", "GPU GB", "host GB", "what dominates"]
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    totals = {"cpu": 0.0, "fp32": 0.0, "tf32": 0.0, "copies": 0.0}
    for stage in stages:
        totals["cpu"] += rates.cpu_seconds(stage)
        totals["fp32"] += rates.gpu_seconds(stage, rates.gpu_fp32)
        totals["tf32"] += rates.gpu_seconds(stage, rates.gpu_tf32) if args.tf32_tflops else 0.0
        totals["copies"] += rates.copy_seconds(stage)
    for name, stage in grouped(stages):
        what = stage.dominant + (f"; {stage.io}" if stage.io else "")
        row = [name, f"{stage.flops:.2e}" if stage.flops else "-", human_seconds(rates.cpu_seconds(stage))]
        row.append(human_seconds(rates.gpu_seconds(stage, rates.gpu_fp32)))
        row += [human_seconds(rates.gpu_seconds(stage, rates.gpu_tf32))] if args.tf32_tflops else []
        copies = rates.copy_seconds(stage)
        copied = f"{human_seconds(copies)} ({stage.host_copy_bytes / 1e12:.1f} TB)" if copies else "-"
        row += [copied, human_bytes(stage.device_bytes)]
        row += [human_bytes(stage.host_bytes), what]
        print("| " + " | ".join(row) + " |")
    row = ["**every stage, one after another**", f"{sum(stage.flops for stage in stages):.2e}"]
    row += [human_seconds(totals["cpu"]), human_seconds(totals["fp32"])]
    row += [human_seconds(totals["tf32"])] if args.tf32_tflops else []
    row += [human_seconds(totals["copies"]), "", "", "peak memory: the largest stage's"]
    print("| " + " | ".join(row) + " |")
    print(
        "\nthis CPU: matmul FLOPs at the measured rate plus the host copies. GPU columns: matmul time "
        "only; the host copies (this CPU's rate; the GPU machine's host may be faster) add to them, as "
        "training synchronises every step. GPU GB: the device that runs the model and trains (on a CPU "
        "run it adds to host GB); GB = 1e9 bytes; PyTorch's caching allocator reserves somewhat more."
    )
    reach = estimator.text_reach()
    if reach is not None:
        print(
            f"\ntext: {reach['repo']}@{reach['revision']}, files '{reach['files_glob']}' in name order. "
            f"Training reads ~{reach['training_tokens']:,} tokens per cell, ~{reach['training_documents']:,} "
            f"documents at {args.tokens_per_document:g} tokens per document (an assumption); the held-out "
            f"set ({reach['heldout_tokens']:,} tokens at most) starts after "
            f"{reach['heldout_skip_documents']:,} documents, so the reader reaches document "
            f"~{reach['last_document']:,}: the first {reach['files']} file(s) at "
            f"{args.documents_per_file:,} documents per file (an assumption; the first file's row count "
            "gives the real one)."
        )
        if reach["training_reaches_heldout"]:
            print("WARNING: the training stream reaches the held-out documents (heldout_skip_documents).")


def estimate_profile(
    name: str, overrides: list[str], settings: Settings
) -> tuple[Config, Estimator, list[Stage]]:
    """The composed config, its estimator and every dvc.yaml stage instance's estimate."""
    raw = compose([f"profile={name}", *overrides])
    cfg = load_config(raw)
    estimator = Estimator(cfg, settings)
    stages = [estimator.estimate(stage, instance) for stage, instance in stage_instances(raw)]
    return cfg, estimator, stages


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add = parser.add_argument
    add("profile", help="a profile in conf/profile/ (gpt2_small, pythia_410m, pythia_1_4b, ...)")
    add("overrides", nargs="*", help="Hydra overrides, e.g. budget=smoke")
    add("--gpu-tflops", type=float, default=51.0, help="GPU float32 TFLOP/s, dense (H100 PCIe; SXM/H200: 67)")
    add("--tf32-tflops", type=float, default=378.0, help="GPU TF32 TFLOP/s, dense, 'if allowed' (0: omit)")
    add("--bf16-tflops", type=float, default=756.0, help="GPU bf16 TFLOP/s, dense, for an autocast harvest")
    add("--utilisation", type=float, default=0.5, help="the share of the GPU's peak reached")
    add("--matmul-rows", type=int, default=None, help="rows of the measured CPU matmul (default: auto)")
    add("--repeats", type=int, default=3, help="timed CPU matmuls (the best is kept)")
    add("--buffer-rows", type=int, default=32_768, help="capacity of the measured shuffle buffer")
    add("--vocab", type=int, default=None, help="the vocabulary, for a model not known here")
    add("--tokens-per-document", type=float, default=1100.0, help="text source (OpenWebText: ~1,000-1,100)")
    add("--documents-per-file", type=int, default=100_000, help="per parquet file (an assumption)")
    add("--check", action="store_true", help="also time real trainer steps on this CPU")
    add("--check-l1-values", type=int, default=2, help="dictionaries of the smoke cell timed together")
    add("--check-steps", type=int, default=2, help="timed steps (after one untimed warm-up step)")
    add("--check-batch", type=int, default=1024, help="batch of a second timing, one dictionary (0: skip)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    settings = Settings(args.vocab, args.tokens_per_document, args.documents_per_file)
    cfg, estimator, stages = estimate_profile(args.profile, args.overrides, settings)
    d, d_sae = (
        cfg.profile.model.d_model,
        cfg.profile.dictionaries.expansion_factor * cfg.profile.model.d_model,
    )
    other = OtherCpu()
    if args.matmul_rows is None:  # >= 5 GFLOP a product where the batch allows: small ones mislead
        batch = cfg.profile.dictionaries.training.batch_size
        args.matmul_rows = min(batch, max(256, math.ceil(5e9 / (2 * d * d_sae))))
    cpu = matmul_throughput(d, d_sae, args.matmul_rows, args.repeats)
    harvested = cfg.profile.dictionaries.harvest.batch_contexts * estimator.context
    copy = buffer_bandwidth(d, 2, max(args.buffer_rows, 2 * harvested), harvested)
    util = args.utilisation
    rates = Rates(cpu, copy, args.gpu_tflops * 1e12 * util, args.tf32_tflops * 1e12 * util,
                  args.bf16_tflops * 1e12 * util)  # fmt: skip
    label = " ".join([args.profile, *args.overrides])
    print_report(label, cfg, stages, estimator, rates, args, other.share())
    result: dict[str, Any] = {
        "profile": args.profile, "stages": stages, "rates": rates, "text": estimator.text_reach(),
    }  # fmt: skip
    if args.check:
        check = run_check(args.profile, args.overrides, cpu, args)
        print("\n## FLOP counts checked against the CPU smoke run (real DictionaryTrainer steps)")
        print(
            "| timing | dictionaries | batch | timed steps | matmul FLOPs | estimate at the measured rate "
            "| measured | measured / estimate | other CPU use |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for name, c in check.items():
            share = f"{c['other_cpu']:.0%}" if c["other_cpu"] is not None else "n/a"
            print(
                f"| {name} ({c['cell']}) | {c['dictionaries']} | {c['batch']:,} | {c['steps']} "
                f"| {c['flops']:.2e} | {c['estimated_s']:.2f} s | {c['measured_s']:.2f} s | {c['ratio']:.2f} "
                f"| {share} |"
            )
        print(
            "measured / estimate: how much longer real steps take than their matrix products at the measured "
            "rate (Adam, decoder renormalisation and gradient projection, L1, ReLU, firing counters). That "
            "work is per step or per batch element, so the ratio falls as the batch grows."
        )
        fit = per_step_fit(check, cpu, cfg)
        if fit is not None:
            print(
                f"fitted per dictionary and step, time = a + b x batch: a = {fit['a_s']:.2f} s (per-step "
                f"work), b = {fit['b_s'] * 1e3:.2f} ms per token ({fit['b_over_matmul']:.2f} x the matmul "
                f"estimate); at the profile's batch of {fit['batch']:,} the ratio would be "
                f"{fit['ratio_at_batch']:.2f}."
            )
            check["fit"] = fit
        result["check"] = check
    return result


def per_step_fit(check: dict[str, Any], rate: float, cfg: Config) -> dict[str, float] | None:
    """The two timings as time per dictionary and step = a + b x batch, and the ratio that gives at
    the profile's own batch size; None without two batch sizes."""
    points = [c for c in check.values() if isinstance(c, dict) and "batch" in c]
    if len(points) < 2 or points[0]["batch"] == points[1]["batch"]:
        return None
    (b1, t1), (b2, t2) = (
        (c["batch"], c["measured_s"] / (c["steps"] * c["dictionaries"])) for c in points[:2]
    )
    b = (t2 - t1) / (b2 - b1)
    a = max(0.0, t1 - b * b1)
    per_token = points[0]["flops"] / (points[0]["steps"] * points[0]["dictionaries"] * b1) / rate
    batch = cfg.profile.dictionaries.training.batch_size
    return {
        "a_s": a, "b_s": b, "b_over_matmul": b / per_token, "batch": batch,
        "ratio_at_batch": (a + b * batch) / (per_token * batch),
    }  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
