"""circuit-tracer 0.5.0's own CLT code on a CLT written by `export_crosslayer`, opt-in: it runs in
circuit-tracer's Python environment (TRANSCODER_LAB_CIRCUIT_TRACER_PYTHON; see test_export.py for
how to build one). The layout itself, restated without circuit-tracer, is tested in
tests/dictionaries/test_crosslayer.py.

One circuit-tracer run per recipe (ReLU `l1_decoder_norm`, JumpReLU `tanh_jumprelu`) on a random
4-layer processed model (helpers.circuit_models.SMALL) and a random CLT of 32 features per layer,
every bias non-zero (the input pre-bias too, so folding it into b_enc matters) and every
cross-layer decoder non-zero:
(a) `load_clt(folder, "ln2.hook_normalized", "hook_mlp_out", dtype=float32)`, lazy and not, then
    its `encode` (all layers at once), `encode_layer` and `decode` on random MLP inputs, against
    our CLT in float64 on the same inputs: features and per-layer reconstructions;
(b) its `TransformerLensReplacementModel` with that CLT (built as `from_config` builds it, our
    processed weights loaded first) and `attribute(max_feature_nodes=None)`, against our
    `full_graph` of the same model, CLT, prompt and salient-logit options: the same logit targets,
    the same active features and activations, and the same adjacency.

Semantics, compared with ours (dictionaries/crosslayer.py, circuits/replacement.py): the same
hooks (the encoder of layer l reads `blocks.l.ln2.hook_normalized`, decoder j of layer l writes
into `blocks.(l + j).hook_mlp_out`), the same decoder layout, the same JumpReLU `p [p > theta]`
(theta = exp(log_threshold)), no skip term. Its b_dec is our b_dec_out; it has no input pre-bias,
which the export folds into b_enc (float32 rounding only). Differences by design, so left out of
(b)'s comparison: circuit-tracer zeroes every feature and the error at position 0 (its `zero_positions`;
ours are nodes), and its embedding node is W_E[token] without W_pos. Restricted to positions > 0 and
to feature and error sources, the two graphs are the same linear map, so their entries agree up to
rounding. A quirk of its `compute_reconstruction`, not a difference in semantics: it sizes the
output by the last position holding an active feature (`pos_ids.max() + 1`), so (a) makes sure the
last input row has one.

Tolerances. Ours is float64 throughout (the forward pass in the model's float32, then float64), so
its rounding (~1e-16) is negligible; theirs is float32 (unit roundoff u = 6e-8). (a): features and
reconstructions are O(1) sums of d_model = 64 (encoder) or n_layers x d_sae = 128 (decoder) float32
products of O(1) terms: random-order rounding gives ~sqrt(n) u |terms| ~ 1e-6, the worst-case
bound n u ~ 1e-5; we allow rtol = atol = 1e-5 (test_export.py's for per-layer transcoders). (b):
an edge is a float32 gradient pulled back through up to 4 attention and LayerNorm-backward steps
(each a d_model- or n_pos-term sum), then dotted with a decoder; per step the relative error
grows by ~sqrt(64) u, i.e. ~1e-6 of the largest entry after the pull-back (full_graph.py
measured 3.4e-7 for per-layer transcoders). We allow 1e-5 of the largest |entry|, an order above
that and still far below a real disagreement: our graph of the same CLT without its cross-layer
decoders differs from theirs by 0.2-0.3 of the largest entry, which the test checks stays above
100x the tolerance. Measured (circuit-tracer 0.5.0, torch 2.13.0, CPU): features 1.2e-6,
reconstructions 1.2e-6, graph activations 5.8e-7, adjacency 3.2e-7 (ReLU) and 2.4e-7 (JumpReLU) of
the largest entry.
"""

import json
import os
import subprocess

import pytest
import torch
from safetensors.torch import load_file, save_file

from transcoder_lab.circuits import AttributionContext, full_graph
from transcoder_lab.circuits.circuit_tracer.export_crosslayer import export_crosslayer
from transcoder_lab.dictionaries.crosslayer import CrossLayerSpec, CrossLayerTranscoder
from transcoder_lab.sources.models import parameter_state_dict

from helpers.circuit_models import SMALL, small_model, small_tokens

CIRCUIT_TRACER_PYTHON = os.environ.get("TRANSCODER_LAB_CIRCUIT_TRACER_PYTHON")
pytestmark = pytest.mark.skipif(
    CIRCUIT_TRACER_PYTHON is None, reason="set TRANSCODER_LAB_CIRCUIT_TRACER_PYTHON"
)

N_LAYERS, D_MODEL = SMALL["n_layers"], SMALL["d_model"]
D_SAE, N_ROWS, N_POS = 32, 16, 10
LOGITS = dict(max_n_logits=5, desired_logit_prob=0.95)
BATCH_SIZE = 64
FEATURE_TOLERANCE = 1e-5  # (a), rtol and atol
GRAPH_TOLERANCE = 1e-5  # (b), of the largest |entry|
CONFIG_FIELDS = ("n_layers", "d_model", "d_head", "n_heads", "d_mlp", "n_ctx", "d_vocab", "act_fn",
                 "normalization_type", "positional_embedding_type", "default_prepend_bos",
                 "seed")  # fmt: skip

