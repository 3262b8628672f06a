# Every target creates .venv when it is missing, so each is one command on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test demo bench bench-checks soak clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/python -m mdupload.demo

bench: $(STAMP)
	$(BIN)/python -m tests.bench

bench-checks: $(STAMP)
	$(BIN)/python -m tests.bench_checks

soak: $(STAMP)
	$(BIN)/python -m tests.soak

clean:
	rm -rf $(VENV) build *.egg-info
