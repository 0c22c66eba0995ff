"""Models whose output is not a plain tensor: dicts, tuples, dataclasses, ``ModelOutput``.

Class targets need the ``(B, num_classes)`` scores; :func:`select_output` finds them in
whatever the model returns, or takes the part the user names (``output=`` of every
explainer).

Examples:
    >>> import torch
    >>> logits = torch.zeros(2, 5)
    >>> select_output({"logits": logits, "hidden": torch.ones(2, 7)}) is logits
    True
    >>> select_output((logits, "aux"), 0) is logits
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import torch

__all__ = ["PROBABILITY_RULES", "OutputSelector", "check_probability_rule", "describe_output",
           "output_probabilities", "select_output"]

#: what to take from a model's output: ``None`` (found automatically), a key or attribute
#: name, a position in a tuple/list, or a callable ``output -> tensor``
OutputSelector = str | int | Callable[[object], object] | None

#: keys / attributes tried, in order, when no selector is given (``logits``: Hugging Face
#: ``ModelOutput`` and most dict-returning classifiers; ``out``: torchvision segmentation)
AUTOMATIC_KEYS = ("logits", "out")

#: how a classifier's ``(B, num_classes)`` output becomes class probabilities: the
#: ``softmax`` over the classes (one label per image), each class's own ``sigmoid``
#: (multi-label or binary heads), or the ``output`` itself (a model ending in a Softmax or
#: Sigmoid: its outputs already are probabilities)
PROBABILITY_RULES = ("softmax", "sigmoid", "output")


def describe_output(output: object) -> str:
    """A short description of a model output for error messages.

    Examples:
        >>> describe_output({"out": torch.zeros(1, 3, 4, 4), "aux": None})
        "dict with keys ['out', 'aux'] (out: tensor (1, 3, 4, 4))"
    """
    if torch.is_tensor(output):
        return f"tensor {tuple(output.shape)}"
    if isinstance(output, Mapping):
        tensors = ", ".join(f"{key}: tensor {tuple(value.shape)}"
                            for key, value in output.items() if torch.is_tensor(value))
        return (f"{type(output).__name__} with keys {list(output)}"
                + (f" ({tensors})" if tensors else ""))
    if isinstance(output, Sequence) and not isinstance(output, str):
        parts = ", ".join(describe_output(item) if torch.is_tensor(item)
                          else type(item).__name__ for item in output[:4])
        more = ", ..." if len(output) > 4 else ""
        return f"{type(output).__name__} of {len(output)} ({parts}{more})"
    if dataclasses.is_dataclass(output):
        return f"{type(output).__name__} with fields {[f.name for f in dataclasses.fields(output)]}"
    return type(output).__name__


def _by_name(output: object, name: str) -> object:
    if isinstance(output, Mapping):
        if name in output:
            return output[name]
        raise KeyError(name)
    if hasattr(output, name):
        return getattr(output, name)
    raise KeyError(name)


def _found_scores(output: object) -> object:
    """What ``select_output(output, None)`` gives: the tensor, else its ``"logits"``/``"out"``,
    else a sequence's first tensor, else the output unchanged."""
    if torch.is_tensor(output):
        return output
    for name in AUTOMATIC_KEYS:
        try:
            found = _by_name(output, name)
        except KeyError:
            continue
        if torch.is_tensor(found):
            return found
    if isinstance(output, Sequence) and not isinstance(output, str):
        return next((item for item in output if torch.is_tensor(item)), output)
    return output


