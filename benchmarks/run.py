"""axiomcam against pytorch-grad-cam and torchcam: the benchmark of issue 5, one command.

Run it from the repository root::

    make bench                      # installs the `bench` extra (grad-cam, torchcam), then runs
    python -m benchmarks.run        # every case: CPU, 2 threads, 224x224, ~20 min on 2 cores
    python -m benchmarks.run --list                       # the cases
    python -m benchmarks.run --cases gradcam_resnet50,ablation_resnet18 --markdown out.md
    python -m benchmarks.run --quick --threads 1          # 64x64, batch 2: checks the harness

Every case uses a torchvision model with random weights (``weights=None``, eval mode,
fixed seed), random ``(B, 3, H, W)`` inputs and each image's top class as the target,
given explicitly to every library.  A peer that is not installed, or lacks the method
(torchcam has no Ablation-CAM), shows ``n/a``.

Columns of the table (one line per target of the issue; a case's first line carries its
times and memory):

- ``axiomcam``, ``pytorch-grad-cam``, ``torchcam``: median wall time of one call, the
  calls of a case run side by side, interleaved (A, B, C, A, B, C, ...), each after one
  untimed warm-up call, ``--repeats`` times (default 5).  Calls that take many seconds
  (pytorch-grad-cam's Ablation-CAM, every Score-CAM) run fewer times, without warm-up
  (what a warm-up removes, ~0.1 s of first-call setup, is < 1 % of such a call): the
  repeat count is printed with the time, e.g. ``21.3 s (x2)``.
- ``reference``: what the target compares with (a peer, a plain ``torch.no_grad()``
  forward of the batch, B single-image calls, the single-target call, one Ablation-CAM
  call) and its time or peak memory.
- ``ratio``: ``N x faster`` = reference time / axiomcam time; ``N x`` = axiomcam's time
  (or peak memory) / the reference's; ``r`` = Pearson correlation of the maps.
- ``target``, ``met?``: the issue's target and whether this run meets it.
- ``peak MB``: peak extra resident memory of one call (axiomcam / pytorch-grad-cam /
  torchcam), measured in a fresh subprocess per (case, library): the subprocess builds
  the case, makes one warm-up call (not for the slow calls above), returns freed heap
  memory to the system (glibc ``malloc_trim``), resets the peak with
  ``/proc/self/clear_refs`` (``5``), reads ``VmRSS``, makes the call and reads ``VmHWM``:
  peak = ``VmHWM`` after - ``VmRSS`` before.  A fresh process per measurement, because
  the allocator keeps memory freed by earlier calls and would hide a later call's peak;
  the warm-up, because the first call also pages in library code (tens of MB).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import gc
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn

import axiomcam
from axiomcam.metrics.axioms import axiom_errors, probe_layer

from . import peers
from .peers import GRAD_CAM, TORCHCAM

ROOT = Path(__file__).resolve().parent.parent
AXIOMCAM = "axiomcam"
LIBRARIES = (AXIOMCAM, GRAD_CAM, TORCHCAM)
Call = Callable[[], object]


@dataclass(frozen=True)
class Settings:
    quick: bool = False
    threads: int = 2
    repeats: int = 5

    @property
    def size(self) -> int:
        return 64 if self.quick else 224

    @property
    def batch(self) -> int:
        return 2 if self.quick else 8

    def slow(self, repeats: int) -> int:
        """Repeats of a call that takes many seconds."""
        return 1 if self.quick else min(repeats, self.repeats)


@dataclass(frozen=True)
class Check:
    """One target of the issue: ``subject`` compared with ``reference``.

    ``kind``: ``"faster"`` reference time / subject time >= bound; ``"cost"`` subject time
    / reference time <= bound; ``"memory"`` subject peak / reference peak <= bound;
    ``"memory_below"`` subject peak < bound MB; ``"correlation"`` Pearson r of the maps
    > bound.
    """

    target: str
    reference: str
    bound: float
    kind: str = "faster"
    subject: str = AXIOMCAM


@dataclass
class Bench:
    """A case, built: the calls to time side by side and the targets to check."""

    calls: dict[str, Call | None]  # None: the peer cannot do it (n/a)
    checks: list[Check]
    slow: dict[str, int] = field(default_factory=dict)  # label -> repeats, no warm-up
    memory_only: dict[str, Call] = field(default_factory=dict)  # measured, not timed


# ----------------------------------------------------------------------------- helpers


def build_model(name: str) -> nn.Module:
    torch.manual_seed(0)
    return getattr(torchvision.models, name)(weights=None).eval()


def random_images(count: int, settings: Settings) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(count, 3, settings.size, settings.size, generator=generator)


def top_classes(model: nn.Module, inputs: torch.Tensor, k: int = 1) -> torch.Tensor:
    with torch.no_grad():
        return model(inputs).topk(k, dim=1).indices.squeeze(1)


def explain_call(model: nn.Module, inputs: torch.Tensor, method: str, layer: str | None,
                 targets: torch.Tensor, **options: object) -> Call:
    return lambda: axiomcam.explain(model, inputs, method, layer, targets=targets,
                                    progress=False, **options)


def forward_call(model: nn.Module, inputs: torch.Tensor) -> Call:
    def call() -> torch.Tensor:
        with torch.no_grad():
            return model(inputs)
    return call


def map_correlation(ours: object, theirs: object) -> float:
    """Pearson r of axiomcam's ``maps`` and a peer's maps, both ``(B, H, W)`` ReLU-ed,
    upsampled to the input and min-max scaled (r ignores the scaling); the worst image."""
    first = torch.as_tensor(ours.maps).flatten(1).double()
    second = torch.as_tensor(np.asarray(theirs)).flatten(1).double()
    first = first - first.mean(1, keepdim=True)
    second = second - second.mean(1, keepdim=True)
    r = (first * second).sum(1) / (first.norm(dim=1) * second.norm(dim=1))
    return float(r.min())


def time_side_by_side(calls: dict[str, Call], repeats: dict[str, int],
                      warm_up: set[str]) -> tuple[dict[str, float], dict[str, object]]:
    """Median seconds of each call and its last result: one warm-up call each (those in
    ``warm_up``), then the calls in turn (A, B, C, A, B, C, ...) until each ran its
    ``repeats``."""
    results = {label: call() for label, call in calls.items() if label in warm_up}
    times: dict[str, list[float]] = {label: [] for label in calls}
    for round_ in range(max(repeats.values())):
        for label, call in calls.items():
            if round_ < repeats[label]:
                gc.collect()
                start = time.perf_counter()
                results[label] = call()
                times[label].append(time.perf_counter() - start)
    return {label: statistics.median(values) for label, values in times.items()}, results


def _status_kb(field_name: str) -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(field_name + ":"))
    return int(line.split()[1])


def peak_memory_mb(call: Call, warm_up: bool) -> float:
    """Peak extra resident memory of ``call()`` (see the module docstring)."""
    if warm_up:
        call()
    gc.collect()
    # not glibc: no trim, the fresh process still helps
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # VmHWM := VmRSS
    before = _status_kb("VmRSS")
    result = call()
    peak = _status_kb("VmHWM") - before
    del result
    return peak / 1024


def memory_in_subprocess(case: str, label: str, settings: Settings) -> float | None:
    command = [sys.executable, "-m", "benchmarks.run", "--memory-of", case, label,
               "--threads", str(settings.threads), *(["--quick"] if settings.quick else [])]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"[memory of {label!r} in {case} failed]\n{done.stderr[-1500:]}", file=sys.stderr)
        return None
    return float(done.stdout.split()[-1])


# ----------------------------------------------------------------------------- cases
# Each case function builds its models and inputs and returns the calls and targets.


def gradient_case(method: str) -> Callable[[Settings], Bench]:
    """Grad-CAM-family methods, ResNet-50 ``layer4``, batch 8."""

    def case(settings: Settings) -> Bench:
        model = build_model("resnet50")
        inputs = random_images(settings.batch, settings)
        classes = top_classes(model, inputs)
        calls = {
            AXIOMCAM: explain_call(model, inputs, method, "layer4", classes),
            GRAD_CAM: peers.grad_cam_call(method, model, "layer4", inputs, classes.tolist()),
            TORCHCAM: peers.torchcam_call(method, model, "layer4", inputs, classes.tolist()),
            "no_grad forward": forward_call(model, inputs),
        }
        return Bench(calls, [
            Check(">= 2.5x faster than pytorch-grad-cam", GRAD_CAM, 2.5),
            Check("at least as fast as torchcam", TORCHCAM, 1.0),
            Check("<= 1.10x a plain no_grad forward", "no_grad forward", 1.10, "cost"),
            Check("peak memory <= 0.6x torchcam's", TORCHCAM, 0.6, "memory"),
        ])

    return case


def multi_target_case(settings: Settings) -> Bench:
    """Grad-CAM for the top 5 classes of each image, ResNet-50 ``layer4``, batch 8."""
    model = build_model("resnet50")
    inputs = random_images(settings.batch, settings)
    classes = top_classes(model, inputs, k=5)  # (B, 5)
    calls = {
        AXIOMCAM: explain_call(model, inputs, "gradcam", "layer4", classes),
        GRAD_CAM: peers.grad_cam_multi_target_call(model, "layer4", inputs, classes),
        TORCHCAM: peers.torchcam_multi_target_call(model, "layer4", inputs, classes),
        "single target": explain_call(model, inputs, "gradcam", "layer4", classes[:, 0]),
    }
    return Bench(calls, [
        Check("<= 1.5x the single-target time", "single target", 1.5, "cost"),
    ])


def ablation_case(model_name: str, layer: str, speedup: float,
                  correlation_target: str) -> Callable[[Settings], Bench]:
    """Ablation-CAM, one image, against pytorch-grad-cam (torchcam has none)."""

    def case(settings: Settings) -> Bench:
        model = build_model(model_name)
        inputs = random_images(1, settings)
        classes = top_classes(model, inputs)
        calls = {
            AXIOMCAM: explain_call(model, inputs, "ablationcam", layer, classes),
            GRAD_CAM: peers.grad_cam_call("ablationcam", model, layer, inputs,
                                          classes.tolist()),
            TORCHCAM: peers.torchcam_call("ablationcam", model, layer, inputs,
                                          classes.tolist()),
        }
        # pytorch-grad-cam re-runs the whole network per channel: ~20 s (ResNet-18) and
        # 1-2 min (VGG-16) a call, so 2 and 1 timed calls
        slow_repeats = 2 if model_name == "resnet18" else 1
        return Bench(calls, [
            Check(f">= {speedup:g}x faster than pytorch-grad-cam", GRAD_CAM, speedup),
            Check(correlation_target, GRAD_CAM, 0.9999, "correlation"),
        ], slow={GRAD_CAM: settings.slow(slow_repeats)})

    return case


def axioms_case(settings: Settings) -> Bench:
    """Conservation + sensitivity errors of XGrad-CAM for one image (ResNet-18 ``layer4``):
    probe_layer + the explanation + axiom_errors, against one Ablation-CAM call."""
    model = build_model("resnet18")
    inputs = random_images(1, settings)
    classes = top_classes(model, inputs)

    def errors() -> object:
        probe = probe_layer(model, inputs, classes, "layer4", progress=False)
        explanation = axiomcam.explain(model, inputs, "xgradcam", "layer4",
                                       targets=probe.targets)
        return axiom_errors(probe, explanation)

    calls = {
        AXIOMCAM: errors,
        "Ablation-CAM call": explain_call(model, inputs, "ablationcam", "layer4", classes),
    }
    return Bench(calls, [Check("<= 2x one Ablation-CAM call", "Ablation-CAM call", 2.0, "cost")])


SCORECAM_SMALL_BATCH = 4


def scorecam_case(settings: Settings) -> Bench:
    """Score-CAM, ResNet-18 ``layer4``, one image; each library at its default
    perturbation batch size (axiomcam 16, pytorch-grad-cam 16, torchcam 32)."""
    model = build_model("resnet18")
    inputs = random_images(1, settings)
    classes = top_classes(model, inputs)
    channels = model.fc.in_features
    all_masked_mb = channels * inputs[0].numel() * inputs.element_size() / 2**20
    small = f"axiomcam batch_size={SCORECAM_SMALL_BATCH}"
    calls = {
        AXIOMCAM: explain_call(model, inputs, "scorecam", "layer4", classes),
        GRAD_CAM: peers.grad_cam_call("scorecam", model, "layer4", inputs, classes.tolist()),
        TORCHCAM: peers.torchcam_call("scorecam", model, "layer4", inputs, classes.tolist()),
    }
    # ~20 s a call in every library (one network pass per channel): 3 timed calls each
    return Bench(calls, [
        Check(">= 1.5x faster than pytorch-grad-cam", GRAD_CAM, 1.5),
        Check(">= 1.5x faster than torchcam", TORCHCAM, 1.5),
        Check(f"never all {channels} masked images at once: peak at batch_size "
              f"{SCORECAM_SMALL_BATCH} < their size, {all_masked_mb:.0f} MB",
              f"{channels} masked images", all_masked_mb, "memory_below", small),
    ], slow={label: settings.slow(3) for label in calls},
        memory_only={small: explain_call(model, inputs, "scorecam", "layer4", classes,
                                         batch_size=SCORECAM_SMALL_BATCH)})


def guided_case(settings: Settings) -> Bench:
    """Guided backprop, ResNet-50, one batch against one call per image (axiomcam only:
    pytorch-grad-cam's GuidedBackpropReLUModel explains one image and swaps the model's
    ReLU modules; torchcam has none)."""
    model = build_model("resnet50")
    inputs = random_images(settings.batch, settings)
    classes = top_classes(model, inputs)
    singles = [explain_call(model, inputs[i:i + 1], "guided_backprop", None, classes[i:i + 1])
               for i in range(settings.batch)]
    reference = f"{settings.batch} single-image calls"
    calls = {
        AXIOMCAM: explain_call(model, inputs, "guided_backprop", None, classes),
        GRAD_CAM: None,
        TORCHCAM: None,
        reference: lambda: [call() for call in singles],
    }
    return Bench(calls, [Check(f"<= 0.5x the time of {reference}", reference, 0.5, "cost")])


CASES: dict[str, tuple[str, Callable[[Settings], Bench]]] = {
    "gradcam_resnet50": ("Grad-CAM, ResNet-50 layer4, batch 8", gradient_case("gradcam")),
    "xgradcam_resnet50": ("XGrad-CAM, ResNet-50 layer4, batch 8", gradient_case("xgradcam")),
    "gradcampp_resnet50": ("Grad-CAM++, ResNet-50 layer4, batch 8",
                           gradient_case("gradcam++")),
    "layercam_resnet50": ("Layer-CAM, ResNet-50 layer4, batch 8", gradient_case("layercam")),
    "multitarget_resnet50": ("Grad-CAM, 5 target classes per image, ResNet-50, batch 8 "
                             "(pytorch-grad-cam: 5 calls; torchcam: 1 forward, 5 backward)",
                             multi_target_case),
    "ablation_resnet18": ("Ablation-CAM, ResNet-18 layer4, 1 image", ablation_case(
        "resnet18", "layer4", 100, "same map: r > 0.9999 (maps at input size)")),
    "ablation_vgg16": ("Ablation-CAM, VGG-16 features.29, 1 image", ablation_case(
        "vgg16", "features.29", 20, "(not in the issue) same map: r > 0.9999")),
    "axioms_resnet18": ("conservation + sensitivity errors (XGrad-CAM), ResNet-18, 1 image",
                        axioms_case),
    "scorecam_resnet18": ("Score-CAM, ResNet-18 layer4, 1 image", scorecam_case),
    "guided_resnet50": ("Guided backprop, ResNet-50, batch 8", guided_case),
}


# ----------------------------------------------------------------------------- running


def format_time(seconds: float | None, repeats: int | None = None) -> str:
    if seconds is None:
        return "n/a"
    text = f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"
    return f"{text} (x{repeats})" if repeats else text


def format_mb(megabytes: float | None) -> str:
    return "n/a" if megabytes is None else f"{megabytes:.0f}"


def _met(ok: bool) -> str:
    return "yes" if ok else "NO"


def _time_cells(check: Check, times: dict[str, float]) -> tuple[str, str, str]:
    subject, reference = check.subject, check.reference
    if subject not in times or reference not in times:
        return reference, "n/a", "n/a"
    mine, theirs = times[subject], times[reference]
    reference_text = f"{reference} {format_time(theirs)}"
    if check.kind == "faster":
        return reference_text, f"{theirs / mine:.2f}x faster", _met(theirs / mine >= check.bound)
    return reference_text, f"{mine / theirs:.2f}x", _met(mine / theirs <= check.bound)


def _memory_cells(check: Check, memory: dict[str, float | None]) -> tuple[str, str, str]:
    subject, reference = check.subject, check.reference
    mine = memory.get(subject)
    if check.kind == "memory_below":
        reference_text = f"{reference} {check.bound:.0f} MB"
        if mine is None:
            return reference_text, "n/a", "n/a"
        return reference_text, f"{mine:.0f} MB", _met(mine < check.bound)
    theirs = memory.get(reference)
    if mine is None or theirs is None:
        return f"{reference} peak", "n/a", "n/a"
    ratio = mine / max(theirs, 1e-9)
    return f"{reference} peak {theirs:.0f} MB", f"{ratio:.2f}x", _met(ratio <= check.bound)


def evaluate(check: Check, times: dict[str, float], memory: dict[str, float | None],
             results: dict[str, object]) -> tuple[str, str, str]:
    """The reference, ratio and met? cells of one target."""
    if check.kind in ("faster", "cost"):
        return _time_cells(check, times)
    if check.kind in ("memory", "memory_below"):
        return _memory_cells(check, memory)
    if check.kind == "correlation":
        subject, reference = check.subject, check.reference
        if subject not in results or reference not in results:
            return f"{reference} maps", "n/a", "n/a"
        r = map_correlation(results[subject], results[reference])
        return f"{reference} maps", f"r = {r:.6f}", _met(r > check.bound)
    raise ValueError(f"unknown check kind {check.kind!r}")


def run_case(name: str, settings: Settings, measure_memory: bool) -> list[list[str]]:
    """Time and measure one case; its table lines."""
    title, build = CASES[name]
    print(f"== {name}: {title}", file=sys.stderr, flush=True)
    bench = build(settings)
    calls = {label: call for label, call in bench.calls.items() if call is not None}
    repeats = {label: bench.slow.get(label, settings.repeats) for label in calls}
    times, results = time_side_by_side(calls, repeats, set(calls) - set(bench.slow))
    memory: dict[str, float | None] = {}
    if measure_memory:
        for label in [*calls, *bench.memory_only]:
            memory[label] = memory_in_subprocess(name, label, settings)
    shown = {label: format_time(times.get(label), repeats[label] if label in bench.slow else None)
             for label in LIBRARIES}
    peaks = " / ".join(format_mb(memory.get(label)) for label in LIBRARIES)
    lines = []
    for index, check in enumerate(bench.checks):
        reference, ratio, met = evaluate(check, times, memory, results)
        first = index == 0
        # later lines: the peak of what they compare that is not a library column
        other = next((label for label in (check.subject, check.reference)
                      if label not in LIBRARIES and memory.get(label) is not None), None)
        lines.append([
            name if first else "", *(shown[label] if first else "" for label in LIBRARIES),
            reference, ratio, check.target, met,
            peaks if first else (f"{other}: {memory[other]:.0f}" if other else ""),
        ])
    print(render([lines[0]], header=False), file=sys.stderr, flush=True)
    return lines


HEADER = ["case", AXIOMCAM, GRAD_CAM, TORCHCAM, "reference", "ratio", "target", "met?",
          "peak MB (axiomcam / pytorch-grad-cam / torchcam)"]


def render(lines: list[list[str]], header: bool = True) -> str:
    rows = [HEADER, *lines] if header else lines
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    text = [" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            for row in rows]
    if header:
        text.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in text)


def machine_description(settings: Settings) -> list[str]:
    with open("/proc/cpuinfo") as cpuinfo:
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo
                    if line.startswith("model name")), platform.processor() or "unknown")
    versions = ", ".join(f"{peer} {v}" for peer, v in peers.peer_versions().items())
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return [
        f"CPU: {cpu}, {os.cpu_count()} cores; torch {torch.__version__} "
        f"({settings.threads} threads), torchvision {torchvision.__version__}, "
        f"axiomcam {axiomcam.__version__}; "
        f"{versions}",
        f"date: {datetime.datetime.now().isoformat(timespec='minutes')}; load average at "
        f"start: {load}; inputs {settings.size}x{settings.size}"
        + (" (--quick: NOT the issue's setting)" if settings.quick else ""),
    ]


def write_markdown(path: Path, lines: list[list[str]], settings: Settings,
                   command: str, started: list[str]) -> None:
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    text = [
        "# axiomcam vs pytorch-grad-cam and torchcam", "",
        *(f"- {line}" for line in started),
        f"- command: `{command}`", "",
        row(HEADER), row(["---"] * len(HEADER)), *(row(line) for line in lines), "",
        "Random weights (torchvision, `weights=None`, eval mode, fixed seed), random "
        "inputs, each image's top class as the target.  Times: median of one call, the "
        "libraries interleaved in one run, after one warm-up call; `(xN)`: a slow call "
        "timed N times without warm-up.  Ablation-CAM and Score-CAM run at each library's "
        "default perturbation batch size (axiomcam: Score-CAM 16, Ablation-CAM as many "
        "copies of the layer's output as fit in 128 MB; pytorch-grad-cam 32 and 16; "
        "torchcam 32).  torchcam's maps (at the layer's resolution) are upsampled to the "
        "input by the adapter, so every library delivers input-size maps.  Peak MB: peak "
        "extra resident memory of one call, each (case, library) in a fresh subprocess "
        "after a warm-up call and `malloc_trim` (VmHWM after - VmRSS before, the peak reset "
        "through /proc/self/clear_refs).  Details: `benchmarks/run.py`, "
        "`benchmarks/peers.py`.", "",
    ]
    path.write_text("\n".join(text))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="axiomcam vs pytorch-grad-cam and torchcam (issue 5's targets)")
    parser.add_argument("--cases", help="comma-separated case names (default: all; --list)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed calls per library (default 5; 2 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="64x64 inputs, batch 2, fewer repeats: only checks the harness")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the peak-memory subprocesses")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--memory-of", nargs=2, metavar=("CASE", "LABEL"),
                        help=argparse.SUPPRESS)  # internal: one memory measurement
    args = parser.parse_args(argv)

    if args.list:
        for name, (title, _) in CASES.items():
            print(f"{name:22} {title}")
        return
    repeats = args.repeats or (2 if args.quick else 5)
    settings = Settings(quick=args.quick, threads=args.threads, repeats=repeats)
    torch.set_num_threads(settings.threads)

    if args.memory_of:
        case, label = args.memory_of
        bench = CASES[case][1](settings)
        call = {**bench.calls, **bench.memory_only}[label]
        print(f"{peak_memory_mb(call, warm_up=label not in bench.slow):.1f}")
        return

    names = list(CASES) if not args.cases else [n.strip() for n in args.cases.split(",")]
    unknown = [name for name in names if name not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}")
    command = shlex.join(["python", "-m", "benchmarks.run", *sys.argv[1:]])
    started = machine_description(settings)
    lines = [line for name in names
             for line in run_case(name, settings, not args.no_memory)]
    print("\n".join(started))
    print(f"command: {command}\n")
    print(render(lines))
    if args.markdown:
        write_markdown(args.markdown, lines, settings, command, started)
        print(f"\nwrote {args.markdown}")


if __name__ == "__main__":
    main()
