"""The 15 corruptions of Hendrycks & Dietterich (2019), batched on tensors.

Each corruption maps a batch of images in pixel scale [0, 1], shape
(N, C, H, W) with C = 1 (grayscale) or 3 (RGB), to a corrupted batch of the
same shape, dtype and range, for a severity 1-5. All randomness comes from a
``torch.Generator``, so the same call gives the same images.

Constants are the per-severity CIFAR-10-C / CIFAR-100-C values of the
reference script (``make_cifar_c.py`` in hendrycks/robustness), kept in
``SEVERITY_CONSTANTS``. Adaptation to other sizes (28 px Fashion-MNIST):
constants defined in pixels (noise levels, blur radii and sigmas) are kept
as they are; constants defined relative to the image (elastic's ``IMSIZE``
factor, pixelate's ``int(size * c)``, the crop of the fog and frost layers)
follow the actual image size. Colour-specific steps reduce to their
grayscale meaning (HSV value of a gray pixel is the pixel; a gray image's
grayscale is itself).

Where the reference relies on tools that do not run on tensors, the
re-implementation is stated next to the function: ImageMagick's motion blur
(a one-sided Gaussian line kernel, rasterised bilinearly), scipy's zoom
(bilinear resampling about the centre), the frost photographs (which cannot be
shipped: a procedural ice texture of fractal noise and crystal streaks
stands in, with the same blending weights). JPEG uses PIL's codec, as the reference
does; pixelate reproduces PIL's BOX resampling on tensors. The same random
draws are used at every severity (common random numbers), so a severity step
changes only the constants.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

Corruption = Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]

#: Per-severity constants of the CIFAR-C reference script (severity 1 first).
SEVERITY_CONSTANTS: dict[str, list] = {
    "gaussian_noise": [0.04, 0.06, 0.08, 0.09, 0.10],
    "shot_noise": [500, 250, 100, 75, 50],
    "impulse_noise": [0.01, 0.02, 0.03, 0.05, 0.07],
    "defocus_blur": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],
    "glass_blur": [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)],
    "motion_blur": [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)],
    "zoom_blur": [0.06, 0.11, 0.16, 0.21, 0.26],  # zoom factors 1, 1.01, ... below this bound
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


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _uniform(shape, generator: torch.Generator, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=generator.device) * (high - low) + low


def _gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> torch.Tensor:
    radius = max(int(truncate * sigma + 0.5), 1)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(images: torch.Tensor, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """Separable Gaussian blur with reflected borders (skimage.filters.gaussian)."""
    if sigma <= 0:
        return images
    kernel = _gaussian_kernel1d(sigma, truncate).to(images)
    r = kernel.numel() // 2
    n, c, h, w = images.shape
    flat = images.reshape(n * c, 1, h, w)
    if r >= min(h, w):  # reflect padding needs r < size
        flat = F.pad(flat, (r, r, r, r), mode="replicate")
    else:
        flat = F.pad(flat, (r, r, r, r), mode="reflect")
    flat = F.conv2d(flat, kernel.view(1, 1, 1, -1))
    flat = F.conv2d(flat, kernel.view(1, 1, -1, 1))
    return flat.reshape(n, c, h, w)


def _filter2d(images: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Correlate every channel with one 2-D kernel, reflected borders (cv2.filter2D)."""
    n, c, h, w = images.shape
    kh, kw = kernel.shape
    flat = F.pad(images.reshape(n * c, 1, h, w), (kw // 2, kw // 2, kh // 2, kh // 2), mode="reflect")
    return F.conv2d(flat, kernel.to(images).view(1, 1, kh, kw)).reshape(n, c, h, w)


def _grayscale(images: torch.Tensor) -> torch.Tensor:
    if images.shape[1] == 1:
        return images
    weights = torch.tensor([0.299, 0.587, 0.114], device=images.device).view(1, 3, 1, 1)
    return (images * weights).sum(1, keepdim=True)


def _clip(images: torch.Tensor) -> torch.Tensor:
    return images.clamp(0.0, 1.0)


def _motion_kernels(radius: float, sigma: float, angles_deg: torch.Tensor) -> torch.Tensor:
    """One-sided Gaussian line kernels (ImageMagick's MotionBlurImage): weights
    exp(-i^2 / 2 sigma^2) for i = 0 .. width-1 (width 2 * radius + 1) at offsets
    i * (cos a, sin a), splatted bilinearly onto a square grid. (N, K, K)."""
    width = int(2 * math.ceil(radius) + 1)
    i = torch.arange(width, dtype=torch.float32)
    weights = torch.exp(-(i ** 2) / (2 * sigma ** 2))
    weights = weights / weights.sum()
    size = 2 * width + 1
    center = width
    a = torch.deg2rad(angles_deg.float().cpu())
    xs = center + i[None, :] * torch.cos(a)[:, None]  # (N, width)
    ys = center + i[None, :] * torch.sin(a)[:, None]
    kernels = torch.zeros(len(angles_deg), size * size)
    x0, y0 = xs.floor(), ys.floor()
    for dx in (0, 1):
        for dy in (0, 1):
            wx = (1 - (xs - x0)) if dx == 0 else (xs - x0)
            wy = (1 - (ys - y0)) if dy == 0 else (ys - y0)
            idx = ((y0 + dy).long().clamp(0, size - 1) * size + (x0 + dx).long().clamp(0, size - 1))
            kernels.scatter_add_(1, idx, wx * wy * weights[None, :])
    return kernels.view(-1, size, size)


def motion_blur_batch(images: torch.Tensor, radius: float, sigma: float, angles_deg: torch.Tensor) -> torch.Tensor:
    """Blur each image along its own angle: one kernel per image, applied as an
    FFT convolution (kernels reach 59x59, too large for direct convolution)."""
    n, c, h, w = images.shape
    kernels = _motion_kernels(radius, sigma, angles_deg).to(images)
    k = kernels.shape[-1]
    pad = k // 2
    padded = F.pad(images.reshape(n * c, 1, h, w), (pad, pad, pad, pad), mode="replicate").reshape(n, c, h + 2 * pad, w + 2 * pad)
    # circular convolution on the padded size: the centre crop never wraps
    size = (h + 2 * pad, w + 2 * pad)
    spectrum = torch.fft.rfft2(padded, s=size) * torch.fft.rfft2(kernels.flip(-1, -2), s=size)[:, None]
    full = torch.fft.irfft2(spectrum, s=size)
    return full[:, :, k - 1: k - 1 + h, k - 1: k - 1 + w]


def _zoom_matrix(size: int, factor: float) -> torch.Tensor:
    """(size, size) bilinear resampling that magnifies one axis by ``factor``
    about the centre, clamping at the border: zoom = A @ image @ A.T."""
    out = torch.arange(size, dtype=torch.float64)
    source = (out + 0.5 - size / 2) / factor + size / 2 - 0.5
    source = source.clamp(0, size - 1)
    low = source.floor().long().clamp(max=size - 1)
    high = (low + 1).clamp(max=size - 1)
    frac = source - low
    matrix = torch.zeros(size, size, dtype=torch.float64)
    matrix[out.long(), low] += 1 - frac
    matrix[out.long(), high] += frac
    return matrix.float()


def _zoom_about_centre(images: torch.Tensor, factor: float) -> torch.Tensor:
    """Magnify by ``factor`` about the centre, keeping the size (bilinear)."""
    n = images.shape[0]
    theta = torch.zeros(n, 2, 3, device=images.device)
    theta[:, 0, 0] = 1 / factor
    theta[:, 1, 1] = 1 / factor
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def plasma_fractal(n: int, mapsize: int, wibbledecay: float, generator: torch.Generator) -> torch.Tensor:
    """Diamond-square height maps in [0, 1], (N, mapsize, mapsize): the fog layer."""
    if mapsize & (mapsize - 1):
        raise ValueError(f"mapsize={mapsize} must be a power of two")
    maps = torch.zeros(n, mapsize, mapsize, device=generator.device)
    step, wibble = mapsize, 100.0

    def wibbled(array: torch.Tensor) -> torch.Tensor:
        return array / 4 + wibble * _uniform(array.shape, generator, -wibble, wibble)

    while step >= 2:
        half = step // 2
        corners = maps[:, 0:mapsize:step, 0:mapsize:step]
        square = corners + torch.roll(corners, -1, 1)
        square = square + torch.roll(square, -1, 2)
        maps[:, half:mapsize:step, half:mapsize:step] = wibbled(square)
        centres = maps[:, half:mapsize:step, half:mapsize:step]
        corners = maps[:, 0:mapsize:step, 0:mapsize:step]
        left = centres + torch.roll(centres, 1, 1) + corners + torch.roll(corners, -1, 2)
        maps[:, 0:mapsize:step, half:mapsize:step] = wibbled(left)
        top = centres + torch.roll(centres, 1, 2) + corners + torch.roll(corners, -1, 1)
        maps[:, half:mapsize:step, 0:mapsize:step] = wibbled(top)
        step //= 2
        wibble /= wibbledecay
    maps = maps - maps.amin((1, 2), keepdim=True)
    return maps / maps.amax((1, 2), keepdim=True)


def _box_resize_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """PIL's BOX resampling as a (size_out, size_in) matrix: each output pixel
    averages the input pixels whose centres fall in its box."""
    scale = size_in / size_out
    support = 0.5 * max(scale, 1.0)
    matrix = torch.zeros(size_out, size_in, dtype=torch.float64)
    filterscale = max(scale, 1.0)
    for i in range(size_out):
        centre = (i + 0.5) * scale
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), size_in)
        for j in range(lo, hi):
            x = (j - centre + 0.5) / filterscale
            matrix[i, j] = 1.0 if -0.5 <= x < 0.5 else 0.0
        total = matrix[i].sum()
        if total > 0:
            matrix[i] /= total
    return matrix.float()


