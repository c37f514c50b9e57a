"""Batched photometric augmentation of float (N,3,H,W) [0,1] images, on any device, driven by a CPU generator.

Geometry is never touched (masks, gaze and pupil centres stay valid). ``strength`` 0 is the identity; 1 is the
full range below. The gaze trainer uses it mildly or not at all (by default off: the wild domain must stay
hard for a synthetic-only estimator); the segmenter uses it fully, since it must segment synthetic *and*
purified images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class PhotometricAugment:
    """Ranges at strength 1; each term is applied with probability ``p``."""

    brightness: float = 0.25      # additive, +-
    contrast: float = 0.4         # multiplicative around the image mean, 1 +- this
    gamma: float = 0.4            # exponent exp(+- this)
    colour: float = 0.15          # per-channel gains 1 +- this
    gradient: float = 0.3         # a linear illumination ramp across the image, 1 +- this at the edges
    noise: float = 0.04           # gaussian noise std up to this
    blur: float = 1.2             # gaussian blur sigma up to this
    grey: float = 0.1             # probability of turning the image grey
    p: float = 0.7


def _rand(n: int, gen: torch.Generator, lo: float, hi: float) -> torch.Tensor:
    return torch.rand(n, generator=gen) * (hi - lo) + lo


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    radius = max(1, int(torch.ceil(sigma.max() * 2).item()))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32, device=x.device)
    s = sigma.to(x.device).clamp_min(1e-3)[:, None]
    kernel = torch.exp(-0.5 * (offsets[None] / s) ** 2)
    kernel = kernel / kernel.sum(1, keepdim=True)                              # (N, K)
    n, c, h, w = x.shape
    y = x.reshape(1, n * c, h, w)
    kx = kernel.repeat_interleave(c, 0)[:, None, None, :]                     # (N*C, 1, 1, K)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="replicate"), kx, groups=n * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="replicate"), kx.transpose(2, 3), groups=n * c)
    return y.reshape(n, c, h, w)


def photometric_augment(images: torch.Tensor, gen: torch.Generator, strength: float = 1.0,
                        ranges: PhotometricAugment = PhotometricAugment()) -> torch.Tensor:
    """Randomly jitter brightness, contrast, gamma, colour gains, illumination ramp, noise and blur."""
    if strength <= 0:
        return images
    n, c, h, w = images.shape
    dev = images.device
    r, s = ranges, strength

    def on(prob: float = r.p) -> torch.Tensor:
        return (torch.rand(n, generator=gen) < prob).float()

    def per_image(t: torch.Tensor) -> torch.Tensor:
        return t.to(dev).view(n, 1, 1, 1)

    x = images
    # colour gains
    gains = 1 + (torch.rand(n, c, generator=gen) * 2 - 1) * r.colour * s * on()[:, None]
    x = x * gains.to(dev).view(n, c, 1, 1)
    # contrast around the mean, brightness
    contrast = 1 + _rand(n, gen, -1, 1) * r.contrast * s * on()
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * per_image(contrast) + mean + per_image(_rand(n, gen, -1, 1) * r.brightness * s * on())
    # illumination ramp in a random direction
    angle = _rand(n, gen, 0, 2 * torch.pi)
    amp = _rand(n, gen, 0, 1) * r.gradient * s * on(r.p * 0.6)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h, device=dev), torch.linspace(-1, 1, w, device=dev),
                            indexing="ij")
    ramp = torch.cos(angle).to(dev).view(n, 1, 1) * xx + torch.sin(angle).to(dev).view(n, 1, 1) * yy
    x = x * (1 + amp.to(dev).view(n, 1, 1) * ramp)[:, None]
    # gamma
    gamma = torch.exp(_rand(n, gen, -1, 1) * r.gamma * s * on())
    x = x.clamp(0, 1).pow(per_image(gamma))
    # greyscale
    grey_on = per_image(on(r.grey * s))
    grey = (x * torch.tensor([0.299, 0.587, 0.114], device=dev).view(1, 3, 1, 1)).sum(1, keepdim=True)
    x = grey_on * grey + (1 - grey_on) * x
    # blur
    blur_on = on(r.p * 0.5)
    sigma = _rand(n, gen, 0.3, 1.0) * r.blur * s * blur_on
    if blur_on.any():
        blurred = _blur(x, sigma.clamp_min(0.05))
        x = torch.where(per_image(blur_on) > 0, blurred, x)
    # noise
    std = _rand(n, gen, 0, 1) * r.noise * s * on()
    x = x + torch.randn(x.shape, generator=gen).to(dev) * per_image(std)
    return x.clamp(0, 1)
