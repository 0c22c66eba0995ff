"""Fixtures for the reference tests (``test_reference.py``): three random-weight networks
(float64 unless asked otherwise), their inputs, and the slow reference results of
``reference.py``, computed lazily and cached for the session."""

from __future__ import annotations

import functools
import os
import sys

import pytest
import torch
import torchvision
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import reference as ref

IMAGES = 3  # images per architecture (the slow perturbation references use fewer)

ARCHS = {
    # input sizes: small, non-square (catches H/W mix-ups), and still > 1x1 at every layer
    "resnet18": dict(build=functools.partial(torchvision.models.resnet18, weights=None,
                                             num_classes=10),
                     size=(40, 72), seed=0, linear="fc"),
    "vgg11": dict(build=functools.partial(torchvision.models.vgg11, weights=None,
                                          num_classes=10),
                  size=(32, 48), seed=1, linear=None),
    "mobilenet_v2": dict(build=functools.partial(torchvision.models.mobilenet_v2,
                                                 weights=None, num_classes=10),
                         size=(64, 96), seed=2, linear="classifier.1"),
}


def calibrate(model: nn.Module, size: tuple[int, int], generator: torch.Generator) -> None:
    """Make a random-weight network behave like a trained one numerically.

    A fresh torchvision network's BatchNorm has running mean 0 and variance 1, so in eval
    mode nothing is normalised and the logits barely depend on the image (MobileNetV2's are
    equal to 4 digits across images).  Set every BatchNorm's statistics to those of a batch
    of noise images (different from the test images), then give its scale and shift random
    values (so a train/eval mix-up would show), and scale the last linear layer so the
    logits spread over a few units.
    """
    noise = torch.randn(16, 3, *size, generator=generator)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if norms:
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average: one batch sets the statistics
        model.train()
        with torch.no_grad():
            model(noise)
        for norm in norms:
            norm.momentum = 0.1
            with torch.no_grad():
                norm.weight.copy_(0.5 + torch.rand(norm.num_features, generator=generator))
                norm.bias.copy_(0.2 * torch.randn(norm.num_features, generator=generator))
    model.eval()
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        logits = model(noise)
        last.weight.mul_(2.0 / float(logits.std()))
        last.bias.copy_(0.1 * torch.randn(last.out_features, generator=generator))


