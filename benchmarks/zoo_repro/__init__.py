"""Minimal reproductions of every disagreement in ``docs/peers.md``: one module per cause,
each runnable (``python -m benchmarks.zoo_repro.NAME``), printing its evidence in a few
lines, and each with an ``evidence()`` function returning the numbers it prints.

- ``inplace_relu``: DenseNet-121's in-place ReLU after ``features.norm5``.
- ``epsilon``: the fixed epsilons in the Grad-CAM++ and XGrad-CAM denominators.
- ``eigencam_sign``: pytorch-grad-cam's Eigen-CAM keeps the SVD's arbitrary sign.
- ``ablation_value``: pytorch-grad-cam's Ablation-CAM ablates signed layers with
  ``min - 1e7``, cumulatively.
- ``shared_module``: a layer called twice (EfficientNet-Lite0's ``_swish``):
  pytorch-grad-cam explains its first call.
- ``as_read``: every gradient-method disagreement of a ``zoo_peers`` run recomputed from
  the peer's formula as written in its code.
"""
