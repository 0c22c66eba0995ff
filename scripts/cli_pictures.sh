#!/usr/bin/env bash
# Make the pictures of docs/cli.md (the guide's "Command line" page) with the commands it shows
# (run from the repository after `make setup`):
#
#   bash scripts/cli_pictures.sh        # writes docs/cli/*; a few minutes on 2 cores
#
# The photographs come from `axiomcam samples` (scikit-image's, read from disk). The
# commands run in a scratch folder so that results.json holds the page's relative paths.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
AXIOMCAM="$REPO/.venv/bin/axiomcam"
DOCS="$REPO/docs/cli"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$DOCS"
cd "$WORK"

"$AXIOMCAM" samples photos
"$AXIOMCAM" explain photos/chelsea.png photos/motorcycle.png \
    --method xgradcam --target top2 --layer features.17.conv.1 --out maps
# chelsea's two maps under fixed names (the names written carry the probability)
"$REPO/.venv/bin/python" - maps/results.json "$DOCS" <<'PY'
import json, shutil, sys
from pathlib import Path
results, docs = Path(sys.argv[1]), Path(sys.argv[2])
first = json.loads(results.read_text())["images"][0]
for rank, entry in enumerate(first["maps"], start=1):
    shutil.copy(results.parent / entry["overlay"], docs / f"explain_chelsea_top{rank}.png")
shutil.copy(results, docs / "explain_results.json")
PY
"$AXIOMCAM" compare photos/{chelsea,coffee,motorcycle,camera}.png \
    --methods gradcam,gradcam++,xgradcam,ablationcam,scorecam,layercam \
    --layer features.17.conv.1 --axioms --out "$DOCS/compare.jpg"
"$AXIOMCAM" layers --model mobilenet_v2 > "$DOCS/layers.txt"
ls -l "$DOCS"
