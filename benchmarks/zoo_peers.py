"""axiomcam, pytorch-grad-cam and torchcam side by side on 19 torchvision classifiers
(issue 23): the Pearson correlation of their maps with each other and with an independent
float64 reference (``benchmarks/zoo_reference.py``), per image.  The results and their
causes: ``docs/peers.md``.

Run it from the repository root (the peers are the ``bench`` extra)::

    python -m benchmarks.zoo_peers                        # everything, ~15 min on 2 cores
    python -m benchmarks.zoo_peers --archs resnet18,densenet121 --no-perturbation
    python -m benchmarks.zoo_peers --list                 # the zoo and the cost estimate

Every model has random weights (``weights=None``, ``torch.manual_seed(0)``, eval mode:
nothing is downloaded).  The inputs are scikit-image's photographs (``chelsea``,
``coffee``), resized and centre-cropped to 224 x 224 and ImageNet-normalised; each image's
target is the model's top class, given explicitly to every library.  The target layer is
axiomcam's default (``axiomcam.layers.find_default_layer``), handed to the peers as the
same module; transformers get the standard ``reshape_transform`` (ViT: class token dropped,
patches on the 14 x 14 grid; Swin: ``(B, h, w, C)`` permuted).

Maps are compared as each library delivers them for display: at input resolution, after
the ReLU (torchcam's CAM has none, see the page) and its min-max scaling, which Pearson's r
ignores.  torchcam's maps (at the layer's resolution) are upsampled bilinearly as its own
``fuse_cams`` does.  A map that is constant has no correlation (``const``).

Perturbation methods cost one network pass per channel per image in the peers (and for
Score-CAM in every library): they run on one image and on the architectures of
:data:`PERTURBATION_ARCHS` only, where that stays within minutes; ``--perturbation-archs
all`` runs them everywhere (hours).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn
from tqdm.auto import tqdm

import axiomcam
from axiomcam.images import sample_image
from axiomcam.layers import find_default_layer
from axiomcam.models.pretrained import IMAGENET_MEAN, IMAGENET_STD, imagenet_transforms

from . import peers
from . import zoo_reference as reference
from .peers import GRAD_CAM, TORCHCAM

AXIOMCAM = "axiomcam"
REFERENCE = "reference"
LIBRARIES = (AXIOMCAM, GRAD_CAM, TORCHCAM)
#: the correlations of a row, in the table's order
PAIRS = ((AXIOMCAM, REFERENCE), (GRAD_CAM, REFERENCE), (TORCHCAM, REFERENCE),
         (AXIOMCAM, GRAD_CAM), (AXIOMCAM, TORCHCAM))
GRADIENT_METHODS = ("cam", "gradcam", "gradcam++", "xgradcam", "hirescam", "layercam",
                    "eigencam")
PERTURBATION_METHODS = ("ablationcam", "scorecam")
#: below this a correlation is a disagreement the page explains
AGREEMENT = 0.99


@dataclass(frozen=True)
class Arch:
    """One classifier of the zoo: torchvision's builder, its layout at the default layer,
    and for the cost estimate its channels there and one forward pass (ms, one image,
    224 px, one thread, measured on the 2-core EPYC the page names)."""

    builder: str
    title: str
    channels: int
    forward_ms: float
    layout: str = "conv"
    options: dict[str, object] = field(default_factory=dict)


ZOO = (
    Arch("alexnet", "AlexNet", 256, 28),
    Arch("vgg11_bn", "VGG-11-BN", 512, 198),
    Arch("resnet18", "ResNet-18", 512, 49),
    Arch("resnext50_32x4d", "ResNeXt-50", 2048, 124),
    Arch("wide_resnet50_2", "Wide-ResNet-50", 2048, 319),
    Arch("densenet121", "DenseNet-121", 1024, 112),
    Arch("googlenet", "GoogLeNet", 1024, 87, options={"aux_logits": False,
                                                      "init_weights": True}),
    Arch("inception_v3", "Inception-v3", 2048, 102, options={"aux_logits": False,
                                                             "init_weights": True}),
    Arch("mobilenet_v3_small", "MobileNetV3-small", 576, 7),
    Arch("mnasnet1_0", "MNASNet", 1280, 17),
    Arch("shufflenet_v2_x1_0", "ShuffleNetV2", 1024, 13),
    Arch("squeezenet1_1", "SqueezeNet", 1000, 22),
    Arch("efficientnet_b0", "EfficientNet-B0", 1280, 27),
    Arch("efficientnet_v2_s", "EfficientNet-V2-S", 1280, 99),
    Arch("regnet_y_400mf", "RegNetY-400MF", 440, 22),
    Arch("convnext_tiny", "ConvNeXt-T", 768, 143),
    Arch("maxvit_t", "MaxViT-T", 512, 207),
    Arch("vit_b_16", "ViT-B/16", 768, 466, layout="tokens"),
    Arch("swin_t", "Swin-T", 768, 194, layout="channels_last"),
)
ARCHS = {arch.builder: arch for arch in ZOO}
#: where the perturbation methods run: channels x forward time below ~40 s per pass set
PERTURBATION_ARCHS = ("alexnet", "resnet18", "mobilenet_v3_small", "mnasnet1_0",
                      "shufflenet_v2_x1_0", "squeezenet1_1", "efficientnet_b0",
                      "regnet_y_400mf")
IMAGES = ("chelsea", "coffee")
SIZE = 224


@dataclass(frozen=True)
class Settings:
    archs: tuple[str, ...]
    perturbation_archs: tuple[str, ...]
    images: tuple[str, ...]
    perturbation_images: int
    threads: int


# ----------------------------------------------------------------------------- inputs


def build(arch: Arch) -> nn.Module:
    """The architecture with random weights (seed 0), in eval mode.  torchvision
    initialises ViT's classifier to zeros: every score and every gradient would be 0, so a
    linear layer that starts all zero is drawn at random (normal, std 0.02) instead."""
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch.builder)(weights=None, **arch.options).eval()
    for module in model.modules():
        if isinstance(module, nn.Linear) and not bool(module.weight.any()):
            nn.init.normal_(module.weight, std=0.02)
    return model


def photographs(names: tuple[str, ...]) -> torch.Tensor:
    """``(N, 3, 224, 224)``: the photographs, resized, centre-cropped, normalised."""
    _, preprocess = imagenet_transforms(IMAGENET_MEAN, IMAGENET_STD, SIZE)
    return torch.stack([preprocess(sample_image(name)) for name in names])


def last_linear(model: nn.Module) -> str:
    """The name of the model's last ``nn.Linear`` (torchcam's CAM needs it named)."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Linear)][-1]


