# Everything runs in the repository's own virtual environment (.venv), which
# scripts/setup.sh creates or updates (about a second when nothing changed).
VENV := .venv
PYTHON := $(VENV)/bin/python
RUFF := $(VENV)/bin/ruff

.PHONY: setup quickstart test lint

setup:
	bash scripts/setup.sh

# the quick-start: explain a pretrained MobileNetV2 on two photographs -> results/*.png
quickstart: setup
	$(PYTHON) -m axiomcam.demo --out results

lint: setup
	$(RUFF) check src tests

test: setup
	$(RUFF) check src tests
	$(PYTHON) -m pytest -q
