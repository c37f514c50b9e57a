"""The one in-memory form of a set of eye crops: :class:`EyeBatch`, checked once when it is built.

Dataset loaders, format readers and trainers all pass this type, so no command re-checks shapes, dtypes or labels
and a bad dataset is a one-line UserError naming its source, raised before any work starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maskpurify.errors import UserError
from maskpurify.masks import LabelSet

#: Largest image side a batch may hold (the renderer's and parse_size's limit).
MAX_SIDE = 1024
#: The per-sample label arrays: (pitch, yaw) radians and (x, y) pixels, floating (N,2).
LABEL_KEYS = ("gaze", "head_pose", "pupil_center")


@dataclass(frozen=True, eq=False)  # arrays have no single truth value to compare by
class EyeBatch:
    """N eye crops with their masks and whatever labels their source provides, validated at construction.

    images: uint8 (N,H,W,3), or (N,H,W,1) for a greyscale render. masks: uint8 (N,H,W) with labels below
    ``labels.num_labels``, or None for a source without masks. gaze / head_pose / pupil_center: floating (N,2),
    gaze finite, or None when the source lacks them. landmarks: name -> floating (N,K,2). ``source`` names the
    data in the one-line UserError. N >= 1 and the same everywhere.
    """

    images: np.ndarray
    masks: np.ndarray | None
    labels: LabelSet
    gaze: np.ndarray | None = None
    head_pose: np.ndarray | None = None
    pupil_center: np.ndarray | None = None
    landmarks: Mapping[str, np.ndarray] = field(default_factory=dict)
    source: str = "eye batch"

    def __post_init__(self) -> None:
        source, images = self.source, self.images
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 \
                or images.shape[-1] not in (1, 3):
            raise UserError(f"{source}: images must be uint8 of shape (N,H,W,3), got {_describe(images)}")
        n, height, width = images.shape[:3]
        if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
            raise UserError(f"{source}: image size {height}x{width} outside 1..{MAX_SIDE}")
        if not n:
            raise UserError(f"{source}: dataset holds no samples")
        arrays = {"masks": self.masks, **{key: getattr(self, key) for key in LABEL_KEYS}, **self.landmarks}
        for key, value in arrays.items():
            if value is None:
                continue
            if not isinstance(value, np.ndarray):
                raise UserError(f"{source}: '{key}' is not an array")
            if value.ndim == 0 or len(value) != n:
                raise UserError(f"{source}: '{key}' has {len(value) if value.ndim else 0} rows but the dataset has "
                                f"{n} samples (counts must match)")
            if key == "masks":
                self._check_masks(value, height, width)
                continue
            rows = (2,) if key in LABEL_KEYS else (None, 2)
            if value.ndim != 1 + len(rows) or any(want is not None and got != want
                                                  for want, got in zip(rows, value.shape[1:])):
                wanted = ",".join(["N", *("K" if d is None else str(d) for d in rows)])
                raise UserError(f"{source}: '{key}' must have shape ({wanted}), got {_describe(value)}")
            if not np.issubdtype(value.dtype, np.floating):
                raise UserError(f"{source}: '{key}' must be floating point, got {_describe(value)}")
        if self.gaze is not None and not np.all(np.isfinite(self.gaze)):
            raise UserError(f"{source}: 'gaze' holds NaN or infinite values")

    def _check_masks(self, masks: np.ndarray, height: int, width: int) -> None:
        if masks.ndim != 3:
            raise UserError(f"{self.source}: 'masks' must have shape (N,H,W), got {_describe(masks)}")
        if masks.dtype != np.uint8:
            raise UserError(f"{self.source}: masks must be uint8 label maps, got {_describe(masks)}")
        if masks.shape[1:] != (height, width):
            raise UserError(f"{self.source}: masks are {masks.shape[1]}x{masks.shape[2]} but images are "
                            f"{height}x{width}")
        if masks.size and int(masks.max()) >= self.labels.num_labels:
            raise UserError(f"{self.source}: mask label {int(masks.max())} found; labels must lie in "
                            f"0..{self.labels.num_labels - 1}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of every image."""
        return int(self.images.shape[1]), int(self.images.shape[2])


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} {tuple(value.shape)}"
    return type(value).__name__
