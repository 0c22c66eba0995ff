"""1D inputs ``(B, C, L)`` (audio, time series, spectra): every method against the slow
reference of ``reference.py`` (one signal, one channel at a time, on a private copy), the
CAM = Grad-CAM = XGrad-CAM identity and exact conservation on 1D heads, the rule that a
3-D layer output is a ``(B, C, l)`` grid when the input is 1D (tokens only for images),
the default layer of 1D CNNs, and the line-plot overlay."""

from __future__ import annotations

import io
import warnings

import matplotlib
import numpy as np
import pytest
import reference as ref
import torch
from few_samples import few_samples
from PIL import Image
from torch import nn

import axiomcam
from axiomcam.images import signal_overlay
from axiomcam.layers import candidate_layers, find_default_layer, layer_layout
from axiomcam.methods import METHOD_NAMES, AxiomCamWarning, method_info
from axiomcam.metrics.axioms import measure_axioms

LENGTH = 50  # -> 25 -> 13 samples after the two stride-2 convolutions (odd sizes on purpose)
LAYERS = ("features.1", "features.3", "features.5")  # ReLU outputs; features.5 feeds GAP


class SignalNet(nn.Module):
    """conv1d -> ReLU -> conv1d (stride 2) -> ReLU -> conv1d (stride 2) -> ReLU -> mean over
    time -> linear: a small 1D CNN classifier of 2-channel signals into 5 classes."""

    def __init__(self, bias: bool = True) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(2, 6, 5, padding=2, bias=bias), nn.ReLU(),
            nn.Conv1d(6, 8, 3, stride=2, padding=1, bias=bias), nn.ReLU(),
            nn.Conv1d(8, 10, 3, stride=2, padding=1, bias=bias), nn.ReLU())
        self.fc = nn.Linear(10, 5, bias=bias)

    def forward(self, signals: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(signals).mean(-1))


def signal_net(seed: int = 0, bias: bool = True) -> SignalNet:
    torch.manual_seed(seed)
    model = SignalNet(bias).double().eval()
    with torch.no_grad():  # logits a few units apart: Score-CAM's probabilities move
        model.fc.weight.mul_(8.0)
    return model


def signals(count: int = 3, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(count, 2, LENGTH, generator=generator, dtype=torch.float64)


def reference_explanation(model, x, method, layer, classes, form="score"):
    """raw ``(B, l)``, weights ``(B, K)``, maps ``(B, L)`` and guided ``(B, C, L)`` of the
    reference, one signal at a time."""
    guided_method = method.startswith("guided_")
    cam_method = method.removeprefix("guided_")
    private = ref.private_copy(model)
    reference = ref.Reference(private, layer)
    rows = {"raw": [], "weights": [], "maps": [], "guided": []}
    for b, c in enumerate(classes.tolist()):
        passes = reference.gradient(x[b], c)
        ablated = masked = None
        if cam_method == "ablationcam":
            ablated = reference.ablated_logits(x[b], passes["A"].shape[0], passes["calls"])
        if cam_method == "scorecam":
            masked = reference.masked_probabilities(x[b], passes["A"])
        raw, weights = ref.explain_one(cam_method, passes, linear_weight=model.fc.weight
                                       .detach(), c=c, ablated=ablated, masked=masked,
                                       form=form)
        cam_map = ref.map_from_raw(raw, (LENGTH,))
        rows["raw"].append(raw)
        rows["weights"].append(weights)
        rows["maps"].append(cam_map)
        if guided_method:
            guided = ref.guided_gradient(private, x[b], c) * cam_map[None]
            rows["guided"].append(guided)
            rows["maps"][-1] = ref.guided_map(guided)
    return {key: None if not value or value[0] is None else torch.stack(value)
            for key, value in rows.items()}


CAM_NAMES = ["gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "ablationcam",
             "ablationcam:activation", "scorecam", "eigencam"]


@pytest.mark.parametrize("layer", ["features.3", "features.5"])
@pytest.mark.parametrize("method", [*CAM_NAMES, "guided_gradcam", "guided_scorecam"])
def test_every_method_on_1d_signals_equals_the_slow_reference(method, layer):
    model, x = signal_net(), signals()
    with torch.no_grad():
        logits = model(x)
    # the top class, and for the last signal another class (maps of several classes)
    classes = logits.argmax(1)
    classes[-1] = (classes[-1] + 2) % 5
    form = "activation" if method.endswith(":activation") else "score"
    expected = reference_explanation(model, x, method.replace(":activation", ""), layer,
                                     classes, form)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AxiomCamWarning)  # a class with no positive map
        exp = axiomcam.explain(model, x.clone(), method, layer, targets=classes)
    spatial = {"features.3": 25, "features.5": 13}[layer]
    assert exp.maps.shape == (3, LENGTH) and exp.raw.shape == (3, spatial)
    ref.assert_rel_close(exp.raw, expected["raw"], 1e-8, f"{method} raw")
    ref.assert_rel_close(exp.maps, expected["maps"], 1e-8, f"{method} maps")
    if expected["weights"] is None:
        assert exp.channel_weights is None
    else:
        ref.assert_rel_close(exp.channel_weights, expected["weights"], 1e-8, method)
    if method.startswith("guided_"):
        ref.assert_rel_close(exp.guided, expected["guided"], 1e-8, f"{method} guided")
    ref.assert_rel_close(exp.scores, logits.gather(1, classes[:, None])[:, 0], 1e-12)
    assert exp.maps.flatten(1).std(1).max() > 0.05  # not all constant