def pearson(first: object, second: object) -> list[float | None]:
    """Pearson r of two ``(B, H, W)`` stacks of maps, per image (``None``: a constant map)."""
    a = torch.as_tensor(np.asarray(first)).flatten(1).double()
    b = torch.as_tensor(np.asarray(second)).flatten(1).double()
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    norms = a.norm(dim=1) * b.norm(dim=1)
    return [None if float(n) == 0 else float(r) for r, n in zip((a * b).sum(1) / norms, norms,
                                                                   strict=True)]


# ----------------------------------------------------------------------------- one model


class Zoo:
    """One architecture being compared: the model, its photographs, targets, layer and the
    reference captures; :meth:`row` compares one method."""

    def __init__(self, arch: Arch, images: torch.Tensor) -> None:
        self.arch = arch
        self.model = build(arch)
        self.images = images
        with torch.no_grad():
            self.classes = self.model(images).argmax(1)
        self.layer = find_default_layer(self.model, images)
        self.module = self.model.get_submodule(self.layer)
        self.transform = reference.reshape_transform(arch.layout)
        self.captures = [reference.capture(self.model, self.module, image, int(target),
                                           arch.layout)
                         for image, target in zip(images, self.classes, strict=True)]

    def scales(self) -> dict[str, object]:
        """What the fixed epsilons of the peers meet at the layer, image by image: the
        median |A| and |G|, the smallest |sum_ij A^k| over channels, the logits' spread and
        the largest change of a softmax probability between the image and a black one."""
        with torch.no_grad():
            probabilities = torch.softmax(self.model(self.images), 1)
            black = torch.softmax(self.model(torch.zeros_like(self.images[:1])), 1)
        return {
            "architecture": self.arch.title, "layer": self.layer,
            "median |A|": [float(c.A.abs().median()) for c in self.captures],
            "median |G|": [float(c.G.abs().median()) for c in self.captures],
            "min |sum A|": [float(c.A.sum((1, 2)).abs().min()) for c in self.captures],
            "logit std": [float(c.logits.std()) for c in self.captures],
            "max |p - p(black)|": (probabilities - black).abs().amax(1).tolist(),
        }

    def reference_maps(self, method: str, count: int) -> torch.Tensor:
        """The reference's ``(count, H, W)`` maps of ``method``."""
        maps = []
        for index in range(count):
            seen, image = self.captures[index], self.images[index]
            target = int(self.classes[index])
            if method == "cam":
                head = self.model.get_submodule(last_linear(self.model))
                raw = reference.cam_map(seen.A, head, target)
            elif method == "eigencam":
                raw = reference.eigen_map(seen.A)
            elif method == "ablationcam":
                raw = reference.ablation_map(self.model, self.module, image, target,
                                             self.arch.layout, seen)
            elif method == "scorecam":
                raw = reference.score_map(self.model, image, target, seen)
            else:
                raw = reference.gradient_map(method, seen.A, seen.G)
            maps.append(reference.input_map(raw, (SIZE, SIZE)))
        return torch.stack(maps)

    def peer_call(self, library: str, method: str, count: int):
        images, classes = self.images[:count], self.classes[:count].tolist()
        if library == GRAD_CAM:
            return peers.grad_cam_call(method, self.model, self.layer, images, classes,
                                       reshape_transform=self.transform)
        return peers.torchcam_call(method, self.model, self.layer, images, classes,
                                   reshape_transform=self.transform,
                                   fc_layer=last_linear(self.model) if method == "cam" else None)

    def row(self, method: str, count: int) -> dict[str, object]:
        """Every library's maps of ``method`` on the first ``count`` images, the reference's,
        their correlations (:data:`PAIRS`) and the seconds each took."""
        row: dict[str, object] = {"architecture": self.arch.title, "builder": self.arch.builder,
                                  "layer": self.layer, "method": method,
                                  "images": count, "r": {}, "seconds": {}, "notes": []}
        maps: dict[str, object] = {}
        start = time.perf_counter()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                maps[AXIOMCAM] = axiomcam.explain(
                    self.model, self.images[:count], method, self.layer,
                    targets=self.classes[:count], progress=False).maps
            row["notes"] += sorted({str(w.message)[:160] for w in caught
                                    if issubclass(w.category, axiomcam.AxiomCamWarning)})
        except ValueError as error:  # CAM on a head that is not GAP + one linear layer
            row["status"] = "refused"
            row["notes"].append(f"axiomcam: {error}"[:300])
            return row
        row["seconds"][AXIOMCAM] = time.perf_counter() - start
        start = time.perf_counter()
        maps[REFERENCE] = self.reference_maps(method, count)
        row["seconds"][REFERENCE] = time.perf_counter() - start
        for library in (GRAD_CAM, TORCHCAM):
            call = self.peer_call(library, method, count)
            if call is None:
                continue
            start = time.perf_counter()
            try:
                maps[library] = call()
            except Exception as error:  # a peer's failure is a result too
                row["notes"].append(f"{library}: {type(error).__name__}: {error}"[:300])
                continue
            row["seconds"][library] = time.perf_counter() - start
        row["constant"] = {name: [float(m.max() - m.min()) == 0 for m in
                                  torch.as_tensor(np.asarray(found))]
                           for name, found in maps.items()}
        for first, second in PAIRS:
            if first in maps and second in maps:
                row["r"][f"{first} vs {second}"] = pearson(maps[first], maps[second])
        row["status"] = "ok"
        return row


