"""The sampled methods (SS-CAM, IS-CAM: N noisy or scaled copies per channel; Smooth
Grad-CAM++: N noisy backward passes) with the fewest samples that still exercise them, for
the tests that run every method: their defaults (35 x K masked passes for SS-CAM) would
take many minutes; their own tests (test_sampled_cams.py) check them at other counts."""

from __future__ import annotations

FEW_SAMPLES = {"sscam": 1, "iscam": 2, "smoothgradcam++": 2}


def few_samples(method: str) -> dict[str, int]:
    """``{"num_samples": n}`` for a sampled method (or its guided form), else ``{}``."""
    samples = FEW_SAMPLES.get(method.removeprefix("guided_"))
    return {} if samples is None else {"num_samples": samples}
