# The two set-up commands: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: demo test lint format bench clean

$(VENV)/.core: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[sklearn,plots,onnx,k8s]'
	touch $@

$(VENV)/.dev: pyproject.toml $(VENV)/.core
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

demo: $(VENV)/.core
	$(PY) examples/quickstart.py

test: $(VENV)/.dev
	$(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check shipyard tests benchmarks examples
	$(VENV)/bin/ruff format --check shipyard tests benchmarks examples

format: $(VENV)/.dev
	$(VENV)/bin/ruff format shipyard tests benchmarks examples
	$(VENV)/bin/ruff check --fix shipyard tests benchmarks examples

bench: $(VENV)/.dev
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
