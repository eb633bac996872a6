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
# GPT-2 small's tc8[235] fires on " caught" in "He was caught" (19.97) but hardly in "He caught
# the ball" (0.81): it needs the " was" before it. The paper traces it to a layer-7 feature and the
# layer-0 " caught" feature, with the " was" context arriving through attention diffusely enough
# that greedy paths miss part of it.
#
# The organism's corpus plants the same contrast (passive "was caught ... by" vs active "caught
# the ..."). The root is the feature most selective for passive " caught" against active ones.

# %%
from transcoder_lab.case_studies import run_for_notebook
from transcoder_lab.case_studies.feature import describe

result = run_for_notebook("caught")
figures = result["figure_objects"]
print(describe(result))

# %% [markdown]
# ## Where the root's input comes from
# The root's direct contributions grouped by source: the root token's own features, attention
# from the root token and from other tokens (by ground-truth label of the source token on the
# organism), the embedding, errors and biases. Then the graph from the beam search.

# %%
result["circuit"]["contribution_groups"]

# %%
figures["graph"], figures["activations"]

# %% [markdown]
# ## Is the passive context read through attention?
# Compare attention from other tokens (the " was") with the root token's own features.

# %%
groups = result["circuit"]["contribution_groups"]
{key: groups[key] for key in ("root_token_features", "attention_from_other_tokens", "embedding")}
