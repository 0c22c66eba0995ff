"""Explain a 1D CNN on signals: where in time is the evidence?

A synthetic task whose evidence location is known. Each signal (1 channel, 256 samples) is
noise, plus one *event* that decides the class (a bump, a dip, or a short oscillation burst,
at a random place), plus a *click* (one large spike elsewhere) that every class has and
that says nothing. A small 1D CNN (three ``Conv1d`` blocks, global average pooling, a linear
layer) trains for a few seconds on the CPU; then every method explains test signals as
``(B, 1, 256)`` inputs, and its map ``(B, 256)`` should point at the event, not the click.

The script prints the test accuracy and, for every method (and XGrad-CAM fused over two
layers, ``target_layer=[...]``), how often the map's maximum lies on the event (within 16
samples of its centre: the pointing game). It writes one PNG: a row per CAM method, Guided
Backprop, Guided XGrad-CAM and the fused XGrad-CAM, a column per class, each signal drawn
as a line over its map's colours (``signal_overlay``).

Run (a few seconds on a CPU; nothing is downloaded)::

    python examples/signal_1d.py              # -> examples/output/signal_1d.png
    python examples/signal_1d.py out/ --steps 300
"""

from __future__ import annotations

import argparse
import math
import warnings
from pathlib import Path

import torch
from torch import nn

import axiomcam
from axiomcam.figures import method_title, save_grid
from axiomcam.images import signal_overlay

LENGTH = 256
CLASSES = ("bump", "dip", "burst")
EVENT_HALF_WIDTH = 16  # the pointing game's tolerance, in samples
BATCH = 64  # training signals per step
LAYER = "features.7"  # the last block's ReLU: it feeds global average pooling
FUSED_LAYERS = ["features.3", "features.7"]  # 128 and 64 positions
#: the methods drawn (every method is measured): the CAMs and two guided forms
DRAWN = (*axiomcam.methods.CAM_METHODS, "ablationcam:activation", "guided_backprop",
         "guided_xgradcam")


def make_signals(count: int, generator: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``count`` signals ``(count, 1, LENGTH)``, their classes and their events' centres."""
    time = torch.arange(LENGTH, dtype=torch.float32)
    classes = torch.randint(len(CLASSES), (count,), generator=generator)
    centres = torch.randint(24, LENGTH - 24, (count,), generator=generator)
    offset = time - centres[:, None]
    envelope = torch.exp(-0.5 * (offset / 5.0) ** 2)
    burst = classes[:, None] == 2  # an oscillation burst: about 3 periods under the envelope
    envelope = torch.where(burst, envelope * torch.cos(2 * math.pi * offset / 6.0), envelope)
    sign = torch.where(classes == 1, -1.5, 1.5)[:, None]  # a dip, or a bump (or burst)
    signals = 0.3 * torch.randn(count, LENGTH, generator=generator) + sign * envelope
    # the click: a spike at least 40 samples from the event, in every class
    clicks = (centres + torch.randint(40, LENGTH - 40, (count,), generator=generator)) % LENGTH
    signals[torch.arange(count), clicks] += 4.0
    return signals[:, None], classes, centres


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Sequential(nn.Conv1d(1, 16, 9, padding=4), nn.ReLU(), nn.MaxPool1d(2),
                      nn.Conv1d(16, 32, 9, padding=4), nn.ReLU(), nn.MaxPool1d(2),
                      nn.Conv1d(32, 32, 9, padding=4), nn.ReLU()),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(32, len(CLASSES)))


class Classifier(nn.Module):
    """The CNN with its layers named ``features.*`` (what ``target_layer`` names)."""

    def __init__(self) -> None:
        super().__init__()
        network = small_cnn()
        self.features, self.pool, self.flatten, self.fc = network

    def forward(self, signals: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.features(signals))))


def train(model: nn.Module, steps: int, generator: torch.Generator) -> None:
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        signals, classes, _ = make_signals(BATCH, generator)
        loss = nn.functional.cross_entropy(model(signals), classes)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()


def on_the_event(maps: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Whether each map's maximum lies within EVENT_HALF_WIDTH samples of the event."""
    return (maps.argmax(-1) - centres).abs() <= EVENT_HALF_WIDTH


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", default=Path(__file__).parent / "output",
                        type=Path, help="where the PNG goes (default: examples/output/)")
    parser.add_argument("--steps", type=int, default=100,
                        help=f"training steps ({BATCH} signals each)")
    arguments = parser.parse_args()
    arguments.out_dir.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = Classifier()
    train(model, arguments.steps, generator)
    signals, classes, centres = make_signals(60, generator)
    with torch.no_grad():
        accuracy = float((model(signals).argmax(1) == classes).float().mean())
    print(f"1D CNN trained for {arguments.steps} steps: test accuracy {accuracy:.2f} on "
          f"{len(classes)} signals {tuple(signals.shape)} (batch, channel, samples)")

    shown = [int((classes == label).nonzero()[0]) for label in range(len(CLASSES))]
    pictures, titles = [], []
    runs = [(method, LAYER if axiomcam.methods.method_info(method).takes_layer else None)
            for method in axiomcam.METHOD_NAMES] + [("xgradcam", FUSED_LAYERS)]
    for method, layer in runs:
        with warnings.catch_warnings():  # a method may give an all-zero map for a signal
            warnings.simplefilter("ignore", axiomcam.AxiomCamWarning)
            exp = axiomcam.explain(model, signals, method, layer, targets=classes)
        name = method_title(method) if not isinstance(layer, list) else \
            f"{method_title(method)} fused over {' + '.join(layer)}"
        short = name if not isinstance(layer, list) else f"{method_title(method)}, fused"
        hits = float(on_the_event(exp.maps, centres).float().mean())
        print(f"{name}: maps {tuple(exp.maps.shape)}, map maximum on the event for "
              f"{hits:.2f} of the signals")
        if method in DRAWN or isinstance(layer, list):
            pictures.append([signal_overlay(signals[i, 0], exp.maps[i], size=(480, 110))
                             for i in shown])
            titles.append([f"{short}: {CLASSES[classes[i]]} at {int(centres[i])}"
                           for i in shown])

    out_path = arguments.out_dir / "signal_1d.png"
    save_grid(out_path, pictures, titles, cell_inches=4.0)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
