"""The zoo for ``test_zoo.py``: every torchvision classifier of issue 23 and axiomcam's two
built-in models, each with its input size, the layer axiomcam picks by default, one inner
layer, and a float64 reference computed on a private copy of the network.

Nothing here calls axiomcam (but to load its built-in models): the reference lays a
layer's output on its grid, takes ``dy/dA`` with ``torch.autograd.grad``, zeroes channels
and masks images by itself, with methods.md's formulas (``channel_weights``,
``raw_map``: ``reference.py``'s, vectorised over channels).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import reference as ref
import torch
import torchvision.models as tvm
from torch import nn

F64 = torch.float64
#: images per architecture (the perturbation methods and guided backprop use the first)
IMAGES = 2


# --------------------------------------------------------------------------- layouts


@dataclass(frozen=True)
class Grid:
    """How one image's output of a layer is laid on the ``(K, h, w)`` grid of a CAM:
    ``channels_first`` as it is, ``channels_last`` ``(h, w, K)`` permuted, ``tokens``
    ``(extra + h*w, K)`` with the ``extra`` leading tokens (the class token) set aside and
    the others laid row by row on ``shape``."""

    kind: str = "channels_first"
    extra: int = 0
    shape: tuple[int, int] = (0, 0)

    def of(self, output: torch.Tensor) -> torch.Tensor:
        """``(K, h, w)`` from one image's output (no batch axis)."""
        if self.kind == "channels_first":
            return output
        if self.kind == "channels_last":
            return output.permute(2, 0, 1)
        patches = output[self.extra:]  # (h*w, K)
        return patches.T.reshape(output.shape[-1], *self.shape)

    def channel(self, k: int) -> tuple:
        """The index of grid channel ``k`` in one image's output (no batch axis)."""
        if self.kind == "channels_first":
            return (k,)
        if self.kind == "channels_last":
            return (Ellipsis, k)
        return (slice(self.extra, None), k)

    def channel_axis_shape(self, output: torch.Tensor) -> tuple[int, ...]:
        """The shape a ``(K,)`` channel vector takes to broadcast over ``output``."""
        if self.kind == "channels_first":
            return (1, output.shape[1]) + (1,) * (output.dim() - 2)
        return (output.shape[-1],)


FIRST = Grid()
LAST = Grid("channels_last")


# --------------------------------------------------------------------------- the zoo


@dataclass(frozen=True)
class Architecture:
    """One network of the zoo.

    Attributes:
        build: the network with random weights (seeded by the caller), or the built-in
            pretrained model.
        size: ``(H, W)`` of the inputs: small, and still more than one position at the
            default layer.
        default: the layer axiomcam chooses when none is given (asserted).
        inner: one inner layer; ``why_inner`` says why it is worth testing.
        head: the linear layer CAM reads at the default layer (it feeds global average
            pooling and that layer); ``None``: CAM must refuse the default layer.
        grids: the layers whose output is not channels-first.
        concatenated: the layers whose output is concatenated with other branches of the
            same image: the network after them cannot run on a batch of copies of their
            output alone, so axiomcam's Ablation-CAM re-runs the whole network, and says
            so.
        pretrained: the weights are axiomcam's built-in ones (not recalibrated).
    """

    build: Callable[[], nn.Module]
    size: tuple[int, int]
    default: str
    inner: str
    why_inner: str
    head: str | None = None
    grids: dict[str, Grid] = field(default_factory=dict)
    concatenated: tuple[str, ...] = ()
    pretrained: bool = False

    def grid(self, layer: str) -> Grid:
        return self.grids.get(layer, FIRST)


def _torchvision(name: str, **options: object) -> Callable[[], nn.Module]:
    return functools.partial(getattr(tvm, name), weights=None, num_classes=10, **options)


def _maxvit_t_small_windows() -> nn.Module:
    """MaxViT-T (maxvit_t's stem, channels, depths and heads) with 2 x 2 attention
    windows and grids instead of 7 x 7: every stage's grid must divide by the partition
    size, so 7 needs 224 x 224 inputs (0.5 s a float64 forward pass, the whole zoo's
    budget ten times over); 2 takes 64 x 64.  The modules and code paths are maxvit_t's.
    (torchvision's grid partition also needs square inputs.)"""
    from torchvision.models.maxvit import MaxVit

    return MaxVit(input_size=(64, 64), stem_channels=64, partition_size=2,
                  block_channels=[64, 128, 256, 512], block_layers=[2, 2, 5, 2],
                  head_dim=32, stochastic_depth_prob=0.2, num_classes=10)


