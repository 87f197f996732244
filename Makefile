# Two commands a new user needs: `make demo` and `make test`. Both set up .venv first.
# `make demo` installs the classic path only (no torch, no model or video extras); `make test` the dev extra.
VENV := .venv
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml constraints/cpu.txt scripts/setup.sh
	bash scripts/setup.sh test
	touch $(STAMP) $(DEMO_STAMP)

$(DEMO_STAMP): pyproject.toml constraints/cpu.txt scripts/setup.sh
	bash scripts/setup.sh demo
	touch $(DEMO_STAMP)

setup: $(STAMP)

demo: $(DEMO_STAMP)
	$(VENV)/bin/packshot run catalogs/demo/catalog.csv --out out/demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

clean:
	rm -rf out .pytest_cache
