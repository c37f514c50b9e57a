"""What every dataset reader shares: the :class:`Reader` interface, the masker hook and eye cropping.

Readers turn a dataset on disk into a stream of :class:`~maskpurify.pairs.RGBMaskPair`. Formats that carry no
masks (MPIIGaze, LPW, plain folders) ask a *masker* -- any callable image -> label map, e.g. the project's
segmenter -- so the purifier downstream always sees the same kind of pair.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from maskpurify.masks import EYE_LABELS, LabelSet, resize_mask, validate_mask
from maskpurify.pairs import RGBMaskPair

#: An automatic masker: HxWx3 uint8 RGB image -> HxW integer label map.
Masker = Callable[[np.ndarray], np.ndarray]


class Reader(ABC):
    """A dataset as an iterable of RGB-mask pairs.

    Subclasses implement :meth:`_pairs` (pairs as stored, mask possibly None) and define ``__len__`` when the
    number of samples is known up front. Iteration fills missing masks through ``masker``; without a masker
    the mask stays None so callers can decide what to do.
    """

    #: The label set the reader's masks (and the masker's output) are validated against.
    labels: LabelSet = EYE_LABELS

    def __init__(self, masker: Masker | None = None) -> None:
        self.masker = masker

    @abstractmethod
    def _pairs(self) -> Iterator[RGBMaskPair]:
        """Yield the pairs as the format stores them."""

    def __iter__(self) -> Iterator[RGBMaskPair]:
        for pair in self._pairs():
            if pair.mask is None and self.masker is not None:
                # A masker may honestly find nothing (a blink, a closed eye): no attention pixels is allowed.
                pair.mask = validate_mask(self.masker(pair.image), pair.image.shape, self.labels,
                                          source=f"masker output for {pair.name}", require_attention=False)
            yield pair


@dataclass(frozen=True)
class CropBox:
    """An axis-aligned source box resized to an output size; maps images, masks and points consistently.

    Pixel centres follow cv2.resize: source x maps to ``(x - x0 + 0.5) * sx - 0.5``. Parts of the box outside
    the image are filled by edge replication (image) and label 0 (mask), so crops near the border keep
    their size instead of shifting the eye off-centre.
    """

    x0: int
    y0: int
    width: int
    height: int
    out_height: int
    out_width: int

    @classmethod
    def around(cls, center: tuple[float, float], box_width: float, out_size: tuple[int, int]) -> CropBox:
        """A box of ``box_width`` source pixels with the output's aspect ratio, centred on ``center``."""
        out_h, out_w = out_size
        width = max(1, int(round(box_width)))
        height = max(1, int(round(box_width * out_h / out_w)))
        x0 = int(round(center[0] - width / 2))
        y0 = int(round(center[1] - height / 2))
        return cls(x0, y0, width, height, out_h, out_w)

    @property
    def scale(self) -> tuple[float, float]:
        return self.out_width / self.width, self.out_height / self.height

    def _cut(self, array: np.ndarray, border: int, value: int = 0) -> np.ndarray:
        h, w = array.shape[:2]
        top, left = max(0, -self.y0), max(0, -self.x0)
        bottom = max(0, self.y0 + self.height - h)
        right = max(0, self.x0 + self.width - w)
        if top or left or bottom or right:
            array = cv2.copyMakeBorder(array, top, bottom, left, right, border, value=value)
        y, x = self.y0 + top, self.x0 + left
        return array[y:y + self.height, x:x + self.width]

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        """Crop and resize an image: INTER_AREA (an honest average) when shrinking, INTER_CUBIC when enlarging
        (INTER_AREA enlarges bilinearly, and a small crop would reach the networks blurrier than a large one)."""
        crop = self._cut(image, cv2.BORDER_REPLICATE)
        shrink = self.width >= self.out_width
        return cv2.resize(crop, (self.out_width, self.out_height),
                          interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)

    def apply_mask(self, mask: np.ndarray) -> np.ndarray:
        """Crop and resize a label map by nearest neighbour so labels are never blended."""
        crop = self._cut(mask, cv2.BORDER_CONSTANT, 0)
        return resize_mask(crop, (self.out_height, self.out_width))

    def map_points(self, points: np.ndarray) -> np.ndarray:
        """Map (..., 2) source (x, y) pixel coordinates into the output image."""
        sx, sy = self.scale
        points = np.asarray(points, dtype=np.float64)
        return np.stack([(points[..., 0] - self.x0 + 0.5) * sx - 0.5,
                         (points[..., 1] - self.y0 + 0.5) * sy - 0.5], axis=-1)
