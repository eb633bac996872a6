# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # The model organism
#
# A 4-layer GPT-2-architecture transformer trained in this repository on a generated corpus
# whose mechanisms are planted, so every token's ground truth is known (docs/design.md §3). The paper
# studies GPT-2 small, where nobody knows which feature *should* exist; on the organism the
# case studies (citation, caught, local context, walkthrough, greater-than; one notebook each)
# can check a circuit against the mechanism that was planted. This notebook loads what
# `dvc repro` produced and looks at the behaviour the later analyses explain.
#
# Set `TRANSCODER_LAB_PROFILE` (default `organism`) and `TRANSCODER_LAB_ROOT` (default: the
# repository) to read another profile's outputs, e.g. the `tiny` one the tests build.

# %%
import json

import matplotlib.pyplot as plt
import torch

from transcoder_lab.behaviour import last_token_logits
from transcoder_lab.notebooks import notebook_config
from transcoder_lab.organism import corpus as generator
from transcoder_lab.organism.mechanisms.greater_than import greater_than_prompts
from transcoder_lab.paths import results_dir
from transcoder_lab.sources.models import load_model
from transcoder_lab.sources.tokens import two_digit_token_ids

# the library picks matplotlib's headless backend when imported: show figures inline again
# %matplotlib inline
cfg = notebook_config()  # the profile and output root named by the two variables above
model = load_model(cfg.profile, cfg.paths.models)
model.cfg.n_layers, model.cfg.d_model, model.cfg.d_vocab

# %% [markdown]
# ## The corpus and its labels
# Every character belongs to a labelled span; tokens inherit the label of their first character.

# %%
labels = generator.labels(cfg.profile.corpus)  # background, then each planted mechanism's roles
document = generator.generate_documents(cfg.profile.corpus, n_documents=1, seed=123)[0]
for start, end, label in document.spans[:25]:
    print(f"{labels[label]:28s} {document.text[start:end]!r}")

# %% [markdown]
# Years are split into two two-digit tokens, as GPT-2 usually does:

# %%
model.to_str_tokens("The siege lasted from the year 1732 to the year 17")

# %% [markdown]
# ## Greater-than
# For each start year YY, the next-token distribution over the 100 two-digit tokens. A model that
# has learned the task puts its mass above the diagonal (years after YY), as GPT-2 small does in
# Hanna et al.'s prompts (GPT-2 small's probability difference: 0.82 in their convention, 0.88 in the
# paper's). This run's value is printed under the next cell.

# %%
prompts = greater_than_prompts(cfg.profile.corpus, seed=7, century=17)
logits = last_token_logits(model, [p.text for p in prompts])
years = logits[:, two_digit_token_ids(model.tokenizer)].softmax(-1)  # [YY, next year]
fig, ax = plt.subplots(figsize=(5, 4))
ax.imshow(years.T, origin="lower", aspect="auto", cmap="viridis")
ax.plot([0, 99], [0, 99], color="white", linewidth=0.8)
ax.set(xlabel="start year YY", ylabel="predicted end year", title="P(end year | start year), century 17")
plt.show()

# %%
later = torch.arange(100)[None, :] > torch.arange(100)[:, None]
difference = (years * later).sum(-1) - (years * ~later).sum(-1)
print(f"{cfg.profile.name} profile, probability difference (YY = 01..98): {difference[1:99].mean():.3f}")


# %% [markdown]
# ## Every planted mechanism, beside its chance level
# The `behaviour` stage's report:

# %%
report = json.loads((results_dir(cfg) / "behaviour.json").read_text())
for mechanism, entry in report.items():
    if isinstance(entry, dict):
        value = entry.get("probability_difference", entry.get("value"))
        chance = entry.get("chance_probability_difference", entry.get("chance"))
        print(f"{mechanism:14s} {value:.3f}   (chance {chance:.3f})")
