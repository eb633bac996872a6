# Two entry points on a fresh machine: `make repro` (the pipeline) and `make test` (the tests).
# Both create .venv if absent and install the CPU torch first, then the project, and fetch GPT-2's BPE ranks.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export WANDB_MODE := disabled
export DVC_NO_ANALYTICS := 1
# tqdm bars redraw at most every 5 s, so logs of non-interactive runs stay readable.
export TQDM_MININTERVAL := 5
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: help setup repro test lint params notebooks clean-venv browser frontend
PROFILE ?= organism

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /\1\t/' | awk -F'\t' '{printf "  make %-11s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# GPT-2's BPE ranks (tiktoken's r50k_base), for building GPT-2's real tokenizer offline
# (transcoder_lab.sources.gpt2_tokenizer). openai-whisper's sdist ships them as whisper/assets/gpt2.tiktoken:
# pip downloads the sdist only (never installs it) and one file is copied out of it, hash-checked
# (transcoder_lab.sources.gpt2_tokenizer.GPT2_RANKS_SHA256) and moved into place atomically.
GPT2_RANKS := .cache/gpt2.tiktoken
WHISPER_SDIST := openai-whisper==20250625

$(GPT2_RANKS): | $(STAMP)
	@echo "fetching GPT-2's BPE ranks from $(WHISPER_SDIST)'s sdist into $@"
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PY) -m pip download --quiet --no-deps --no-binary :all: $(WHISPER_SDIST) -d "$$tmp" \
	  || { echo "make: could not download $(WHISPER_SDIST)'s sdist from the package index" >&2; exit 1; }; \
	$(PY) -m transcoder_lab.sources.gpt2_tokenizer extract "$$tmp"/openai_whisper-*.tar.gz $@

setup: $(STAMP) $(GPT2_RANKS)  ## create .venv (CPU torch first, then the project) and fetch GPT-2's BPE ranks

# browser and frontend: the graph_screenshots stage draws the case studies' graphs in circuit-tracer's
# viewer with headless Chromium (where either is missing, dvc repro stops at that stage saying what to do)
repro: setup browser frontend  ## the main job: `dvc repro` on the profile params.yaml selects (organism by default)
	@echo "dvc repro on the profile params.yaml selects: $$(sed -n 's/^  name: //p' params.yaml | head -1)"
	@start=$$(date +%s); dvc repro && echo "dvc repro took $$(( $$(date +%s) - start )) s"

# Tests never reach the hub: the paper profiles download from a stand-in of it served on 127.0.0.1
# (transcoder_lab.standins.hub_server) or read a stand-in cache; `make repro` does not set HF_HUB_OFFLINE, so a
# paper profile selected in params.yaml can download what it needs.
test: setup browser frontend  ## the whole offline test suite, with the 25 slowest tests listed
	HF_HUB_OFFLINE=1 $(PY) -m pytest -v -rA --durations=25

# Debian's chromium for the blind study's browser test (driven by Playwright; never
# `playwright install`, which downloads a browser). With CI=true a failed install stops here.
CHROMIUM ?= /usr/bin/chromium
browser:  ## install Debian's chromium when missing (browser tests, graph screenshots)
	@if [ -x $(CHROMIUM) ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	{ $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; } \
	|| { if [ "$$CI" = true ]; then echo "make browser: could not install chromium with apt-get (CI=true needs it for tests/study/test_browser.py)" >&2; exit 1; \
	     else echo "make browser: chromium not installed; the browser test will be skipped" >&2; fi; }

# circuit-tracer's attribution-graph viewer, offline (transcoder_lab.circuits.circuit_tracer): pip
# downloads the circuit-tracer wheel (never installed) and npm packs the JavaScript libraries the
# viewer loads from CDNs, each hash-checked against the pins of its assets module, into
# .cache/frontend/ (renamed into place; refetched when that module, which holds the pins and the
# fetch, changes: edits to the viewer's server or graph files need no new download). With CI=true a
# failure stops here.
FRONTEND := .cache/frontend/manifest.json
$(FRONTEND): src/transcoder_lab/circuits/circuit_tracer/assets.py | $(STAMP)
	@echo "fetching circuit-tracer's front end and its JavaScript libraries into $(@D)"
	@$(PY) -m transcoder_lab.circuits.circuit_tracer fetch $(@D) \
	|| { if [ "$$CI" = true ]; then echo "make frontend: failed (CI=true needs it for tests/circuits/circuit_tracer/test_frontend.py)" >&2; exit 1; \
	     else echo "make frontend: failed; the front-end browser test will be skipped" >&2; fi; }

frontend: $(FRONTEND)  ## fetch circuit-tracer's graph viewer and its JavaScript libraries into .cache/frontend/

# Regenerate params.yaml from conf/ exactly as `dvc exp run -S profile=...` does (commit it).
params: setup  ## regenerate params.yaml from conf/ (PROFILE=tiny|organism|gpt2_small|...)
	$(PY) -c 'import sys, pathlib; from dvc.utils.hydra import compose_and_dump; \
	compose_and_dump("params.yaml", str(pathlib.Path("conf").resolve()), None, "config", ".dvc/hydra_plugins", sys.argv[1:])' \
	profile=$(PROFILE)

# Create or refresh the .ipynb twin of every percent-format notebook (jupytext pairing).
notebooks: setup  ## create or refresh the .ipynb twin of every notebooks/*.py
	$(VENV)/bin/jupytext --sync notebooks/*.py

lint: setup  ## ruff over src, tests, experiments and benchmarks
	$(VENV)/bin/ruff check src tests experiments benchmarks

clean-venv:  ## delete .venv
	rm -rf $(VENV)
