# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # A local-context feature: estimated costs
#
# **The paper's claim.** GPT-2 small's tc8[479] is active inside phrases about estimated quantities
# and costs ("at an estimated cost of ..."): a *local-context* feature, driven by the phrase's
# earlier tokens rather than by the current one, so its input comes through attention and a
# token-level explanation falls short.
#
# **Here**, the organism plants "an estimated cost of <quantity>"; the root is the feature most
# selective for the " cost"/" of" and quantity tokens of that phrase. The study runs blind: a
# hypothesis from the weights comes first. Each step is one call of the library function the
# `case_study@local_context` DVC stage runs (`run_feature_study`, same steps, same order).
# `TRANSCODER_LAB_PROFILE` / `TRANSCODER_LAB_ROOT` select another profile's or checkout's outputs.

# %% [markdown]
# ## 1. The model, the transcoders and the study's settings
# Circuits run on one transcoder per layer (the profile's `evaluation.splice_all_l1`). Torch's CPU
# thread count is pinned as in the stage, so the numbers match the stage's
# `results/<profile>/case_studies/local_context.json`.

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
# the blind probe is read from the stage's result when there is one; True computes it here
RECOMPUTE = False
cfg = notebook_config()
PROFILE = cfg.profile.name  # this run's numbers are shown under the cells, named by it
pin_cpu_threads(cfg.profile.cpu_threads)
study = cfg.case_study["local_context"]
settings = settings_for(cfg, study, "local_context")
torch.manual_seed(0)
model = load_model(cfg.profile, cfg.paths.models)
transcoders = circuit_transcoders(cfg, model.cfg.device)
print(study.question)
print({f"tc{layer}": tc.spec.d_sae for layer, tc in transcoders.items()}, "features per transcoder")

# %% [markdown]
# ## 2. Pick the root by ground truth
# AUROC of every feature for the phrase's tokens against every other token and against background
# tokens. An AUROC well below 1 means no feature covers every token of the phrase; the dashboard
# (step 9) shows which of its tokens the one found fires on.

# %%
heldout = heldout_tokens(cfg, model)  # labelled held-out contexts (None without ground truth)
root = choose_root(settings, model, transcoders, heldout)
transcoder = transcoders[root.layer]
if root.selection is not None:  # chosen by AUROC (organism profiles); gpt2_small names its root
    say(
        f"On the `{PROFILE}` profile the best is **{root.label}**, AUROC {root.selection.auroc_vs_rest:.2f} "
        f"against every other token and {root.selection.auroc_vs_contrast:.2f} against background tokens."
    )
root.summary(settings)

# %% [markdown]
# ## 3. A blind hypothesis from the weights
# The current tokens the feature wants alone, and the earlier tokens that raise it. A local-context
# feature should *not* be explained by its current token: expect the context list to matter.

# %%
hypothesis = None if RECOMPUTE else saved_step(cfg, "local_context", root, "blind.hypothesis")
if hypothesis is None:  # no stage result for this root yet, or RECOMPUTE
    hypothesis = blind_hypothesis(model, transcoder, root.feature, study.probe_tokens)
print(hypothesis["statement"])

# %% [markdown]
# ## 4. Activations on the phrase and on background text

# %%
prompts, contrast = study_prompts(model, heldout, settings)
activations = prompt_activations(model, transcoder, root.feature, prompts, contrast)
print("mean activation:", {key: activations[key] for key in ("prompts_mean", "contrast_mean")})
activation_figure(activations["prompts"], activations["contrast"], root.label)
plt.show()

# %% [markdown]
# ## 5. Attribute: context through attention
# Does the phrase reach the root through attention (" estimated" is labelled `estimate/estimated`), on
# top of the root token's own features?

# %%
circuit = attribute_root(model, transcoders, root, prompts, activations["prompts"])
print(repr("".join(circuit.str_tokens[1:])), f"activation {circuit.activation:.3f}")
for contributor in top_contributors(circuit.attribution, k=5):
    print(f"{contributor.value:+.3f}  {contributor.label}")

# %% [markdown]
# Summed by source: the root token's own features, attention from the root token and from other
# tokens (by the ground-truth label of the source token), the embedding, errors and biases.

# %%
groups = contribution_groups(circuit.ctx, circuit.attribution, circuit.prompt.labels, heldout)
by_label = groups.get("attention_by_source_label")  # None without ground-truth labels (gpt2_small)
if by_label is not None:
    say(
        f'On the `{PROFILE}` profile " estimated" contributes {by_label.get("estimate/estimated", 0.0):+.2f} '
        f"through attention, against {groups['root_token_features']:+.2f} from the root token's own features."
    )
groups

# %% [markdown]
# ## 6. Beam search and the graph
# Each path is a chain of direct attributions from the root back to a source (a feature, a head,
# the embedding); the graph is the union of the best paths.

# %%
search_circuit(circuit, study.search)
for path in circuit.paths[:5]:
    print(f"{path.value:+.3f}  " + " <- ".join(path.labels))
graph_figure(circuit.graph, circuit.str_tokens, f"{study.title}: {root.label}")
plt.show()

# %% [markdown]
# ## 7. Verify the graph by ablation
# How much of the root's activation the graph's edges add up to, and the Spearman correlation between
# each edge's attribution and the root's drop when its source is ablated. A context spread over many
# small attention edges makes the agreement moderate and fragile (on an earlier organism run it moved a
# lot between dictionaries that differed only by float rounding).


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
        key: saved_step(cfg, "local_context", root, key)
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
# ## 8. Splicing the earlier MLPs
# The root's mean activation with MLPs 1.. and 0.. before its layer replaced by their transcoders
# (no error term).

# %%
splice_experiment(model, transcoders, root.layer, root.feature, prompts)

# %% [markdown]
# ## 9. Blind hypothesis against the dashboard
# The top-activating held-out tokens and their labels, and how many of them the hypothesis's token rule
# names. Few named means the feature is about the context, not the current token: the paper's point
# about local-context features.

# %%
if heldout is not None:
    selected = root.selection.activations if root.selection is not None else None
    dashboard = dashboard_check(model, transcoder, root.feature, heldout, hypothesis, selected)
    print(dashboard)
    n_top = len(dashboard["top_tokens"])
    named = round(dashboard["share_of_top_tokens_named_by_hypothesis"] * n_top)
    say(
        f"On the `{PROFILE}` profile the top {n_top} tokens are labelled {dashboard['top_labels']}; the "
        f"token rule names {named} of them, "
        + (
            "at least half: the hypothesis counts as confirmed, the current token accounts for the feature."
            if dashboard["confirmed"]
            else "fewer than half: the current token does not account for the feature (local context)."
        )
    )
