# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Each creates .venv and installs what it needs. torch is pinned to 2.13.0 for the set-up because
# a CPU wheel of that release lies on this disk; a looser range would pull a multi-GB CUDA build.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_PIN := torch==2.13.0

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PIN)
	$(PY) -m pip install --quiet -e ".[fused,lab,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m lstmkit demo --out runs/demo

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/clang-format --dry-run --Werror src/lstmkit/csrc/*.h src/lstmkit/csrc/*.cpp
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(STAMP)
	$(PY) -m lstmkit bench

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
