"""The Grad-CAM paper's faithfulness claim, on MobileNetV2: the Spearman correlation with
the occlusion map of Guided Grad-CAM (the map the paper scores), of Grad-CAM and of Guided
Backpropagation (pixel-level maps, which ``axiomcam evaluate`` does not take), on the
first composite images, with 95% bootstrap intervals of the mean and of paired
differences. The occlusion map is the one of ``evaluate --metrics occlusion_correlation``
(window 1/7 of the side, stride half of it, zeros), for each image's label.

    OMP_NUM_THREADS=1 python scripts/occlusion_guided.py [IMAGES] [LAYER]   # 20 features.18

About 6 s of CPU per image (169 occluded copies of it).
"""

from __future__ import annotations

import sys

import numpy as np
import torch

import axiomcam
from axiomcam.data import open_dataset
from axiomcam.evaluation import evaluation_inputs
from axiomcam.evaluation.summary import bootstrap_interval
from axiomcam.methods import method_info
from axiomcam.methods.occlusion import scaled_window
from axiomcam.metrics import spearman_correlation

METHODS = ("gradcam", "guided_gradcam", "guided_backprop")
PAIRS = (("guided_gradcam", "guided_backprop"), ("guided_gradcam", "gradcam"))


def interval(values: np.ndarray) -> str:
    low, high = bootstrap_interval(values, seed=0)
    return f"{values.mean():.3f} [{low:.3f}, {high:.3f}]"


def main(images: int, layer: str) -> None:
    torch.set_num_threads(1)
    pretrained = axiomcam.models.load("mobilenet_v2")
    samples = list(open_dataset(f"composite:{images}", pretrained.class_names, seed=0))
    inputs, _ = evaluation_inputs(pretrained, [s.image for s in samples],
                                  [s.boxes for s in samples])
    targets = torch.tensor([int(s.label) for s in samples])  # as evaluate: the label
    window, stride = scaled_window(tuple(inputs.shape[2:]))
    occlusion = axiomcam.explain(pretrained.model, inputs, "occlusion", targets=targets,
                                 window=window, stride=stride, progress=True).raw
    rho = {}
    for method in METHODS:
        at = layer if method_info(method).takes_layer else None
        maps = axiomcam.explain(pretrained.model, inputs, method, at, targets=targets).maps
        rho[method] = spearman_correlation(maps, occlusion).double().numpy()
    print(f"MobileNetV2, {len(samples)} composite images, layer {layer} (CAMs); Spearman "
          "correlation with the occlusion map, mean [95% bootstrap interval]\n")
    print("| map | occlusion Spearman |\n|---|---|")
    for method in METHODS:
        print(f"| {method} | {interval(rho[method])} |")
    print("\n| paired difference | mean [95% interval] | first higher on |\n|---|---|---|")
    for first, second in PAIRS:
        difference = rho[first] - rho[second]
        print(f"| {first} - {second} | {interval(difference)} | "
              f"{100 * (difference > 0).mean():.0f}% of {len(difference)} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20,
         sys.argv[2] if len(sys.argv) > 2 else "features.18")
