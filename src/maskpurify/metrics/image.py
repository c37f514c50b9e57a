"""Image-level metrics of a purification: structure kept in the attention region, distance to the synthetic
domain (KID on loss-network features), and pupil-centre shift."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch
from skimage.metrics import structural_similarity

from maskpurify.masks import EYE_LABELS, PUPIL, LabelSet, attention_region, region_centroid

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _region_standardised_grey(image: np.ndarray, region: np.ndarray) -> np.ndarray:
    grey = image.astype(np.float32) @ _LUMA if image.ndim == 3 else image.astype(np.float32)
    out = grey.copy()
    for part in (region, ~region):
        if part.sum() > 1:
            values = grey[part]
            out[part] = (values - values.mean()) / (values.std() + 1e-3)
    return out


def attention_ssim(inputs: np.ndarray, outputs: np.ndarray, masks: np.ndarray,
                   labels: LabelSet = EYE_LABELS) -> np.ndarray:
    """Per-image SSIM between input and output inside the attention region.

    Both images are turned grey and standardised per region first, so a change of colour, brightness or
    contrast (what purification is meant to change) is not counted; only structure is compared.
    """
    scores = np.zeros(len(inputs), np.float64)
    for i, (src, dst, mask) in enumerate(zip(inputs, outputs, masks)):
        region = attention_region(mask, labels)
        a, b = _region_standardised_grey(src, region), _region_standardised_grey(dst, region)
        lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
        _, ssim_map = structural_similarity(a, b, data_range=float(hi - lo) or 1.0, full=True, win_size=7)
        scores[i] = float(ssim_map[region].mean()) if region.any() else float("nan")
    return scores


def pupil_shift(masks_in: np.ndarray, masks_out: np.ndarray) -> np.ndarray:
    """Per-image distance (px) between the pupil centroids of two label maps; NaN where either has none."""
    shifts = np.full(len(masks_in), np.nan)
    for i, (a, b) in enumerate(zip(masks_in, masks_out)):
        ca, cb = region_centroid(a, PUPIL), region_centroid(b, PUPIL)
        if ca is not None and cb is not None:
            shifts[i] = float(np.hypot(ca[0] - cb[0], ca[1] - cb[1]))
    return shifts


def kernel_inception_distance(features_a: torch.Tensor, features_b: torch.Tensor, subsets: int = 20,
                              subset_size: int = 500, seed: int = 0) -> tuple[float, float]:
    """KID (Bińkowski et al. 2018): unbiased MMD² with the cubic polynomial kernel, mean and std over subsets.

    Honest at small sample counts, unlike FID. Features are (N, D) pooled loss-network activations.
    """
    a = features_a.double()
    b = features_b.double()
    dim = a.shape[1]
    size = min(subset_size, len(a), len(b))
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        x = a[torch.randperm(len(a), generator=generator)[:size]]
        y = b[torch.randperm(len(b), generator=generator)[:size]]
        kxx = (x @ x.T / dim + 1) ** 3
        kyy = (y @ y.T / dim + 1) ** 3
        kxy = (x @ y.T / dim + 1) ** 3
        off = size * (size - 1)
        mmd = ((kxx.sum() - kxx.diagonal().sum()) / off + (kyy.sum() - kyy.diagonal().sum()) / off
               - 2 * kxy.mean())
        values.append(float(mmd))
    return float(np.mean(values)), float(np.std(values))


def pooled_features(encoder: torch.nn.Module, images: np.ndarray, batch_size: int = 256) -> torch.Tensor:
    """(N, D) KID features of uint8 (N, H, W, 3) images: every encoder stage, average-pooled and concatenated."""
    feats = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(images[start:start + batch_size]).permute(0, 3, 1, 2).float() / 255
            feats.append(torch.cat([f.mean((2, 3)) for f in encoder(x)], 1))
    return torch.cat(feats)


def region_colours(images: np.ndarray, masks: np.ndarray, labels: LabelSet = EYE_LABELS) -> dict[str, Any]:
    """Per region (skin, sclera, iris, pupil): mean and spread of CIELab colour over all its pixels.

    Says whether an output's style moved toward the synthetic set region by region, where a global distance
    such as KID can hide a skin that kept its wild colour cast behind an iris that changed."""
    lab = cv2.cvtColor(np.ascontiguousarray(images.reshape(-1, images.shape[-2], 3)).astype(np.float32) / 255,
                       cv2.COLOR_RGB2LAB).reshape(images.shape)
    stats: dict[str, Any] = {}
    for label, name in enumerate(labels.names):
        pixels = lab[masks == label]
        if len(pixels):
            stats[name] = {"mean_lab": pixels.mean(0).tolist(), "sd_lab": pixels.std(0).tolist()}
    return stats


def colour_distance(stats: dict[str, Any], reference: dict[str, Any]) -> dict[str, float]:
    """Per region: ΔE (CIE76) between the mean colours of ``stats`` and ``reference``."""
    return {name: float(np.linalg.norm(np.subtract(s["mean_lab"], reference[name]["mean_lab"])))
            for name, s in stats.items() if name in reference}
