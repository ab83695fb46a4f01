"""The 15 corruptions: deterministic, shape/dtype/range-preserving, monotone
in severity where the published constants are, faithful where a reference
implementation is at hand (PIL for pixelate and JPEG)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from calibkd.evaluation import corruptions as C

#: The per-severity constants of make_cifar_c.py (hendrycks/robustness), typed
#: here independently of the module so that a change to either is caught.
PUBLISHED = {
    "gaussian_noise": [0.04, 0.06, 0.08, 0.09, 0.10],
    "shot_noise": [500, 250, 100, 75, 50],
    "impulse_noise": [0.01, 0.02, 0.03, 0.05, 0.07],
    "defocus_blur": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],
    "glass_blur": [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)],
    "motion_blur": [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)],
    "snow": [(0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
             (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)],
    "frost": [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)],
    "fog": [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)],
    "brightness": [0.05, 0.1, 0.15, 0.2, 0.3],
    "contrast": [0.75, 0.5, 0.4, 0.3, 0.15],
    "elastic_transform": [(0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)],
    "pixelate": [0.95, 0.9, 0.85, 0.75, 0.65],
    "jpeg_compression": [80, 65, 58, 50, 40],
}
#: zoom factors arange(1, b, 0.01) for b = 1.06, 1.11, 1.16, 1.21, 1.26
PUBLISHED_ZOOM_COUNTS = [6, 11, 16, 21, 26]


def images(channels: int, size: int, n: int = 24, seed: int = 0) -> torch.Tensor:
    """Random bright rectangles on a dark, smoothly varying background, in [0, 1]:
    both edges and flat regions, like real photographs of objects."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, channels, size // 4, size // 4, generator=g)
    out = F.interpolate(base, size=(size, size), mode="bilinear", align_corners=False) * 0.3
    for _ in range(4):
        corners = torch.randint(0, size, (n, 4), generator=g)
        level = torch.rand(n, channels, generator=g) * 0.6 + 0.2
        for i in range(n):
            r0, r1 = sorted(corners[i, :2].tolist())
            c0, c1 = sorted(corners[i, 2:].tolist())
            out[i, :, r0:r1 + 1, c0:c1 + 1] = level[i, :, None, None]
    return out.clamp(0, 1)


def test_constants_are_the_published_ones():
    for name, values in PUBLISHED.items():
        assert C.SEVERITY_CONSTANTS[name] == values, name
    counts = [len([1 + 0.01 * i for i in range(int(round(b * 100)))]) for b in C.SEVERITY_CONSTANTS["zoom_blur"]]
    assert counts == PUBLISHED_ZOOM_COUNTS
    assert set(C.CORRUPTIONS) == set(PUBLISHED) | {"zoom_blur"} and len(C.CORRUPTIONS) == 15


@pytest.mark.parametrize("name", list(C.CORRUPTIONS))
@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32)])
def test_deterministic_and_keeps_shape_dtype_range(name, channels, size):
    x = images(channels, size, n=6)
    for severity in C.SEVERITIES:
        a = C.corrupt(x, name, severity, seed=3)
        assert a.shape == x.shape and a.dtype == x.dtype
        assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
        assert torch.equal(a, C.corrupt(x, name, severity, seed=3))
    assert not torch.equal(C.corrupt(x, name, 5, seed=3), x)


def distance(name: str, x: torch.Tensor) -> list[float]:
    return [float((C.corrupt(x, name, s) - x).abs().mean()) for s in C.SEVERITIES]


MONOTONE_IN_PIXEL_DISTANCE = [n for n in C.CORRUPTIONS if n not in ("glass_blur", "frost", "elastic_transform")]


@pytest.mark.parametrize("name", MONOTONE_IN_PIXEL_DISTANCE)
def test_distance_from_clean_grows_with_severity(name):
    d = distance(name, images(1, 28, n=64))
    assert all(b >= a - 1e-4 for a, b in zip(d, d[1:])), d
    assert d[-1] > d[0]


def one_minus_correlation(x: torch.Tensor, y: torch.Tensor) -> float:
    a, b = x.flatten(1), y.flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return float(1 - ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))).mean())


def test_frost_hides_more_of_the_image_with_severity():
    """Frost's image weight falls while its texture weight rises, so pixel
    distance need not grow (severity 4 darkens less than it frosts), but the
    share of the clean signal left, its correlation with the clean image, falls."""
    x = images(1, 28, n=64)
    d = [one_minus_correlation(x, C.corrupt(x, "frost", s)) for s in C.SEVERITIES]
    assert all(b > a for a, b in zip(d, d[1:])), d


