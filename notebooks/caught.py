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
# *and* from active " caught" (the smaller of the two AUROCs). This run's root and its AUROCs are shown
# under the cell.


# %%
heldout = heldout_tokens(cfg, model)  # labelled held-out contexts (None without ground truth)
root = choose_root(settings, model, transcoders, heldout)
transcoder = transcoders[root.layer]
if root.selection is not None:  # chosen by AUROC (organism profiles); gpt2_small names its root
    say(
        f"On the `{PROFILE}` profile: **{root.label}**, AUROC {root.selection.auroc_vs_rest:.3f} against "
        f'every other token and {root.selection.auroc_vs_contrast:.3f} against active " caught".'
    )
root.summary(settings)

# %% [markdown]
# ## 3. Activations: passive against active
# The paper's 19.97 against 0.81 in one pair of sentences; here the means over held-out prompts that
# end on a passive " caught" and on an active one.

# %%
prompts, contrast = study_prompts(model, heldout, settings)
activations = prompt_activations(model, transcoder, root.feature, prompts, contrast)
say(
    f"On the `{PROFILE}` profile: {activations['prompts_mean']:.2f} (passive) against "
    f"{activations['contrast_mean']:.2f} (active)."
)
activation_figure(activations["prompts"], activations["contrast"], root.label)
plt.show()

# %% [markdown]
# ## 4. Attribute
# The root's exact direct inputs on its most active prompt. The paper finds the " caught" token's own
# layer-0 feature on top; the question is how " was" gets in.

# %%
circuit = attribute_root(model, transcoders, root, prompts, activations["prompts"])
print(repr("".join(circuit.str_tokens[1:])), f"activation {circuit.activation:.3f}")
top = top_contributors(circuit.attribution, k=5)
for contributor in top:
    print(f"{contributor.value:+.3f}  {contributor.label}")
# a feature contributor is one of the root token's own features (attention brings the other tokens)
own = [c for c in top if c.kind == "feature"]
say(
    f"On the `{PROFILE}` profile the top contributor is `{top[0].label}`; "
    + (
        f"{len(own)} of the top 5 are the root token's own features, the strongest `{own[0].label}`."
        if own
        else "none of the top 5 is a feature of the root token itself."
    )
)

# %% [markdown]
# Summed by source: the root token's own features, attention from the root token and from other
# tokens (by the ground-truth label of the source token), the embedding, errors and biases.

# %%
contribution_groups(circuit.ctx, circuit.attribution, circuit.prompt.labels, heldout)

# %% [markdown]
# ## 5. Is the passive context read through attention?
# Compare attention from other tokens (by source label: `caught/passive_was` is the " was") with the
# root token's own features: how much does " was" add, against what the " caught" token brings itself?

# %%
groups = contribution_groups(circuit.ctx, circuit.attribution, circuit.prompt.labels, heldout)
by_label = groups.get("attention_by_source_label")  # None without ground-truth labels (gpt2_small)
if by_label is not None:
    say(
        f'On the `{PROFILE}` profile " was" contributes {by_label.get("caught/passive_was", 0.0):+.2f} '
        f"through attention, against {groups['root_token_features']:+.2f} from the root token's own features."
    )
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
# each edge's attribution and the root's drop when its source is ablated.

# %%
verification = verify_circuit(model, transcoders, circuit)
say(
    f"On the `{PROFILE}` profile: the graph explains {verification['fraction_explained']:.2f} of the "
    f"activation; Spearman {verification['spearman']:.2f}."
)
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
    else {
        key: saved_step(cfg, "caught", root, key) for key in ("faithfulness", "ground_truth", "contrastive")
    }
)
if evidence.get("faithfulness") is None:
    evidence = circuit_evidence(model, transcoders, root, prompts, circuit, heldout, settings, study)
say(
    f"On the `{PROFILE}` profile:\n\n"
    + describe_evidence(evidence["faithfulness"], evidence.get("ground_truth"), evidence.get("contrastive"))
)

# %% [markdown]
# ## 8. The dashboard
# The top-activating held-out tokens and their ground-truth labels: are they all passive " caught"?

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
        + ('all of them passive " caught".' if on_target else 'not all of them passive " caught".')
    )
