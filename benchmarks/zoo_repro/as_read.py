"""Every gradient-method disagreement of the zoo table, recomputed from the peer's code as
read: the same ``A`` and ``G`` as the reference, put through the formula the peer
implements instead of the definition.  If the peer's map correlates ~1.000 with that, the
difference is explained by what the formula changes, and by nothing else (no hook, layer
or upsampling problem).

As read in pytorch-grad-cam 1.5.7 and torchcam 0.5.0:

- pytorch-grad-cam Grad-CAM++: ``alpha = G^2 / (2 G^2 + sum A G^3 + 1e-6)`` (0 where
  ``G = 0``); XGrad-CAM: ``sum A G / (sum A + 1e-7)``.
- torchcam XGrad-CAM: ``sum A G / (sum A + 1e-8)``; Grad-CAM++: ``w = sum G^2 ReLU(G)``
  (its in-place division acts on a copy, see BENCHMARKS.md); CAM: no ReLU before the
  min-max scaling (``_relu`` stays False for ``CAM``).
- pytorch-grad-cam Eigen-CAM: the projection with the sign NumPy's SVD returns, i.e. either
  ``+p`` or ``-p``: the row shows the better of the two.

It reads the rows to explain from a run of ``python -m benchmarks.zoo_peers`` (every
gradient-method row where a peer's r with the reference is below 0.99 on an image),
rebuilds those models and photographs the same way and calls the peers again.  DenseNet-121
(the in-place ReLU) has its own reproduction, ``inplace_relu``; the perturbation methods
theirs and BENCHMARKS.md.

    python -m benchmarks.zoo_repro.as_read [results/zoo-peers/zoo_peers.json]
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import torch

from .. import zoo_reference as reference
from ..peers import GRAD_CAM, TORCHCAM
from ..zoo_peers import AGREEMENT, ARCHS, SIZE, Zoo, last_linear, pearson, photographs

EPSILONS = {(GRAD_CAM, "gradcam++"): 1e-6, (GRAD_CAM, "xgradcam"): 1e-7,
            (TORCHCAM, "xgradcam"): 1e-8}
#: the one the in-place ReLU explains (``inplace_relu``)
OWN_REPRODUCTION = ("densenet121",)


def raw_as_read(library: str, method: str, A: torch.Tensor, G: torch.Tensor,
                classifier: torch.nn.Linear, target: int) -> torch.Tensor:
    """The raw map ``(h, w)`` the peer computes from ``A`` and ``G``, as read."""
    sums = A.sum((1, 2), keepdim=True)
    if method == "xgradcam":
        weights = (A * G).sum((1, 2)) / (sums[:, 0, 0] + EPSILONS[library, method])
    elif method == "gradcam++" and library == GRAD_CAM:
        alpha = G**2 / (2 * G**2 + sums * G**3 + EPSILONS[library, method])
        weights = (torch.where(G != 0, alpha, 0.0) * G.clamp_min(0)).sum((1, 2))
    elif method == "gradcam++":
        weights = (G**2 * G.clamp_min(0)).sum((1, 2))
    elif method == "cam":
        weights = classifier.weight.detach()[target].double()
    else:
        raise ValueError(f"no formula as read for {library} {method}")
    return (weights[:, None, None] * A).sum(0)


def disagreements(path: Path) -> list[tuple[str, str, str]]:
    """``(builder, method, library)`` of every gradient-method row a peer disagrees on."""
    rows = json.loads(path.read_text())["rows"]
    found = []
    for row in rows:
        if row["builder"] in OWN_REPRODUCTION or row["method"] in ("ablationcam", "scorecam"):
            continue
        for library in (GRAD_CAM, TORCHCAM):
            values = row.get("r", {}).get(f"{library} vs reference")
            if values and any(v is not None and v < AGREEMENT for v in values):
                found.append((row["builder"], row["method"], library))
    return found


def explain_row(zoo: Zoo, method: str, library: str) -> dict[str, list[float]]:
    """r of the peer's maps with the definition and with its formula as read, per image."""
    count = len(zoo.images)
    maps = zoo.peer_call(library, method, count)()
    definition = zoo.reference_maps(method, count)
    if method == "eigencam":
        as_read = {sign: torch.stack([
            reference.input_map(sign * reference.eigen_map(seen.A), (SIZE, SIZE))
            for seen in zoo.captures]) for sign in (1, -1)}
        plus, minus = pearson(maps, as_read[1]), pearson(maps, as_read[-1])
        read = [max(a, b) for a, b in zip(plus, minus, strict=True)]
    else:
        classifier = zoo.model.get_submodule(last_linear(zoo.model))
        raws = [raw_as_read(library, method, seen.A, seen.G, classifier, int(target))
                for seen, target in zip(zoo.captures, zoo.classes, strict=True)]
        upsampled = torch.stack([reference.input_map(raw, (SIZE, SIZE)) if method != "cam"
                                 else torch.nn.functional.interpolate(
                                     raw[None, None], size=(SIZE, SIZE), mode="bilinear",
                                     align_corners=False)[0, 0] for raw in raws])
        read = pearson(maps, upsampled)
    return {"definition": pearson(maps, definition), "as read": read}


def evidence(path: Path) -> list[dict[str, object]]:
    """One entry per disagreement: the row and :func:`explain_row`'s correlations."""
    images = photographs(tuple(json.loads(path.read_text())["settings"]["images"]))
    entries: list[dict[str, object]] = []
    zoo: Zoo | None = None
    for builder, method, library in disagreements(path):
        if zoo is None or zoo.arch.builder != builder:
            zoo = None
            zoo = Zoo(ARCHS[builder], images)
        entries.append({"architecture": zoo.arch.title, "method": method, "library": library,
                        **explain_row(zoo, method, library)})
    return entries


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "results/zoo-peers/zoo_peers.json")
    if not path.exists():
        sys.exit(f"{path} not found: run python -m benchmarks.zoo_peers first")
    torch.set_num_threads(2)
    warnings.simplefilter("ignore")  # torchvision's and the peers' warnings
    print("| architecture | method | peer | r with the definition "
          "| r with the peer's formula as read |")
    print("|---|---|---|---|---|")
    for entry in evidence(path):
        shown = [" / ".join(f"{v:.3f}" for v in entry[key]) for key in ("definition", "as read")]
        print(f"| {entry['architecture']} | {entry['method']} | {entry['library']} | "
              f"{shown[0]} | {shown[1]} |", flush=True)


if __name__ == "__main__":
    main()