def _builtin(name: str) -> nn.Module:
    import axiomcam.models

    return axiomcam.models.load(name).model


_TOKENS_2x2 = Grid("tokens", extra=1, shape=(2, 2))

ARCHITECTURES: dict[str, Architecture] = {
    # the dearest first, so that pytest-xdist starts them early on different workers
    "maxvit_t": Architecture(
        _maxvit_t_small_windows, (64, 64), "blocks.3", "blocks.1",
        "a stage output (MBConv, block and grid attention inside)"),
    "vit_b_16": Architecture(
        _torchvision("vit_b_16", image_size=32), (32, 32),
        "encoder.layers.encoder_layer_11.ln_1", "encoder.layers.encoder_layer_5.ln_1",
        "a middle block's tokens (class token set aside)",
        grids={"encoder.layers.encoder_layer_11.ln_1": _TOKENS_2x2,
               "encoder.layers.encoder_layer_5.ln_1": _TOKENS_2x2}),
    "swin_t": Architecture(
        _torchvision("swin_t"), (64, 96), "features.7.1.norm1", "features.5",
        "the third stage's (B, h, w, C) output, which no LayerNorm gives away",
        grids={"features.7.1.norm1": LAST, "features.5": LAST}),
    "efficientnet_v2_s": Architecture(
        _torchvision("efficientnet_v2_s"), (64, 64), "features.7", "features.3",
        "a fused-MBConv stage output", head="classifier.1"),
    "wide_resnet50_2": Architecture(
        _torchvision("wide_resnet50_2"), (41, 33), "layer4", "layer2.3.relu",
        "a ReLU module called three times per block: its last call is the block's output",
        head="fc"),
    "inception_v3": Architecture(
        _torchvision("inception_v3", aux_logits=False, init_weights=True), (107, 75),
        "Mixed_7c", "Mixed_5b.branch_pool", "a branch before the concatenation",
        head="fc", concatenated=("Mixed_5b.branch_pool",)),
    "convnext_tiny": Architecture(
        _torchvision("convnext_tiny"), (64, 64), "features.7", "features.4.0",
        "a LayerNorm of (B, C, h, w), not (B, h, w, C): LayerNorm2d before a downsampling"),
    "vgg11_bn": Architecture(
        _torchvision("vgg11_bn"), (64, 64), "avgpool", "features.5",
        "a BatchNorm output then changed in place by ReLU(inplace=True)"),
    "resnext50_32x4d": Architecture(
        _torchvision("resnext50_32x4d"), (41, 33), "layer4", "layer3.0.conv2",
        "a grouped convolution", head="fc"),
    "alexnet": Architecture(
        _torchvision("alexnet"), (95, 127), "avgpool", "features.0",
        "a convolution whose output ReLU(inplace=True) overwrites"),
    "densenet121": Architecture(
        _torchvision("densenet121"), (64, 33), "features.norm5",
        "features.denseblock2.denselayer4.norm2",
        "a BatchNorm output then changed in place by ReLU(inplace=True)",
        concatenated=("features.denseblock2.denselayer4.norm2",)),
    "googlenet": Architecture(
        _torchvision("googlenet", aux_logits=False, init_weights=True), (64, 64),
        "inception5b", "inception4a.branch3", "a branch before the concatenation",
        head="fc", concatenated=("inception4a.branch3",)),
    "resnet18": Architecture(
        _torchvision("resnet18"), (41, 33), "layer4", "layer2.1.bn2",
        "a BatchNorm output then changed in place by `out += identity`", head="fc"),
    "mobilenet_v3_small": Architecture(
        _torchvision("mobilenet_v3_small"), (64, 64), "features.12", "features.4.block.2",
        "a squeeze-excitation output (input times channel scales)"),
    "mnasnet1_0": Architecture(
        _torchvision("mnasnet1_0"), (64, 64), "layers.16", "layers.9",
        "a stack of inverted residuals", head="classifier.1"),
    "shufflenet_v2_x1_0": Architecture(
        _torchvision("shufflenet_v2_x1_0"), (64, 64), "conv5", "stage3.0",
        "a block output after the channel shuffle", head="fc"),
    "squeezenet1_1": Architecture(
        _torchvision("squeezenet1_1"), (64, 48), "classifier.2", "features.3.squeeze_activation",
        "a Fire module's squeeze ReLU (in place, 16 channels)"),
    "efficientnet_b0": Architecture(
        _torchvision("efficientnet_b0"), (64, 64), "features.8", "features.4.0.block.2",
        "a squeeze-excitation output", head="classifier.1"),
    "regnet_y_400mf": Architecture(
        _torchvision("regnet_y_400mf"), (64, 64), "trunk_output.block4",
        "trunk_output.block2.block2-0.f.se", "a squeeze-excitation output", head="fc"),
    "mobilenet_v2 (built-in)": Architecture(
        functools.partial(_builtin, "mobilenet_v2"), (64, 64), "features.18", "features.13",
        "a residual sum (linear bottleneck: signed activations)", head="classifier.1",
        pretrained=True),
    "efficientnet_lite0 (built-in)": Architecture(
        functools.partial(_builtin, "efficientnet_lite0"), (64, 64), "_swish",
        "_blocks.8._bn2", "a block's projection BatchNorm before the residual sum",
        head="_fc", pretrained=True),
}


