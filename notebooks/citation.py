# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # The citation feature
#
# In GPT-2 small, transcoder feature tc8[355] fires on the semicolons that separate works in a
# parenthetical citation, "(Smith et al., 2019; Jones, 2020;". Its strongest inputs are layer-0
# semicolon features plus the citation context ("(", years, surnames) arriving through attention.
#
# On the organism we do not pick the feature by hand: the root is the transcoder feature that best
# separates citation semicolons from every other token *and* from prose semicolons (AUROC against
# the corpus's ground-truth labels). The study runs "blind": a hypothesis from the weights alone
# is written down before any activating example is shown.

# %%
from transcoder_lab.case_studies import run_for_notebook
from transcoder_lab.case_studies.feature import describe

result = run_for_notebook("citation")
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
# ## The blind hypothesis, then the dashboard
# Written from the model's response to single tokens and token pairs (no data set examples); the
# dashboard (top-activating held-out tokens and their ground-truth labels) comes afterwards.

# %%
result.get("blind"), result.get("dashboard")

# %% [markdown]
# ## Intervention: commas instead of the earlier semicolons
# The paper finds that a comma in front instead of a semicolon barely matters (12.48 vs 12.13):
# the feature reads the citation context, not a count of semicolons.

# %%
result.get("intervention")