def test_glass_blur_two_shuffle_passes_distort_more_than_one():
    """The published glass-blur constants are not monotone in pixel distance:
    severities 1-3 shuffle once with growing blur (blur hides the shuffle),
    4-5 shuffle twice. The two-pass severities distort more."""
    d = distance("glass_blur", images(1, 28, n=64))
    assert min(d[3:]) > max(d[:3]) * 0.95 and np.mean(d[3:]) > np.mean(d[:3]), d


def test_elastic_constants_trade_affine_for_local_warping():
    """Elastic's severity 1 is a pure random affine warp (alpha 0) of up to 8 %
    of the image; later severities shrink the affine part and add a rougher
    displacement field. Pixel distance therefore falls with severity: a
    property of the published constants, reported rather than changed."""
    alphas, sigmas, affines = zip(*C.SEVERITY_CONSTANTS["elastic_transform"])
    assert alphas[0] == 0 and list(alphas) == sorted(alphas)
    assert list(affines) == sorted(affines, reverse=True)
    assert list(sigmas[1:]) == sorted(sigmas[1:], reverse=True)


def test_pixelate_is_pil_box_resampling():
    x = images(1, 28, n=4)
    for severity, c in zip(C.SEVERITIES, C.SEVERITY_CONSTANTS["pixelate"]):
        ours = C.corrupt(x, "pixelate", severity)
        for i in range(4):
            img = Image.fromarray((x[i, 0] * 255).round().byte().numpy(), mode="L")
            small = img.resize((int(28 * c), int(28 * c)), Image.BOX)
            reference = np.asarray(small.resize((28, 28), Image.BOX), dtype=np.float32) / 255
            assert np.abs(ours[i, 0].numpy() - reference).max() <= 1.5 / 255


def test_jpeg_matches_pil_at_the_same_quality():
    x = images(3, 32, n=4)
    ours = C.corrupt(x, "jpeg_compression", 5)
    for i in range(4):
        img = Image.fromarray((x[i].permute(1, 2, 0) * 255).round().byte().numpy())
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=40)
        reference = np.asarray(Image.open(buffer), dtype=np.float32) / 255
        assert np.abs(ours[i].permute(1, 2, 0).numpy() - reference).mean() < 2 / 255


def test_fft_motion_blur_equals_direct_convolution():
    x = images(1, 28, n=5)
    angles = torch.tensor([-40.0, -10.0, 0.0, 25.0, 45.0])
    kernels = C._motion_kernels(8, 2, angles)
    pad = kernels.shape[-1] // 2
    padded = F.pad(x.reshape(1, 5, 28, 28), (pad, pad, pad, pad), mode="replicate")
    direct = F.conv2d(padded, kernels.unsqueeze(1), groups=5).reshape(5, 1, 28, 28)
    assert torch.allclose(C.motion_blur_batch(x, 8, 2, angles), direct, atol=1e-5)
    assert torch.allclose(kernels.sum((1, 2)), torch.ones(5))


def test_zoom_by_one_is_identity_and_plasma_is_normalised():
    x = images(1, 28, n=2)
    assert torch.allclose(C._zoom_matrix(28, 1.0) @ x @ C._zoom_matrix(28, 1.0).T, x, atol=1e-6)
    maps = C.plasma_fractal(3, 32, 2.0, torch.Generator().manual_seed(0))
    assert maps.shape == (3, 32, 32)
    assert torch.allclose(maps.amin((1, 2)), torch.zeros(3)) and torch.allclose(maps.amax((1, 2)), torch.ones(3))


@pytest.mark.parametrize("kwargs,message", [
    ({"name": "rain"}, "allowed corruptions"),
    ({"severity": 0}, "integer in 1-5"),
    ({"severity": 6}, "integer in 1-5"),
    ({"severity": 2.5}, "integer in 1-5"),
    ({"severity": True}, "integer in 1-5"),
    ({"images": torch.rand(2, 2, 28, 28)}, "shape \\(N, 1 or 3, H, W\\)"),
    ({"images": torch.rand(1, 28, 28)}, "shape"),
    ({"images": torch.zeros(2, 1, 28, 28, dtype=torch.uint8)}, "floating point"),
    ({"images": torch.rand(2, 1, 28, 28) * 3 - 1}, "pixel scale"),
])
def test_bad_input(kwargs, message):
    args = {"images": torch.rand(2, 1, 28, 28), "name": "fog", "severity": 1} | kwargs
    with pytest.raises(ValueError, match=message):
        C.corrupt(args["images"], args["name"], args["severity"])
