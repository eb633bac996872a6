# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Greater-than with transcoders
#
# **The paper's claim.** GPT-2 small completes "The war lasted from 1732 to 17" with years after
# 32 (Hanna et al.). With MLP 10 replaced by its transcoder the probability difference goes from
# 0.883 to 0.798 (0.63 with MLP 10 removed), and a handful of transcoder features do the work of
# many neurons: about 10-15 top features bring it back to 0.84, against 40-50 top neurons to 0.83.
#
# **Here**, the organism was trained on the same task, planted in its corpus, so we know the
# answer in advance: the features should promote years *after* the ones that activate them. Each
# step below is one call of the library function the `case_study@greater_than` DVC stage runs
# (`transcoder_lab.case_studies.greater_than.run_greater_than` calls the same steps in this order).
# `TRANSCODER_LAB_PROFILE` / `TRANSCODER_LAB_ROOT` select another profile's or checkout's outputs.

# %% [markdown]
# ## 1. The model, the transcoders and the settings
# Torch's CPU thread count is pinned as in the stage, so the numbers match the stage's
# `results/<profile>/case_studies/greater_than.json`.

# %%
import matplotlib.pyplot as plt
import torch

from transcoder_lab.case_studies.common import circuit_transcoders, settings_for
from transcoder_lab.case_studies.faithfulness import describe_evidence
from transcoder_lab.case_studies.greater_than import (
    check_protocol,
    choose_layers,
    curves_figure,
    headline_result,
    prompt_resamples,
    prompt_scores,
    prompts_for,
    protocol_analyses,
    saved_result,
    top_components,
    without_feature,
    year_graph,
    year_graph_faithfulness,
    year_graph_summary,
)
from transcoder_lab.case_studies.year_features import effects_figure, planted_task_check, year_profiles
from transcoder_lab.circuits import graph_figure
from transcoder_lab.notebooks import notebook_config, say
from transcoder_lab.sources.models import load_model
from transcoder_lab.sources.tokens import two_digit_token_ids
from transcoder_lab.stage import pin_cpu_threads

# the library picks matplotlib's headless backend when imported: show figures inline again
# %matplotlib inline
cfg = notebook_config()
PROFILE = cfg.profile.name  # this run's numbers are shown under the cells, named by it
# the curves and prompt redraws are read from the stage's result when there is one; True computes them
RECOMPUTE = False
pin_cpu_threads(cfg.profile.cpu_threads)
study = cfg.case_study["greater_than"]
settings = settings_for(cfg, study, "greater_than")
check_protocol(settings)
torch.manual_seed(0)
model = load_model(cfg.profile, cfg.paths.models)
transcoders = circuit_transcoders(cfg, model.cfg.device)
torch.set_grad_enabled(False)  # the stage runs without gradients too
print(study.question)

# %% [markdown]
# ## 2. Prompts and the behaviour
# One prompt per start year YY = 00..99. The metric is the paper's probability difference:
# softmax over the 100 two-digit tokens, mass on years after YY minus mass on years at or
# before it (Hanna et al.'s full-vocabulary version beside it).

# %%
texts, yy = prompts_for(cfg)
ids = two_digit_token_ids(model.tokenizer)
original = prompt_scores(model, texts, yy, ids)
print(texts[45])
say(
    f"On the `{PROFILE}` profile: probability difference {original['probability_difference']:.3f} "
    f"(chance {original['chance_probability_difference']:.3f}; the paper's GPT-2 small: 0.883)."
)
original

# %% [markdown]
# ## 3. Which MLP?
# The paper's answer is the MLP whose removal (output zeroed) costs the most: layer 10 on GPT-2
# small. On the organism that can be MLP 0, which every prediction needs as an extended embedding, so
# the organism's headline protocol asks which MLP's *last-token* output, replaced by its mean over
# the prompts, matters most. Both protocols are computed; the layer each picks is printed. The last
# number says whether the task needs any MLP after layer 0 at all.

# %%
choice = choose_layers(model, texts, yy, ids, original, transcoders, settings)
for protocol, drops in choice.drops.items():
    rounded = {layer: round(drop, 3) for layer, drop in drops.items()}
    print(f"{protocol}: drop by layer {rounded} -> layer {choice.layers[protocol]}")
print(f"headline protocol: {choice.headline}, layer {choice.layer}")
print(f"every MLP after layer 0 zeroed: {choice.every_mlp_after_layer_0_zeroed:.3f}")

# %% [markdown]
# ## 4. The MLP replaced, removed, and the features-vs-neurons curves
# At each protocol's layer: the probability difference with the MLP replaced by its transcoder and
# with it removed; components (transcoder features, MLP neurons) ranked by activation variance over
# the prompts; then the top-n kept and the rest zeroed everywhere ("zero", the paper's) or mean-ablated
# at the last token ("mean"), for n = 0..n_components. The curves are the slow step (a few minutes on
# CPU): when the `case_study@greater_than` stage has saved them for these prompts and transcoders they
# are read from its result; set RECOMPUTE = True to compute them here.