# --------------------------------------------------------------------------- building


def calibrate(model: nn.Module, size: tuple[int, int], generator: torch.Generator,
              images: int = 8) -> None:
    """Make a random-weight network's numbers look like a trained one's.

    Fresh BatchNorms (running mean 0, variance 1) normalise nothing: activations grow
    layer after layer (to 1e4 and more), the logits are small differences of large numbers
    and even float64 gradients keep only about 8 digits.  So: random affine parameters for
    every BatchNorm and LayerNorm (a trained network's are not 1 and 0; with LayerNorm's
    the channel mean of its output differs between positions), ConvNeXt's layer scales
    (1e-6 at initialisation) between 0.1 and 0.6, and then each BatchNorm's statistics from
    a batch of noise images run through the network as it now is (only the BatchNorms in
    training mode); last, a new last layer (ViT's starts at zero) scaled so that the
    logits spread over a few units.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d | nn.LayerNorm)]
    noise = torch.randn(images, 3, *size, generator=generator)
    model.eval()
    with torch.no_grad():
        for norm in norms:
            if norm.weight is not None:
                norm.weight.copy_(0.5 + torch.rand(norm.weight.shape, generator=generator))
                norm.bias.copy_(0.2 * torch.randn(norm.bias.shape, generator=generator))
            if isinstance(norm, nn.BatchNorm2d):
                norm.reset_running_stats()
                norm.momentum = None  # a cumulative average: one batch sets the statistics
                norm.train()
        for name, parameter in model.named_parameters():
            if name.endswith("layer_scale"):
                parameter.copy_(0.1 + 0.5 * torch.rand(parameter.shape, generator=generator))
        last = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)][-1]
        seen = []  # the last layer's input, to scale its new weights without another pass
        handle = last.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
        try:
            model(noise)
        finally:
            handle.remove()
        model.eval()
        last.weight.normal_(generator=generator)
        if last.bias is not None:
            last.bias.copy_(0.1 * torch.randn(last.bias.shape, generator=generator))
        last.weight.mul_(2.0 / float(last(seen[-1]).std()))


class ZooModel:
    """One architecture of the zoo in float64: the model given to axiomcam, its images,
    and the reference (on a private copy sharing the weights), computed when first asked
    for and kept."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.arch = ARCHITECTURES[name]
        seed = list(ARCHITECTURES).index(name)
        torch.manual_seed(seed)
        model = self.arch.build()
        if not self.arch.pretrained:
            calibrate(model, self.arch.size, torch.Generator().manual_seed(seed + 50))
        self.model = model.to(F64).eval()
        generator = torch.Generator().manual_seed(seed + 100)
        self.x = torch.randn(IMAGES, 3, *self.arch.size, generator=generator, dtype=F64)
        self.private = ref.private_copy(self.model)
        self.layers = (self.arch.default, self.arch.inner)
        self._cache: dict = {}

    def _cached(self, key: tuple, compute: Callable[[], object]) -> object:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    # ---- gradients at both layers

    def passes(self, layer: str) -> list[dict]:
        """Per image: its logits, the top class ``c``, ``y`` = its logit, the layer's output
        at its last call laid on the grid ``A`` ``(K, h, w)``, ``G = dy/dA`` (autograd
        with respect to that very tensor), and how often the layer runs in a forward
        pass.  One forward and one backward pass of the images serve both layers: in eval
        mode the images do not interact, so the gradient of the sum of their scores is
        each image's own."""
        return self._cached(("passes",), self._gradients)[layer]

    def _gradients(self) -> dict[str, list[dict]]:
        keeps = [ref.KeepEveryCall() for _ in self.layers]
        handles = [ref.module_named(self.private, layer).register_forward_hook(keep)
                   for layer, keep in zip(self.layers, keeps, strict=True)]
        try:
            logits = self.private(self.x)
        finally:
            for handle in handles:
                handle.remove()
        classes = logits.argmax(1)
        scores = logits.gather(1, classes[:, None])[:, 0]
        gradients = torch.autograd.grad(scores.sum(), [keep.outputs[-1] for keep in keeps])
        result = {}
        for layer, keep, gradient in zip(self.layers, keeps, gradients, strict=True):
            grid = self.arch.grid(layer)
            result[layer] = [{"A": grid.of(keep.outputs[-1][b].detach()),
                              "G": grid.of(gradient[b]), "logits": logits[b].detach(),
                              "c": int(classes[b]), "y": scores[b].detach(),
                              "calls": len(keep.outputs)}
                             for b in range(self.x.shape[0])]
        return result

    def guided_gradient(self) -> torch.Tensor:
        """Guided backprop of the first image for its top class (the plain input gradient
        when the network has no ReLU module, as axiomcam documents)."""
        c = self.passes(self.arch.default)[0]["c"]
        return self._cached(("guided",), lambda: ref.guided_gradient(
            self.private, self.x[0], c, require_relu=False))

    # ---- perturbations with all but a few channels of the layer switched off

    def live_channels(self, layer: str) -> torch.Tensor:
        """``(K,)`` 0/1: the channels of ``layer`` that stay on for the perturbation
        methods: the first and the last of those that vary over the positions for the
        first image (a dead or constant channel would weigh 0 and test nothing)."""
        A = self.passes(layer)[0]["A"].flatten(1)
        varying = (A.amax(1) > A.amin(1)).nonzero().flatten()
        assert varying.numel() >= 2, f"{self.name} {layer}: {varying.numel()} vary"
        live = torch.zeros(A.shape[0], dtype=F64)
        live[[int(varying[0]), int(varying[-1])]] = 1.0
        return live

    def perturbed(self, layer: str) -> dict:
        """The first image in the network whose ``layer`` output is multiplied by
        :meth:`live_channels` at its last call: its logits, top class ``c`` and score ``y``,
        ``A``, the live channels, the class score with each live channel of ``A`` zeroed in
        turn, and the softmax probabilities of the image masked by each live channel
        (Score-CAM) and of the all-zero image."""
        return self._cached(("perturbed", layer), lambda: self._perturb(layer))

    def _perturb(self, layer: str) -> dict:
        grid, x, live = self.arch.grid(layer), self.x[0], self.live_channels(layer)
        module = ref.module_named(self.private, layer)
        calls = self.passes(layer)[0]["calls"]
        on = live.nonzero().flatten().tolist()
        with channels_switched_off(module, grid, live, calls), torch.no_grad():
            # called once, the layer's output is the one kept above, times the switch
            A = (self.passes(layer)[0]["A"] * live[:, None, None] if calls == 1
                 else self._last_output(module, grid, x))
            masks = [score_cam_mask(A[k], tuple(x.shape[1:])) for k in on]
            # one batch: the image, the image with each live channel zeroed at the layer,
            # the image masked by each live channel (Score-CAM), the all-zero image
            zeroed = ZeroChannelPerRow(grid, {1 + row: k for row, k in enumerate(on)}, calls)
            handle = module.register_forward_hook(zeroed)
            try:
                logits = self.private(torch.stack([x] * (1 + len(on))
                                                  + [x * m for m in masks]
                                                  + [torch.zeros_like(x)]))
            finally:
                handle.remove()
        probabilities = torch.softmax(logits, 1)
        c = int(logits[0].argmax())
        return {"A": A, "live": on, "logits": logits[0], "c": c, "y": logits[0, c],
                "ablated_y": logits[1:1 + len(on), c],
                "masked_p": probabilities[1 + len(on):-1, c], "baseline_p": probabilities[-1, c]}

    def _last_output(self, module: nn.Module, grid: Grid, x: torch.Tensor) -> torch.Tensor:
        """``(K, h, w)``: ``module``'s output at its last call for image ``x``."""
        keep = ref.KeepEveryCall()
        handle = module.register_forward_hook(keep)
        try:
            self.private(x[None])
        finally:
            handle.remove()
        return grid.of(keep.outputs[-1][0])


