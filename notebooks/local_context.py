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
# GPT-2 small's tc8[479] is active inside phrases about estimated quantities and costs: a
# *local-context* feature, driven by the phrase's earlier tokens rather than the current one. The
# organism plants "an estimated cost of <quantity>"; the root is the feature most selective for
# the " cost"/" of" tokens of that phrase. Run blind: the hypothesis comes from weights only.

# %%
from transcoder_lab.case_studies import run_for_notebook
from transcoder_lab.case_studies.feature import describe

result = run_for_notebook("local_context")
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
# ## Blind hypothesis vs dashboard
# A local-context feature should *not* be explained by the current token alone; expect the
# hypothesis's current-token list to be weak and the context through attention to carry it.

# %%
result.get("blind"), result.get("dashboard")
