# The two set-up commands of the README. Each creates .venv on first use (scripts/setup.sh).
VENV ?= .venv
DEMO_DIR ?= demo-output
STAMP := $(VENV)/.installed

.PHONY: demo test campaign setup docs

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(VENV)

demo: $(STAMP)
	$(VENV)/bin/nersemble-zarr demo $(DEMO_DIR)

# Two pytest workers, each test file on one of them (the docs snippets run in order within their file).
test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile

# The reliability campaigns in their long setting (docs/reliability.md); CI runs the fast one within `make test`.
campaign: $(STAMP)
	NERSEMBLE_CAMPAIGN=long NERSEMBLE_CAMPAIGN_REPORT=campaign-report.jsonl \
		$(VENV)/bin/python -m pytest -q tests/test_reliability_fetch.py tests/test_reliability_crash.py

docs: $(STAMP)
	$(VENV)/bin/python -m mkdocs build --strict