RUN_CIRCUIT_TRACER = """
import json, sys, torch
from importlib.metadata import version
from safetensors.torch import load_file, save_file
from transformer_lens import HookedTransformerConfig
from circuit_tracer import attribute
from circuit_tracer.replacement_model.replacement_model_transformerlens import (
    TransformerLensReplacementModel,
)
from circuit_tracer.transcoder.cross_layer_transcoder import load_clt
folder = sys.argv[1]
meta = json.load(open(f"{folder}/meta.json"))
x = load_file(f"{folder}/x.safetensors")["x"]  # [layer, row, d_model]
out = {}
for lazy in (True, False):
    clt = load_clt(f"{folder}/export", meta["input_hook"], meta["output_hook"], device=torch.device("cpu"),
                   dtype=torch.float32, lazy_encoder=lazy, lazy_decoder=lazy)
    features = clt.encode(x)
    out[f"features_lazy{lazy}"] = features
    out[f"layer_features_lazy{lazy}"] = torch.stack([clt.encode_layer(x[l], l) for l in range(clt.n_layers)])
    out[f"outputs_lazy{lazy}"] = clt.decode(features)

class Tokenizer:  # what attribute() asks of one given token ids led by a special token
    def __init__(self, bos, vocab_size):
        self.bos_token_id, self.pad_token_id, self.eos_token_id = bos, None, None
        self.all_special_ids, self.vocab_size, self.padding_side = [bos], vocab_size, "right"
    def decode(self, ids):
        return str(ids.tolist() if hasattr(ids, "tolist") else ids)

model = TransformerLensReplacementModel(HookedTransformerConfig(**meta["model_config"]))
missing, unexpected = model.load_state_dict(load_file(f"{folder}/model.safetensors"), strict=False)
assert not unexpected and set(missing) <= {name for name, _ in model.named_buffers()}, (missing, unexpected)
model._configure_replacement_model(clt)  # what from_config does after cls(config)
tokens = torch.tensor(meta["tokens"])
model.tokenizer = Tokenizer(int(tokens[0]), model.cfg.d_vocab)
graph = attribute(tokens, model, max_feature_nodes=None, verbose=False, **meta["attribute"])
out |= {
    "adjacency": graph.adjacency_matrix,
    "active_features": graph.active_features[graph.selected_features],
    "activations": graph.activation_values,
    "logit_tokens": torch.tensor([t.vocab_idx for t in graph.logit_targets]),
    "logit_probabilities": graph.logit_probabilities,
}
save_file({k: v.detach().contiguous() for k, v in out.items()}, f"{folder}/circuit_tracer.safetensors")
print(version("circuit-tracer"), clt.n_layers, clt.d_transcoder, type(clt.activation_function).__name__)
"""


def random_clt(recipe: str) -> CrossLayerTranscoder:
    """A random float32 CLT over SMALL's layers, every bias non-zero; JumpReLU thresholds around 0.2
    (pre-activations here are ~N(b_enc, 1): LN2's output has norm sqrt(d_model), encoder columns 1)."""
    spec = CrossLayerSpec(N_LAYERS, D_MODEL, D_MODEL, D_SAE, recipe=recipe, model_name="small")
    g = torch.Generator().manual_seed(5)
    clt = CrossLayerTranscoder.initialise(spec, generator=g)
    with torch.no_grad():
        for bias in (clt.b_enc, clt.b_dec, clt.b_dec_out):
            bias.copy_(0.3 * torch.randn(bias.shape, generator=g))
        if clt.log_threshold is not None:
            clt.log_threshold.copy_(torch.log(0.2 * (1 + 0.5 * torch.rand(N_LAYERS, D_SAE, generator=g))))
    return clt