def test_cam_and_guided_backprop_on_1d_signals_equal_the_reference():
    model, x = signal_net(), signals()
    with torch.no_grad():
        classes = model(x).argmax(1)
    cam = axiomcam.explain(model, x, "cam", "features.5", targets=classes)
    expected = reference_explanation(model, x, "cam", "features.5", classes)
    ref.assert_rel_close(cam.raw, expected["raw"], 1e-10, "cam raw")
    ref.assert_rel_close(cam.maps, expected["maps"], 1e-10, "cam maps")
    backprop = axiomcam.explain(model, x, "guided_backprop", targets=classes)
    private = ref.private_copy(model)
    gradients = torch.stack([ref.guided_gradient(private, x[b], int(c))
                             for b, c in enumerate(classes)])
    ref.assert_rel_close(backprop.guided, gradients, 1e-10, "guided backprop")
    assert backprop.maps.shape == (3, LENGTH)
    ref.assert_rel_close(backprop.maps, torch.stack([ref.guided_map(g) for g in gradients]),
                         1e-10, "guided backprop maps")


def test_every_method_name_gives_b_by_l_maps_and_k_targets_add_an_axis():
    model, x = signal_net(), signals(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AxiomCamWarning)
        for method in METHOD_NAMES:
            layer = None if not method_info(method).takes_layer else "features.5"
            exp = axiomcam.explain(model, x, method, layer, **few_samples(method))
            assert exp.maps.shape == (2, LENGTH), method
            several = axiomcam.explain(model, x, method, layer,
                                       targets=torch.tensor([[0, 1, 2], [3, 4, 0]]),
                                       **few_samples(method))
            assert several.maps.shape == (2, 3, LENGTH), method
            if several.raw is not None:  # occlusion's raw map is at the input
                grid = 13 if layer is not None else LENGTH
                assert several.raw.shape == (2, 3, grid), method