# ----------------------------------------------------------------------------- the run


def jobs(settings: Settings) -> list[tuple[str, str, int]]:
    """``(architecture, method, images)`` in the order they run."""
    planned = []
    for builder in settings.archs:
        planned += [(builder, method, len(settings.images)) for method in GRADIENT_METHODS]
        if builder in settings.perturbation_archs:
            planned += [(builder, method, settings.perturbation_images)
                        for method in PERTURBATION_METHODS]
    return planned


def estimate_seconds(settings: Settings) -> dict[str, float]:
    """A rough cost per architecture from its one-thread forward time: about 60 forward
    passes per image for the gradient methods (every library's calls with their backward
    passes), and per perturbation image 5 x channels whole-network passes (pytorch-grad-cam's
    Ablation-CAM and the four Score-CAMs), divided by 1.5 for two threads."""
    speedup = 1.5 if settings.threads > 1 else 1.0
    cost = {}
    for builder in settings.archs:
        arch = ARCHS[builder]
        passes = 60 * len(settings.images)
        if builder in settings.perturbation_archs:
            passes += 5 * arch.channels * settings.perturbation_images
        cost[builder] = passes * arch.forward_ms / 1000 / speedup
    return cost


def run(settings: Settings) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Every row of the table, with a progress bar over the (architecture, method) pairs,
    and each architecture's :meth:`Zoo.scales`."""
    images = photographs(settings.images)
    planned = jobs(settings)
    rows: list[dict[str, object]] = []
    scales: list[dict[str, object]] = []
    zoo: Zoo | None = None
    with tqdm(planned, desc="zoo", unit="row", file=sys.stderr) as bar:
        for builder, method, count in bar:
            bar.set_postfix_str(f"{builder} {method}")
            if zoo is None or zoo.arch.builder != builder:
                zoo = None  # free the previous model first
                zoo = Zoo(ARCHS[builder], images)
                scales.append(zoo.scales())
            rows.append(zoo.row(method, count))
    return rows, scales


