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
# The paper follows tc8[89] on "Oh, that rifle model is a 6M" and then asks how much of its
# activation survives when the MLPs before it are replaced by their transcoders: 7.52 clean, 5.81
# with MLPs 1-7 spliced, 2.36 with MLPs 0-7 spliced. Replacing MLP0 hurts most, because the
# layer-0 transcoder (the "extended embedding") matters for everything after it.
#
# On the organism the root is the feature most selective for the century token of the *second*
# year (" 17" in "from the year 1732 to the year 17") against the same token in the first year:
# only the context tells them apart.

# %%
from transcoder_lab.case_studies import run_for_notebook
from transcoder_lab.case_studies.feature import describe

result = run_for_notebook("walkthrough")
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
# ## The splice experiment
# Mean activation on the prompts, clean and with the earlier MLPs replaced by transcoders (no
# error term).

# %%
result["splice"]
