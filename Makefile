# The two set-up commands of the README. Each creates .venv on first use (scripts/setup.sh).
VENV ?= .venv
DEMO_DIR ?= demo-output
STAMP := $(VENV)/.installed

.PHONY: demo test bench setup docs

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(VENV)

demo: $(STAMP)
	$(VENV)/bin/nersemble-zarr demo $(DEMO_DIR)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/python -m benchmarks.run_all

docs: $(STAMP)
	$(VENV)/bin/python -m mkdocs build --strict
