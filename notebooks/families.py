# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Dictionary families on the planted circuits
#
# Since the paper, attribution graphs moved from per-layer transcoders (PLTs) to cross-layer
# transcoders (CLTs): a CLT feature at layer l reads the MLP input of layer l and writes to the
# MLP outputs of every layer from l on. Lange et al. (2026) argue that this lets a CLT draw a
# computation that runs through several layers as a single feature, a "collapsed" path. The
# organism knows which earlier tokens each planted mechanism reads, so here the families' graphs
# can be compared with each other *and* with the ground truth.
#
# The `families` DVC stage (`transcoder_lab.case_studies.families.compare_families`) runs the steps
# below on every prompt of every mechanism and writes `results/<profile>/families.json` and a
# REPORT.md section; this notebook walks them on one prompt. Set `TRANSCODER_LAB_PROFILE` /
# `TRANSCODER_LAB_ROOT` to read another profile's or checkout's outputs (the tests run it on `tiny`).

# %%
import json

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from transcoder_lab.case_studies.common import labelled_heldout
from transcoder_lab.case_studies.families import (
    context_share,
    families_config,
    feature_means,
    hop_profile,
    matched_families,
    mechanism_prompts,
    path_lengths,
    prompt_measures,
)
from transcoder_lab.circuits import AttributionContext, full_graph, graph_scores, prune_graph
from transcoder_lab.notebooks import notebook_config
from transcoder_lab.paths import results_dir
from transcoder_lab.sources.models import load_model
from transcoder_lab.stage import pin_cpu_threads

# %matplotlib inline
cfg = notebook_config()
pin_cpu_threads(cfg.profile.cpu_threads)
settings = families_config(cfg)
model = load_model(cfg.profile, cfg.paths.models)
settings

# %% [markdown]
# ## 1. The families, matched on held-out L0
# The PLT is the per-layer transcoders the case studies use. The CLT is the profile's CLT whose
# total held-out L0 (summed over layers) is nearest the PLT's. Skip and TopK transcoders are trained
# at one layer only, so those two families are the PLT with that layer swapped.

# %%
families = matched_families(cfg, settings)
for family in families:
    by_layer = ", ".join(f"{value:.1f}" for value in family.l0_by_layer)
    print(f"{family.name:5s} total L0 {family.total_l0:6.1f} ({by_layer})  {family.dictionaries}")

# %% [markdown]
# ## 2. A mechanism's prompts and its planted context
# Held-out windows that end at a token the mechanism's case study targets; the planted context is
# the earlier tokens its labels mark (for citation: the citation's opening parenthesis).

# %%
heldout = labelled_heldout(cfg, model.tokenizer.bos_token_id)
mechanism = settings.mechanisms[0]
prompts, contexts = mechanism_prompts(cfg, heldout, mechanism, settings)
prompt, context = prompts[0], contexts[0]
tokens = [model.tokenizer.decode([t]) for t in prompt.tokens.tolist()]
print(mechanism, "|", "".join(f"[{tok}]" if p in context else tok for p, tok in enumerate(tokens)))

# %% [markdown]
# ## 3. One full graph per family, pruned, with its scores
# circuit-tracer's logit targets at the last token; pruning at circuit-tracer's defaults.

# %%
graphs = {}
for family in families:
    ctx = AttributionContext.from_tokens(model, family.replacement, prompt.tokens)
    graph = graphs[family.name] = full_graph(ctx)
    pruned = prune_graph(graph, settings.node_threshold, settings.edge_threshold)
    replacement, completeness = graph_scores(graph)
    kept = int(pruned.node_mask[: graph.n_features].sum())
    print(
        f"{family.name:5s} {graph.n_features:5d} active features, {kept:3d} kept, "
        f"{int(pruned.edge_mask.sum()):5d} edges; replacement {replacement:.2f}, "
        f"completeness {completeness:.2f}"
    )

# %% [markdown]
# ## 4. Hop structure
# The influence series w N + w N^2 + ... split by its terms: term k is carried by paths through
# exactly k features. Its part at the embeddings is what the input tokens send through k features.

# %%
figure, axis = plt.subplots(figsize=(6, 3.5))
width = 0.8 / len(families)
for i, family in enumerate(families):
    embeddings, _ = hop_profile(graphs[family.name])
    mean, multi_hop, by_k = path_lengths(embeddings)
    axis.bar(np.arange(len(by_k)) + (i - 1.5) * width, by_k, width, label=f"{family.name} (mean {mean:.2f})")
axis.set(xlabel="features on the path", ylabel="share of the input tokens' influence")
axis.legend()
plt.show()

# %% [markdown]
# ## 5. Ground truth: does the influence come from the planted context?

# %%
for family in families:
    share, chance = context_share(hop_profile(graphs[family.name])[0], context)
    print(f"{family.name:5s} context share {share:.2f} (chance {chance:.2f})")

# %% [markdown]
# ## 6. Everything the stage measures on this prompt, faithfulness by intervention included
# Sufficiency and necessity of the pruned graph's features for the top logit, live, under mean
# ablation (means over the mechanism's prompts), beside random feature sets of the same size.

# %%
for family in families:
    means = feature_means(model, family, prompts)
    measures = prompt_measures(model, family, prompt, context, means, settings, settings.seed)
    print(family.name, {key: round(value, 3) for key, value in measures.items() if isinstance(value, float)})

# %% [markdown]
# ## 7. The stage's result over every prompt
# Intervals are paired bootstrap intervals over prompts; the verdicts were fixed in the module
# before the run.

# %%
saved = results_dir(cfg) / "families.json"
if saved.exists() and json.loads(saved.read_text()).get("compared"):
    display(Markdown((results_dir(cfg) / "families.md").read_text()))
else:
    print(f"{saved} is not there yet: `dvc repro families` writes it")