# ----------------------------------------------------------------------------- the table


def pair_values(row: dict[str, object], first: str, second: str) -> list[object] | None:
    """Per image: Pearson r of ``first``'s and ``second``'s maps, ``"both const"`` when
    both are constant (the same all-zero map), ``"<name> const"`` when one is."""
    values = row.get("r", {}).get(f"{first} vs {second}")
    if values is None:
        return None
    constant = row.get("constant", {})
    shown: list[object] = []
    for index, value in enumerate(values):
        flat = [name for name in (first, second) if constant.get(name, [False] * 9)[index]]
        shown.append(value if value is not None else
                     "both const" if len(flat) == 2 else f"{flat[0]} const" if flat else "const")
    return shown


def agrees(values: list[object]) -> bool:
    """Every image r >= :data:`AGREEMENT`, or both maps constant."""
    return all(v == "both const" or (isinstance(v, float) and v >= AGREEMENT) for v in values)


def cell(values: list[object] | None) -> str:
    """Per-image correlations ``0.999 / 0.474``; bold unless :func:`agrees`."""
    if values is None:
        return ""
    text = " / ".join(v if isinstance(v, str) else f"{v:.3f}" for v in values)
    return text if agrees(values) else f"**{text}**"


def table(rows: list[dict[str, object]]) -> list[str]:
    header = ["architecture", "layer", "method", *(f"{a} vs {b}" for a, b in PAIRS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        if row["status"] == "refused":
            cells = ["refused by axiomcam (head is not GAP + one linear layer)", "", "", "", ""]
        else:
            cells = [cell(pair_values(row, a, b)) for a, b in PAIRS]
        lines.append("| " + " | ".join([row["architecture"], f"`{row['layer']}`",
                                         row["method"], *cells]) + " |")
    return lines


def summary(rows: list[dict[str, object]]) -> list[str]:
    """How many compared (architecture, method) rows each library matches the reference
    on (:func:`agrees` on every image)."""
    lines = []
    for library in LIBRARIES:
        compared = [values for row in rows
                    if (values := pair_values(row, library, REFERENCE)) is not None]
        lines.append(f"- {library}: r >= {AGREEMENT} with the reference (or both maps "
                     f"constant) on every image in {sum(map(agrees, compared))} of "
                     f"{len(compared)} rows")
    return lines


def scale_table(scales: list[dict[str, object]]) -> list[str]:
    keys = [key for key in scales[0] if key not in ("architecture", "layer")] if scales else []
    header = [key.replace("|", "\\|") for key in keys]
    lines = ["| architecture | " + " | ".join(header) + " |", "|" + "---|" * (len(keys) + 1)]
    for entry in scales:
        cells = [" / ".join(f"{v:.1e}" for v in entry[key]) for key in keys]
        lines.append(f"| {entry['architecture']} | " + " | ".join(cells) + " |")
    return lines


def machine(settings: Settings) -> dict[str, str]:
    with open("/proc/cpuinfo") as cpuinfo:
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo
                    if line.startswith("model name")), platform.processor() or "unknown")
    versions = ", ".join(f"{peer} {v}" for peer, v in peers.peer_versions().items())
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores, {settings.threads} torch threads",
        "versions": f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
                    f"axiomcam {axiomcam.__version__}, {versions}",
        "date": datetime.datetime.now().isoformat(timespec="minutes"),
        "load average at start": ", ".join(f"{v:.2f}" for v in os.getloadavg()),
    }