class Bench:
    """One architecture: the model given to the library, its inputs, and the references
    (computed lazily, one image at a time, and cached for the session)."""

    def __init__(self, name: str, dtype: torch.dtype = torch.float64) -> None:
        spec = ARCHS[name]
        self.name = name
        self.dtype = dtype
        default = torch.get_default_dtype()
        torch.set_default_dtype(dtype)  # built in `dtype`: no 1 GB conversion for VGG
        try:
            torch.manual_seed(spec["seed"])
            model = spec["build"]()
            calibrate(model, spec["size"], torch.Generator().manual_seed(spec["seed"] + 50))
        finally:
            torch.set_default_dtype(default)
        self.model = model.eval()
        assert next(model.parameters()).dtype == dtype
        generator = torch.Generator().manual_seed(spec["seed"] + 100)
        self.size = spec["size"]
        self.x = torch.randn(IMAGES, 3, *spec["size"], generator=generator).to(dtype)
        self.linear_weight = (None if spec["linear"] is None else
                              ref.module_named(self.model, spec["linear"]).weight.detach())
        self.private = ref.private_copy(self.model)
        self._references: dict = {}
        self._cache: dict = {}

    # ---- reference pieces, one image at a time

    def _cached(self, key, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def top_class(self, b: int) -> int:
        return int(self._logits(b).argmax())

    def _logits(self, b: int) -> torch.Tensor:
        def compute():
            with torch.no_grad():
                return self.private(self.x[b:b + 1])[0]
        return self._cached(("logits", b), compute)

    def reference(self, layer: str) -> ref.Reference:
        if layer not in self._references:
            self._references[layer] = ref.Reference(self.private, layer)
        return self._references[layer]

    def passes(self, layer: str, b: int, c: int) -> dict:
        return self._cached(("passes", layer, b, c),
                            lambda: self.reference(layer).gradient(self.x[b], c))

    def ablated(self, layer: str, b: int) -> torch.Tensor:
        def compute():
            first = self.passes(layer, b, self.top_class(b))
            return self.reference(layer).ablated_logits(
                self.x[b], first["A"].shape[0], first["calls"])
        return self._cached(("ablated", layer, b), compute)

    def masked(self, layer: str, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        def compute():
            A = self.passes(layer, b, self.top_class(b))["A"]
            return self.reference(layer).masked_probabilities(self.x[b], A)
        return self._cached(("masked", layer, b), compute)

    def guided_gradient(self, b: int, c: int) -> torch.Tensor:
        return self._cached(("guided", b, c),
                            lambda: ref.guided_gradient(self.private, self.x[b], c))

    # ---- whole expected explanations

    def classes(self, n: int, targets: torch.Tensor | None) -> torch.Tensor:
        """``(n, k)`` classes: the top class of each image if ``targets`` is None."""
        if targets is None:
            return torch.tensor([[self.top_class(b)] for b in range(n)])
        return targets.reshape(n, -1)

    def expected(self, method: str, layer: str | None, n: int,
                 targets: torch.Tensor | None = None, form: str = "score") -> dict:
        """The reference explanation of the first ``n`` images, shaped like the library's
        (a ``k`` axis only when ``targets`` is ``(n, k)``)."""
        classes = self.classes(n, targets)
        guided_method = method.startswith("guided_")
        cam_method = method[len("guided_"):] if guided_method else method
        out: dict[str, list] = {key: [] for key in
                                ("raw", "weights", "maps", "scores", "guided")}
        for b in range(n):
            row: dict[str, list] = {key: [] for key in out}
            for c in classes[b].tolist():
                row["scores"].append(self._logits(b)[c])
                cam_map = None
                if cam_method != "backprop":
                    passes = self.passes(layer, b, c)
                    raw, weights = ref.explain_one(
                        cam_method, passes, linear_weight=self.linear_weight, c=c,
                        ablated=self.ablated(layer, b) if cam_method == "ablationcam" else None,
                        masked=self.masked(layer, b) if cam_method == "scorecam" else None,
                        form=form)
                    assert torch.allclose(passes["logits"], self._logits(b),
                                          rtol=1e-10 if self.dtype == torch.float64 else 1e-5)
                    cam_map = ref.map_from_raw(raw, self.size)
                    row["raw"].append(raw)
                    row["weights"].append(weights)
                    row["maps"].append(cam_map)
                if guided_method:
                    gradient = self.guided_gradient(b, c)
                    guided = gradient if cam_map is None else gradient * cam_map[None]
                    row["guided"].append(guided)
                    if row["maps"]:
                        row["maps"][-1] = ref.guided_map(guided)
                    else:
                        row["maps"].append(ref.guided_map(guided))
            for key in out:
                out[key].append(row[key])

        def stack(key):
            rows = out[key]
            if not rows[0] or rows[0][0] is None:
                return None
            tensor = torch.stack([torch.stack(r) for r in rows])
            return tensor if targets is not None and targets.dim() == 2 else tensor[:, 0]

        result = {key: stack(key) for key in out}
        result["targets"] = classes if targets is not None and targets.dim() == 2 \
            else classes[:, 0]
        return result

    # ---- the library, cached

    def library(self, method: str, layer: str | None, n: int,
                targets: torch.Tensor | None = None, **options):
        """``axiomcam.explain`` on the first ``n`` images, cached by its arguments."""
        import axiomcam

        classes = None if targets is None else (tuple(targets.shape),
                                                tuple(targets.flatten().tolist()))
        key = ("library", method, layer, n, classes, tuple(sorted(options.items())))

        def compute():
            kwargs = dict(options)
            if layer is not None:
                kwargs["target_layer"] = layer
            if targets is not None:
                kwargs["targets"] = targets.clone()
            return axiomcam.explain(self.model, self.x[:n].clone(), method=method, **kwargs)
        return self._cached(key, compute)


@pytest.fixture(scope="session")
def benches():
    made: dict[tuple, Bench] = {}

    def get(name: str, dtype: torch.dtype = torch.float64) -> Bench:
        if (name, dtype) not in made:
            made[name, dtype] = Bench(name, dtype)
        return made[name, dtype]

    return get
