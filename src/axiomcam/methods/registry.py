"""The one source of truth about the methods: every name :func:`create` accepts, what it
builds, and what a caller may need to know before running it (channel weights, gradients,
cost, the title figures use).

The CLI, ``evaluate``, the app, the figures and the docs' tables read :data:`METHODS`; a new
method is a class in its family's module plus one line in :data:`CAM_CLASSES`.

Examples:
    >>> from axiomcam.methods.registry import method_info
    >>> info = method_info("Grad-CAM++")
    >>> info.name, info.title, info.has_channel_weights, info.cost
    ('gradcam++', 'Grad-CAM++', True, 'backward')
    >>> method_info("guided_xgradcam").guided, method_info("ablationcam:activation").options
    (True, {'weights': 'activation'})
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field

from torch import nn

from .activation import CAM, FEM, EigenCAM, RandomCAM
from .base import BaseCAM, Explainer
from .capture import LayerSpec
from .decomposition import KPCACAM, EigenGradCAM
from .fullgrad import FullGrad
from .gradient import (
    FinerCAM,
    GradCAM,
    GradCAMElementWise,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ShapleyCAM,
    SmoothGradCAMPlusPlus,
    XGradCAM,
)
from .guided import Guided, GuidedBackprop
from .occlusion import Occlusion
from .perturbation import ISCAM, SSCAM, AblationCAM, ScoreCAM

__all__ = [
    "CAM_CLASSES", "CAM_METHODS", "CHANNEL_WEIGHT_METHODS", "COSTS", "COUNTERFACTUAL_METHODS",
    "METHODS", "METHOD_NAMES",
    "VARIANT_NAMES", "MethodInfo", "create", "has_channel_weights", "method_info",
    "method_options",
    "normalise_method_name",
]

#: the CAM classes, in the order names are listed (each also has a guided form)
CAM_CLASSES: tuple[type[BaseCAM], ...] = (
    CAM, GradCAM, GradCAMPlusPlus, XGradCAM, HiResCAM, LayerCAM, AblationCAM, ScoreCAM,
    EigenCAM,
    GradCAMElementWise, ShapleyCAM, FinerCAM,
    EigenGradCAM, KPCACAM, FEM, RandomCAM,
    SSCAM, ISCAM, SmoothGradCAMPlusPlus,
)

#: what one explanation of a batch costs, by cost class
COSTS: dict[str, str] = {
    "forward": "one forward pass",
    "backward": "one forward pass and one backward pass that stops at the target layer",
    "ablation": "one forward pass, then K passes of the network after the target layer "
                "(K channels per image, batched)",
    "masking": "one forward pass, then K passes of the whole network on masked images "
               "(K channels per image, batched)",
    "input gradient": "one forward and one backward pass through the whole network",
    "hessian": "one forward pass, one backward pass that stops at the target layer and keeps "
               "its graph, and a Hessian-vector product (a backward pass through that one)",
    "occlusion": "one forward pass, then P passes of the whole network on occluded copies "
                 "(P window positions per image, batched: occlusion_positions)",
    "noisy masking": "two forward passes, then N x K passes of the whole network on noisily "
                     "masked images (N = num_samples, 35 by default; batched)",
    "integrated masking": "two forward passes, then N x K passes of the whole network on "
                          "scaled masked images (N = num_samples, 10 by default; batched)",
    "noisy backward": "one forward pass, then N forward and N backward passes on noisy "
                      "copies (N = num_samples, 4 by default)",
}


@dataclass(frozen=True)
class MethodInfo:
    """One name :func:`create` accepts.

    Attributes:
        name: the canonical name (``"gradcam++"``, ``"ablationcam:activation"``,
            ``"guided_gradcam"``), which ``Explanation.method`` reports.
        title: how figures spell it (``"Grad-CAM++"``).
        explainer: the class that computes it (the CAM's class for a guided form).
        has_channel_weights: the map is ``sum_k w_k A^k`` with channel weights, so
            XGrad-CAM's conservation and sensitivity axioms apply.
        needs_gradients: a backward pass is taken.
        cost: a key of :data:`COSTS`.
        guided: the guided form of a CAM (``guided = GuidedBackprop(x) * upsample(L^c)``) or
            Guided Backpropagation itself.
        cam: the map is a class activation map at a layer (what ``evaluate`` measures).
        options: what the name sets (``{"weights": "activation"}`` for a variant).
        aliases: other spellings that mean the same method.
        counterfactual: ``counterfactual=True`` is defined (a gradient CAM and its guided
            form: the formula of the negated gradient).
        takes_layer: the method explains at a target layer; ``False`` for the methods
            that explain the input itself (Guided Backpropagation, occlusion), which
            :func:`create` refuses a ``target_layer`` for.
    """

    name: str
    title: str
    explainer: type[Explainer]
    has_channel_weights: bool
    needs_gradients: bool
    cost: str
    guided: bool = False
    cam: bool = True
    options: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    counterfactual: bool = False
    takes_layer: bool = True


def _cam_infos(cls: type[BaseCAM]) -> list[MethodInfo]:
    """A CAM class's name, then one name per variant."""
    infos = [MethodInfo(cls.name, cls.title, cls, cls.has_channel_weights, cls.needs_gradients,
                        cls.cost, aliases=cls.aliases, counterfactual=cls.has_counterfactual)]
    for variant in cls.variants:
        infos.append(MethodInfo(
            f"{cls.name}:{variant}", f"{cls.title} ({variant})", cls, cls.has_channel_weights,
            cls.needs_gradients, cls.cost, options={cls.variant_option: variant},
            counterfactual=cls.has_counterfactual))
    return infos


def _guided(info: MethodInfo) -> MethodInfo:
    return MethodInfo(f"guided_{info.name}", f"Guided {info.title}", info.explainer,
                      info.has_channel_weights, True, info.cost, guided=True, cam=False,
                      options=info.options,
                      aliases=tuple(f"guided_{alias}" for alias in info.aliases),
                      counterfactual=info.counterfactual)


def _all_methods() -> dict[str, MethodInfo]:
    cams = [info for cls in CAM_CLASSES for info in _cam_infos(cls)]
    backprop = MethodInfo(GuidedBackprop.name, GuidedBackprop.title, GuidedBackprop,
                          has_channel_weights=False, needs_gradients=True,
                          cost=GuidedBackprop.cost, guided=True, cam=False,
                          aliases=GuidedBackprop.aliases, takes_layer=False)
    occlusion = MethodInfo(Occlusion.name, Occlusion.title, Occlusion,
                           has_channel_weights=False, needs_gradients=False,
                           cost=Occlusion.cost, cam=False, takes_layer=False)
    fullgrad = MethodInfo(FullGrad.name, FullGrad.title, FullGrad, has_channel_weights=False,
                          needs_gradients=True, cost=FullGrad.cost, cam=False, takes_layer=False)
    everything = [*cams, occlusion, backprop, fullgrad,
                  *(_guided(info) for info in cams if not info.options)]
    return {info.name: info for info in everything}


#: every name :func:`create` accepts, in the order they are listed
METHODS: dict[str, MethodInfo] = _all_methods()
#: the CAM methods by name (each also has a guided form, ``"guided_" + name``)
CAM_METHODS: dict[str, type[BaseCAM]] = {cls.name: cls for cls in CAM_CLASSES}
#: method variants by name: ``"ablationcam:activation"`` is Ablation-CAM with
#: ``weights="activation"``
VARIANT_NAMES: tuple[str, ...] = tuple(
    name for name, info in METHODS.items() if info.cam and info.options)
#: every name accepted by :func:`create` and :func:`axiomcam.explain`
METHOD_NAMES: tuple[str, ...] = (
    *CAM_METHODS, *VARIANT_NAMES, Occlusion.name, GuidedBackprop.name, FullGrad.name,
    *(name for name, info in METHODS.items() if info.guided and info.takes_layer),
)
#: the CAM methods whose maps are ``sum_k w_k A^k`` with channel weights (the ones
#: XGrad-CAM's conservation and sensitivity axioms apply to)
CHANNEL_WEIGHT_METHODS: tuple[str, ...] = tuple(
    name for name, cls in CAM_METHODS.items() if cls.has_channel_weights)
#: every name with a counterfactual form (``counterfactual=True``): the gradient CAMs and
#: their guided forms
COUNTERFACTUAL_METHODS: tuple[str, ...] = tuple(
    name for name, info in METHODS.items() if info.counterfactual)

_ALIASES: dict[str, str] = {
    alias: info.name for info in METHODS.values() for alias in info.aliases}


def normalise_method_name(name: str) -> str:
    """The canonical name of ``name``: case, spaces and dashes do not count, and aliases
    (``"gradcamplusplus"``) give their method.

    Raises:
        TypeError: ``name`` is not a string.
        ValueError: an unknown name (near matches and the known names are listed).

    Examples:
        >>> normalise_method_name(" Grad-CAM++"), normalise_method_name("GradCAMPlusPlus")
        ('gradcam++', 'gradcam++')
    """
    if not isinstance(name, str):
        raise TypeError(f"method must be a name (str), not {type(name).__name__}")
    key = name.strip().lower().replace("-", "").replace(" ", "")
    key = _ALIASES.get(key, key)
    if key in METHODS:
        return key
    base, _, variant = key.partition(":")
    if variant and base in CAM_METHODS:
        known = ", ".join(v for v in VARIANT_NAMES if v.startswith(f"{base}:")) or "none"
        raise ValueError(f"unknown variant {name!r}; variants of {base}: {known}")
    near = difflib.get_close_matches(key, METHOD_NAMES, n=3)
    hint = f" Did you mean {', '.join(near)}?" if near else ""
    raise ValueError(f"unknown method {name!r}.{hint} Known: {', '.join(METHOD_NAMES)}")


def method_info(name: str) -> MethodInfo:
    """The :class:`MethodInfo` of any spelling of a method's name (see
    :func:`normalise_method_name`, whose errors it raises)."""
    return METHODS[normalise_method_name(name)]


def has_channel_weights(name: str) -> bool:
    """Whether the method's maps are ``sum_k w_k A^k`` with channel weights (the axioms
    apply); guided forms answer for their CAM.

    Examples:
        >>> has_channel_weights("xgradcam"), has_channel_weights("guided_gradcam")
        (True, True)
        >>> has_channel_weights("layercam"), has_channel_weights("guided_backprop")
        (False, False)
    """
    return method_info(name).has_channel_weights


#: constructor arguments that are not options a caller sets by name (the model, the layer,
#: what the core passes on: ``**options``)
_NOT_OPTIONS = {"self", "model", "target_layer", "options", "cam"}


def method_options(name: str) -> dict[str, object]:
    """The keyword options the method called ``name`` takes, with their defaults: its own
    (``window`` for occlusion, ``num_samples`` for SS-CAM, ``kernel`` for KPCA-CAM, ...)
    and those every method takes (``smooth``, ``seed``, ``batch_size``, ...). A variant's
    fixed option and a guided form's CAM's options are included.

    Examples:
        >>> options = method_options("occlusion")
        >>> options["window"], options["stride"], options["baseline"]
        (32, None, 'zeros')
        >>> "comparisons" in method_options("finercam"), "window" in method_options("gradcam")
        (True, False)
    """
    info = method_info(name)
    found: dict[str, object] = {}
    for cls in info.explainer.__mro__:
        if "__init__" not in vars(cls):
            continue
        for parameter in inspect.signature(cls.__init__).parameters.values():
            if parameter.name not in _NOT_OPTIONS and parameter.kind in (
                    parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD):
                found.setdefault(parameter.name, parameter.default)
    return {**found, **info.options}


# options every explainer takes; anything else is specific to one method
_SHARED_OPTIONS = set(inspect.signature(Explainer.__init__).parameters) - {"self", "model"}


def create(name: str, model: nn.Module, target_layer: LayerSpec = None,
           **options: object) -> Explainer:
    """Build the method called ``name`` (see :data:`METHOD_NAMES`) for ``model``.

    ``"name:variant"`` selects a variant (:data:`VARIANT_NAMES`):
    ``"ablationcam:activation"`` is ``AblationCAM(..., weights="activation")``.

    Raises:
        ValueError: an unknown name or variant (the known ones are listed).

    Examples:
        >>> import torchvision
        >>> from axiomcam.methods import create
        >>> create("guided_gradcam", torchvision.models.resnet18(), "layer4").name
        'guided_gradcam'
        >>> create("ablationcam:activation", torchvision.models.resnet18(), "layer4").weights
        'activation'
    """
    info = method_info(name)
    for option, variant in info.options.items():
        if option in options and options[option] != variant:
            raise ValueError(f"{name!r} sets {option}={variant!r} but {option}="
                             f"{options[option]!r} was also given")
    options = {**options, **info.options}
    if not info.takes_layer:
        if target_layer is not None:
            raise ValueError(f"{info.name} explains the input: it takes no target_layer "
                             f"(got {target_layer!r})")
        return info.explainer(model, **options)
    if info.guided:
        cam = info.explainer(model, target_layer, **options)
        shared = {k: v for k, v in options.items() if k in _SHARED_OPTIONS}
        return Guided(cam, **shared)
    return info.explainer(model, target_layer, **options)
