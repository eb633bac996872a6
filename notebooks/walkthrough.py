# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Walkthrough: one feature end to end
#
# **The paper's claim.** It follows tc8[89] on "Oh, that rifle model is a 6M", then asks how much
# of its activation survives when the MLPs before it are replaced by their transcoders: 7.52 clean,
# 5.81 with MLPs 1-7 spliced, 2.36 with MLPs 0-7 spliced. Replacing MLP0 hurts most: the layer-0
# transcoder (the "extended embedding") matters for everything after it.
#
# **Here**, the root is the feature most selective for the century token of the *second* year
# (" 17" in "from the year 1732 to the year 17") against the same token in the first year: only the
# context tells them apart. Each step is one call of the library function the
# `case_study@walkthrough` DVC stage runs (`run_feature_study`, same steps, same order).
# `TRANSCODER_LAB_PROFILE` / `TRANSCODER_LAB_ROOT` select another profile's or checkout's outputs.

# %% [markdown]
# ## 1. The model, the transcoders and the study's settings
# Circuits run on one transcoder per layer (the profile's `evaluation.splice_all_l1`). Torch's CPU
# thread count is pinned as in the stage, so the numbers match the stage's
# `results/<profile>/case_studies/walkthrough.json`.

# %%
import matplotlib.pyplot as plt
import torch

from transcoder_lab.case_studies.common import circuit_transcoders, settings_for
from transcoder_lab.case_studies.faithfulness import describe_evidence
from transcoder_lab.case_studies.feature import (
    activation_figure,
    attribute_root,
    choose_root,
    circuit_evidence,
    contribution_groups,
    dashboard_check,
    heldout_tokens,
    prompt_activations,
    saved_step,
    search_circuit,
    splice_experiment,
    study_prompts,
    verify_circuit,
)
from transcoder_lab.circuits import graph_figure, top_contributors
from transcoder_lab.notebooks import notebook_config, say
from transcoder_lab.sources.models import load_model
from transcoder_lab.stage import pin_cpu_threads

# the library picks matplotlib's headless backend when imported: show figures inline again
# %matplotlib inline
# the faithfulness verdicts are read from the stage's result when there is one; True computes them here
RECOMPUTE = False
cfg = notebook_config()
PROFILE = cfg.profile.name  # this run's numbers are shown under the cells, named by it
pin_cpu_threads(cfg.profile.cpu_threads)
study = cfg.case_study["walkthrough"]
settings = settings_for(cfg, study, "walkthrough")
torch.manual_seed(0)
model = load_model(cfg.profile, cfg.paths.models)
transcoders = circuit_transcoders(cfg, model.cfg.device)
print(study.question)
print({f"tc{layer}": tc.spec.d_sae for layer, tc in transcoders.items()}, "features per transcoder")

# %% [markdown]
# ## 2. Pick the root by ground truth
# The feature most selective for second-year century tokens, by AUROC against every other token and
# against first-year century tokens (the smaller of the two); this run's root is shown under the cell.

# %%
heldout = heldout_tokens(cfg, model)  # labelled held-out contexts (None without ground truth)
root = choose_root(settings, model, transcoders, heldout)
transcoder = transcoders[root.layer]
if root.selection is not None:  # chosen by AUROC (organism profiles); gpt2_small names its root
    say(
        f"On the `{PROFILE}` profile: **{root.label}**, AUROC {root.selection.auroc_vs_rest:.2f} against "
        f"every other token and {root.selection.auroc_vs_contrast:.2f} against first-year century tokens."
    )
root.summary(settings)

# %% [markdown]
# ## 3. Activations: second-year against first-year century tokens

# %%
prompts, contrast = study_prompts(model, heldout, settings)
activations = prompt_activations(model, transcoder, root.feature, prompts, contrast)
print("mean activation:", {key: activations[key] for key in ("prompts_mean", "contrast_mean")})
activation_figure(activations["prompts"], activations["contrast"], root.label)
plt.show()

# %% [markdown]
# ## 4. Attribute

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
# ## 5. Beam search and the graph
# Each path is a chain of direct attributions from the root back to a source (a feature, a head,
# the embedding); the graph is the union of the best paths.

# %%
search_circuit(circuit, study.search)
for path in circuit.paths[:5]:
    print(f"{path.value:+.3f}  " + " <- ".join(path.labels))
graph_figure(circuit.graph, circuit.str_tokens, f"{study.title}: {root.label}")
plt.show()

# %% [markdown]
# ## 6. Verify the graph by ablation
# How much of the root's activation the graph's edges add up to, and the Spearman correlation between
# each edge's attribution and the root's drop when its source is ablated.

# %%
verification = verify_circuit(model, transcoders, circuit)
{key: verification[key] for key in ("fraction_explained", "spearman")}

# %% [markdown]
# ## 6b. Is the circuit faithful? Verdicts fixed before the run
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
    else {
        key: saved_step(cfg, "walkthrough", root, key)
        for key in ("faithfulness", "ground_truth", "contrastive")
    }
)
if evidence.get("faithfulness") is None:
    evidence = circuit_evidence(model, transcoders, root, prompts, circuit, heldout, settings, study)
say(
    f"On the `{PROFILE}` profile:\n\n"
    + describe_evidence(evidence["faithfulness"], evidence.get("ground_truth"), evidence.get("contrastive"))
)

# %% [markdown]
# ## 7. The splice experiment
# Mean activation on the prompts, clean and with the earlier MLPs replaced by their transcoders (no
# error term). The paper loses most of the activation when MLP0 is replaced (7.52 -> 2.36). Keeping
# at least half of it here would say the layer-0 transcoder reconstructs the extended embedding well
# enough for this feature.

# %%
splice = splice_experiment(model, transcoders, root.layer, root.feature, prompts)
# keys name the spliced MLPs: "mlp1-{L-1}_spliced", "mlp0-{L-1}_spliced" (absent when there are none)
with_mlp0 = splice.get(f"mlp0-{root.layer - 1}_spliced")
if with_mlp0 is not None:
    spliced = ", ".join(
        f"{value:.2f} with MLPs {key.removeprefix('mlp').removesuffix('_spliced')}"
        for key, value in splice.items()
        if key != "clean"
    )
    kept = with_mlp0 / splice["clean"] if splice["clean"] else float("nan")
    say(
        f"On the `{PROFILE}` profile: {splice['clean']:.2f} clean, {spliced}; with MLP0 replaced the root "
        + (
            f"keeps most of its activation ({kept:.0%} of the clean value), unlike the paper."
            if kept >= 0.5
            else f"loses most of its activation ({kept:.0%} of the clean value left), as in the paper."
        )
    )
splice

# %% [markdown]
# ## 8. The dashboard
# The root's strongest activations on held-out text. If they are all century tokens of a second year,
# the AUROC-best feature is a clean one for the planted role.

# %%
if heldout is not None:
    selected = root.selection.activations if root.selection is not None else None
    dashboard = dashboard_check(model, transcoder, root.feature, heldout, None, selected)
    print(dashboard)
    # top_labels holds the five commonest labels: any label beside the target ones shows up there
    n_top = len(dashboard["top_tokens"])
    on_target = n_top > 0 and set(dashboard["top_labels"]) <= set(settings.target_labels)
    say(
        f"On the `{PROFILE}` profile the top {n_top} tokens are labelled {dashboard['top_labels']}: "
        + (
            "all of them century tokens of a second year, a clean feature for the planted role."
            if on_target
            else "not all of them century tokens of a second year."
        )
    )
