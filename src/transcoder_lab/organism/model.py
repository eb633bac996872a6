"""The organism as a plain GPT-2-architecture module, for training; analysis loads it into TransformerLens.

Why a second implementation: TransformerLens spells LayerNorm, GELU-new, the attention mask and
the cross-entropy as separate elementwise passes (about 65% of a CPU training step went to them,
35% to matrix products). Here each is one fused kernel (`F.layer_norm`, `F.gelu(approximate="tanh")`,
`F.scaled_dot_product_attention`, `F.cross_entropy`), Q, K and V come from one product, and the loss
unembeds only the positions it scores; a step takes about half the time.

The parameters carry TransformerLens's names and shapes for its unprocessed GPT-2 model
(`embed.W_E` [d_vocab, d_model], `blocks.{i}.attn.W_Q` [n_heads, d_model, d_head], ...), so
`state_dict()` is what `transcoder_lab.sources.models.build_processed_model` loads; the organism
stage checks that the loaded, processed model gives the same log-probabilities (to 1e-4).

The forward pass, for tokens t of length T:
    x = W_E[t] + W_pos[:T]
    for each block:  x = x + Attn(LN1(x));  x = x + W_out^T gelu_new(W_in^T LN2(x) + b_in) + b_out
    logits = LN_final(x) W_U + b_U
with Attn the causal softmax(q k^T / sqrt(d_head)) v of each head, summed through W_O.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from transcoder_lab.config import ModelConfig

LAYER_NORM_EPS = 1e-5  # TransformerLens's default, GPT-2's value


class LayerNorm(nn.Module):
    def __init__(self, d_model: int):
        super().__init__()
        self.w = nn.Parameter(torch.ones(d_model))
        self.b = nn.Parameter(torch.zeros(d_model))

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        return F.layer_norm(x, self.w.shape, self.w, self.b, LAYER_NORM_EPS)


class Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_head: int):
        super().__init__()
        # Registration order is TransformerLens's (see init_weights).
        self.W_Q = nn.Parameter(torch.empty(n_heads, d_model, d_head))
        self.W_O = nn.Parameter(torch.empty(n_heads, d_head, d_model))
        self.b_Q = nn.Parameter(torch.zeros(n_heads, d_head))
        self.b_O = nn.Parameter(torch.zeros(d_model))
        self.W_K = nn.Parameter(torch.empty(n_heads, d_model, d_head))
        self.W_V = nn.Parameter(torch.empty(n_heads, d_model, d_head))
        self.b_K = nn.Parameter(torch.zeros(n_heads, d_head))
        self.b_V = nn.Parameter(torch.zeros(n_heads, d_head))

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        batch, pos, d_model = x.shape
        n_heads, _, d_head = self.W_Q.shape
        # One product for q, k and v: [d_model, (3 n_heads d_head)], columns ordered (q|k|v, head, d_head).
        W_QKV = torch.cat([self.W_Q, self.W_K, self.W_V]).permute(1, 0, 2).reshape(d_model, -1)
        b_QKV = torch.cat([self.b_Q, self.b_K, self.b_V]).reshape(-1)
        qkv = torch.addmm(b_QKV, x.reshape(batch * pos, d_model), W_QKV)
        q, k, v = qkv.view(batch, pos, 3 * n_heads, d_head).transpose(1, 2).split(n_heads, dim=1)
        z = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [batch, head, pos, d_head]
        z = z.transpose(1, 2).reshape(batch * pos, n_heads * d_head)
        return torch.addmm(self.b_O, z, self.W_O.reshape(n_heads * d_head, d_model)).view(batch, pos, d_model)


class MLP(nn.Module):
    def __init__(self, d_model: int, d_mlp: int):
        super().__init__()
        self.W_in = nn.Parameter(torch.empty(d_model, d_mlp))
        self.b_in = nn.Parameter(torch.zeros(d_mlp))
        self.W_out = nn.Parameter(torch.empty(d_mlp, d_model))
        self.b_out = nn.Parameter(torch.zeros(d_model))

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        batch, pos, d_model = x.shape
        pre = torch.addmm(self.b_in, x.reshape(batch * pos, d_model), self.W_in)
        hidden = F.gelu(pre, approximate="tanh")  # GELU-new
        return torch.addmm(self.b_out, hidden, self.W_out).view(batch, pos, d_model)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1 = LayerNorm(cfg.d_model)
        self.ln2 = LayerNorm(cfg.d_model)
        self.attn = Attention(cfg.d_model, cfg.n_heads, cfg.d_head)
        self.mlp = MLP(cfg.d_model, cfg.d_mlp)

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class Embed(nn.Module):
    def __init__(self, d_vocab: int, d_model: int):
        super().__init__()
        self.W_E = nn.Parameter(torch.empty(d_vocab, d_model))


class PosEmbed(nn.Module):
    def __init__(self, n_ctx: int, d_model: int):
        super().__init__()
        self.W_pos = nn.Parameter(torch.empty(n_ctx, d_model))


class Unembed(nn.Module):
    def __init__(self, d_model: int, d_vocab: int):
        super().__init__()
        self.W_U = nn.Parameter(torch.empty(d_model, d_vocab))
        self.b_U = nn.Parameter(torch.zeros(d_vocab))


class OrganismModel(nn.Module):
    """GPT-2 architecture (pre-LayerNorm blocks, learned positions, GELU-new, causal attention)."""

    def __init__(self, cfg: ModelConfig, d_vocab: int):
        super().__init__()
        if cfg.act_fn != "gelu_new":
            raise ValueError(f"the organism's model implements act_fn gelu_new, not {cfg.act_fn!r}")
        self.embed = Embed(d_vocab, cfg.d_model)
        self.pos_embed = PosEmbed(cfg.n_ctx, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_final = LayerNorm(cfg.d_model)
        self.unembed = Unembed(cfg.d_model, d_vocab)

    def residual(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        """The final LayerNorm's output: what the unembedding reads."""
        x = F.embedding(tokens, self.embed.W_E) + self.pos_embed.W_pos[: tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.ln_final(x)

    def unembedded(self, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_vocab"]:
        flat = torch.addmm(self.unembed.b_U, x.reshape(-1, x.shape[-1]), self.unembed.W_U)
        return flat.view(*x.shape[:-1], -1)

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_vocab"]:
        return self.unembedded(self.residual(tokens))

    def next_token_loss(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, ""]:
        """Mean cross-entropy of each position's prediction of the next token. The last position
        predicts nothing, so its residual is dropped before the unembedding (the largest product)."""
        logits = self.unembedded(self.residual(tokens)[:, :-1])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))


def init_weights(model: OrganismModel, seed: int) -> None:
    """GPT-2 initialisation as TransformerLens draws it: every weight matrix (a parameter named
    W_*) from N(0, (0.8 / sqrt(d_model))^2), biases 0, LayerNorm scales 1, drawn in parameter
    registration order after seeding torch's generator with `seed`. The modules register their
    parameters in TransformerLens's order, so a seed gives the weights TransformerLens would start
    from (tests/organism/test_model.py checks it)."""
    std = 0.8 / math.sqrt(model.embed.W_E.shape[1])
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "W_" in name:
                nn.init.normal_(param, std=std)


def build_organism_model(cfg: ModelConfig, d_vocab: int, seed: int) -> OrganismModel:
    model = OrganismModel(cfg, d_vocab)
    init_weights(model, seed)
    return model
