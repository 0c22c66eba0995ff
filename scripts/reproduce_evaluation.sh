#!/usr/bin/env bash
# Reproduce the numbers of docs/evaluation.md (run from the repository after `make setup`).
#
#   bash scripts/reproduce_evaluation.sh [OUT]     # OUT defaults to results/evaluation
#
# Twelve `axiomcam evaluate` runs on the built-in benchmark (seed 0), each with one thread
# (OMP_NUM_THREADS=1) and all in parallel: on 2 cores, more threads per process make
# OpenMP spin and slow everything down. About 17 CPU-hours in all, 8 to 9 hours on 2 cores:
# Score-CAM about 7 (two runs of 200 images), deletion / ROAD about 5, the sanity check
# about 3, the rest under 2.
# Then prints the tables of docs/evaluation.md (scripts/evaluation_tables.py).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-results/evaluation}"
AXIOMCAM=.venv/bin/axiomcam
export OMP_NUM_THREADS=1
mkdir -p "$OUT"

METHODS="gradcam,gradcam++,xgradcam,ablationcam,ablationcam:activation,layercam"
# 200 images: the axioms, Average Drop / Increase in Confidence, top-20% removal,
# localization and class discrimination (CAM only at the last layers: it needs GAP + linear)
MAIN="--data composite:200 --metrics axioms,faithfulness,localization,discrimination"
# the first 8 images: deletion / insertion, ROAD and (first 4) the sanity check, which
# cost many forward passes per image and method
SUBSET="--data composite:8 --metrics deletion,road,sanity --deletion-steps 20
        --road-percentages 20,50,80 --sanity-images 4 --sanity-steps 6"
# deletion / insertion and ROAD alone on all 200 images (about 20 s of CPU per image at
# MobileNetV2, about twice that at EfficientNet-Lite0)
DELETION="--data composite:200 --metrics deletion,road --deletion-steps 20
          --road-percentages 20,50,80"
# Score-CAM (one forward pass of the whole network per channel, about 1 CPU-minute per
# image): these runs were stopped for time and continued over sessions (the same command
# continues an interrupted run; a longer composite:N extends a shorter one in the same --out)
SCORECAM="--data composite:200 --batch-size 8 --methods gradcam,xgradcam,scorecam
          --metrics axioms,faithfulness,localization,discrimination"
# the sanity check alone on all 200 images
SANITY="--data composite:200 --metrics sanity --sanity-images 200 --sanity-steps 6"

run() {  # run NAME ARGS...: one evaluation in the background, its log in OUT/NAME.log
    local name="$1"; shift
    "$AXIOMCAM" evaluate "$@" --perturbation-batch-size 128 --out "$OUT/$name" --overwrite \
        > "$OUT/$name.log" 2>&1 &
}
# shellcheck disable=SC2086  # the option lists are meant to split
{
run mobilenet_v2-features.18 --model mobilenet_v2 --layer features.18 --methods "cam,$METHODS" $MAIN
run mobilenet_v2-features.17.conv.1 --model mobilenet_v2 --layer features.17.conv.1 --methods "$METHODS" $MAIN
run efficientnet_lite0-_swish --model efficientnet_lite0 --layer _swish --methods "cam,$METHODS" $MAIN
run efficientnet_lite0-_blocks.15._swish --model efficientnet_lite0 --layer _blocks.15._swish --methods "$METHODS" $MAIN
run subset-mobilenet_v2-features.17.conv.1 --model mobilenet_v2 --layer features.17.conv.1 --methods "$METHODS" $SUBSET
run subset-efficientnet_lite0-_blocks.15._swish --model efficientnet_lite0 --layer _blocks.15._swish --methods "$METHODS" $SUBSET
run deletion-mobilenet_v2-features.17.conv.1 --model mobilenet_v2 --layer features.17.conv.1 --methods "$METHODS" $DELETION
run deletion-efficientnet_lite0-_blocks.15._swish --model efficientnet_lite0 --layer _blocks.15._swish --methods "$METHODS" $DELETION
run scorecam-mobilenet_v2-features.17.conv.1 --model mobilenet_v2 --layer features.17.conv.1 $SCORECAM
run scorecam-efficientnet_lite0-_blocks.15._swish --model efficientnet_lite0 --layer _blocks.15._swish $SCORECAM
run sanity-mobilenet_v2-features.17.conv.1 --model mobilenet_v2 --layer features.17.conv.1 --methods "$METHODS" $SANITY
run sanity-efficientnet_lite0-_blocks.15._swish --model efficientnet_lite0 --layer _blocks.15._swish --methods "$METHODS" $SANITY
}
wait
.venv/bin/python scripts/evaluation_tables.py "$OUT"
