"""Full attribution graphs of the case studies' prompts: size, pruning and circuit-tracer's scores.

For each case study of a profile, the prompt of its beam-search graph (the token ids the case
study recorded) gets a full graph (`circuits.full_graph`: every active transcoder feature, error
and embedding node, with circuit-tracer's salient-logit targets), pruned at circuit-tracer's
default thresholds (node 0.8, edge 0.98), and its replacement and completeness scores
(`circuits.graph_scores`). Needs the profile's case-study results (`dvc repro`).

Run from the repository root: `python benchmarks/full_graph_scores.py [--profile organism]`.
"""

import argparse
import json

import torch

from transcoder_lab.case_studies import graph_of
from transcoder_lab.case_studies.common import circuit_transcoders
from transcoder_lab.circuits import AttributionContext, full_graph, graph_summary
from transcoder_lab.config import load_profile
from transcoder_lab.paths import results_dir
from transcoder_lab.sources.models import load_model
from transcoder_lab.stage import pin_cpu_threads


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", default="organism")
    args = parser.parse_args()
    cfg = load_profile(args.profile)
    pin_cpu_threads(cfg.profile.cpu_threads)
    model = load_model(cfg.profile, cfg.paths.models)
    transcoders = circuit_transcoders(cfg)
    print("| case study | tokens | active features | nodes kept (of all) | replacement | completeness |")
    print("|---|---|---|---|---|---|")
    for name in cfg.case_study:
        path = results_dir(cfg) / "case_studies" / f"{name}.json"
        if not path.exists():
            continue
        study_graph = graph_of(json.loads(path.read_text()))
        if study_graph is None:
            continue
        tokens = torch.tensor(study_graph[0]["metadata"]["token_ids"])
        s = graph_summary(full_graph(AttributionContext.from_tokens(model, transcoders, tokens)))
        nodes = f"{s['n_nodes_kept']} ({s['n_nodes']})"
        row = [name, s["n_tokens"], s["n_active_features"], nodes,
               f"{s['replacement_score']:.3f}", f"{s['completeness_score']:.3f}"]  # fmt: skip
        print("| " + " | ".join(str(cell) for cell in row) + " |")


if __name__ == "__main__":
    main()
