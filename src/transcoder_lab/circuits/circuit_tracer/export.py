"""Export a set of our transcoders (one per layer) in the layout circuit-tracer 0.5.0 loads.

circuit-tracer (Hanna, Piotrowski, Lindsey, Ameisen) builds attribution graphs from per-layer
transcoders. Its Python source (circuit_tracer/transcoder/single_layer_transcoder.py: the ReLU
transcoder, `load_relu_transcoder`, `load_transcoder_set`; utils/hf_utils.py: the hub config) was
read for the layout below; nothing of it is imported here (it cannot be installed beside our pinned
transformers and huggingface-hub). Its ReLU transcoder computes

    f = ReLU(x W_enc^T + b_enc),   y = f W_dec + b_dec (+ x W_skip^T)

with W_enc [d_transcoder, d_model] (transposed from ours), W_dec [d_transcoder, d_model],
b_enc [d_transcoder], b_dec [d_model] (the *output* bias: it has no input pre-bias) and W_skip
[d_model, d_model]. Ours (transcoder_lab.dictionaries) is `f = ReLU((x - b_dec) W_enc + b_enc)`,
`y = f W_dec + b_dec_out (+ x W_skip)`, W_enc [d_in, d_sae].

Steps:
1. Load every dictionary (`load_dictionary`: safetensors and JSON only, never a pickle) and check
   that the set is one circuit-tracer accepts: ReLU transcoders only (its loader knows ReLU and
   JumpReLU: a TopK transcoder would load as ReLU and compute something else; an SAE is not a
   transcoder), d_in == d_out (it has one d_model), layers 0..n-1 each exactly once, one d_sae,
   one model, the same hooks at every layer.
2. Convert each: W_enc -> W_enc^T; b_enc -> b_enc - b_dec W_enc (our pre-bias folded in, as in the
   sae-lens files); W_dec unchanged; b_dec <- b_dec_out; W_skip -> W_skip^T. All row-major and
   contiguous, so circuit-tracer's lazy loading can read single decoder rows (`get_slice`).
3. Write `layer_<L>.safetensors` per layer (tensors W_enc, W_dec, b_enc, b_dec, + W_skip), each
   atomically (transcoder_lab.io), removing layer files of an earlier, larger export; then write
   `config.yaml` last: `model_kind: transcoder_set`, `model_name`, `feature_input_hook` and
   `feature_output_hook` (relative to `blocks.L`, as circuit-tracer hooks `blocks.{L}.{hook}`),
   `scan`, and a `transcoder_lab` section with the provenance. A folder with config.yaml is
   complete (circuit-tracer's own cache uses the same marker). Uploaded as a hub repo, the folder
   is what circuit-tracer's `load_transcoder_from_hub` reads (config.yaml, then `layer_*.safetensors`);
   locally, `load_transcoder_set(circuit_tracer_paths(folder), scan, input_hook, output_hook)`.

Caveat: our transcoders were trained on TransformerLens's processed model (fold_ln,
center_writing_weights, ...). `ln2.hook_normalized` is the same with or without processing, but
circuit-tracer's `ReplacementModel.from_pretrained_and_transcoders` loads the model with
center_writing_weights=False, so its `hook_mlp_out` also carries the per-token mean over d_model
that our transcoders (trained on centred MLP outputs) do not predict. LayerNorm removes that mean
before anything reads it, so attributions are unchanged, but circuit-tracer's error nodes hold it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from transcoder_lab import io
from transcoder_lab.dictionaries import Dictionary, load_dictionary, load_dictionary_spec

CONFIG_FILENAME = "config.yaml"
LAYER_PATTERN = "layer_{}.safetensors"
TENSOR_NAMES = ("W_enc", "W_dec", "b_enc", "b_dec")  # + "W_skip" for skip-transcoders
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ExportError(ValueError):
    """The dictionaries do not form a transcoder set circuit-tracer can load."""


def layer_filename(layer: int) -> str:
    return LAYER_PATTERN.format(layer)


def relative_hook(hook: str, layer: int) -> str:
    """`blocks.3.ln2.hook_normalized` -> `ln2.hook_normalized`: circuit-tracer prefixes `blocks.{L}.`."""
    prefix = f"blocks.{layer}."
    if not hook.startswith(prefix):
        raise ExportError(f"hook {hook!r} of layer {layer} is not inside {prefix!r}")
    return hook.removeprefix(prefix)


def circuit_tracer_tensors(
    dictionary: Dictionary, dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """One transcoder's tensors under circuit-tracer's names and orientation (step 2)."""
    with torch.no_grad():
        tensors = {
            "W_enc": dictionary.W_enc.T,  # [d_sae, d_in]: circuit-tracer applies F.linear(x, W_enc, b_enc)
            "W_dec": dictionary.W_dec,  # [d_sae, d_out]
            "b_enc": dictionary.effective_encoder_bias(),  # no input pre-bias there: fold ours in
            "b_dec": dictionary.b_dec_out,  # circuit-tracer's b_dec is the output bias
        }
        if dictionary.W_skip is not None:
            tensors["W_skip"] = dictionary.W_skip.T  # [d_out, d_in]: it computes x @ W_skip.T
        return {name: t.detach().to("cpu", dtype).contiguous() for name, t in tensors.items()}


def check_transcoder_set(dictionaries: Mapping[int, Dictionary]) -> None:
    """Raise ExportError unless circuit-tracer can load these as one transcoder set (step 1)."""
    if not dictionaries:
        raise ExportError("no dictionaries to export")
    problems = []
    for layer, dictionary in sorted(dictionaries.items()):
        spec = dictionary.spec
        if spec.layer != layer:
            problems.append(f"the dictionary given for layer {layer} is of layer {spec.layer}")
        if not spec.is_transcoder:
            problems.append(f"layer {layer}: a {spec.kind.value} dictionary is not a transcoder")
        elif spec.architecture != "relu":
            problems.append(
                f"layer {layer}: architecture {spec.architecture!r}; circuit-tracer's loader has ReLU "
                "and JumpReLU only, so a TopK transcoder would load as a ReLU one with other outputs"
            )
        if spec.d_in != spec.d_out:
            problems.append(f"layer {layer}: d_in {spec.d_in} != d_out {spec.d_out} (one d_model there)")
    layers = sorted(dictionaries)
    if layers != list(range(len(layers))):
        problems.append(f"circuit-tracer needs layers 0..n-1 each once; got layers {layers}")
    for field in ("d_sae", "d_in", "skip", "model_name"):
        values = {getattr(d.spec, field) for d in dictionaries.values()}
        if len(values) > 1:
            problems.append(f"the layers disagree on {field}: {sorted(values, key=str)}")
    hooks = {
        (relative_hook(d.spec.hook_in, d.spec.layer), relative_hook(d.spec.hook_out, d.spec.layer))
        for d in dictionaries.values()
    }
    if len(hooks) > 1:
        problems.append(f"the layers read or write different hooks: {sorted(hooks)}")
    if problems:
        raise ExportError("cannot export as a circuit-tracer transcoder set:\n- " + "\n- ".join(problems))


def export_dictionaries(
    dictionaries: Mapping[int, Dictionary],
    out_dir: str | Path,
    model_name: str | None = None,
    scan: str | None = None,
    dtype: torch.dtype = torch.float32,
    sources: Mapping[int, str] | None = None,
) -> Path:
    """Write in-memory transcoders (layer -> Dictionary) to `out_dir` (steps 2-3); returns config.yaml."""
    check_transcoder_set(dictionaries)
    out_dir = Path(out_dir)
    first = dictionaries[0].spec
    model_name = model_name or first.model_name
    if not model_name:
        raise ExportError(
            "the dictionaries name no model; pass model_name (circuit-tracer's config needs it)"
        )
    config: dict[str, Any] = {
        "model_kind": "transcoder_set",
        "model_name": model_name,
        "feature_input_hook": relative_hook(first.hook_in, 0),
        "feature_output_hook": relative_hook(first.hook_out, 0),
        # circuit-tracer's hub loader replaces `scan` with the repo's name; a local load passes its own.
        "scan": scan or f"transcoder_lab/{model_name}",
        "transcoder_lab": {
            "d_model": first.d_in,
            "d_transcoder": first.d_sae,
            "n_layers": len(dictionaries),
            "skip_connection": first.skip,
            "dtype": str(dtype).removeprefix("torch."),
            "pre_bias_folded_into_b_enc": True,
            "trained_on": "TransformerLens processed weights (fold_ln, center_writing_weights, "
            "center_unembed, fold_value_biases)",
            "sources": {layer: str(path) for layer, path in sorted((sources or {}).items())},
        },
    }
    config_text = yaml.safe_dump(config, sort_keys=False)  # serialise before touching the folder

    out_dir.mkdir(parents=True, exist_ok=True)
    # Not complete until config.yaml is rewritten; stale layer files would join a hub-style glob.
    (out_dir / CONFIG_FILENAME).unlink(missing_ok=True)
    wanted = {layer_filename(layer) for layer in dictionaries}
    for stale in out_dir.glob(LAYER_PATTERN.format("*")):
        if stale.name not in wanted:
            stale.unlink()
    for layer, dictionary in sorted(dictionaries.items()):
        tensors = circuit_tracer_tensors(dictionary, dtype)
        io.write_safetensors(out_dir / layer_filename(layer), tensors, metadata={"format": "pt"})
    io.write_text(out_dir / CONFIG_FILENAME, config_text)
    return out_dir / CONFIG_FILENAME


def export_transcoder_set(
    dictionary_dirs_by_layer: Mapping[int, str | Path],
    out_dir: str | Path,
    model_name: str | None = None,
    scan: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Export saved transcoders (layer -> directory written by save_dictionary); returns config.yaml."""
    dictionaries = {layer: load_dictionary(path) for layer, path in dictionary_dirs_by_layer.items()}
    sources = {layer: str(path) for layer, path in dictionary_dirs_by_layer.items()}
    return export_dictionaries(dictionaries, out_dir, model_name, scan, dtype, sources)