def write(out: Path, rows: list[dict[str, object]], scales: list[dict[str, object]],
          settings: Settings, about: dict[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "zoo_peers.json").write_text(json.dumps(
        {"about": about, "settings": settings.__dict__, "rows": rows, "scales": scales},
        indent=1))
    text = [*(f"- {key}: {value}" for key, value in about.items()),
            f"- photographs: {', '.join(settings.images)} (perturbation methods: the first "
            f"{settings.perturbation_images})", "", *summary(rows), "", *table(rows), "",
            "Scales at the default layer (per image):", "", *scale_table(scales), ""]
    (out / "zoo_peers.md").write_text("\n".join(text))


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, Settings]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.zoo_peers",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", default="all",
                        help=f"comma-separated builders (default all: {', '.join(ARCHS)})")
    parser.add_argument("--perturbation-archs", default=",".join(PERTURBATION_ARCHS),
                        help="where Ablation-CAM and Score-CAM run ('all', 'none', or builders)")
    parser.add_argument("--no-perturbation", action="store_true",
                        help="same as --perturbation-archs none")
    parser.add_argument("--images", default=",".join(IMAGES),
                        help="sample photographs (axiomcam.images.SAMPLE_IMAGES)")
    parser.add_argument("--perturbation-images", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("results/zoo-peers"),
                        help="where zoo_peers.json and zoo_peers.md go")
    parser.add_argument("--list", action="store_true", help="the plan and its cost, then exit")
    parser.add_argument("--from-json", type=Path,
                        help="write the markdown of an earlier run's zoo_peers.json again")
    args = parser.parse_args(argv)

    def names(text: str) -> tuple[str, ...]:
        chosen = tuple(ARCHS) if text == "all" else () if text == "none" else tuple(
            name.strip() for name in text.split(",") if name.strip())
        unknown = [name for name in chosen if name not in ARCHS]
        if unknown:
            parser.error(f"unknown architecture(s) {', '.join(unknown)}; known: "
                         f"{', '.join(ARCHS)}")
        return chosen

    archs = names(args.archs)
    perturbation = () if args.no_perturbation else names(args.perturbation_archs)
    images = tuple(name.strip() for name in args.images.split(","))
    if args.perturbation_images < 1 or args.perturbation_images > len(images):
        parser.error(f"--perturbation-images must be 1..{len(images)}, "
                     f"got {args.perturbation_images}")
    return args, Settings(archs, tuple(a for a in archs if a in perturbation), images,
                          args.perturbation_images, args.threads)


def rewrite(path: Path) -> None:
    """The markdown of an earlier run, from its JSON (after a change of the table's form)."""
    saved = json.loads(path.read_text())
    settings = Settings(**{key: tuple(value) if isinstance(value, list) else value
                           for key, value in saved["settings"].items()})
    write(path.parent, saved["rows"], saved["scales"], settings, saved["about"])


def main(argv: list[str] | None = None) -> None:
    args, settings = parse(argv)
    if args.from_json:
        rewrite(args.from_json)
        print(f"wrote {args.from_json.parent / 'zoo_peers.md'}")
        return
    torch.set_num_threads(settings.threads)
    cost = estimate_seconds(settings)
    print(f"{len(jobs(settings))} rows on {len(settings.archs)} architectures; "
          f"perturbation methods on {', '.join(settings.perturbation_archs) or 'none'}",
          file=sys.stderr)
    print("estimated cost: " + ", ".join(f"{b} {s:.0f} s" for b, s in cost.items())
          + f"; total ~{sum(cost.values()) / 60:.0f} min", file=sys.stderr, flush=True)
    if args.list:
        return
    command = shlex.join(["python", "-m", "benchmarks.zoo_peers", *sys.argv[1:]])
    about = machine(settings)
    start = time.perf_counter()
    rows, scales = run(settings)
    about |= {"command": command, "wall time": f"{(time.perf_counter() - start) / 60:.1f} min"}
    write(args.out, rows, scales, settings, about)
    print("\n".join(summary(rows)))
    print(f"wrote {args.out / 'zoo_peers.md'} and {args.out / 'zoo_peers.json'}")


if __name__ == "__main__":
    main()
