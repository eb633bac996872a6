"""Export a cross-layer transcoder (dictionaries/crosslayer.py) as circuit-tracer's `load_clt` reads it.

circuit-tracer's CLT (circuit_tracer/transcoder/cross_layer_transcoder.py: `CrossLayerTranscoder`,
`load_clt`, `_load_state_dict`; activation_functions.py: `JumpReLU`) was read for the layout below;
nothing of it is imported (see export.py). Its CLT computes, per layer l and output layer l' >= l,

    f_l = act(x_l W_enc_l^T + b_enc_l),   y_l' = sum_{l <= l'} f_l W_dec_l[:, l' - l] + b_dec_l'

with act = ReLU, or JumpReLU `f * (f > threshold_l)` when the files hold thresholds. It reads a
folder of, for each layer l in 0..n-1:
- `W_enc_<l>.safetensors`: `W_enc_<l>` [d_transcoder, d_model], `b_enc_<l>` [d_transcoder],
  `b_dec_<l>` [d_model] (the *output* bias of layer l: it has no input pre-bias), and, for JumpReLU,
  `threshold_<l>` [d_transcoder] (present in layer 0's file switches the whole CLT to JumpReLU);
- `W_dec_<l>.safetensors`: `W_dec_<l>` [d_transcoder, n_layers - l, d_model], index j writing to
  layer l + j (read row by row with `get_slice` when lazy).
n_layers is the number of `W_enc_*.safetensors` files in the folder, so stale files must not stay.

Steps:
1. Check that circuit-tracer can load it: one d_model (d_in == d_out), a model name.
2. Convert, per layer: W_enc_l -> W_enc_l^T; b_enc_l -> b_enc_l - b_dec_l W_enc_l (our pre-bias
   folded in, which leaves every pre-activation, hence the JumpReLU comparison, unchanged);
   b_dec_<l> <- b_dec_out_l; threshold_<l> <- exp(log_threshold_l); W_dec_<l> unchanged.
3. Remove config.yaml and every `W_enc_*` / `W_dec_*` file, write the layer files atomically, then
   `config.yaml` last: `model_kind: cross_layer_transcoder`, `model_name`, `feature_input_hook` and
   `feature_output_hook` (relative to `blocks.L`), `scan`, and a `transcoder_lab` provenance section,
   which is what circuit-tracer's hub loader reads beside the safetensors files. Locally:
   `load_clt(folder, feature_input_hook="ln2.hook_normalized", feature_output_hook="hook_mlp_out")`.
export.py's caveat about centre_writing_weights holds here too.

Checked against circuit-tracer 0.5.0 itself (opt-in, in its own environment:
tests/circuits/circuit_tracer/test_export_crosslayer.py, ReLU and JumpReLU): `load_clt` (lazy and
not) encodes and decodes as our CLT does, and its `attribute` on a ReplacementModel holding the CLT
gives our `full_graph`'s features, activations and adjacency, to float32 rounding (~1e-6 absolute
for features and reconstructions, ~3e-7 of the largest edge). What differs, and what to watch:
- the hooks are not in the safetensors files: `load_clt` takes them as arguments and defaults to
  `feature_input_hook="hook_resid_mid"` and `dtype=torch.bfloat16`. Left at those defaults it
  would encode the un-normalised residual stream (wrong features, no error raised) in bfloat16;
  pass our hooks (config.yaml records them) and float32;
- no input pre-bias there: ours is folded into b_enc, exact up to float32 rounding;
- its CLT may hold a skip term `W_skip` [n_layers, d_model, d_model]; ours has none and none is
  written, so it loads with `skip_connection=False`, as ours computes;
- in attribution it zeroes every feature and the error at position 0 and its embedding node lacks
  W_pos, as for per-layer transcoders (full_graph.py's docstring); elsewhere the graphs agree;
- its `decode` / `compute_reconstruction` sizes the output by the last position holding an active
  feature (`pos_ids.max() + 1`), so positions after it are missing, not zero (in attribution the
  error vectors then fail to broadcast); nothing to change on our side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from transcoder_lab import io
from transcoder_lab.circuits.circuit_tracer.export import CONFIG_FILENAME, ExportError, relative_hook
from transcoder_lab.dictionaries.crosslayer import CrossLayerTranscoder, load_crosslayer

ENCODER_PATTERN = "W_enc_{}.safetensors"
DECODER_PATTERN = "W_dec_{}.safetensors"


def crosslayer_tensors(
    clt: CrossLayerTranscoder, layer: int, dtype: torch.dtype = torch.float32
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Layer `layer`'s encoder-file and decoder-file tensors under circuit-tracer's names (step 2)."""
    with torch.no_grad():
        encoder = {
            f"W_enc_{layer}": clt.W_enc[layer].T,  # [d_sae, d_model]: it computes x W_enc^T
            f"b_enc_{layer}": clt.effective_encoder_bias()[layer],  # no input pre-bias there
            f"b_dec_{layer}": clt.b_dec_out[layer],  # its b_dec is the output bias
        }
        if clt.log_threshold is not None:
            encoder[f"threshold_{layer}"] = clt.log_threshold[layer].exp()
        decoder = {f"W_dec_{layer}": clt.W_dec[layer]}  # [d_sae, n_layers - layer, d_model]
        convert = lambda tensors: {n: t.detach().to("cpu", dtype).contiguous() for n, t in tensors.items()}  # noqa: E731
        return convert(encoder), convert(decoder)


