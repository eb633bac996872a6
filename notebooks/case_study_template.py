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
# and `dvc repro` runs it as `case_study@<name>`. Replace the question, the target labels (or, on
# gpt2_small, the layer, feature and prompts) and this narrative.

# %%
from transcoder_lab.case_studies import run_for_notebook
from transcoder_lab.case_studies.feature import describe

result = run_for_notebook("template", ["+case_study@case_study.template=template"])
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
# ## Your analysis here
# Everything the stage computed is in `result`; the library functions it used are in
# `transcoder_lab.case_studies` and `transcoder_lab.circuits`.

# %%
sorted(result)
