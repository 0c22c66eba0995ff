#!/bin/sh
# Max-sensitivity, average sensitivity and the local Lipschitz estimate of Grad-CAM and
# XGrad-CAM on the pretrained MobileNetV2 (docs/applications.md, "Adversarial robustness of
# explanations"): 20 composite images, both layers of docs/evaluation.md, the `robustness`
# group's defaults (10 uniform copies of radius 0.2, 10 Gaussian copies of std 0.1, in the
# network's normalised units). A few CPU minutes per layer.
#   OMP_NUM_THREADS=1 sh scripts/robustness_sensitivity.sh OUT
set -e
out=${1:-robustness-sensitivity}
for layer in features.18 features.17.conv.1; do
    python -m axiomcam evaluate --model mobilenet_v2 --data composite:20 --layer "$layer" \
        --methods gradcam,xgradcam --metrics robustness --out "$out/$layer" --overwrite
done
