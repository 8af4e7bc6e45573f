# `make test` and `make demo` are the only set-up a fresh clone needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: test demo bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

test: venv
	$(BIN)/python -m pytest

demo: venv
	PATH=$(CURDIR)/$(BIN):$$PATH bash scripts/demo.sh

bench: venv
	$(BIN)/python bench/extract.py
	$(BIN)/python bench/generate.py
	$(BIN)/python bench/load.py

clean:
	rm -rf $(VENV) demo_out
