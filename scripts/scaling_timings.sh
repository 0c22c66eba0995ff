#!/usr/bin/env bash
# The timings of docs/scaling.md (run from the repository after `make setup`, with
# nothing else running: part 2 uses both cores).
#
#   bash scripts/scaling_timings.sh [OUT]     # OUT defaults to results/scaling
#
# 1. Seconds per image per method and metric group: MobileNetV2 at features.17.conv.1,
#    every metric group with its defaults except the sanity check's depth (3 blocks
#    randomised instead of all 19), the first 4 benchmark images, 1 process with 1 thread.
# 2. The same 64 images on 1 process and on 2 (torchrun, one thread each): wall times,
#    and the two summaries compared byte for byte (about 20 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-results/scaling}"
AXIOMCAM=.venv/bin/axiomcam
export OMP_NUM_THREADS=1
mkdir -p "$OUT"

if [ "${SKIP_PER_METHOD:-0}" != 1 ]; then
    "$AXIOMCAM" evaluate --model mobilenet_v2 --layer features.17.conv.1 --data composite:4 \
        --methods gradcam,gradcam++,xgradcam,layercam,ablationcam,scorecam --sanity-steps 3 \
        --out "$OUT/per-method" --overwrite > "$OUT/per-method.log" 2>&1
    .venv/bin/python scripts/timing_table.py "$OUT/per-method"
fi

COMMON=(--model mobilenet_v2 --layer features.17.conv.1 --data composite:64
        --methods gradcam,xgradcam,ablationcam
        --metrics axioms,faithfulness,localization,discrimination --gallery-images 0
        --overwrite)
start=$(date +%s)
"$AXIOMCAM" evaluate "${COMMON[@]}" --out "$OUT/one-process" > "$OUT/one-process.log" 2>&1
middle=$(date +%s)
.venv/bin/torchrun --standalone --nproc_per_node 2 -m axiomcam evaluate "${COMMON[@]}" \
    --out "$OUT/two-processes" > "$OUT/two-processes.log" 2>&1
end=$(date +%s)
echo "64 images: 1 process $((middle - start)) s, 2 processes (torchrun) $((end - middle)) s"
if cmp -s "$OUT/one-process/summary.csv" "$OUT/two-processes/summary.csv"; then
    echo "summary.csv: identical"
else
    echo "summary.csv: DIFFERENT"; diff "$OUT/one-process/summary.csv" "$OUT/two-processes/summary.csv" || true
fi
