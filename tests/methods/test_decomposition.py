"""Eigen-Grad-CAM, KPCA-CAM, FEM, the random-map baseline and ``eigen_smooth``: each
checked against a slow float64 loop (numpy's SVD, scikit-learn's KernelPCA, Python loops)
and against pytorch-grad-cam 1.5.7 on the same small network and images.

The network keeps the image's size up to the target layer (``"3"``, padding 1, no
stride), so pytorch-grad-cam's resize (cv2, to the same size) is the identity and maps
compare position by position. A principal component's sign is arbitrary and
pytorch-grad-cam keeps its solver's; axiomcam signs it to correlate with the channel mean
of the matrix decomposed (``maps.orient``). So each pytorch-grad-cam map is compared with
``minmax(ReLU(raw))`` or ``minmax(ReLU(-raw))`` of our ``raw``, whichever is closer, and
the sign rule is checked on its own.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from axiomcam.methods import (
    FEM,
    KERNELS,
    KPCACAM,
    EigenCAM,
    EigenGradCAM,
    GradCAM,
    HiResCAM,
    LayerCAM,
    RandomCAM,
    XGradCAM,
    create,
)
from axiomcam.methods.decomposition import kernel_matrix, kernel_principal_projection
from axiomcam.methods.maps import principal_projection

LAYER = "3"
#: float32 maps of two libraries (torch vs numpy/LAPACK SVD, pytorch-grad-cam's
#: 1e-7 in its min-max division): agreement to 1e-4 of the map's [0, 1] range
PEER_TOLERANCE = 1e-4


def small_net() -> nn.Sequential:
    """Convolutions that keep the size (the target ``"3"`` is the second ReLU), one more
    convolution so that the gradient varies over the positions, then GAP and a linear."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 6, 3, padding=1), nn.ReLU(),
        nn.Conv2d(6, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(6, 5)).eval()