def read_export_config(out_dir: str | Path) -> dict[str, Any]:
    path = Path(out_dir) / CONFIG_FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {out_dir} is not a complete export")
    return yaml.safe_load(path.read_text())


def circuit_tracer_paths(out_dir: str | Path) -> dict[int, str]:
    """The `transcoder_paths` argument of circuit-tracer's `load_transcoder_set` for an export."""
    config = read_export_config(out_dir)
    n_layers = config["transcoder_lab"]["n_layers"]
    return {layer: str(Path(out_dir) / layer_filename(layer)) for layer in range(n_layers)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m transcoder_lab.circuits.circuit_tracer.export",
        description="Export transcoders saved by transcoder_lab (one directory per layer, layers 0..n-1; "
        "each directory's cfg.json names its layer) for circuit-tracer 0.5.0's load_transcoder_set.",
    )
    parser.add_argument("out_dir", type=Path, help="folder for config.yaml and layer_<L>.safetensors")
    parser.add_argument("dictionaries", type=Path, nargs="+", help="dictionary directories, any order")
    parser.add_argument("--model-name", help="the model's name (default: the one the dictionaries record)")
    parser.add_argument("--scan", help="circuit-tracer's scan identifier (default: transcoder_lab/<model>)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    args = parser.parse_args(argv)

    try:
        by_layer: dict[int, Path] = {}
        for path in args.dictionaries:
            layer = load_dictionary_spec(path).layer
            if layer in by_layer:
                raise ExportError(f"{path} and {by_layer[layer]} are both of layer {layer}")
            by_layer[layer] = path
        config = export_transcoder_set(by_layer, args.out_dir, args.model_name, args.scan, DTYPES[args.dtype])
    except (ExportError, OSError, ValueError) as error:
        print(f"circuit_tracer.export: {error}", file=sys.stderr)
        return 1
    print(f"wrote {len(by_layer)} layers and {config}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
