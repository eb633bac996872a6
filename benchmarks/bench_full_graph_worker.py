"""circuit-tracer's side of bench_full_graph.py, run by circuit-tracer's own Python.

Standard library, torch, safetensors, transformer_lens and circuit_tracer only: this file never
imports transcoder_lab (circuit-tracer 0.5.0 cannot be installed beside our pins), and
bench_full_graph.py imports only `OtherCpu` from it.

    <circuit-tracer python> benchmarks/bench_full_graph_worker.py <case folder> <out folder>

The case folder (written by bench_full_graph.py) holds `case.json` (the processed model's config,
the prompt's token ids, thresholds, batch size, logit options, thread count, repeats),
`model.safetensors` (the processed model's parameters) and `transcoders/` (written by
`circuits.circuit_tracer.export`, or by `export_crosslayer` when case.json's `transcoder_kind` is
"clt"). Steps: set torch's thread count; build a TransformerLensReplacementModel the way its
`from_config` does, with our weights loaded before the replacement is configured (`from_config`
offers no hook for weights); load the transcoders with `load_transcoder_set` (a CLT with
`load_clt`), fully in memory (lazy_encoder=lazy_decoder=False: ours are in memory too); run
`attribute()` (+ circuit-tracer's `prune_graph`) `warmup` times on the prompt's first tokens
(untimed), then `repeats` times on the prompt; write `timings.json` and the last graph's tensors
(`graph.safetensors`: adjacency, active features, selected features, logit targets, probabilities,
node mask).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path


class OtherCpu:
    """CPU time other processes spent while a part ran, as a share of the machine's capacity:
    busy time of the whole machine (/proc/stat) minus this process's (and finished children's) own
    CPU time, over wall time x cores. None where /proc/stat is missing."""

    def __init__(self) -> None:
        self.start = self._read()

    @staticmethod
    def _read() -> tuple[float, float, float] | None:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        except (OSError, ValueError):
            return None
        machine_busy = (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
        usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        return time.perf_counter(), machine_busy, sum(u.ru_utime + u.ru_stime for u in usage)

    def share(self) -> float | None:
        end = self._read()
        if self.start is None or end is None:
            return None
        wall = end[0] - self.start[0]
        other = (end[1] - self.start[1]) - (end[2] - self.start[2])
        return max(0.0, other) / (max(wall, 1e-9) * (os.cpu_count() or 1))


class StubTokenizer:
    """What attribute() asks of a tokenizer when given token ids: the special ids (the prompt's
    first token is one, so no BOS is prepended), the vocabulary size and `decode` (labels only)."""

    def __init__(self, bos: int, vocab_size: int) -> None:
        self.bos_token_id, self.pad_token_id, self.eos_token_id = bos, None, None
        self.all_special_ids = [bos]
        self.vocab_size = vocab_size
        self.padding_side = "right"  # TransformerLens's forward reads it as a default

    def decode(self, ids) -> str:
        ids = ids.tolist() if hasattr(ids, "tolist") else ids
        return " ".join(f"<{i}>" for i in (ids if isinstance(ids, list) else [ids]))


def main(case_dir: str, out_dir: str) -> int:
    import torch
    from circuit_tracer import attribute
    from circuit_tracer.graph import prune_graph
    from circuit_tracer.replacement_model.replacement_model_transformerlens import (
        TransformerLensReplacementModel,
    )
    from circuit_tracer.transcoder import load_transcoder_set
    from circuit_tracer.transcoder.cross_layer_transcoder import load_clt
    from safetensors.torch import load_file, save_file
    from transformer_lens import HookedTransformerConfig

    case_dir_p, out = Path(case_dir), Path(out_dir)
    case = json.loads((case_dir_p / "case.json").read_text())
    torch.set_num_threads(case["threads"])
    config = HookedTransformerConfig(**case["model_config"])
    model = TransformerLensReplacementModel(config)
    missing, unexpected = model.load_state_dict(load_file(case_dir_p / "model.safetensors"), strict=False)
    buffers = {name for name, _ in model.named_buffers()}
    if unexpected or set(missing) - buffers:
        raise SystemExit(f"weights do not fit: missing {missing}, unexpected {unexpected}")
    export = case_dir_p / "transcoders"
    hooks = ("ln2.hook_normalized", "hook_mlp_out")
    in_memory = dict(device=torch.device("cpu"), dtype=torch.float32, lazy_encoder=False, lazy_decoder=False)
    if case.get("transcoder_kind", "per_layer") == "clt":
        transcoders = load_clt(str(export), *hooks, scan="transcoder_lab/bench-clt", **in_memory)
    else:
        paths = {layer: str(export / f"layer_{layer}.safetensors") for layer in range(config.n_layers)}
        transcoders = load_transcoder_set(paths, "transcoder_lab/bench", *hooks, **in_memory)
    model._configure_replacement_model(transcoders)  # what from_config does after cls(config)
    tokens = torch.tensor(case["token_ids"])
    model.tokenizer = StubTokenizer(int(tokens[0]), config.d_vocab)

    def run(tokens):
        graph = attribute(
            tokens,
            model,
            max_n_logits=case["max_n_logits"],
            desired_logit_prob=case["desired_logit_prob"],
            batch_size=case["batch_size"],
            max_feature_nodes=None,
            offload=None,
            verbose=False,
        )
        return graph

    for _ in range(case["warmup"]):  # on a prefix of the prompt, as bench_full_graph.py's own warm-up
        graph = run(torch.tensor(case["warmup_token_ids"]))
        prune_graph(graph, case["node_threshold"], case["edge_threshold"])
    timings = []
    for _ in range(case["repeats"]):
        other = OtherCpu()
        cpu = time.process_time()
        start = time.perf_counter()
        graph = run(tokens)
        mid = time.perf_counter()
        node_mask, edge_mask, _ = prune_graph(graph, case["node_threshold"], case["edge_threshold"])
        end = time.perf_counter()
        timings.append(
            {
                "attribute_s": mid - start,
                "prune_s": end - mid,
                "cpu_s": time.process_time() - cpu,
                "other_cpu": other.share(),
            }
        )
    save_file(
        {
            "adjacency": graph.adjacency_matrix.contiguous(),
            "active_features": graph.active_features.contiguous(),
            "selected_features": graph.selected_features.contiguous(),
            "logit_tokens": torch.tensor([t.vocab_idx for t in graph.logit_targets]),
            "logit_probabilities": graph.logit_probabilities.contiguous(),
            "node_mask": node_mask.contiguous(),
        },
        out / "graph.safetensors",
    )
    from importlib.metadata import version

    info = {
        "timings": timings,
        "circuit_tracer": version("circuit-tracer"),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "n_edges_kept": int(edge_mask.sum()),
    }
    (out / "timings.json").write_text(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
