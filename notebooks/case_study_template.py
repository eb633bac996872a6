# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Template: a new case study
#
# Copy this notebook and `conf/case_study/template.yaml` under your study's name, list the config
# in `conf/config.yaml`'s defaults (`- case_study@case_study.<name>: <name>`), run `make params`,
# and `dvc repro case_study@<name> notebooks` runs it and executes this notebook. Then put your
# study's name in `STUDY` (and drop `OVERRIDES`, which only adds the template, not listed in
# conf/config.yaml), and replace the prose: the paper's claim and number, and what the organism
# shows. Each step is one call of the library function the stage runs
# (`transcoder_lab.case_studies.feature.run_feature_study`, same steps, same order); change a step
# and rerun from there. Steps the stage skips for your settings (no `blind`, no `replace_earlier`)
# can go.
#
# `TRANSCODER_LAB_PROFILE` / `TRANSCODER_LAB_ROOT` select another profile's or checkout's outputs.

# %% [markdown]
# ## 1. The model, the transcoders and the study's settings
# Circuits run on one transcoder per layer (the profile's `evaluation.splice_all_l1`). Torch's CPU
# thread count is pinned as in the stage, so the numbers match the stage's
# `results/<profile>/case_studies/<name>.json`.

# %%
import matplotlib.pyplot as plt
import torch

from transcoder_lab.case_studies.common import circuit_transcoders, settings_for
from transcoder_lab.case_studies.faithfulness import describe_evidence
from transcoder_lab.case_studies.feature import (
    activation_figure,
    attribute_root,
    blind_hypothesis,
    choose_root,
    circuit_evidence,
    contribution_groups,
    dashboard_check,
    heldout_tokens,
    prompt_activations,
    saved_step,
    search_circuit,
    study_prompts,
    token_swap,
    verify_circuit,
)
from transcoder_lab.circuits import graph_figure, top_contributors
from transcoder_lab.notebooks import notebook_config, say
from transcoder_lab.sources.models import load_model
from transcoder_lab.stage import pin_cpu_threads

STUDY = "template"
OVERRIDES = ["+case_study@case_study.template=template"]
# the library picks matplotlib's headless backend when imported: show figures inline again
# %matplotlib inline
# the blind probe is read from the stage's result when there is one; True computes it here
RECOMPUTE = False
cfg = notebook_config(OVERRIDES)
pin_cpu_threads(cfg.profile.cpu_threads)
study = cfg.case_study[STUDY]
settings = settings_for(cfg, study, STUDY)
torch.manual_seed(0)
model = load_model(cfg.profile, cfg.paths.models)
transcoders = circuit_transcoders(cfg, model.cfg.device)
print(study.question)
print({f"tc{layer}": tc.spec.d_sae for layer, tc in transcoders.items()}, "features per transcoder")

# %% [markdown]
# ## 2. Pick the root by ground truth, not by hand
# For every transcoder feature of the candidate layers: the AUROC of its activation for the target
# labels against every other held-out token, and against the contrast labels. The root maximises the
# smaller of the two (on gpt2_small: the configured `layer` and `feature`).

# %%
heldout = heldout_tokens(cfg, model)  # labelled held-out contexts (None without ground truth)
root = choose_root(settings, model, transcoders, heldout)
transcoder = transcoders[root.layer]
root.summary(settings)

# %% [markdown]
# ## 3. A blind hypothesis from the weights
# Before any activating example: the current tokens the feature wants, and the earlier tokens that
# raise it. Checked against the dashboard at the end. Like the stage, only when `blind: true`.

# %%
hypothesis = None  # the stage skips the probe unless the study is `blind`
if study.blind:
    hypothesis = None if RECOMPUTE else saved_step(cfg, STUDY, root, "blind.hypothesis")
    if hypothesis is None:  # no stage result for this root yet, or RECOMPUTE
        hypothesis = blind_hypothesis(model, transcoder, root.feature, study.probe_tokens)
    print(hypothesis["statement"])
    print("weights-only de-embedding:", hypothesis["de_embedding_tokens"])

# %% [markdown]
# ## 4. Activations on the study's prompts
# Prompts end on a target-label token (organism) or are the configured texts; contrast prompts the same.

# %%
prompts, contrast = study_prompts(model, heldout, settings)
activations = prompt_activations(model, transcoder, root.feature, prompts, contrast)
print("mean activation:", {key: activations[key] for key in ("prompts_mean", "contrast_mean")})
activation_figure(activations["prompts"], activations["contrast"], root.label)
plt.show()

# %% [markdown]
# ## 5. Attribute: where does the root's input come from?
# On the prompt where the root is most active, its exact direct attribution to every earlier
# transcoder feature, attention head, the embedding, the transcoders' errors and the biases.

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
# ## 6. Beam search and the graph
# Each path is a chain of direct attributions from the root back to a source; the graph is their union.

# %%
search_circuit(circuit, study.search)
for path in circuit.paths[:5]:
    print(f"{path.value:+.3f}  " + " <- ".join(path.labels))
graph_figure(circuit.graph, circuit.str_tokens, f"{study.title}: {root.label}")
plt.show()

# %% [markdown]
# ## 7. Verify the graph by ablation
# The graph's share of the root's activation, and the Spearman correlation between each edge's
# attribution and the root's drop when its source is ablated.

# %%
verification = verify_circuit(model, transcoders, circuit)
{key: verification[key] for key in ("fraction_explained", "spearman")}

# %% [markdown]
# ## 7b. Is the circuit faithful? Verdicts fixed before the run
# The graph's features alone (every other feature mean-ablated: sufficiency) and the graph's
# features removed (necessity), in the live model, against 20 random feature sets of the same size;
# the same on the study's first prompts, each with its own circuit; attribution against the effect
# of ablating each active feature alone; and the share of the root's attention-borne input that
# comes from the planted context tokens, with the root's loss when the attention from them is cut
# (organism studies with `context_labels`). The bars sit in the study's config
# (`faithfulness`); each verdict below is ok or BELOW, whichever it is. Read from the stage's result
# when it is for this root (`RECOMPUTE = True` computes them here, about a minute).

# %%
evidence = (
    {}
    if RECOMPUTE
    else {key: saved_step(cfg, STUDY, root, key) for key in ("faithfulness", "ground_truth", "contrastive")}
)
if evidence.get("faithfulness") is None:
    evidence = circuit_evidence(model, transcoders, root, prompts, circuit, heldout, settings, study)
say(
    f"On the `{cfg.profile.name}` profile:\n\n"
    + describe_evidence(evidence["faithfulness"], evidence.get("ground_truth"), evidence.get("contrastive"))
)

# %% [markdown]
# ## 8. Intervention
# With `replace_earlier: [old, new]` in the settings: every earlier `old` token becomes `new`.

# %%
if settings.replace_earlier:
    print(token_swap(model, transcoder, root.feature, prompts, settings.replace_earlier))

# %% [markdown]
# ## 9. The dashboard
# The top-activating held-out tokens and their ground-truth labels, against the hypothesis.

# %%
if heldout is not None:
    selected = root.selection.activations if root.selection is not None else None
    dashboard = dashboard_check(model, transcoder, root.feature, heldout, hypothesis, selected)
    print(dashboard)

# %% [markdown]
# ## Your analysis here
# Every step's output is a variable above (`root`, `activations`, `circuit`, ...); the library
# functions are in `transcoder_lab.case_studies` and `transcoder_lab.circuits`.
