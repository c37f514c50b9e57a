"""Segmentation quality of eye-region label maps: per-class IoU (sclera, iris, pupil and their mean, over the
whole set: summed intersections / summed unions) and the pupil-centre error in pixels (centroid of the
predicted pupil vs the labelled pupil centre and vs the centroid of the true pupil mask)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from maskpurify.masks import EYE_LABELS, PUPIL, region_centroid


def confusion_matrix(pred: np.ndarray, true: np.ndarray, num_classes: int = 4) -> np.ndarray:
    """(K, K) pixel counts, rows = true label, columns = predicted label."""
    pred = np.asarray(pred).astype(np.int64).ravel()
    true = np.asarray(true).astype(np.int64).ravel()
    if pred.shape != true.shape:
        raise ValueError(f"prediction and truth differ in size: {pred.size} vs {true.size}")
    keep = (true >= 0) & (true < num_classes) & (pred >= 0) & (pred < num_classes)
    return np.bincount(true[keep] * num_classes + pred[keep], minlength=num_classes ** 2).reshape(
        num_classes, num_classes)


def iou_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Per-class IoU; NaN for a class absent from both prediction and truth."""
    inter = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - np.diag(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


def pupil_centre_errors(pred_masks: np.ndarray, reference: np.ndarray | None = None,
                        true_masks: np.ndarray | None = None) -> np.ndarray:
    """Per image, the distance (px) from the predicted pupil centroid to ``reference`` (N, 2) xy, or, without
    it, to the centroid of the true pupil in ``true_masks``. NaN where a pupil is missing."""
    errors = np.full(len(pred_masks), np.nan)
    for i, mask in enumerate(pred_masks):
        c = region_centroid(mask, PUPIL)
        if c is None:
            continue
        if reference is not None:
            ref: tuple[float, float] | None = (float(reference[i][0]), float(reference[i][1]))
        else:
            assert true_masks is not None
            ref = region_centroid(true_masks[i], PUPIL)
        if ref is not None:
            errors[i] = float(np.hypot(c[0] - ref[0], c[1] - ref[1]))
    return errors


def _error_stats(errors: np.ndarray) -> dict[str, Any]:
    found = errors[~np.isnan(errors)]
    return {
        "mean_px": float(found.mean()) if len(found) else float("nan"),
        "median_px": float(np.median(found)) if len(found) else float("nan"),
        "within_1px": float((found <= 1.0).sum() / max(1, len(errors))),
        "missing": int(np.isnan(errors).sum()),
    }


def segmentation_summary(pred: np.ndarray, true: np.ndarray, pupil_centers: np.ndarray | None = None,
                         names: Sequence[str] = EYE_LABELS.names,
                         attention: Sequence[int] = EYE_LABELS.attention) -> dict[str, Any]:
    """IoU per class, mean IoU over the attention classes (sclera, iris, pupil), pixel accuracy and
    pupil-centre errors (vs ``pupil_centers`` when given, and vs the true mask centroid)."""
    cm = confusion_matrix(pred, true, len(names))
    iou = iou_from_confusion(cm)
    summary: dict[str, Any] = {
        "n": int(len(pred)),
        "iou": {name: float(v) for name, v in zip(names, iou)},
        "miou": float(np.nanmean(iou[list(attention)])),
        "pixel_accuracy": float(np.diag(cm).sum() / max(1, cm.sum())),
        "pupil_centre_vs_mask": _error_stats(pupil_centre_errors(pred, true_masks=true)),
    }
    if pupil_centers is not None:
        summary["pupil_centre_vs_label"] = _error_stats(pupil_centre_errors(pred, reference=pupil_centers))
    return summary
