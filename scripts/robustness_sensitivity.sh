#!/bin/sh
# Max-sensitivity, average sensitivity and the local Lipschitz estimate of Grad-CAM and
# XGrad-CAM on the pretrained MobileNetV2 (docs/applications.md, "Adversarial robustness of
# explanations"): 10 composite images, at features.17.conv.1 (where the two differ), the `robustness`
# group's defaults (10 uniform copies of radius 0.2, 10 Gaussian copies of std 0.1, in the
# network's normalised units). A few CPU minutes.
#   OMP_NUM_THREADS=1 sh scripts/robustness_sensitivity.sh OUT
set -e
out=${1:-robustness-sensitivity}
python -m axiomcam evaluate --model mobilenet_v2 --data composite:10 \
    --layer features.17.conv.1 --methods gradcam,xgradcam --metrics robustness --out "$out" \
    --overwrite --gallery-images 0