# ---------------------------------------------------------------------------
# the corruptions
# ---------------------------------------------------------------------------


def gaussian_noise(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    c = SEVERITY_CONSTANTS["gaussian_noise"][severity - 1]
    return _clip(x + torch.randn(x.shape, generator=g, device=g.device).to(x.device) * c)


def shot_noise(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    c = SEVERITY_CONSTANTS["shot_noise"][severity - 1]
    return _clip(torch.poisson((x * c).cpu(), generator=g).to(x.device) / c)


def impulse_noise(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    """Salt and pepper on a fraction ``c`` of the values (skimage's 's&p', equal halves)."""
    c = SEVERITY_CONSTANTS["impulse_noise"][severity - 1]
    hit = _uniform(x.shape, g).to(x.device) < c
    salt = _uniform(x.shape, g).to(x.device) < 0.5
    return torch.where(hit, salt.to(x.dtype), x)


def defocus_blur(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    """Convolution with an anti-aliased disk (17x17 grid, 3x3 Gaussian alias blur)."""
    radius, alias = SEVERITY_CONSTANTS["defocus_blur"][severity - 1]
    grid = torch.arange(-8, 9, dtype=torch.float32)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    disk = ((xx ** 2 + yy ** 2) <= radius ** 2).float()
    disk = disk / disk.sum()
    # cv2.GaussianBlur(ksize=(3, 3), sigmaX=alias) of the disk, reflect-101 borders
    k = torch.exp(-0.5 * (torch.arange(-1, 2, dtype=torch.float32) / alias) ** 2)
    k = k / k.sum()
    smooth = F.pad(disk.view(1, 1, 17, 17), (1, 1, 1, 1), mode="reflect")
    smooth = F.conv2d(F.conv2d(smooth, k.view(1, 1, 1, 3)), k.view(1, 1, 3, 1)).view(17, 17)
    rows = smooth.abs().sum(1) > 0
    cols = smooth.abs().sum(0) > 0
    return _clip(_filter2d(x, smooth[rows][:, cols]))


def glass_blur(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    """Blur, quantise to 8 bits, locally swap pixels (the reference's sequential
    sweep, vectorised over the batch), blur again."""
    sigma, delta, iterations = SEVERITY_CONSTANTS["glass_blur"][severity - 1]
    out = (gaussian_blur(x, sigma) * 255).floor().clamp(0, 255) / 255
    n, c, h, w = out.shape
    rows = torch.arange(n, device=x.device)
    for _ in range(iterations):
        for hh in range(h - delta, delta, -1):
            for ww in range(w - delta, delta, -1):
                shift = torch.randint(-delta, delta, (2, n), generator=g, device=g.device).to(x.device)
                h2, w2 = hh + shift[1], ww + shift[0]
                here = out[rows, :, hh, ww].clone()
                out[rows, :, hh, ww] = out[rows, :, h2, w2]
                out[rows, :, h2, w2] = here
    return _clip(gaussian_blur(out, sigma))


def motion_blur(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    """ImageMagick-style motion blur at a random angle in [-45, 45] degrees per image."""
    radius, sigma = SEVERITY_CONSTANTS["motion_blur"][severity - 1]
    angles = _uniform((x.shape[0],), g, -45, 45)
    return _clip(motion_blur_batch(x, radius, sigma, angles))


def zoom_blur(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    """Average of the image and its centre zooms by 1, 1.01, ... (below the
    bound). Bilinear zoom is separable, so each zoom is two small matmuls."""
    bound = SEVERITY_CONSTANTS["zoom_blur"][severity - 1]
    factors = [1 + 0.01 * i for i in range(int(round(bound * 100)))]
    _, _, h, w = x.shape
    out = x.clone()
    for factor in factors:
        out = out + _zoom_matrix(h, factor).to(x) @ x @ _zoom_matrix(w, factor).to(x).T
    return _clip(out / (len(factors) + 1))


def snow(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    """Gaussian snow layer, zoomed, thresholded, motion-blurred at -135..-45
    degrees, added twice (the second copy rotated 180 degrees) to a brightened image."""
    loc, scale, zoom, threshold, radius, sigma, blend = SEVERITY_CONSTANTS["snow"][severity - 1]
    n, _, h, w = x.shape
    layer = (torch.randn((n, 1, h, w), generator=g, device=g.device).to(x.device) * scale + loc)
    layer = _zoom_about_centre(layer, zoom)
    layer = torch.where(layer < threshold, torch.zeros_like(layer), layer).clamp(0, 1)
    layer = (layer * 255).floor() / 255  # the reference stores the layer as an 8-bit image
    layer = motion_blur_batch(layer, radius, sigma, _uniform((n,), g, -135, -45))
    base = blend * x + (1 - blend) * torch.maximum(x, _grayscale(x) * 1.5 + 0.5)
    return _clip(base + layer + torch.rot90(layer, 2, (2, 3)))


def frost_texture(n: int, channels: int, h: int, w: int, g: torch.Generator) -> torch.Tensor:
    """Procedural stand-in for the frost photographs (not shippable): bright,
    bluish-white fractal ice with streaks of crystal, values in [0, 1]."""
    size = 1 << max(h, w, 2).__sub__(1).bit_length()
    base = plasma_fractal(n, size, 1.6, g)[:, None, :h, :w]
    seeds = (_uniform((n, 1, h, w), g) < 0.06).float()
    streaks = motion_blur_batch(seeds, 4, 2.0, _uniform((n,), g, 0, 180))
    streaks = streaks + motion_blur_batch(seeds, 3, 1.5, _uniform((n,), g, 0, 180))
    ice = (0.55 * base + 1.6 * streaks).clamp(0, 1)
    if channels == 3:
        tint = torch.tensor([0.85, 0.93, 1.0], device=ice.device).view(1, 3, 1, 1)
        return ice * tint
    return ice * 0.93


def frost(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    """Blend with a frost texture: c0 * image + c1 * frost (procedural texture)."""
    image_weight, frost_weight = SEVERITY_CONSTANTS["frost"][severity - 1]
    n, c, h, w = x.shape
    texture = frost_texture(n, c, h, w, g).to(x.device)
    return _clip(image_weight * x + frost_weight * texture)


def fog(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    """Add a plasma-fractal fog layer (map size 32, cropped to the image) and rescale."""
    magnitude, decay = SEVERITY_CONSTANTS["fog"][severity - 1]
    n, _, h, w = x.shape
    size = max(32, 1 << (max(h, w) - 1).bit_length())
    layer = plasma_fractal(n, size, decay, g)[:, None, :h, :w].to(x.device)
    peak = x.amax((1, 2, 3), keepdim=True)
    return _clip((x + magnitude * layer) * peak / (peak + magnitude))


def _rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g_, b = x[:, 0], x[:, 1], x[:, 2]
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / maxc.clamp_min(1e-12), torch.zeros_like(maxc))
    safe = delta.clamp_min(1e-12)
    rc, gc, bc = (maxc - r) / safe, (maxc - g_) / safe, (maxc - b) / safe
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g_, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    return torch.stack([h, s, maxc], 1)


def _hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    h, s, v = x[:, 0], x[:, 1], x[:, 2]
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    i = i.long() % 6
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = torch.zeros_like(x)
    for k, (r, g_, b) in enumerate(choices):
        mask = (i == k)
        out[:, 0] = torch.where(mask, r, out[:, 0])
        out[:, 1] = torch.where(mask, g_, out[:, 1])
        out[:, 2] = torch.where(mask, b, out[:, 2])
    return out


def brightness(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    """Raise the HSV value channel by c (for grayscale: the pixel itself)."""
    c = SEVERITY_CONSTANTS["brightness"][severity - 1]
    if x.shape[1] == 1:
        return _clip(x + c)
    hsv = _rgb_to_hsv(x)
    hsv[:, 2] = (hsv[:, 2] + c).clamp(0, 1)
    return _clip(_hsv_to_rgb(hsv))


def contrast(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    """Shrink each channel towards its mean by the factor c."""
    c = SEVERITY_CONSTANTS["contrast"][severity - 1]
    mean = x.mean((2, 3), keepdim=True)
    return _clip((x - mean) * c + mean)


def elastic_transform(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    """Random affine (three control points moved by up to c2 * size) then a
    smooth displacement field (uniform noise, Gaussian sigma c1 * size,
    truncate 3, times c0 * size), bilinear with reflected borders."""
    c0, c1, c2 = SEVERITY_CONSTANTS["elastic_transform"][severity - 1]
    n, _, h, w = x.shape
    size = min(h, w)
    alpha, sigma, affine = c0 * size, c1 * size, c2 * size
    # three control points around the centre, as in the reference (x, y order)
    centre = torch.tensor([w // 2, h // 2], dtype=torch.float32)
    square = size // 3
    src = torch.stack([centre + square, torch.tensor([centre[0] + square, centre[1] - square]), centre - square])
    dst = src[None] + _uniform((n, 3, 2), g, -affine, affine).cpu()
    # affine M maps src -> dst; the warp samples the input at M^-1(output)
    ones = torch.ones(n, 3, 1)
    solve = torch.linalg.solve(torch.cat([dst, ones], 2), torch.cat([src[None].expand(n, -1, -1), ones], 2))
    inverse = solve.transpose(1, 2)[:, :2]  # (N, 2, 3): output pixel -> input pixel
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    coords = torch.stack([xs, ys, torch.ones_like(xs)], 0).view(3, -1)
    mapped = (inverse @ coords).view(n, 2, h, w)
    if alpha > 0:
        noise = _uniform((n, 2, h, w), g, -1, 1).cpu()
        field = gaussian_blur(noise, sigma, truncate=3.0) * alpha if sigma > 0 else noise * alpha
        # the reference displaces the affinely warped image: compose the two maps
        base = torch.stack([xs, ys], 0)[None] + field[:, [0, 1]]
        grid = _to_grid(base, h, w)
        mapped = F.grid_sample(mapped, grid, mode="bilinear", padding_mode="reflection", align_corners=True)
    out = F.grid_sample(x, _to_grid(mapped, h, w).to(x.device), mode="bilinear",
                        padding_mode="reflection", align_corners=True)
    return _clip(out)


def _to_grid(pixel_xy: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Pixel coordinates (N, 2, H, W) as x, y -> grid_sample's [-1, 1] grid (N, H, W, 2)."""
    gx = pixel_xy[:, 0] / max(w - 1, 1) * 2 - 1
    gy = pixel_xy[:, 1] / max(h - 1, 1) * 2 - 1
    return torch.stack([gx, gy], -1)


def pixelate(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    """BOX-downsample to int(size * c) and BOX-upsample back (PIL's BOX filter)."""
    c = SEVERITY_CONSTANTS["pixelate"][severity - 1]
    _, _, h, w = x.shape
    small_h, small_w = int(h * c), int(w * c)
    down_h, down_w = _box_resize_matrix(h, small_h).to(x), _box_resize_matrix(w, small_w).to(x)
    up_h, up_w = _box_resize_matrix(small_h, h).to(x), _box_resize_matrix(small_w, w).to(x)
    # PIL stores the intermediate image as 8-bit
    small = torch.round(down_h @ x @ down_w.T * 255) / 255
    return _clip(torch.round(up_h @ small @ up_w.T * 255) / 255)


def jpeg_compression(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    """Encode and decode with PIL's JPEG codec (libjpeg) at the severity's quality,
    as the reference does."""
    import io

    import numpy as np
    from PIL import Image

    quality = SEVERITY_CONSTANTS["jpeg_compression"][severity - 1]
    as_bytes = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = np.empty_like(as_bytes)
    for i, image in enumerate(as_bytes):
        buffer = io.BytesIO()
        Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(buffer, "JPEG", quality=quality)
        decoded = np.asarray(Image.open(buffer))
        out[i] = decoded.reshape(out[i].shape)
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(x.device).float() / 255


CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": gaussian_noise, "shot_noise": shot_noise, "impulse_noise": impulse_noise,
    "defocus_blur": defocus_blur, "glass_blur": glass_blur, "motion_blur": motion_blur, "zoom_blur": zoom_blur,
    "snow": snow, "frost": frost, "fog": fog,
    "brightness": brightness, "contrast": contrast, "elastic_transform": elastic_transform,
    "pixelate": pixelate, "jpeg_compression": jpeg_compression,
}
SEVERITIES = (1, 2, 3, 4, 5)


def corrupt(images: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """Apply corruption ``name`` at ``severity`` (1-5) to images in [0, 1].

    The same arguments give the same images. Raises ``ValueError`` naming the
    allowed values for an unknown corruption, a severity outside 1-5, or
    images of the wrong shape, dtype or range.
    """
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; allowed corruptions: {list(CORRUPTIONS)}")
    if isinstance(severity, bool) or not isinstance(severity, int) or severity not in SEVERITIES:
        raise ValueError(f"severity={severity!r} must be an integer in 1-5")
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] not in (1, 3):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor of shape (N, 1 or 3, H, W), got {shape}")
    if not images.is_floating_point():
        raise ValueError(f"images must be floating point in [0, 1], got dtype {images.dtype}")
    if images.numel() and (images.min() < -1e-6 or images.max() > 1 + 1e-6):
        raise ValueError("images must be in pixel scale [0, 1]; undo normalisation first (calibkd.data.splits.denormalize)")
    # Common random numbers: the same draws at every severity, so a severity
    # step changes only the constants.
    generator = torch.Generator(device="cpu").manual_seed(seed * 1000 + list(CORRUPTIONS).index(name))
    out = CORRUPTIONS[name](images.float(), severity, generator)
    return out.to(images.dtype)
