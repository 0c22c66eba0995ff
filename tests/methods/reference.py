"""Slow, plain reference implementations of every method, written from the definitions.

Nothing here is shared with ``axiomcam``: every quantity is computed one image at a time
(and, where a method has channel weights, one channel at a time) on a private deep copy of
the model, so that a batching, indexing, hooking or in-place bug in the library cannot be
mirrored here.

Conventions: ``x`` is one image ``(C, H, W)``; ``A`` and ``G`` are one image's target-layer
activation and gradient ``(K, h, w)``; ``c`` is a class index.  Everything is returned in
the model's dtype (the tests use float64).  1D signals work the same way: ``x`` is
``(C, L)``, ``A`` and ``G`` are ``(K, l)``, and resizing is linear instead of bilinear.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------- model copies


def private_copy(model: nn.Module) -> nn.Module:
    """A deep copy of the modules, in eval mode, with every in-place op switched off.

    In-place ReLUs (VGG, ResNet) would otherwise overwrite a kept activation; the forward
    hooks below also pass a clone on, which covers in-place ops that are not modules
    (ResNet's ``out += identity`` after ``bn2``).  The parameter and buffer tensors are
    shared, not copied (VGG-11 holds 1 GB of float64 weights), and never written: gradients
    are taken with ``torch.autograd.grad``, which leaves every ``.grad`` alone.
    """
    shared = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
    private = copy.deepcopy(model, shared).eval()
    for module in private.modules():
        if isinstance(getattr(module, "inplace", None), bool):
            module.inplace = False
    return private


def module_named(model: nn.Module, name: str) -> nn.Module:
    return dict(model.named_modules())[name]


class KeepEveryCall:
    """Forward hook: keeps the output of every call of the module and passes a clone on
    (so nothing downstream can modify the kept tensor in place)."""

    def __init__(self) -> None:
        self.outputs: list[torch.Tensor] = []

    def __call__(self, module: nn.Module, args: object, output: torch.Tensor) -> torch.Tensor:
        self.outputs.append(output)
        return output.clone()


class ZeroOneChannelPerCopy:
    """Forward hook for Ablation-CAM: in a batch of copies of one image, copy ``j`` gets
    channel ``channels[j]`` set to 0 at the module's call number ``at_call`` (its last)."""

    def __init__(self, channels: list[int], at_call: int) -> None:
        self.channels = channels
        self.at_call = at_call
        self.calls = 0

    def __call__(self, module: nn.Module, args: object, output: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        output = output.clone()
        if self.calls == self.at_call:
            assert output.shape[0] == len(self.channels)
            for copy_index, channel in enumerate(self.channels):
                output[copy_index, channel] = 0.0
        return output


# --------------------------------------------------------------------------- basic passes


class Reference:
    """The reference for one model (a :func:`private_copy`) and one target layer.

    ``gradient(x, c)`` runs one image and returns its logits, ``y^c``, the target layer's
    output ``A`` at its last call, how many times the layer was called, and
    ``G = dy^c/dA`` by ``torch.autograd.grad`` with respect to that very output tensor.
    ``ablated_logits`` and ``masked_probabilities`` run the perturbed copies of one image.
    """

    def __init__(self, private: nn.Module, layer: str) -> None:
        self.model = private  # from private_copy(): shared by the layers of one model
        self.layer_name = layer
        self.layer = module_named(private, layer)

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model(batch)

    def gradient(self, x: torch.Tensor, c: int) -> dict[str, torch.Tensor]:
        keep = KeepEveryCall()
        handle = self.layer.register_forward_hook(keep)
        try:
            leaf = x[None].detach().clone().requires_grad_(True)  # so the graph is recorded
            logits = self.model(leaf)
        finally:
            handle.remove()
        activation = keep.outputs[-1]  # the last call
        score = logits[0, c]
        (gradient,) = torch.autograd.grad(score, activation)
        return {
            "A": activation[0].detach(),
            "G": gradient[0].detach(),
            "logits": logits[0].detach(),
            "y": score.detach(),
            "calls": len(keep.outputs),
        }

    def ablated_logits(self, x: torch.Tensor, channels: int, calls: int,
                       chunk: int = 64) -> torch.Tensor:
        """``(K, num_classes)``: the logits with channel ``k`` of the target layer's output
        (at its last call, number ``calls``) set to 0, the WHOLE model re-run for every
        ``k``.  Copies of the image are stacked ``chunk`` at a time only to use the
        machine; each copy ablates exactly one channel."""
        rows = []
        for start in range(0, channels, chunk):
            block = list(range(start, min(start + chunk, channels)))
            hook = ZeroOneChannelPerCopy(block, at_call=calls)
            handle = self.layer.register_forward_hook(hook)
            try:
                rows.append(self.logits(x[None].expand(len(block), *x.shape).clone()))
            finally:
                handle.remove()
            assert hook.calls == calls, "the layer was called a different number of times"
        return torch.cat(rows)

    def masked_probabilities(self, x: torch.Tensor, A: torch.Tensor,
                             chunk: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """Score-CAM: ``(K, num_classes)`` softmax of ``model(x * M_k)`` for every channel,
        and ``(num_classes,)`` softmax of ``model(zeros)``.  A constant channel's mask is 0,
        so its masked image *is* the zero baseline: its row is the baseline's, not re-run."""
        baseline = torch.softmax(self.logits(torch.zeros_like(x)[None]), dim=1)[0]
        masks = [score_cam_mask(A[k], tuple(x.shape[1:])) for k in range(A.shape[0])]
        probabilities = baseline.repeat(A.shape[0], 1)
        live = [k for k in range(A.shape[0]) if bool(masks[k].any())]
        for start in range(0, len(live), chunk):
            channels = live[start:start + chunk]
            masked = torch.stack([x * masks[k] for k in channels])
            probabilities[channels] = torch.softmax(self.logits(masked), dim=1)
        return probabilities, baseline


# --------------------------------------------------------------------------- definitions


def weighted_channels(weights: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """``sum_k w_k A^k``, one channel at a time."""
    raw = torch.zeros_like(A[0])
    for k in range(A.shape[0]):
        raw = raw + weights[k] * A[k]
    return raw


def cam_weights(A: torch.Tensor, linear_weight: torch.Tensor, c: int) -> torch.Tensor:
    positions = A[0].numel()  # h * w, or l for 1D signals
    return torch.stack([linear_weight[c, k] / positions for k in range(A.shape[0])])


def gradcam_weights(A: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    return torch.stack([G[k].mean() for k in range(A.shape[0])])


def gradcampp_weights(A: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    weights = []
    for k in range(A.shape[0]):
        total = A[k].sum()
        numerator = G[k] ** 2
        denominator = 2 * G[k] ** 2 + total * G[k] ** 3
        alpha = torch.zeros_like(G[k])
        nonzero = denominator != 0
        alpha[nonzero] = numerator[nonzero] / denominator[nonzero]
        weights.append((alpha * torch.relu(G[k])).sum())
    return torch.stack(weights)


def xgradcam_weights(A: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    weights = []
    for k in range(A.shape[0]):
        total = A[k].sum()
        weights.append((A[k] * G[k]).sum() / total if total != 0 else torch.zeros_like(total))
    return torch.stack(weights)


def hirescam_raw(A: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    raw = torch.zeros_like(A[0])
    for k in range(A.shape[0]):
        raw = raw + G[k] * A[k]
    return raw


def layercam_raw(A: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    raw = torch.zeros_like(A[0])
    for k in range(A.shape[0]):
        raw = raw + torch.relu(G[k]) * A[k]
    return raw


def gradcam_elementwise_raw(A: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    raw = torch.zeros_like(A[0])
    for k in range(A.shape[0]):
        raw = raw + torch.relu(G[k] * A[k])
    return raw


def ablation_weights(A: torch.Tensor, y: torch.Tensor, ablated_y: torch.Tensor,
                     form: str) -> torch.Tensor:
    """``ablated_y[k]`` = the class score with channel ``k`` zeroed."""
    weights = []
    for k in range(A.shape[0]):
        drop = y - ablated_y[k]
        if form == "score":
            weights.append(drop / y)
        else:
            total = A[k].sum()
            weights.append(drop / total if total != 0 else torch.zeros_like(drop))
    return torch.stack(weights)


def resize(m: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """One ``(h, w)`` map resized bilinearly, or one ``(l,)`` map linearly, to ``size``."""
    mode = {1: "linear", 2: "bilinear"}[len(size)]
    return F.interpolate(m[None, None], size=size, mode=mode, align_corners=False)[0, 0]


def score_cam_mask(channel: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """One channel upsampled to the input and min-max scaled (constant -> zeros)."""
    up = resize(channel, size)
    low, high = up.min(), up.max()
    if high > low:
        return (up - low) / (high - low)
    return torch.zeros_like(up)


def eigencam_raw(A: torch.Tensor) -> torch.Tensor:
    """First principal component of the positions, with numpy's SVD (not torch's)."""
    K, spatial = A.shape[0], A.shape[1:]
    X = A.reshape(K, -1).T.cpu().numpy().astype(np.float64)  # (positions, channels)
    X = X - X.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(X, full_matrices=False)
    projection = X @ vt[0]
    mean_activation = A.mean(0).reshape(-1).cpu().numpy().astype(np.float64)
    a = projection - projection.mean()
    b = mean_activation - mean_activation.mean()
    if float((a * b).sum()) < 0:  # Pearson correlation's sign
        projection = -projection
    return torch.from_numpy(projection.reshape(spatial)).to(A.dtype)


def minmax(m: torch.Tensor) -> torch.Tensor:
    low, high = m.min(), m.max()
    if high > low:
        return (m - low) / (high - low)
    return torch.zeros_like(m)


def map_from_raw(raw: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """``minmax(upsample(ReLU(raw)))`` for one ``(h, w)`` (or ``(l,)``) map."""
    return minmax(resize(torch.relu(raw), size))


def guided_map(guided: torch.Tensor) -> torch.Tensor:
    """``minmax(max_c |guided|)`` for one ``(C, H, W)`` (or ``(C, L)``) guided gradient."""
    return minmax(guided.abs().amax(0))


# --------------------------------------------------------------------------- guided backprop


class _GuidedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out.clamp(min=0) * (x > 0).to(grad_out.dtype)


class _GuidedReLU6(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0, max=6)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out.clamp(min=0) * ((x > 0) & (x < 6)).to(grad_out.dtype)


class GuidedReLU(nn.Module):
    def forward(self, x):
        return _GuidedReLU.apply(x)


class GuidedReLU6(nn.Module):
    def forward(self, x):
        return _GuidedReLU6.apply(x)


@contextmanager
def guided_relus(private: nn.Module, require_relu: bool = True) -> Iterator[nn.Module]:
    """Swap every nn.ReLU / nn.ReLU6 module of a private copy for its guided form (and
    back afterwards).  A module used several times (ResNet's ``block.relu``) is swapped
    once and so guided at every use.  With ``require_relu=False`` a network without any
    (GELU, SiLU, functional ReLUs) is left as it is: its guided gradient is the plain one."""
    swapped = []
    for parent in list(private.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ReLU6):  # checked first: ReLU6 is a Hardtanh
                swapped.append((parent, name, child))
                setattr(parent, name, GuidedReLU6())
            elif isinstance(child, nn.ReLU):
                swapped.append((parent, name, child))
                setattr(parent, name, GuidedReLU())
    assert swapped or not require_relu, "no ReLU to guide"
    try:
        yield private
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)


def guided_gradient(private: nn.Module, x: torch.Tensor, c: int,
                    require_relu: bool = True) -> torch.Tensor:
    """Guided backprop of one image: d y^c / d x through guided ReLUs."""
    with guided_relus(private, require_relu) as guided_model:
        leaf = x[None].detach().clone().requires_grad_(True)
        logits = guided_model(leaf)
        (gradient,) = torch.autograd.grad(logits[0, c], leaf)
    return gradient[0].detach()


# --------------------------------------------------------------------------- whole methods

GRADIENT_WEIGHTS = {
    "gradcam": gradcam_weights,
    "gradcam++": gradcampp_weights,
    "xgradcam": xgradcam_weights,
}
GRADIENT_ELEMENTWISE = {"hirescam": hirescam_raw, "layercam": layercam_raw,
                        "gradcamelementwise": gradcam_elementwise_raw}


def explain_one(method: str, passes: dict, *, linear_weight: torch.Tensor | None = None,
                c: int | None = None, ablated: torch.Tensor | None = None,
                masked: tuple[torch.Tensor, torch.Tensor] | None = None,
                form: str = "score") -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(raw, channel_weights)`` of one image and one class for a CAM method.

    ``passes`` is :meth:`Reference.gradient`'s result for that image and class;
    ``ablated`` :meth:`Reference.ablated_logits`; ``masked``
    :meth:`Reference.masked_probabilities`.
    """
    A, G = passes["A"], passes["G"]
    if method == "cam":
        weights = cam_weights(A, linear_weight, c)
    elif method in GRADIENT_WEIGHTS:
        weights = GRADIENT_WEIGHTS[method](A, G)
    elif method in GRADIENT_ELEMENTWISE:
        return GRADIENT_ELEMENTWISE[method](A, G), None
    elif method == "ablationcam":
        weights = ablation_weights(A, passes["y"], ablated[:, c], form)
    elif method == "scorecam":
        probabilities, baseline = masked
        weights = torch.stack([probabilities[k, c] - baseline[c] for k in range(A.shape[0])])
    elif method == "eigencam":
        return eigencam_raw(A), None
    else:
        raise ValueError(method)
    return weighted_channels(weights, A), weights


# --------------------------------------------------------------------------- comparing


def assert_rel_close(actual: torch.Tensor | None, expected: torch.Tensor, rtol: float = 1e-4,
                     what: str = "") -> None:
    """``actual`` equals ``expected`` to ``rtol`` relative to the largest ``|expected|``
    (element-wise ``rtol`` on top), with the max difference in the message."""
    assert actual is not None, f"{what}: the library returned None"
    actual = actual.detach().to("cpu", torch.float64)
    expected = expected.detach().to("cpu", torch.float64)
    assert tuple(actual.shape) == tuple(expected.shape), (
        f"{what}: shape {tuple(actual.shape)} != reference {tuple(expected.shape)}")
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    atol = rtol * scale if scale > 0 else 1e-12
    difference = float((actual - expected).abs().max()) if expected.numel() else 0.0
    torch.testing.assert_close(
        actual, expected, rtol=rtol, atol=atol,
        msg=lambda message: (f"{what}: max |library - reference| = {difference:.3g}, "
                             f"max |reference| = {scale:.3g}\n{message}"))
