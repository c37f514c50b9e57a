"""Cheap colour/contrast transfer toward the synthetic domain, region by region.

Both methods are fitted on synthetic images with masks (the target statistics) and applied to each wild image
with its own mask, so attention region and background are matched separately — the classical counterpart of
the purifier's two style streams.
"""

from __future__ import annotations

import cv2
import numpy as np

from maskpurify.masks import EYE_LABELS, LabelSet, attention_region


def _regions(masks: np.ndarray, labels: LabelSet) -> tuple[np.ndarray, np.ndarray]:
    attention = attention_region(masks, labels)
    return attention, ~attention


def _to_lab(images: np.ndarray) -> np.ndarray:
    flat = images.reshape(-1, images.shape[-2], 3) if images.ndim == 4 else images
    lab = cv2.cvtColor(np.ascontiguousarray(flat), cv2.COLOR_RGB2LAB).astype(np.float32)
    return lab.reshape(images.shape)


def _from_lab(lab: np.ndarray) -> np.ndarray:
    shape = lab.shape
    flat = np.clip(lab, 0, 255).astype(np.uint8).reshape(-1, shape[-2], 3)
    return cv2.cvtColor(flat, cv2.COLOR_LAB2RGB).reshape(shape)


class ReinhardTransfer:
    """Reinhard et al. (2001) colour transfer in Lab: match each region's per-channel mean and std."""

    name = "reinhard"

    def __init__(self, labels: LabelSet = EYE_LABELS) -> None:
        self.labels = labels
        self.target: list[tuple[np.ndarray, np.ndarray]] = []

    def fit(self, images: np.ndarray, masks: np.ndarray) -> "ReinhardTransfer":
        """images (N,H,W,3) uint8 synthetic; masks (N,H,W)."""
        lab = _to_lab(images)
        self.target = [(lab[r].mean(0), lab[r].std(0) + 1e-3) for r in _regions(masks, self.labels)]
        return self

    def apply(self, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Transfer a batch (N,H,W,3) uint8 with masks (N,H,W); statistics are taken per image and region."""
        if not self.target:
            raise RuntimeError("ReinhardTransfer.apply called before fit")
        lab = _to_lab(images)
        out = lab.copy()
        for region, (mean_t, std_t) in zip(_regions(masks, self.labels), self.target):
            for i in range(len(images)):
                pixels = lab[i][region[i]]
                if len(pixels) < 2:
                    continue
                mean_s, std_s = pixels.mean(0), pixels.std(0) + 1e-3
                out[i][region[i]] = (pixels - mean_s) / std_s * std_t + mean_t
        return _from_lab(out)


class RegionHistogramMatch:
    """Per-region, per-channel histogram matching to the pooled synthetic histogram of the same region."""

    name = "histogram"

    def __init__(self, labels: LabelSet = EYE_LABELS) -> None:
        self.labels = labels
        self.target_cdfs: list[np.ndarray] = []

    @staticmethod
    def _cdf(values: np.ndarray) -> np.ndarray:
        hist = np.bincount(values, minlength=256).astype(np.float64)
        cdf = np.cumsum(hist)
        return cdf / max(cdf[-1], 1.0)

    def fit(self, images: np.ndarray, masks: np.ndarray) -> "RegionHistogramMatch":
        self.target_cdfs = [np.stack([self._cdf(images[..., c][r]) for c in range(3)])
                            for r in _regions(masks, self.labels)]
        return self

    def apply(self, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
        if not self.target_cdfs:
            raise RuntimeError("RegionHistogramMatch.apply called before fit")
        out = images.copy()
        levels = np.arange(256, dtype=np.float64)
        for region, target in zip(_regions(masks, self.labels), self.target_cdfs):
            for i in range(len(images)):
                if not region[i].any():
                    continue
                for c in range(3):
                    values = images[i, ..., c][region[i]]
                    source_cdf = self._cdf(values)
                    lut = np.interp(source_cdf, target[c], levels)
                    out[i, ..., c][region[i]] = np.round(lut[values]).astype(np.uint8)
        return out