def activations_and_gradients(model: nn.Sequential, images: torch.Tensor,
                              classes: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``A`` ``(B, K, S)`` and ``G = dy^c/dA`` ``(B, K, S)`` in float64, by splitting the
    network at the target layer (no hooks)."""
    model = model.double()
    activations = model[:4](images.double()).detach().requires_grad_(True)
    scores = model[4:](activations)
    picked = scores[torch.arange(len(classes)), torch.tensor(classes)].sum()
    (gradients,) = torch.autograd.grad(picked, activations)
    model.float()
    return activations.detach().flatten(2), gradients.flatten(2)


def slow_principal_projection(matrix: np.ndarray) -> np.ndarray:
    """``(S, K)`` -> ``(S,)``: the first principal component scores, signed to correlate
    with the channel mean (numpy float64)."""
    centred = matrix - matrix.mean(0)
    _, _, right = np.linalg.svd(centred)
    projection = centred @ right[0]
    reference = matrix.mean(1)
    if ((projection - projection.mean()) * (reference - reference.mean())).sum() < 0:
        projection = -projection
    return projection


def minmax(maps: np.ndarray) -> np.ndarray:
    flat = maps.reshape(len(maps), -1)
    low, high = flat.min(1, keepdims=True), flat.max(1, keepdims=True)
    return ((flat - low) / np.maximum(high - low, 1e-12)).reshape(maps.shape)


def assert_agrees_up_to_sign(peer_maps: np.ndarray, raw: torch.Tensor) -> None:
    """Each of ``peer_maps`` ``(B, H, W)`` is ``minmax(ReLU(+-raw))`` of ours."""
    raw = raw.detach().double().numpy()
    for image, peer in enumerate(peer_maps):
        candidates = [minmax(np.maximum(sign * raw[image:image + 1], 0))[0] for sign in (1, -1)]
        error = min(np.abs(peer - candidate).max() for candidate in candidates)
        assert error < PEER_TOLERANCE, (image, error)


def peer_maps(peer_class: type, model: nn.Module, images: torch.Tensor, classes: list[int],
              **options: object) -> np.ndarray:
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    eigen_smooth = bool(options.pop("eigen_smooth", False))
    cam = peer_class(model=model, target_layers=[model[3]], **options)
    try:
        return cam(input_tensor=images, targets=[ClassifierOutputTarget(c) for c in classes],
                   eigen_smooth=eigen_smooth)
    finally:
        cam.activations_and_grads.release()


# ---------------------------------------------------------------------- the shared core

def test_principal_projection_is_the_slow_svd_loop_with_the_sign_rule():
    torch.manual_seed(0)
    matrix = torch.randn(3, 2, 20, 7, dtype=torch.float64) + torch.linspace(0, 3, 7)
    ours = principal_projection(matrix)
    for index in np.ndindex(3, 2):
        expected = slow_principal_projection(matrix[index].numpy())
        assert np.allclose(ours[index].numpy(), expected, atol=1e-10)


def test_principal_projection_reads_nan_as_zero():
    torch.manual_seed(0)
    matrix = torch.randn(1, 12, 4, dtype=torch.float64)
    with_nan = matrix.clone()
    with_nan[0, 3, 1] = float("nan")
    zeroed = matrix.clone()
    zeroed[0, 3, 1] = 0
    assert torch.allclose(principal_projection(with_nan), principal_projection(zeroed))


def test_eigencam_is_unchanged_by_sharing_the_projection():
    """Eigen-CAM now calls principal_projection: still the slow loop on A."""
    torch.manual_seed(0)
    model, images = small_net(), torch.rand(2, 3, 10, 12)
    activations, _ = activations_and_gradients(model, images, [0, 1])
    raw = EigenCAM(model, LAYER)(images).raw
    for image in range(2):
        expected = slow_principal_projection(activations[image].T.numpy())
        assert np.allclose(raw[image].flatten().double().numpy(), expected, atol=1e-4)


# ----------------------------------------------------------------------- Eigen-Grad-CAM

def test_eigen_grad_cam_is_the_first_component_of_g_times_a_per_target():
    torch.manual_seed(0)
    model, images = small_net(), torch.rand(2, 3, 10, 12)
    targets = torch.tensor([[1, 4], [2, 0]])
    explanation = EigenGradCAM(model, LAYER)(images, targets)
    assert explanation.raw.shape == (2, 2, 10, 12) and explanation.channel_weights is None
    for column in range(2):
        classes = targets[:, column].tolist()
        activations, gradients = activations_and_gradients(model, images, classes)
        for image in range(2):
            product = (gradients[image] * activations[image]).T.numpy()
            expected = slow_principal_projection(product)
            scale = np.abs(expected).max()
            got = explanation.raw[image, column].flatten().double().numpy()
            assert np.allclose(got, expected, atol=1e-4 * scale)
            # the sign rule: it correlates with HiResCAM's raw map sum_k G^k A^k
            hires = product.sum(1)
            assert np.corrcoef(got, hires)[0, 1] > 0


def test_eigen_grad_cam_agrees_with_pytorch_grad_cam_up_to_sign():
    peers = pytest.importorskip("pytorch_grad_cam")
    torch.manual_seed(0)
    model, images, classes = small_net(), torch.rand(3, 3, 10, 12), [1, 3, 0]
    ours = EigenGradCAM(model, LAYER)(images, classes)
    assert_agrees_up_to_sign(peer_maps(peers.EigenGradCAM, model, images, classes), ours.raw)


def test_eigen_grad_cam_has_neither_counterfactual_nor_eigen_smooth():
    model = small_net()
    with pytest.raises(ValueError, match="no counterfactual form"):
        EigenGradCAM(model, LAYER, counterfactual=True)
    with pytest.raises(ValueError, match="eigen_smooth does not apply"):
        EigenGradCAM(model, LAYER, eigen_smooth=True)


# ----------------------------------------------------------------------------- KPCA-CAM

def slow_kernel(x: np.ndarray, y: np.ndarray, kernel: str, gamma: float) -> float:
    dot = float(x @ y)
    if kernel == "linear":
        return dot
    if kernel == "poly":
        return (gamma * dot + 1.0) ** 3
    if kernel == "sigmoid":
        return float(np.tanh(gamma * dot + 1.0))
    if kernel == "rbf":
        return float(np.exp(-gamma * ((x - y) ** 2).sum()))
    return dot / (np.linalg.norm(x) * np.linalg.norm(y))


@pytest.mark.parametrize("kernel", KERNELS)
def test_kernel_matrix_is_the_pairwise_loop(kernel):
    torch.manual_seed(0)
    points = torch.randn(2, 9, 4, dtype=torch.float64)
    ours = kernel_matrix(points, kernel)  # gamma None: 1 / K
    for batch in range(2):
        rows = points[batch].numpy()
        expected = np.array([[slow_kernel(x, y, kernel, 0.25) for y in rows] for x in rows])
        assert np.allclose(ours[batch].numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kernel", KERNELS)
def test_kernel_projection_is_scikit_learns_kernel_pca_up_to_sign(kernel):
    decomposition = pytest.importorskip("sklearn.decomposition")
    torch.manual_seed(0)
    points = torch.randn(30, 5, dtype=torch.float64)
    points = points - points.mean(0)
    ours = kernel_principal_projection(points, kernel, gamma=0.3).numpy()
    expected = decomposition.KernelPCA(n_components=1, kernel=kernel, gamma=0.3) \
        .fit_transform(points.numpy())[:, 0]
    sign = np.sign(ours @ expected)
    assert np.allclose(sign * ours, expected, atol=1e-8)


def test_kpca_cam_with_the_linear_kernel_is_eigen_cam():
    """The linear kernel's component is PCA's, with the same sign rule."""
    torch.manual_seed(0)
    model, images = small_net(), torch.rand(2, 3, 10, 12)
    linear = KPCACAM(model, LAYER, kernel="linear")(images).raw
    eigen = EigenCAM(model, LAYER)(images).raw
    assert torch.allclose(linear, eigen, atol=1e-4 * float(eigen.abs().max()))


@pytest.mark.parametrize("kernel", ["sigmoid", "rbf", "poly"])
def test_kpca_cam_agrees_with_pytorch_grad_cam_up_to_sign(kernel):
    peers = pytest.importorskip("pytorch_grad_cam")
    torch.manual_seed(0)
    model, images, classes = small_net(), torch.rand(2, 3, 10, 12), [1, 3]
    ours = KPCACAM(model, LAYER, kernel=kernel)(images, classes)
    assert_agrees_up_to_sign(peer_maps(peers.KPCA_CAM, model, images, classes, kernel=kernel),
                             ours.raw)


def test_kpca_cam_sign_follows_the_channel_mean_and_is_class_agnostic():
    torch.manual_seed(0)
    model, images = small_net(), torch.rand(2, 3, 10, 12)
    explanation = KPCACAM(model, LAYER)(images, torch.tensor([[0, 3], [1, 2]]))
    assert torch.equal(explanation.raw[:, 0], explanation.raw[:, 1])
    activations, _ = activations_and_gradients(model, images, [0, 0])
    for image in range(2):
        got = explanation.raw[image, 0].flatten().double().numpy()
        assert np.corrcoef(got, activations[image].mean(0).numpy())[0, 1] > 0


def test_kpca_cam_refuses_bad_options():
    model = small_net()
    with pytest.raises(ValueError, match="kernel must be one of sigmoid, rbf, poly, linear, "
                                         "cosine, not 'laplacian'"):
        KPCACAM(model, LAYER, kernel="laplacian")
    with pytest.raises(ValueError, match="gamma must be None or a number > 0, got -1"):
        KPCACAM(model, LAYER, gamma=-1)


# ---------------------------------------------------------------------------------- FEM

def test_fem_weights_are_the_fraction_above_the_k_sigma_threshold():
    torch.manual_seed(0)
    model, images = small_net(), torch.rand(2, 3, 10, 12)
    explanation = FEM(model, LAYER, threshold_sigmas=1.5)(images, torch.tensor([[0, 4]] * 2))
    activations, _ = activations_and_gradients(model, images, [0, 0])
    for image in range(2):
        for channel in range(activations.shape[1]):
            values = activations[image, channel].tolist()
            mean = sum(values) / len(values)
            std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
            above = sum(v > mean + 1.5 * std for v in values) / len(values)
            assert explanation.channel_weights[image, :, channel].tolist() == \
                pytest.approx([above, above])
    expected = torch.einsum("bnk,bks->bns", explanation.channel_weights.double(), activations)
    assert torch.allclose(explanation.raw.flatten(2).double(), expected, atol=1e-5)


def test_fem_gives_zero_weights_on_a_layer_of_five_positions():
    """No value lies sqrt(S - 1) = 2 standard deviations above the mean of 5 values."""
    torch.manual_seed(0)
    model, images = small_net(), torch.rand(1, 3, 1, 5)
    with pytest.warns(UserWarning, match="constant"):
        explanation = FEM(model, LAYER)(images)
    assert torch.equal(explanation.channel_weights, torch.zeros(1, 6))


def test_fem_agrees_with_pytorch_grad_cam():
    peers = pytest.importorskip("pytorch_grad_cam")
    torch.manual_seed(0)
    model, images, classes = small_net(), torch.rand(3, 3, 10, 12), [0, 1, 2]
    ours = FEM(model, LAYER, threshold_sigmas=1.0)(images, classes)
    theirs = peer_maps(peers.FEM, model, images, classes, k=1.0)
    assert np.abs(theirs - ours.maps.double().numpy()).max() < PEER_TOLERANCE


# ----------------------------------------------------------------------------- RandomCAM

@pytest.mark.filterwarnings("ignore:the map of")
def test_random_weights_are_uniform_on_minus_one_one():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 1024, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(1024, 3)).eval()
    weights = RandomCAM(model, "1", seed=7)(torch.rand(4, 3, 6, 6)).channel_weights.flatten()
    count = weights.numel()  # 4096 draws
    assert weights.min() >= -1 and weights.max() <= 1
    # five standard errors: mean 0 (sd 1/sqrt(3 N)), variance 1/3 (sd sqrt(4/45 / N))
    assert abs(float(weights.mean())) < 5 / (3 * count) ** 0.5
    assert abs(float(weights.var()) - 1 / 3) < 5 * (4 / 45 / count) ** 0.5
    # Kolmogorov-Smirnov at the 0.1% level against U(-1, 1)
    ordered = weights.sort().values.double()
    empirical = torch.arange(1, count + 1, dtype=torch.float64) / count
    assert float((empirical - (ordered + 1) / 2).abs().max()) < 1.95 / count ** 0.5


@pytest.mark.filterwarnings("ignore:the map of")
def test_random_cam_is_its_weighted_sum_and_reproducible_by_seed():
    torch.manual_seed(0)
    model, images = small_net(), torch.rand(2, 3, 10, 12)
    first = RandomCAM(model, LAYER, seed=3)(images, torch.tensor([[0, 1], [2, 3]]))
    again = RandomCAM(model, LAYER, seed=3)(images, torch.tensor([[0, 1], [2, 3]]))
    other = RandomCAM(model, LAYER, seed=4)(images, torch.tensor([[0, 1], [2, 3]]))
    assert torch.equal(first.raw, again.raw)
    assert not torch.equal(first.channel_weights, other.channel_weights)
    # independent draws per image and target
    assert not torch.equal(first.channel_weights[:, 0], first.channel_weights[:, 1])
    unseeded = RandomCAM(model, LAYER)
    assert not torch.equal(unseeded(images).channel_weights, unseeded(images).channel_weights)
    activations, _ = activations_and_gradients(model, images, [0, 0])
    expected = torch.einsum("bnk,bks->bns", first.channel_weights.double(), activations)
    assert torch.allclose(first.raw.flatten(2).double(), expected, atol=1e-5)


def test_random_cam_map_is_pytorch_grad_cams_with_the_same_weights():
    """The weights are random in both; given ours, pytorch-grad-cam's RandomCAM pipeline
    draws the same map."""
    peers = pytest.importorskip("pytorch_grad_cam")
    torch.manual_seed(0)
    model, images, classes = small_net(), torch.rand(2, 3, 10, 12), [0, 1]
    ours = RandomCAM(model, LAYER, seed=5)(images, classes)

    class GivenWeights(peers.RandomCAM):
        def get_cam_weights(self, *args: object) -> np.ndarray:
            return ours.channel_weights.double().numpy()

    theirs = peer_maps(GivenWeights, model, images, classes)
    assert np.abs(theirs - ours.maps.double().numpy()).max() < PEER_TOLERANCE


# --------------------------------------------------------------------------- eigen_smooth

@pytest.mark.parametrize("method", ["gradcam", "xgradcam", "hirescam", "layercam"])
def test_eigen_smooth_is_the_first_component_of_the_channel_terms(method):
    torch.manual_seed(0)
    model, images, classes = small_net(), torch.rand(2, 3, 10, 12), [1, 4]
    plain = create(method, model, LAYER)(images, classes)
    smoothed = create(method, model, LAYER, eigen_smooth=True)(images, classes)
    activations, gradients = activations_and_gradients(model, images, classes)
    if method == "gradcam":
        terms = gradients.mean(-1, keepdim=True) * activations
    elif method == "xgradcam":
        terms = ((gradients * activations).sum(-1, keepdim=True)
                 / activations.sum(-1, keepdim=True)) * activations
    elif method == "hirescam":
        terms = gradients * activations
    else:
        terms = gradients.clamp_min(0) * activations
    for image in range(2):
        expected = slow_principal_projection(terms[image].T.numpy())
        got = smoothed.raw[image].flatten().double().numpy()
        assert np.allclose(got, expected, atol=1e-4 * np.abs(expected).max())
        # signed like the plain map (the sum of the same terms)
        assert np.corrcoef(got, plain.raw[image].flatten().double().numpy())[0, 1] > 0
    if plain.channel_weights is not None:
        assert torch.equal(smoothed.channel_weights, plain.channel_weights)


@pytest.mark.parametrize("method", ["GradCAM", "XGradCAM"])
def test_eigen_smooth_agrees_with_pytorch_grad_cam_up_to_sign(method):
    peers = pytest.importorskip("pytorch_grad_cam")
    torch.manual_seed(0)
    model, images, classes = small_net(), torch.rand(3, 3, 10, 12), [1, 3, 0]
    ours = {"GradCAM": GradCAM, "XGradCAM": XGradCAM}[method](
        model, LAYER, eigen_smooth=True)(images, classes)
    theirs = peer_maps(getattr(peers, method), model, images, classes, eigen_smooth=True)
    assert_agrees_up_to_sign(theirs, ours.raw)


@pytest.mark.filterwarnings("ignore:the guided map of")
def test_eigen_smooth_works_with_several_layers_noise_and_guided_forms():
    torch.manual_seed(0)
    model, images = small_net(), torch.rand(2, 3, 10, 12)
    both = GradCAM(model, ["1", LAYER], eigen_smooth=True)(images, [0, 1])
    alone = GradCAM(model, LAYER, eigen_smooth=True)(images, [0, 1])
    assert torch.allclose(both.layers[LAYER].raw, alone.raw)
    noisy = HiResCAM(model, LAYER, eigen_smooth=True, smooth=2, seed=0)(images, [0, 1])
    assert noisy.maps.shape == (2, 10, 12)
    guided = create("guided_layercam", model, LAYER, eigen_smooth=True)(images, [0, 1])
    assert torch.allclose(guided.raw, LayerCAM(model, LAYER, eigen_smooth=True)(
        images, [0, 1]).raw)
    assert not any(module._forward_hooks or module._backward_hooks
                   for module in model.modules())


def test_eigen_smooth_refuses_bad_values_and_decompositions():
    model = small_net()
    with pytest.raises(TypeError, match="eigen_smooth must be True or False, not 'yes'"):
        GradCAM(model, LAYER, eigen_smooth="yes")
    for method in ("eigencam", "kpcacam", "eigengradcam"):
        with pytest.raises(ValueError, match=f"\\({method}\\) is already a decomposition"):
            create(method, model, LAYER, eigen_smooth=True)


def reversed_channels(model: nn.Sequential) -> nn.Sequential:
    """The same function with the target layer's channels listed in reverse order (the
    second convolution's filters and the third's input channels permuted together)."""
    import copy

    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin[2].weight.copy_(model[2].weight.flip(0))
        twin[2].bias.copy_(model[2].bias.flip(0))
        twin[4].weight.copy_(model[4].weight.flip(1))
    return twin


@pytest.mark.parametrize("method", ["eigengradcam", "kpcacam", "eigencam", "gradcam"])
def test_the_sign_rule_does_not_depend_on_the_channel_order(method):
    """The sign of a component that a solver returns may change with the order of the
    channels; axiomcam's maps (signed by the channel mean) do not."""
    torch.manual_seed(0)
    model, images, classes = small_net(), torch.rand(4, 3, 10, 12), [0, 1, 2, 3]
    twin = reversed_channels(model)
    with torch.no_grad():
        assert torch.allclose(model(images), twin(images), atol=1e-5)
    options = {"eigen_smooth": True} if method == "gradcam" else {}
    ours = create(method, model, LAYER, **options)(images, classes)
    theirs = create(method, twin, LAYER, **options)(images, classes)
    assert torch.allclose(ours.raw, theirs.raw, atol=1e-4 * float(ours.raw.abs().max()))