class ZeroChannelPerRow:
    """Forward hook: at the layer's last call of each pass (of ``calls``), row ``r`` of the
    batch gets grid channel ``channels[r]`` set to 0 (the whole network is re-run for each
    ablated copy, so nothing depends on how the network handles a batch)."""

    def __init__(self, grid: Grid, channels: dict[int, int], calls: int) -> None:
        self.grid, self.channels, self.calls, self.seen = grid, channels, calls, 0

    def __call__(self, module: nn.Module, args: object, output: torch.Tensor) -> torch.Tensor:
        self.seen += 1
        if self.seen % self.calls:
            return output
        output = output.clone()
        for row, k in self.channels.items():
            output[(row, *self.grid.channel(k))] = 0.0
        return output


@contextmanager
def channels_switched_off(module: nn.Module, grid: Grid, live: torch.Tensor,
                          calls: int) -> Iterator[None]:
    """Within the block, ``module``'s output at its last call of each forward pass (of
    ``calls``) is multiplied along its grid's channel axis by ``live`` ``(K,)`` (a class
    token's channels too)."""
    seen = []

    def switch_off(module: nn.Module, args: object, output: torch.Tensor) -> torch.Tensor:
        seen.append(1)
        if len(seen) % calls:
            return output
        return output * live.to(output.dtype).view(grid.channel_axis_shape(output))

    handle = module.register_forward_hook(switch_off)
    try:
        yield
    finally:
        handle.remove()


