"""Every explanation method, as reusable objects, and the registry of their names.

Example:
    >>> import torch, torchvision
    >>> from axiomcam.methods import XGradCAM
    >>> model = torchvision.models.resnet18(num_classes=10)
    >>> with XGradCAM(model, "layer4") as cam:
    ...     maps = [cam(torch.rand(2, 3, 64, 64)).maps for _ in range(3)]
    >>> maps[0].shape
    torch.Size([2, 64, 64])
"""

from __future__ import annotations

import difflib
import inspect

from torch import nn

from .activation import CAM, EigenCAM
from .core import AxiomCamWarning, BaseCAM, Explainer, GradientCAM, LayerContext
from .gradient import GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM
from .guided import Guided, GuidedBackprop
from .perturbation import AblationCAM, ScoreCAM

#: the CAM methods by name (each also has a guided form, ``"guided_" + name``)
CAM_METHODS: dict[str, type[BaseCAM]] = {
    cls.name: cls
    for cls in (CAM, GradCAM, GradCAMPlusPlus, XGradCAM, HiResCAM, LayerCAM, AblationCAM,
                ScoreCAM, EigenCAM)
}

#: the CAM methods whose maps are ``sum_k w_k A^k`` with channel weights (the ones
#: XGrad-CAM's conservation and sensitivity axioms apply to)
CHANNEL_WEIGHT_METHODS: tuple[str, ...] = tuple(
    name for name, cls in CAM_METHODS.items() if cls.has_channel_weights
)

#: method variants by name: ``"ablationcam:activation"`` is Ablation-CAM with
#: ``weights="activation"``
VARIANT_NAMES: tuple[str, ...] = tuple(
    f"{name}:{variant}" for name, cls in CAM_METHODS.items() for variant in cls.variants
)

#: every name accepted by :func:`create` and :func:`axiomcam.explain`
METHOD_NAMES: tuple[str, ...] = (
    *CAM_METHODS, *VARIANT_NAMES, GuidedBackprop.name,
    *(f"guided_{name}" for name in CAM_METHODS)
)

# options every explainer takes; anything else is specific to one method
_SHARED_OPTIONS = set(inspect.signature(Explainer.__init__).parameters) - {"self", "model"}


def create(name: str, model: nn.Module, target_layer: str | nn.Module | None = None,
           **options: object) -> Explainer:
    """Build the method called ``name`` (see :data:`METHOD_NAMES`) for ``model``.

    ``"name:variant"`` selects a variant (:data:`VARIANT_NAMES`):
    ``"ablationcam:activation"`` is ``AblationCAM(..., weights="activation")``.

    Raises:
        ValueError: an unknown name or variant (the known ones are listed).

    Example:
        >>> import torchvision
        >>> from axiomcam.methods import create
        >>> create("guided_gradcam", torchvision.models.resnet18(), "layer4").name
        'guided_gradcam'
        >>> create("ablationcam:activation", torchvision.models.resnet18(), "layer4").weights
        'activation'
    """
    if not isinstance(name, str):
        raise TypeError(f"method must be a name (str), not {type(name).__name__}")
    key = name.strip().lower().replace("-", "").replace(" ", "")
    key = {"gradcamplusplus": "gradcam++", "guidedbackprop": "guided_backprop"}.get(key, key)
    base, _, variant = key.partition(":")
    if variant and base in CAM_METHODS:
        cls = CAM_METHODS[base]
        if variant not in cls.variants:
            known = ", ".join(f"{base}:{v}" for v in cls.variants) or "none"
            raise ValueError(f"unknown variant {name!r}; variants of {base}: {known}")
        option = cls.variant_option
        if option in options and options[option] != variant:
            raise ValueError(f"{name!r} sets {option}={variant!r} but {option}="
                             f"{options[option]!r} was also given")
        return cls(model, target_layer, **{**options, option: variant})
    if key == GuidedBackprop.name:
        if target_layer is not None:
            raise ValueError("guided_backprop explains the input: it takes no target_layer")
        return GuidedBackprop(model, **options)
    if key.startswith("guided_") and key[len("guided_"):] in CAM_METHODS:
        cam = CAM_METHODS[key[len("guided_"):]](model, target_layer, **options)
        shared = {k: v for k, v in options.items() if k in _SHARED_OPTIONS}
        return Guided(cam, **shared)
    if key in CAM_METHODS:
        return CAM_METHODS[key](model, target_layer, **options)
    near = difflib.get_close_matches(key, METHOD_NAMES, n=3)
    hint = f" Did you mean {', '.join(near)}?" if near else ""
    raise ValueError(f"unknown method {name!r}.{hint} Known: {', '.join(METHOD_NAMES)}")


__all__ = [
    "CAM", "CAM_METHODS", "CHANNEL_WEIGHT_METHODS", "METHOD_NAMES", "VARIANT_NAMES",
    "AblationCAM", "AxiomCamWarning", "BaseCAM", "EigenCAM", "Explainer", "GradCAM",
    "GradCAMPlusPlus", "GradientCAM", "Guided", "GuidedBackprop", "HiResCAM", "LayerCAM",
    "LayerContext", "ScoreCAM", "XGradCAM", "create",
]
