"""Grad-CAM element-wise, Shapley-CAM and Finer-CAM (issue 22) beside pytorch-grad-cam 1.5.7
on the real pretrained MobileNetV2 (``axiomcam.models.load("mobilenet_v2")``, packaged
weights) and composite images (``open_dataset("composite:N")``, seed 0): per method, the
wall time of one explanation of the batch in each library (median of ``--repeats``), and
how far the maps are apart (largest absolute difference of the ``[0, 1]`` maps, Pearson r
per image, the smallest). Shapley-CAM also with the ReST score ``z_c + log p_c`` the paper
recommends (pytorch-grad-cam's ``ClassifierOutputReST``; in axiomcam a callable target),
and the mean |r| between Shapley-CAM and Grad-CAM maps (1: the Hessian term changes
nothing). Finer-CAM with one reference (the same definition in both) and with three
(pytorch-grad-cam differentiates through its references' softmax weights; see
docs/peers.md).

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.gradfamily_peers --images 8
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

import axiomcam
from axiomcam.data import open_dataset
from axiomcam.support import AxiomCamWarning


def timed(function, repeats: int) -> tuple[float, object]:
    """The median wall time of ``repeats`` calls and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def correlation(first: torch.Tensor, second: torch.Tensor) -> float:
    """The smallest Pearson r over images (``nan`` where a map is constant)."""
    values = []
    for a, b in zip(first.flatten(1).double(), second.flatten(1).double(), strict=True):
        values.append(float(torch.corrcoef(torch.stack([a, b]))[0, 1]))
    return min(values)


def peer(cls, model, layer, x, **call) -> torch.Tensor:
    cam = cls(model=model, target_layers=[layer])
    try:
        return torch.from_numpy(cam(input_tensor=x, **call))
    finally:
        getattr(cam, "base_cam", cam).activations_and_grads.release()
        model.zero_grad(set_to_none=True)  # its backward fills .grad of the parameters


def rest_score(classes: torch.Tensor):
    """``z_c + log softmax(z)_c`` (= ``z_c - cross-entropy``), one class per image."""
    def score(output: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        chosen = classes.to(output.device)[rows][:, None]
        return (output.gather(1, chosen) + output.log_softmax(1).gather(1, chosen))[:, 0]
    return score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", AxiomCamWarning)
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputReST, ClassifierOutputTarget

    pretrained = axiomcam.models.load("mobilenet_v2")
    model, name = pretrained.model.eval(), pretrained.default_layer
    layer = model.get_submodule(name)
    dataset = open_dataset(f"composite:{args.images}", pretrained.class_names, seed=0)
    x = torch.stack([pretrained.preprocess(sample.image) for sample in dataset])
    with torch.no_grad():
        classes = model(x).argmax(1)
    logits = [ClassifierOutputTarget(int(c)) for c in classes]
    rest = [ClassifierOutputReST(int(c)) for c in classes]
    rows = [
        ("gradcamelementwise", {}, classes, pgc.GradCAMElementWise, {"targets": logits}),
        ("shapleycam", {}, classes, pgc.ShapleyCAM, {"targets": logits}),
        ("shapleycam", {}, rest_score(classes), pgc.ShapleyCAM, {"targets": rest}),
        ("finercam", {"comparisons": 1}, None, pgc.FinerCAM,
         {"comparison_categories": [1], "alpha": 1.0}),
        ("finercam", {"comparisons": 3}, None, pgc.FinerCAM,
         {"comparison_categories": [1, 2, 3], "alpha": 1.0}),
    ]
    grad = axiomcam.explain(model, x, "gradcam", name, targets=classes).maps
    print(f"MobileNetV2 at {name}, {args.images} composite images (224 px), "
          f"1 torch thread, median of {args.repeats}")
    print("| method | options | target | axiomcam s | pytorch-grad-cam s | max |diff| | "
          "min r | min r with Grad-CAM |")
    print("|---|---|---|---|---|---|---|---|")
    for method, options, targets, peer_class, call in rows:
        explainer = axiomcam.methods.create(method, model, name, **options)
        ours_time, ours = timed(lambda e=explainer, t=targets: e(x, t).maps, args.repeats)
        peer_time, theirs = timed(
            lambda p=peer_class, c=call: peer(p, model, layer, x, **c), args.repeats)
        target = ("ReST" if callable(targets) and not torch.is_tensor(targets)
                  else "logit" if targets is not None else "top class")
        print(f"| {method} | {options or ''} | {target} | {ours_time:.2f} | {peer_time:.2f} | "
              f"{float((ours - theirs).abs().max()):.1e} | {correlation(ours, theirs):.4f} | "
              f"{correlation(ours, grad):.4f} |")


if __name__ == "__main__":
    main()