# --------------------------------------------------------------------------- definitions


def channel_weights(method: str, A: torch.Tensor, G: torch.Tensor, c: int,
                    head: torch.Tensor | None) -> torch.Tensor | None:
    """``(K,)`` the channel weights of a CAM from one image's ``A`` and ``G`` ``(K, h, w)``
    (methods.md's formulas; ``None`` for the element-wise methods).  The same definitions
    as ``reference.py``'s, vectorised over channels (K is 2048 here): they are checked
    against those per-channel loops by ``test_zoo``."""
    a, g = A.flatten(1), G.flatten(1)
    if method == "cam":
        return head[c] / a.shape[1]
    if method == "gradcam":
        return g.mean(1)
    if method == "gradcam++":
        denominator = 2 * g**2 + a.sum(1, keepdim=True) * g**3
        alpha = torch.where(denominator != 0, g**2 / denominator.where(denominator != 0, 1), 0)
        return (alpha * g.clamp(min=0)).sum(1)
    if method == "xgradcam":
        totals = a.sum(1)
        return torch.where(totals != 0, (a * g).sum(1) / totals.where(totals != 0, 1), 0)
    if method == "fem":  # the share of each channel above mean + 2 (population) std
        threshold = a.mean(1) + 2 * a.std(1, correction=0)
        return (a > threshold[:, None]).to(a.dtype).mean(1)
    return None


def score_cam_mask(channel: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``reference.score_cam_mask``, with a constant channel's all-zero mask decided before
    upsampling, whose rounding (``a w + a (1 - w)``) leaves a ~1e-16 ripple on a constant
    channel that the min-max scaling would blow up to [0, 1] (GoogLeNet's ``inception5b``
    has such channels: a 3 x 3 max-pool branch on a 2 x 2 grid)."""
    if channel.max() == channel.min():
        return torch.zeros(size, dtype=channel.dtype)
    return ref.score_cam_mask(channel, size)


def raw_map(method: str, A: torch.Tensor, G: torch.Tensor,
            weights: torch.Tensor | None) -> torch.Tensor:
    """``(h, w)``: ``sum_k w_k A^k``, or the element-wise methods' sums, or Eigen-CAM's
    (Eigen-Grad-CAM's: of ``G * A``) first principal component (``reference.eigencam_raw``,
    numpy's SVD)."""
    if weights is not None:
        return torch.einsum("k,khw->hw", weights, A)
    if method == "hirescam":
        return (G * A).sum(0)
    if method == "layercam":
        return (G.clamp(min=0) * A).sum(0)
    if method == "gradcamelementwise":
        return (G * A).clamp(min=0).sum(0)
    if method == "eigengradcam":  # Eigen-CAM's projection of G * A, signed by its mean
        return ref.eigencam_raw(G * A)
    assert method == "eigencam", method
    return ref.eigencam_raw(A)