def select_output(output: object, selector: OutputSelector = None) -> object:
    """The part of a model's ``output`` that ``selector`` names.

    Args:
        output: what the model returned.
        selector: ``None``: the output itself if it is a tensor; else its ``"logits"`` or
            ``"out"`` entry or attribute (a dict, a dataclass, a Hugging Face
            ``ModelOutput``); else the first element of a tuple or list that is a tensor;
            else the output unchanged (a target callable may know what to do with it).
            A ``str``: that key or attribute. An ``int``: that position of a tuple/list. A
            callable: ``selector(output)``.

    Raises:
        ValueError: a key, attribute or position the output does not have (the message
            describes the output).
        TypeError: a selector of another type.

    Examples:
        >>> import torch
        >>> from collections import namedtuple
        >>> Out = namedtuple("Out", "logits aux")
        >>> select_output(Out(torch.zeros(1, 3), None)).shape
        torch.Size([1, 3])
        >>> select_output({"scores": torch.zeros(1, 3)}, "labels")
        Traceback (most recent call last):
        ...
        ValueError: the model's output has no 'labels': it is a dict with keys ['scores'] \
(scores: tensor (1, 3))
    """
    if selector is None:
        return _found_scores(output)
    if callable(selector):
        return selector(output)
    if isinstance(selector, bool) or not isinstance(selector, str | int):
        raise TypeError(f"output must be None, a key or attribute name, a position or a "
                        f"callable, not {type(selector).__name__}: {selector!r}")
    if isinstance(selector, str):
        try:
            return _by_name(output, selector)
        except KeyError:
            raise ValueError(f"the model's output has no {selector!r}: it is a "
                             f"{describe_output(output)}") from None
    if isinstance(output, Sequence) and not isinstance(output, str | Mapping) \
            and -len(output) <= selector < len(output):
        return output[selector]
    raise ValueError(f"the model's output has no position {selector}: it is a "
                     f"{describe_output(output)}")


def check_probability_rule(rule: object) -> str:
    """``rule``, checked to be one of :data:`PROBABILITY_RULES`.

    Raises:
        ValueError: naming the rule and the choices.

    Examples:
        >>> check_probability_rule("sigmoid")
        'sigmoid'
    """
    if not isinstance(rule, str) or rule not in PROBABILITY_RULES:
        raise ValueError(f"unknown probability rule {rule!r}: one of "
                         f"{', '.join(map(repr, PROBABILITY_RULES))}")
    return rule


def output_probabilities(outputs: torch.Tensor, rule: str = "softmax") -> torch.Tensor:
    """Class probabilities of a classifier's ``(B, num_classes)`` output, by ``rule``
    (:data:`PROBABILITY_RULES`): ``p_c = exp(z_c) / sum_j exp(z_j)`` (``"softmax"``),
    ``p_c = sigmoid(z_c) = 1 / (1 + exp(-z_c))`` (``"sigmoid"``, independent of the other
    classes) or ``p_c = y_c`` (``"output"``: the outputs already are probabilities, checked
    to lie in ``[0, 1]``).  The one place this rule is written: the models' readers, the
    command line and every metric of :mod:`axiomcam.metrics` call it.  Same dtype and
    device as ``outputs``; no gradient is cut.

    Raises:
        ValueError: an unknown rule (naming it and the choices); ``"output"`` values outside
            ``[0, 1]`` (they are logits: use ``"softmax"`` or ``"sigmoid"``).

    Examples:
        >>> logits = torch.tensor([[0.0, 2.0]])
        >>> [[round(p, 4) for p in output_probabilities(logits, rule)[0].tolist()]
        ...  for rule in ("softmax", "sigmoid")]
        [[0.1192, 0.8808], [0.5, 0.8808]]
        >>> output_probabilities(logits, "output")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: probability rule 'output': the model's outputs are not probabilities: ...
    """
    check_probability_rule(rule)
    if rule == "softmax":
        return torch.softmax(outputs, dim=1)
    if rule == "sigmoid":
        return torch.sigmoid(outputs)
    # a Softmax or Sigmoid computed in floating point stays within [0, 1] up to rounding
    low, high = (float(outputs.min()), float(outputs.max())) if outputs.numel() else (0, 1)
    if not (low >= -1e-6 and high <= 1 + 1e-6):
        raise ValueError(
            f"probability rule 'output': the model's outputs are not probabilities: they "
            f"lie in [{low:.4g}, {high:.4g}], not [0, 1]; read them with 'softmax' or "
            "'sigmoid'")
    return outputs