@pytest.mark.parametrize("method", ["EigenGradCAM", "GradCAM"])
def test_pytorch_grad_cams_sign_follows_the_channel_order(method):
    """The documented difference (docs/peers.md): pytorch-grad-cam keeps numpy's SVD sign,
    so reversing the channels of the same function flips some of its maps (7 of 20 for
    each of these, with numpy 2 / OpenBLAS, seeds 0 to 4); it stays one of axiomcam's two
    signed maps, and axiomcam's own map never moves."""
    peers = pytest.importorskip("pytorch_grad_cam")
    options = {"eigen_smooth": True} if method == "GradCAM" else {}
    flips = 0
    for seed in range(5):
        torch.manual_seed(seed)
        model, images, classes = small_net(), torch.rand(4, 3, 10, 12), [0, 1, 2, 3]
        twin = reversed_channels(model)
        ours = create(method.lower(), model, LAYER, **options)(images, classes)
        first = peer_maps(getattr(peers, method), model, images, classes, **options)
        second = peer_maps(getattr(peers, method), twin, images, classes, **options)
        assert_agrees_up_to_sign(second, ours.raw)
        flips += sum(np.corrcoef(a.ravel(), b.ravel())[0, 1] < 0
                     for a, b in zip(first, second, strict=True))
    assert flips > 0


def test_eigen_smooth_of_a_method_that_does_not_say_its_terms_is_a_clear_error():
    class ElementWise(HiResCAM):  # no channel weights, and channel_terms not overridden
        channel_terms = GradCAM.channel_terms

    with pytest.raises(ValueError, match="has no channel weights and does not say its "
                                         "channel terms"):
        ElementWise(small_net(), LAYER, eigen_smooth=True)(torch.rand(1, 3, 10, 12))