# %%
saved = None if RECOMPUTE else saved_result(cfg, original)
analyses = protocol_analyses(model, texts, yy, ids, original, transcoders, choice, settings, saved)
result = headline_result(choice, analyses, original)
transcoder = transcoders[choice.layer]
if settings.feature is not None:  # gpt2_small: the paper's harmful feature 5315
    result["probability_difference"][f"transcoder_without_{settings.feature}"] = without_feature(
        model, texts, yy, ids, transcoder, settings.feature
    )
result["probability_difference"]

# %% [markdown]
# The paper's criterion, read on the curves: to 90% of the spliced transcoder's value, at most half
# as many features as neurons. Where keeping no feature already reaches that mark the criterion is
# void (not met); where it gives most of the value, the MLP's prompt-dependent output carries little
# of the task, and the counts say little about features against neurons.

# %%
curves = result["curves"]
spliced_value = result["probability_difference"]["transcoder_spliced"]
n_features, n_neurons = (  # None: the curve never reaches the mark
    f"{n} {kind}" if n is not None else f"no number of {kind}"
    for n, kind in (
        (curves["features_to_90pct_of_spliced"], "features"),
        (curves["neurons_to_90pct_of_spliced"], "neurons"),
    )
)
verdict = "met" if curves["features_need_at_most_half"] else "not met"
say(
    f"On the `{PROFILE}` profile the criterion is **{verdict}** ({n_features} against {n_neurons}); "
    f"keeping no feature gives {curves['features'][0] / spliced_value:.0%} of the spliced value."
)


print(
    f"features to 90% of the spliced value: {curves['features_to_90pct_of_spliced']}; "
    f"neurons to 90% of the spliced value: {curves['neurons_to_90pct_of_spliced']}; "
    f"at most half as many features: {curves['features_need_at_most_half']}"
)
print("by threshold:", curves["components_by_threshold"])
print("by share of the gap from n = 0:", curves["gap_recovered_by_threshold"])
print("the paper's marks (0.84 / 0.83):", curves["paper_marks"])
curves_figure(choice, analyses, original)
plt.show()

# %% [markdown]
# ## 5. Do the counts depend on the prompts?
# The headline protocol again on fresh draws of the 100 prompts (organism: other nouns and
# centuries), components re-ranked on each draw.

# %%
if settings.n_prompt_resamples:
    if saved is not None and "prompt_resamples" in saved:  # the stage's redraws (RECOMPUTE: here)
        resamples = saved["prompt_resamples"]
    else:
        resamples = prompt_resamples(cfg, model, ids, transcoder, choice.headline, settings)
    for sample in resamples["samples"]:
        print(
            f"draw {sample['prompt_seed']}: {sample['features_to_90pct_of_spliced']} features vs "
            f"{sample['neurons_to_90pct_of_spliced']} neurons to 90% of the spliced value"
        )

# %% [markdown]
# ## 6. The top components
# The top features and neurons by activation variance; on gpt2_small, where the paper's top
# features (1954, 21238, 10437, ...) fall in our ranking.

# %%
top_components(analyses[choice.headline], settings)

# %% [markdown]
# ## 7. What the top features read and write
# For each top feature: its de-embedding over the year tokens (which YY activate it directly), its
# logit effects over the same tokens (which YY it promotes) and its activating-year centre. The
# planted task predicts each feature to promote years to the right of its centre; of the top 20,
# 15 or more must (a coin would do so with probability 0.021), and the figure shows the top 5.

# %%
profiles = year_profiles(model, transcoder, analyses[choice.headline], yy, ids)
check = planted_task_check(profiles)
print(check)
say(
    f"On the `{PROFILE}` profile {check['n_favouring_later_years']} of the top {check['n_counted']} features "
    f"promote later years (one-sided binomial test against a coin: p = {check['binomial_p']:.3g})."
)

effects_figure(profiles, choice.layer)
plt.show()

# %% [markdown]
# ## 8. The circuit behind "late year minus early year"
# Beam search backwards from logit(75) - logit(15) on the YY = 45 prompt; every edge is an exact
# attribution. The paper finds head 9.1 on the paths in GPT-2 small.

# %%
graph = year_graph(model, transcoders, texts, yy, ids, settings, study.search)
summary = year_graph_summary(graph, settings, study.title)
print(summary["root"], "on", repr(summary["prompt"]), "heads on the paths:", summary["heads_on_paths"])
for path in summary["paths"][:5]:
    print(f"{path['value']:+.3f}  " + " <- ".join(path["nodes"]))
graph_figure(graph.graph, graph.str_tokens, f"{study.title}: {graph.label}")
plt.show()

# %% [markdown]
# ## 9. Is the circuit faithful? Verdicts fixed before the run
# The graph's features alone (every other feature mean-ablated: sufficiency) and the graph's features
# removed (necessity), in the live model, against random feature sets of the same size; the same on
# the study's first prompts, each with its own circuit; and attribution against the effect of
# ablating each active feature alone. The bars sit in the study's config (`faithfulness`); each
# verdict is ok or BELOW, whichever it is. Read from the stage's result when it is for these prompts
# (`RECOMPUTE = True` computes them here).

# %%
faithfulness = None if saved is None else saved.get("faithfulness")
if faithfulness is None:
    faithfulness = year_graph_faithfulness(model, transcoders, graph, texts, yy, ids, settings, study)
say(f"On the `{PROFILE}` profile:\n\n" + describe_evidence(faithfulness))
