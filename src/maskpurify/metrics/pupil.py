"""Pupil detection as LPW reports it: the distance between the detected and the labelled pupil centre, the
detection rate (share of frames within a pixel threshold, 5 px in LPW's 640x480 frames) and its curve over
thresholds 1..15 px. Errors are given in the frame's own pixels and scaled to LPW's here, once."""

from __future__ import annotations

import numpy as np

#: LPW's thresholds (pixels of a 640x480 frame): the detection rate at 5 px, the curve from 1 to 15 px.
LPW_THRESHOLD = 5.0
LPW_CURVE = tuple(float(t) for t in range(1, 16))
#: LPW's frame width; a frame of width W has LPW_WIDTH / W LPW pixels per pixel.
LPW_WIDTH = 640


def pupil_errors(pred: np.ndarray, truth: np.ndarray, frame_width: int) -> np.ndarray:
    """(N,) distances between predicted and labelled centres (x, y), in LPW pixels (a ``frame_width``-wide frame
    scaled to 640). A missing detection (NaN) is an infinite error: it counts as a miss at every threshold."""
    distance = np.linalg.norm(np.asarray(pred, np.float64) - np.asarray(truth, np.float64), axis=1)
    return np.where(np.isnan(distance), np.inf, distance * (LPW_WIDTH / frame_width))


def detection_rate(errors: np.ndarray, threshold: float = LPW_THRESHOLD) -> float:
    """Share of frames whose error is at most ``threshold`` LPW pixels."""
    errors = np.asarray(errors, np.float64)
    return float((errors <= threshold).mean()) if errors.size else float("nan")


def detection_curve(errors: np.ndarray, thresholds: tuple[float, ...] = LPW_CURVE) -> list[float]:
    """The detection rate at each threshold (LPW's curve)."""
    return [detection_rate(errors, t) for t in thresholds]