def export_crosslayer(
    clt: CrossLayerTranscoder,
    out_dir: str | Path,
    model_name: str | None = None,
    scan: str | None = None,
    dtype: torch.dtype = torch.float32,
    source: str | Path | None = None,
) -> Path:
    """Write `clt` to `out_dir` in circuit-tracer's CLT layout (steps 1-3); returns config.yaml."""
    spec = clt.spec
    if spec.d_in != spec.d_out:
        raise ExportError(
            f"circuit-tracer's CLT has one d_model; this one has d_in {spec.d_in} != d_out {spec.d_out}"
        )
    model_name = model_name or spec.model_name
    if not model_name:
        raise ExportError("the CLT names no model; pass model_name (circuit-tracer's config needs it)")
    config: dict[str, Any] = {
        "model_kind": "cross_layer_transcoder",
        "model_name": model_name,
        "feature_input_hook": relative_hook(spec.hooks_in[0], 0),
        "feature_output_hook": relative_hook(spec.hooks_out[0], 0),
        "scan": scan or f"transcoder_lab/{model_name}-clt",
        "transcoder_lab": {
            "n_layers": spec.n_layers,
            "d_model": spec.d_in,
            "d_transcoder": spec.d_sae,
            "recipe": spec.recipe.value,
            "activation_function": "jump_relu" if spec.jumprelu else "relu",
            "dtype": str(dtype).removeprefix("torch."),
            "pre_bias_folded_into_b_enc": True,
            "source": str(source) if source is not None else None,
        },
    }
    config_text = yaml.safe_dump(config, sort_keys=False)  # serialise before touching the folder

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / CONFIG_FILENAME).unlink(missing_ok=True)  # incomplete until config.yaml is rewritten
    for stale in [*out_dir.glob(ENCODER_PATTERN.format("*")), *out_dir.glob(DECODER_PATTERN.format("*"))]:
        stale.unlink()  # circuit-tracer counts the W_enc_* files to find n_layers
    for layer in range(spec.n_layers):
        encoder, decoder = crosslayer_tensors(clt, layer, dtype)
        io.write_safetensors(out_dir / ENCODER_PATTERN.format(layer), encoder, metadata={"format": "pt"})
        io.write_safetensors(out_dir / DECODER_PATTERN.format(layer), decoder, metadata={"format": "pt"})
    io.write_text(out_dir / CONFIG_FILENAME, config_text)
    return out_dir / CONFIG_FILENAME


def export_crosslayer_dir(
    clt_dir: str | Path,
    out_dir: str | Path,
    model_name: str | None = None,
    scan: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Export a CLT saved by `save_crosslayer` (JSON and safetensors only); returns config.yaml."""
    return export_crosslayer(load_crosslayer(clt_dir), out_dir, model_name, scan, dtype, source=clt_dir)
