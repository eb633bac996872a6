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
# GPT-2 small completes "The war lasted from 1732 to 17" with years after 32 (Hanna et al.); the
# paper finds a handful of transcoder-10 features that do the job of many MLP-10 neurons. The
# organism was trained on the same task, planted in its corpus, so here we know the answer in
# advance: the features should promote years *after* the ones that activate them.
#
# This notebook runs the same function as the `case_study@greater_than` DVC stage
# (`transcoder_lab.case_studies.run_case_study`) and narrates its output. Set
# `TRANSCODER_LAB_PROFILE` / `TRANSCODER_LAB_ROOT` to read another profile's or checkout's outputs.

# %%
from transcoder_lab.case_studies import run_for_notebook

result = run_for_notebook("greater_than")
figures = result["figure_objects"]

# %% [markdown]
# ## Which MLP?
# The paper's answer: the MLP whose removal (output zeroed) costs the most probability difference
# (layer 10 on GPT-2 small is configured, not searched). On the organism that is MLP 0, which every
# prediction also needs as an extended embedding, so the organism's headline protocol asks which
# MLP's *last-token* output, replaced by its mean over the prompts, matters most. Both are computed;
# `result["other_protocol"]` holds the one that is not the headline.

# %%
print(result["protocol"], "protocol:", result["mlp_ablation"])
print("drop by layer:", result["mlp_ablation_drop_by_layer"], "-> layer", result["layer"])
other = result["other_protocol"]
print(other["protocol"], "protocol:", other["mlp_ablation_drop_by_layer"], "-> layer", other["layer"])

# %% [markdown]
# ## The behaviour, three ways
# Probability difference (restricted softmax over "00".."99", the paper's convention) of the
# original model, with the MLP replaced by its transcoder, and with the MLP removed; and Hanna et
# al.'s full-softmax convention beside it.

# %%
result["probability_difference"], result["hanna_probability_difference"]

# %% [markdown]
# ## Features vs neurons
# Keep only the top-n transcoder features (or MLP neurons), ranked by activation variance across
# the 100 prompts, remove the rest (zeroed everywhere, as in the paper; or mean-ablated at the last
# token), and watch the probability difference come back. The criterion: to 90% of the
# spliced transcoder's value, at most half as many features as neurons. Because the n = 0 value
# differs between protocols, the counts to recover a share of the gap from n = 0 are shown too.

# %%
curves = result["curves"]
print(
    f"features to 90% of the spliced value: {curves['features_to_90pct_of_spliced']}; "
    f"neurons to 90% of the original: {curves['neurons_to_90pct_of_original']}; "
    f"neurons to 90% of the spliced value: {curves['neurons_to_90pct_of_spliced']}; "
    f"at most half as many features: {curves['features_need_at_most_half']}"
)
print("headline protocol, by threshold:", curves["components_by_threshold"])
print("headline protocol, by share of the gap:", curves["gap_recovered_by_threshold"])
print("other protocol, by threshold:", other["curves"]["components_by_threshold"])
for sample in result.get("prompt_resamples", {}).get("samples", []):  # the same on fresh prompt draws
    print(
        f"prompt draw {sample['prompt_seed']}: {sample['features_to_90pct_of_spliced']} features vs "
        f"{sample['neurons_to_90pct_of_spliced']} neurons to 90% of the spliced value"
    )
figures["curves"]

# %% [markdown]
# ## What the top features read and write
# For each top feature: its de-embedding over the year tokens (which YY activate it directly)
# and its logit effects over the same tokens (which YY it promotes). The planted task predicts
# the second curve to sit to the right of the first.

# %%
print(result["planted_task_check"])
figures["effects"]

# %% [markdown]
# ## The circuit behind "late year minus early year"
# Beam search backwards from the logit difference; every edge is an exact attribution.

# %%
print(result["graph"]["root"], "on", repr(result["graph"]["prompt"]))
for path in result["graph"]["paths"][:5]:
    print(f"{path['value']:+.3f}  " + " <- ".join(path["nodes"]))
figures["graph"]
