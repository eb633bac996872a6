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
import os
from pathlib import Path

from transcoder_lab.case_studies import run_case_study
from transcoder_lab.case_studies.feature import describe
from transcoder_lab.config import REPO_ROOT, load_profile

profile = os.environ.get("TRANSCODER_LAB_PROFILE", "organism")
root = Path(os.environ.get("TRANSCODER_LAB_ROOT", REPO_ROOT))
cfg = load_profile(profile, root, ["+case_study@case_study.template=template"])
result = run_case_study(cfg, "template", write=False)
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
for path in result["circuit"]["paths"][:5]:
    print(f"{path['value']:+.3f}  " + " <- ".join(path["nodes"]))
figures["graph"], figures["activations"]

# %% [markdown]
# ## Your analysis here
# Everything the stage computed is in `result`; the library functions it used are in
# `transcoder_lab.case_studies` and `transcoder_lab.circuits`.

# %%
sorted(result)
