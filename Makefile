# Two entry points for a new user: `make demo` and `make test` (see README.md).
# Both create the virtual environment on first use and reuse it while pyproject.toml is unchanged.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
REQUIREMENTS_HASH := $(shell sha256sum pyproject.toml | cut -c1-16)
STAMP := $(VENV)/.installed-$(REQUIREMENTS_HASH)

.PHONY: setup demo test lint size clean

# Full install only when this exact pyproject.toml has not been installed into $(VENV) yet.
$(STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

# A venv shared by several clones (CI reuses one) must point at this checkout: re-link it cheaply.
setup: $(STAMP)
	@$(BIN)/python -I -c "import pathlib, sys, dmm_engine; \
	sys.exit(pathlib.Path(dmm_engine.__file__).resolve().parents[1] != pathlib.Path('$(CURDIR)').resolve())" \
	2>/dev/null || $(BIN)/python -m pip install -q --no-deps -e .

demo: setup
	$(BIN)/dmm demo

test: setup
	$(BIN)/python -m pytest --cov=dmm_engine --cov-report=term --cov-fail-under=90

lint: setup
	$(BIN)/ruff check dmm_engine service tests bench
	$(BIN)/ruff format --check dmm_engine service tests bench
	$(BIN)/mypy

size:
	@find dmm_engine service -name '*.py' | xargs wc -l | sort -n | tail -n 12

clean:
	rm -rf $(VENV) .coverage