@pytest.fixture(scope="module", params=["l1_decoder_norm", "tanh_jumprelu"])
def run(request, tmp_path_factory):
    """(our CLT, MLP inputs x, our model, prompt, circuit-tracer's outputs) for one recipe."""
    folder = tmp_path_factory.mktemp(f"circuit_tracer_clt_{request.param}")
    clt = random_clt(request.param)
    export_crosslayer(clt, folder / "export")
    x = torch.randn(N_LAYERS, N_ROWS, D_MODEL, generator=torch.Generator().manual_seed(9))
    x[:, -1] *= 3  # the last row fires some feature (see the module docstring's quirk)
    save_file({"x": x}, folder / "x.safetensors")
    model, tokens = small_model(), small_tokens(N_POS)
    save_file(
        {k: v.contiguous() for k, v in parameter_state_dict(model).items()}, folder / "model.safetensors"
    )
    meta = {
        "input_hook": "ln2.hook_normalized",
        "output_hook": "hook_mlp_out",
        "model_config": {name: getattr(model.cfg, name) for name in CONFIG_FIELDS},
        "tokens": tokens.tolist(),
        "attribute": {**LOGITS, "batch_size": BATCH_SIZE},
    }
    (folder / "meta.json").write_text(json.dumps(meta))
    done = subprocess.run(
        [CIRCUIT_TRACER_PYTHON, "-c", RUN_CIRCUIT_TRACER, str(folder)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-4000:]
    print(f"circuit-tracer {done.stdout.strip()}")
    return clt, x, model, tokens, load_file(folder / "circuit_tracer.safetensors")


def max_difference(theirs: torch.Tensor, ours: torch.Tensor) -> float:
    return float((theirs.double() - ours).abs().max())


def test_circuit_tracer_loads_the_clt_and_computes_our_features_and_outputs(run):
    clt, x, _, _, theirs = run
    ours = clt.double()
    with torch.no_grad():
        z = ours.encode(x.double())
        y = ours.decode(z)
    assert (z[:, -1] > 0).any()
    for lazy in (True, False):
        for name, expected in (("features", z), ("layer_features", z), ("outputs", y)):
            got = theirs[f"{name}_lazy{lazy}"]
            difference = max_difference(got, expected)
            print(f"{clt.spec.recipe.value} lazy={lazy} {name}: max |difference| {difference:.2e}")
            assert got.dtype == torch.float32
            torch.testing.assert_close(got.double(), expected, rtol=FEATURE_TOLERANCE, atol=FEATURE_TOLERANCE)


def test_circuit_tracers_attribution_graph_equals_our_full_graph(run):
    clt, _, model, tokens, theirs = run
    graph = full_graph(AttributionContext.from_tokens(model, clt, tokens), batch_size=BATCH_SIZE, **LOGITS)
    assert [t.token for t in graph.targets] == theirs["logit_tokens"].tolist()
    probabilities = torch.tensor([t.weight for t in graph.targets], dtype=torch.float64)
    torch.testing.assert_close(theirs["logit_probabilities"].double(), probabilities, rtol=1e-5, atol=1e-6)

    # their features are ours without position 0, in the same (layer, position, feature) order
    after_bos = graph.active_features[:, 1] > 0
    (kept,) = torch.nonzero(after_bos, as_tuple=True)
    assert theirs["active_features"].tolist() == graph.active_features[kept].tolist()
    activation_difference = max_difference(theirs["activations"], graph.activations[kept])
    torch.testing.assert_close(
        theirs["activations"].double(),
        graph.activations[kept],
        rtol=FEATURE_TOLERANCE,
        atol=FEATURE_TOLERANCE,
    )

    def shared(graph) -> torch.Tensor:
        """The entries both graphs have: rows of features (positions > 0) and logits, columns of
        features and errors (positions > 0), in their order."""
        n_pos, n_targets = graph.n_pos, graph.n_targets
        errors = [graph.error_index(layer, p) for layer in range(N_LAYERS) for p in range(1, n_pos)]
        rows = torch.cat([kept, torch.arange(graph.n_nodes - n_targets, graph.n_nodes)])
        return graph.adjacency[rows][:, torch.cat([kept, torch.tensor(errors)])]

    n_theirs, n_pos = len(kept), graph.n_pos
    A_theirs = theirs["adjacency"].double()
    errors_theirs = [n_theirs + layer * n_pos + p for layer in range(N_LAYERS) for p in range(1, n_pos)]
    rows_theirs = torch.cat(
        [torch.arange(n_theirs), torch.arange(A_theirs.shape[0] - graph.n_targets, A_theirs.shape[0])]
    )
    theirs_shared = A_theirs[rows_theirs][:, torch.cat([torch.arange(n_theirs), torch.tensor(errors_theirs)])]
    scale = float(theirs_shared.abs().max())
    relative = max_difference(theirs_shared, shared(graph)) / scale

    # the check has teeth: our graph of the same CLT without its cross-layer decoders is far off
    without_cross = random_clt(clt.spec.recipe.value)
    with torch.no_grad():
        for decoders in without_cross.W_dec:
            decoders[:, 1:] = 0
    ablated = full_graph(
        AttributionContext.from_tokens(model, without_cross, tokens), batch_size=BATCH_SIZE, **LOGITS
    )
    assert [t.token for t in ablated.targets] == [t.token for t in graph.targets]
    assert torch.equal(ablated.active_features, graph.active_features)
    relative_ablated = max_difference(theirs_shared, shared(ablated)) / scale
    print(
        f"{clt.spec.recipe.value}: {n_theirs} features (ours {graph.n_features} with position 0), "
        f"{graph.n_targets} logits; max |activation difference| {activation_difference:.2e}; "
        f"adjacency: max |difference| / max |entry| {relative:.2e} (max |entry| {scale:.3g}); "
        f"without cross-layer decoders {relative_ablated:.2e}"
    )
    assert relative <= GRAPH_TOLERANCE < relative_ablated / 100
