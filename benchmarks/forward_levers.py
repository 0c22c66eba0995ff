"""How much faster one whole-network forward pass gets with exact rewrites of the model,
for Score-CAM (one whole-network pass per channel): Conv+BN folding
(``torch.fx.experimental.optimization.fuse``), channels_last, both, and TorchScript's
``optimize_for_inference`` (frozen graph, oneDNN convolutions, folded batch norms), against
the plain model under ``no_grad``, per image, at several batch sizes. Not used by axiomcam (see
BENCHMARKS.md, "Levers measured, not adopted").

    .venv/bin/python -m benchmarks.forward_levers [--threads 2] [--repeats 4]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings

import torch
import torchvision
from torch.fx.experimental.optimization import fuse


def _optimized_for_inference(model: torch.nn.Module) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated
        return torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(model)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=4)
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    torch.manual_seed(0)
    plain = torchvision.models.resnet18().eval()
    variants = {
        "channels_last": (copy.deepcopy(plain).to(memory_format=torch.channels_last), True),
        "fused": (fuse(copy.deepcopy(plain)), False),
        "fused + channels_last": (fuse(copy.deepcopy(plain)).to(
            memory_format=torch.channels_last), True),
        "TorchScript optimize_for_inference": (
            _optimized_for_inference(copy.deepcopy(plain)), False),
    }
    print("| batch | variant | plain ms/image | variant ms/image | speed-up | max abs diff |")
    print("|---|---|---|---|---|---|")
    for batch in (4, 8, 16, 32):
        inputs = torch.rand(batch, 3, 224, 224)
        last = inputs.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            reference = plain(inputs)
        for name, (model, channels_last) in variants.items():
            x = last if channels_last else inputs
            with torch.no_grad():
                difference = float((model(x) - reference).abs().max())
            plain_times, variant_times = [], []
            for _ in range(options.repeats):  # interleaved: the machine's noise hits both
                with torch.no_grad():
                    started = time.perf_counter()
                    plain(inputs)
                    plain_times.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    model(x)
                    variant_times.append(time.perf_counter() - started)
            base = statistics.median(plain_times) / batch * 1000
            fast = statistics.median(variant_times) / batch * 1000
            print(f"| {batch} | {name} | {base:.1f} | {fast:.1f} | {base / fast:.2f}x | "
                  f"{difference:.1e} |", flush=True)


if __name__ == "__main__":
    main()
