# Everything runs in the repository's own virtual environment (.venv), which
# scripts/setup.sh creates or updates (about a second when nothing changed).
VENV := .venv
PYTHON := $(VENV)/bin/python
RUFF := $(VENV)/bin/ruff

.PHONY: setup browser quickstart test lint docs bench

setup:
	bash scripts/setup.sh

# the browser the app's end-to-end test drives (Debian's chromium, as root): for the tests
# only, so that the quick start changes nothing outside the repository
browser:
	bash scripts/setup_browser.sh

# the quick-start: explain a pretrained MobileNetV2 on two photographs -> results/*.png
quickstart: setup
	$(VENV)/bin/axiomcam demo --out results

# style and complexity (ruff), the package's layers and the absence of import cycles
# (import-linter; both configured in pyproject.toml, explained in docs/architecture.md)
lint: setup
	$(RUFF) check src tests examples benchmarks
	$(VENV)/bin/lint-imports --no-cache

# the documentation site (mkdocs.yml) -> site/; --strict: a broken link, a missing page or a
# docstring mkdocstrings cannot read is an error (offline, about 10 s)
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

# both cores: two pytest-xdist workers of one torch thread each (4 min 14 s on 2 cores;
# 6 min 33 s in one process, 7 min 55 s with two workers of two threads each)
test: lint docs browser
	OMP_NUM_THREADS=1 $(PYTHON) -m pytest -q -n 2

# axiomcam vs pytorch-grad-cam and torchcam (issue 5): installs the peers (the `bench` extra)
# and prints the timing/memory table; takes 15-20 minutes on 2 cores
bench: setup
	$(VENV)/bin/pip install --quiet -e ".[bench]"
	$(PYTHON) -m benchmarks.run
