# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Passive "caught"
#
# **The paper's claim.** GPT-2 small's tc8[235] fires on " caught" in "He was caught" (19.97) but
# hardly in "He caught the ball" (0.81): it needs the " was" before it. The paper traces it to a
# layer-7 feature (tc7[14382]) and the layer-0 " caught" feature (tc0[1636]), with the " was"
# context arriving through attention diffusely enough that greedy paths miss part of it.
#
# **Here**, the organism's corpus plants the same contrast (passive "was caught ... by" against
# active "caught the ..."). Each step below is one call of the library function the
# `case_study@caught` DVC stage runs (`run_feature_study` calls the same steps in this order).
# `TRANSCODER_LAB_PROFILE` / `TRANSCODER_LAB_ROOT` select another profile's or checkout's outputs.

# %% [markdown]
# ## 1. The model, the transcoders and the study's settings
# Circuits run on one transcoder per layer (the profile's `evaluation.splice_all_l1`). Torch's CPU
# thread count is pinned as in the stage, so the numbers match the stage's
# `results/<profile>/case_studies/caught.json`.

# %%
import matplotlib.pyplot as plt
import torch

from transcoder_lab.case_studies.common import circuit_transcoders, settings_for
from transcoder_lab.case_studies.feature import (
    activation_figure,
    attribute_root,
    choose_root,
    contribution_groups,
    dashboard_check,
    heldout_tokens,
    prompt_activations,
    search_circuit,
    study_prompts,
    verify_circuit,
)
from transcoder_lab.circuits import graph_figure, top_contributors
from transcoder_lab.notebooks import notebook_config
from transcoder_lab.sources.models import load_model
from transcoder_lab.stage import pin_cpu_threads

# the library picks matplotlib's headless backend when imported: show figures inline again
# %matplotlib inline
cfg = notebook_config()
pin_cpu_threads(cfg.profile.cpu_threads)
study = cfg.case_study["caught"]
settings = settings_for(cfg, study, "caught")
torch.manual_seed(0)
model = load_model(cfg.profile, cfg.paths.models)
transcoders = circuit_transcoders(cfg, model.cfg.device)
print(study.question)
print({f"tc{layer}": tc.spec.d_sae for layer, tc in transcoders.items()}, "features per transcoder")

# %% [markdown]
# ## 2. Pick the root by ground truth
# The transcoder feature whose activation best separates passive " caught" from every other token
# *and* from active " caught" (the smaller of the two AUROCs). On the organism: tc1[153], AUROC 1.000
# against both.

# %%
heldout = heldout_tokens(cfg, model)  # labelled held-out contexts (None without ground truth)
root = choose_root(settings, model, transcoders, heldout)
transcoder = transcoders[root.layer]
root.summary(settings)

# %% [markdown]
# ## 3. Activations: passive against active
# The paper's 19.97 against 0.81 in one pair of sentences; here the means over held-out prompts that
# end on a passive " caught" and on an active one (organism: 6.02 against 0.19).

# %%
prompts, contrast = study_prompts(model, heldout, settings)
activations = prompt_activations(model, transcoder, root.feature, prompts, contrast)
print("mean activation:", {key: activations[key] for key in ("prompts_mean", "contrast_mean")})
activation_figure(activations["prompts"], activations["contrast"], root.label)
plt.show()

# %% [markdown]
# ## 4. Attribute
# The root's exact direct inputs on its most active prompt. Both models put the " caught" token's own
# layer-0 features on top; the question is how " was" gets in.

# %%
circuit = attribute_root(model, transcoders, root, prompts, activations["prompts"])
print(repr("".join(circuit.str_tokens[1:])), f"activation {circuit.activation:.3f}")
for contributor in top_contributors(circuit.attribution, k=5):
    print(f"{contributor.value:+.3f}  {contributor.label}")

# %% [markdown]
# Summed by source: the root token's own features, attention from the root token and from other
# tokens (by the ground-truth label of the source token), the embedding, errors and biases.

# %%
contribution_groups(circuit.ctx, circuit.attribution, circuit.prompt.labels, heldout)

# %% [markdown]
# ## 5. Is the passive context read through attention?
# Compare attention from other tokens (by source label: `caught/passive_was` is the " was") with the
# root token's own features. On the organism " was" contributes +0.58 through attention, on top of
# about +7.6 from the " caught" token's features: small, but it is what the contrast needs.

# %%
groups = contribution_groups(circuit.ctx, circuit.attribution, circuit.prompt.labels, heldout)
{key: groups[key] for key in ("root_token_features", "attention_from_other_tokens", "embedding")}

# %% [markdown]
# ## 6. Beam search and the graph
# Each path is a chain of direct attributions from the root back to a source (a feature, a head,
# the embedding); the graph is the union of the best paths.
# Does a path from the " was" token survive the beam, or is it too diffuse, as in the paper?

# %%
search_circuit(circuit, study.search)
for path in circuit.paths[:5]:
    print(f"{path.value:+.3f}  " + " <- ".join(path.labels))
graph_figure(circuit.graph, circuit.str_tokens, f"{study.title}: {root.label}")
plt.show()

# %% [markdown]
# ## 7. Verify the graph by ablation
# How much of the root's activation the graph's edges add up to, and the Spearman correlation between
# each edge's attribution and the root's drop when its source is ablated (organism: 0.93).

# %%
verification = verify_circuit(model, transcoders, circuit)
{key: verification[key] for key in ("fraction_explained", "spearman")}

# %% [markdown]
# ## 8. The dashboard
# The top-activating held-out tokens and their ground-truth labels: all passive " caught" on the organism.

# %%
if heldout is not None:
    selected = root.selection.activations if root.selection is not None else None
    dashboard = dashboard_check(model, transcoder, root.feature, heldout, None, selected)
    print(dashboard)