def test_cam_gradcam_and_xgradcam_agree_on_a_1d_gap_linear_head():
    model, x = signal_net(), signals()
    raws = [axiomcam.explain(model, x, method, "features.5", targets=[0, 1, 2]).raw
            for method in ("cam", "gradcam", "xgradcam")]
    torch.testing.assert_close(raws[0], raws[1], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(raws[0], raws[2], rtol=1e-10, atol=1e-12)
    # and the map sums to the score minus the linear layer's bias
    with torch.no_grad():
        scores = model(x)[range(3), [0, 1, 2]]
    torch.testing.assert_close(raws[0].sum(1), scores - model.fc.bias[[0, 1, 2]],
                               rtol=1e-10, atol=1e-12)


def test_axioms_are_exact_on_a_bias_free_1d_relu_network():
    """Without biases the score is positively homogeneous in A (Euler): XGrad-CAM and
    HiResCAM conserve it exactly at any ReLU layer, and Ablation-CAM's activation form has
    no sensitivity error. With biases, the conservation error is the bias share (not 0)."""
    x = signals()
    free = signal_net(bias=False)
    errors = measure_axioms(free, x, ["xgradcam", "ablationcam:activation"], "features.1")
    assert errors["xgradcam"].conservation_error.max() < 1e-10
    assert errors["xgradcam"].bias_share.max() < 1e-10
    assert errors["ablationcam:activation"].sensitivity_error.max() < 1e-10
    hires = axiomcam.explain(free, x, "hirescam", "features.3")
    torch.testing.assert_close(hires.raw.sum(1), hires.scores, rtol=1e-10, atol=1e-12)
    biased = measure_axioms(signal_net(), x, ["xgradcam", "gradcam"], "features.1")
    assert biased["xgradcam"].bias_share.min() > 1e-3
    torch.testing.assert_close(biased["xgradcam"].conservation_error,
                               biased["xgradcam"].bias_share, rtol=1e-8, atol=1e-12)
    # at the layer that feeds GAP + linear, Grad-CAM's channel shares are exact
    at_gap = measure_axioms(signal_net(), x, ["gradcam"], "features.5")
    assert at_gap["gradcam"].sensitivity_error.max() < 1e-10


# ---------------------------------------------------------------- the layout rule


def test_a_3d_output_is_a_grid_for_1d_inputs_and_tokens_for_images():
    output = torch.zeros(2, 16, 5)
    assert layer_layout(nn.Conv1d(1, 16, 1), output, (40,)).kind == "channels_first"
    assert layer_layout(nn.Identity(), torch.zeros(2, 17, 8), (32, 32)).kind == "tokens"
    # a LayerNorm's (B, l, C) output of a 1D network is channels-last, as (B, h, w, C) is
    layout = layer_layout(nn.LayerNorm(8), torch.zeros(2, 5, 8), (40,))
    assert layout.kind == "channels_last"
    assert layout.to_grid(torch.zeros(2, 5, 8))[0].shape == (2, 8, 5)


class ChannelsLast1D(nn.Module):
    """A convolutional stem, then LayerNorm and a linear mixing over (B, l, C) positions."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv1d(1, 8, 4, stride=2), nn.ReLU())
        self.norm = nn.LayerNorm(8)
        self.mix = nn.Linear(8, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, signals: torch.Tensor) -> torch.Tensor:
        tokens = self.norm(self.stem(signals).transpose(1, 2))  # (B, l, C)
        return self.head(torch.relu(self.mix(tokens)).mean(1))


def test_a_layernorm_over_1d_positions_is_explained_channels_last():
    torch.manual_seed(0)
    model, x = ChannelsLast1D().double().eval(), torch.randn(2, 1, 30, dtype=torch.float64)
    kept = {}
    handle = model.norm.register_forward_hook(lambda m, args, out: kept.update(A=out))
    logits = model(x)
    handle.remove()
    classes = logits.argmax(1)
    (gradient,) = torch.autograd.grad(logits.gather(1, classes[:, None]).sum(), kept["A"])
    activations, gradients = kept["A"].detach().transpose(1, 2), gradient.transpose(1, 2)
    expected = torch.einsum("bk,bkl->bl", gradients.mean(-1), activations)  # Grad-CAM
    exp = axiomcam.explain(model, x, "gradcam", "norm", targets=classes)
    torch.testing.assert_close(exp.raw, expected, rtol=1e-10, atol=1e-12)
    assert exp.raw.shape == (2, 14) and exp.maps.shape == (2, 30)


def test_default_layer_and_candidates_of_a_1d_cnn():
    model, x = signal_net(), signals()
    # the last (B, C, l) output with l > 1; not `features`, which holds both downsamplings
    assert find_default_layer(model, x) == "features.5"
    assert axiomcam.explain(model, x, "gradcam").target_layer == "features.5"
    layers = dict(candidate_layers(model, x))
    assert layers["features.0"] == (3, 6, 50) and layers["features.5"] == (3, 10, 13)
    assert "fc" not in layers  # (B, 5): no positions
    with pytest.raises(ValueError, match=r"no layer with a \(B, C, l\) output with l > 1"):
        find_default_layer(nn.Sequential(nn.Flatten(), nn.Linear(20, 2)), torch.rand(1, 2, 10))


class FrameClassifier(nn.Module):
    """Convolutions, then a linear layer per time step on ``(B, l, C)`` (as a CRNN's
    frame classifier), averaged over time."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv1d(2, 6, 3, padding=1), nn.ReLU(),
                                  nn.Conv1d(6, 6, 3, stride=2), nn.ReLU())
        self.frames = nn.Linear(6, 4)

    def forward(self, signals: torch.Tensor) -> torch.Tensor:
        return self.frames(self.conv(signals).transpose(1, 2)).mean(1)


def test_the_default_layer_of_a_1d_network_is_a_channels_first_grid():
    """A per-time-step linear layer's (B, l, C) output is 3-D too, and the last one: it is
    not taken for a (B, C, l) grid; a network without Conv1d keeps every 3-D output."""
    torch.manual_seed(0)
    model, x = FrameClassifier().eval(), torch.rand(2, 2, 30)
    assert find_default_layer(model, x) == "conv.3"  # the last ReLU, not `frames`
    assert "frames" in dict(candidate_layers(model, x))  # still listed, and explainable
    assert find_default_layer(nn.Sequential(nn.Linear(30, 30), nn.ReLU()), x) == "1"


