# `make test` and `make demo` work from a fresh clone with only Python 3 and pip.
# The virtual environment is created once and reused (idempotent): the stamp file is
# rebuilt only when pyproject.toml or constraints.txt change.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.factorkit-installed

.PHONY: install test demo clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: this version is the local CPU wheel.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	# then factorkit with every extra; the constraint forbids any other torch.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[all]"
	touch $@

test: $(STAMP)
	# imports flow one way (the layers contract in pyproject.toml), then lint, then the suite
	$(BIN)/lint-imports
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest

demo: $(STAMP)
	$(BIN)/factorkit demo

clean:
	rm -rf $(VENV) runs .pytest_cache
