# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Each creates .venv and installs what it needs. torch is pinned to 2.13.0 for the set-up because
# a CPU wheel of that release lies on this disk; a looser range would pull a multi-GB CUDA build.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_PIN := torch==2.13.0

.PHONY: demo test lint bench clean chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PIN)
	$(PY) -m pip install --quiet -e ".[fused,lab,explore,onnx,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m lstmkit demo --out runs/demo

# The suite, then the engine, dtype, autocast and bench tests again with oneDNN and MKL held to AVX2: what an
# AVX2-only CPU (no AVX-512, no bf16 instructions) sees, so every machine checks both worlds.
AVX2_ENV := ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
AVX2_TESTS := tests/test_bf16.py tests/test_engine_policy.py tests/test_fused_engine.py \
	tests/test_fused_engine_gru_rnn.py tests/test_fused_lstm.py tests/test_fused_gru_rnn.py tests/test_bench.py

# The explorer's browser tests drive the system's Chromium through Playwright (Debian's package: Playwright's own
# browser download cannot be reached from these machines). Installed here when missing, as root with apt-get;
# where it cannot be, those tests skip and say why.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "could not install chromium: the explorer's browser tests will skip"; \
	  else echo "chromium is missing and apt-get needs root: the explorer's browser tests will skip"; fi; }

test: $(STAMP) chromium
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/clang-format --dry-run --Werror src/lstmkit/csrc/*.h src/lstmkit/csrc/*.cpp
	$(VENV)/bin/mypy
	$(PY) -m pytest
	$(AVX2_ENV) $(PY) -m pytest $(AVX2_TESTS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(STAMP)
	$(PY) -m lstmkit bench

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache .mypy_cache
