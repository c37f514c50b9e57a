"""The unit every reader yields and the purifier consumes: an RGB image with its label mask."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RGBMaskPair:
    """One image with its mask and whatever labels its source provides.

    image: HxWx3 uint8 RGB. mask: HxW uint8 labels (validated by :mod:`maskpurify.masks`), or None when the
    source has no mask yet (an automatic masker fills it). gaze: (pitch, yaw) radians. head_pose: (pitch, yaw)
    radians. pupil_center: (x, y) pixels. name: a stable identifier used for output file names.
    """

    image: np.ndarray
    mask: np.ndarray | None
    name: str
    gaze: np.ndarray | None = None
    head_pose: np.ndarray | None = None
    pupil_center: np.ndarray | None = None
    extra: dict[str, object] = field(default_factory=dict)
