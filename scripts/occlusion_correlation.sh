#!/bin/sh
# The measurement of docs/applications.md, "Faithfulness by occlusion": the Spearman
# correlation of each CAM method's map with the occlusion map (32-px window, stride 16,
# zeros) on composite images, at MobileNetV2's two layers of docs/evaluation.md, then the
# tables (mean (median) [95% bootstrap interval of the mean]).
#
#     sh scripts/occlusion_correlation.sh [IMAGES] [OUT]      # default: 40 results/occlusion
#
# About 7 s of CPU per image and layer on one thread (169 occluded copies of each image).
# Score-CAM (a default method of evaluate) is measured apart for its cost (1280 / 960 passes
# of the whole network per image): SCORECAM=20 adds a run of it on the first 20 images.
set -eu
IMAGES=${1:-40}
OUT=${2:-results/occlusion}
for LAYER in features.18 features.17.conv.1; do
    OMP_NUM_THREADS=1 axiomcam evaluate --model mobilenet_v2 --data "composite:$IMAGES" \
        --methods gradcam,gradcam++,xgradcam,ablationcam,layercam --layer "$LAYER" \
        --metrics occlusion_correlation --gallery-images 0 --out "$OUT/$LAYER"
done
python scripts/evaluation_tables.py "$OUT"
if [ -n "${SCORECAM:-}" ]; then
    for LAYER in features.18 features.17.conv.1; do
        OMP_NUM_THREADS=1 axiomcam evaluate --model mobilenet_v2 --data "composite:$SCORECAM" \
            --methods scorecam --layer "$LAYER" --metrics occlusion_correlation \
            --gallery-images 0 --out "$OUT-scorecam/$LAYER"
    done
    python scripts/evaluation_tables.py "$OUT-scorecam"
fi