class Unsqueezed(nn.Module):
    """A 1D model that runs a Conv2d on ``(B, C, 1, L)``: such a layer has no 1D grid."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1d = nn.Conv1d(2, 4, 3)
        self.conv2d = nn.Conv2d(4, 4, 1)
        self.fc = nn.Linear(4, 2)

    def forward(self, signals: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv2d(self.conv1d(signals)[:, :, None]).mean((2, 3)))


def test_wrong_layers_and_inputs_for_1d_models_are_clear_errors():
    model = Unsqueezed()
    with pytest.raises(ValueError, match=r"a CAM needs a \(B, C, l\) output for 1D signals"):
        axiomcam.explain(model, torch.rand(2, 2, 20), "gradcam", "conv2d")
    assert axiomcam.explain(model, torch.rand(2, 2, 20), "gradcam", "conv1d").maps.shape == \
        (2, 20)
    with pytest.raises(ValueError, match="3 channels but the model's first convolution "
                                         "expects 2"):
        axiomcam.explain(signal_net(), signals().repeat(1, 2, 1)[:, :3], "gradcam")
    # a 2D network given one image without its batch axis is not mistaken for signals
    with pytest.raises(ValueError, match=r"unsqueeze\(0\)"):
        axiomcam.explain(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), torch.rand(3, 8, 8))


# ---------------------------------------------------------------- the overlay


def plot_area_values(picture: np.ndarray, alpha: float, colormap: str = "jet"):
    """The map value behind each pixel column of the plot: pixels whose colour is
    ``(1 - alpha) * white + alpha * colormap(v)`` (within 6 levels) are matched to their
    ``v``; the columns holding such pixels, and the median ``v`` of each."""
    table = (1 - alpha) + alpha * matplotlib.colormaps[colormap](np.linspace(0, 1, 256))[:, :3]
    codes = picture.reshape(-1, 3).astype(np.int64) @ np.array([65536, 256, 1])
    unique, index = np.unique(codes, return_inverse=True)
    colours = np.stack([unique // 65536, unique // 256 % 256, unique % 256], axis=1)
    distances = ((colours[:, None, :] / 255.0 - table[None]) ** 2).sum(-1)
    matched = (distances.min(1) < (6 / 255) ** 2)[index].reshape(picture.shape[:2])
    values = (distances.argmin(1) / 255.0)[index].reshape(picture.shape[:2])
    counts = matched.sum(0)
    columns = np.flatnonzero(counts > 0.5 * counts.max())
    return columns, np.array([np.median(values[matched[:, j], j]) for j in columns])


def test_the_signal_overlay_colours_follow_the_map_along_the_signal():
    """A ramp map behind a sine: column by column, the colour behind the line is the
    colormap's colour of the map's value at that sample (a flipped, shifted or constant
    map would not match)."""
    signal = torch.sin(torch.linspace(0, 12, 200))
    cam_map = torch.linspace(0, 1, 40)  # resized linearly to the 200 samples
    picture = signal_overlay(signal, cam_map, alpha=0.6)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    pixels = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    assert pixels.shape == (160, 640, 3)
    columns, values = plot_area_values(pixels, 0.6)
    assert columns.max() - columns.min() > 400  # the plot spans most of the width
    assert (columns.max() - columns.min() + 1) == len(columns)  # one unbroken area
    resized = torch.nn.functional.interpolate(cam_map[None, None], size=200, mode="linear",
                                              align_corners=False)[0, 0].numpy()
    # sample under each column: the area spans the 200 sample bands evenly
    samples = ((columns - columns.min() + 0.5) / len(columns) * 200).astype(int).clip(0, 199)
    assert np.abs(values - resized[samples]).max() < 0.03
    assert values[0] < 0.05 and values[-1] > 0.95


def test_the_signal_overlay_draws_each_channel_and_checks_its_arguments():
    two = signal_overlay(np.random.default_rng(0).normal(size=(2, 30)), np.ones(30) * 0.5,
                         positions=np.linspace(0, 3, 30), xlabel="seconds", size=(300, 120))
    assert two.size == (300, 240)
    with pytest.raises(ValueError, match=r"signal must be \(L,\) or \(C, L\)"):
        signal_overlay(torch.zeros(1, 2, 30), torch.zeros(30))
    with pytest.raises(ValueError, match=r"cam_map must be 1-D \(l,\)"):
        signal_overlay(torch.zeros(30), torch.zeros(5, 6))
    with pytest.raises(ValueError, match=r"values must be in \[0, 1\]"):
        signal_overlay(torch.zeros(30), torch.full((30,), 2.0))
    with pytest.raises(ValueError, match="positions must be 30 increasing values"):
        signal_overlay(torch.zeros(30), torch.zeros(30), positions=np.zeros(30))
    with pytest.raises(ValueError, match="NaN"):
        signal_overlay(torch.full((30,), float("nan")), torch.zeros(30))
    with pytest.raises(ValueError, match="size must be"):
        signal_overlay(torch.zeros(30), torch.zeros(30), size=(0, 10))
