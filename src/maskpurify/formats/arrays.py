"""Materialise a reader into the :class:`~maskpurify.batch.EyeBatch` the trainers use (as a rendered dataset's
:func:`maskpurify.world.dataset.load_arrays_checked`).

Every pair is resized to the training size (images by INTER_AREA, masks by nearest neighbour, the pupil centre
rescaled with them). Head poses and pupil centres a format lacks become NaN rows, and gaze that any pair lacks is
left out (gaze must be finite), so a trainer that needs them can say so (:func:`require_labels`). Masks a format
lacks come from the masker, run on the resized image -- the size the segmenter and the purifier work at -- in
batches when the masker offers ``batch`` (:class:`SegmenterMasker`).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from maskpurify.batch import EyeBatch
from maskpurify.errors import UserError
from maskpurify.formats import READERS, open_reader
from maskpurify.formats.base import Masker, Reader
from maskpurify.formats.mpiigaze import MPIIGazeReader
from maskpurify.masks import LabelSet, resize_mask, validate_mask

#: Masks filled per masker batch.
MASK_CHUNK = 256


class SegmenterMasker:
    """The project's segmenter as a masker, loaded from ``path`` on first use (a folder of real images with masks
    never loads it). ``batch`` labels (N,H,W,3) uint8 images at once."""

    def __init__(self, path: str | Path, device: Any = "cpu") -> None:
        self.path, self.device = path, device
        self._model: Any = None

    def batch(self, images: np.ndarray) -> np.ndarray:
        from maskpurify.nets.segmenter import load_segmenter, predict_masks

        if self._model is None:
            self._model = load_segmenter(self.path, self.device)
        return predict_masks(self._model, images)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.batch(image[None])[0]


def describe(reader: Reader) -> str:
    """'MPIIGazeReader(data/MPIIGaze/Data/Normalized)': names a reader in messages."""
    where = getattr(reader, "root", None) or getattr(reader, "annotations", None)
    return f"{type(reader).__name__}({where})" if where is not None else type(reader).__name__


def _resized(pair_image: np.ndarray, mask: np.ndarray | None, center: np.ndarray | None, size: tuple[int, int]
             ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    h, w = size
    ih, iw = pair_image.shape[:2]
    image = pair_image if (ih, iw) == (h, w) else cv2.resize(pair_image, (w, h), interpolation=cv2.INTER_AREA)
    if mask is not None and mask.shape[:2] != (h, w):
        mask = resize_mask(mask, (h, w))
    point = np.full(2, np.nan, np.float32)
    if center is not None:  # pixel centres as cv2.resize maps them
        cx, cy = np.asarray(center, np.float64).reshape(2)
        point[:] = (cx + 0.5) * w / iw - 0.5, (cy + 0.5) * h / ih - 0.5
    return image, mask, point


def _pair2(value: Any) -> np.ndarray:
    return np.full(2, np.nan, np.float32) if value is None else np.asarray(value, np.float32).reshape(2)


def reader_to_arrays(reader: Reader, size: tuple[int, int] = (36, 60), limit: int | None = None,
                     masker: Masker | None = None, progress: bool = True, need_masks: bool = True
                     ) -> EyeBatch:
    """The first ``limit`` pairs of ``reader`` (all when None) as a batch at ``size`` (height, width).

    Masks the reader does not supply (nor its own ``masker``) come from ``masker``; without one, a UserError
    asks for a segmenter -- unless ``need_masks`` is False, in which case incomplete masks are left out.
    """
    if limit is not None and limit < 1:
        raise UserError(f"{describe(reader)}: limit must be >= 1, got {limit}")
    # A progress total where counting is cheap (MPIIGaze counts by reading every .mat file).
    total = None if isinstance(reader, MPIIGazeReader) else len(reader)  # type: ignore[arg-type]
    if limit is not None:
        total = limit if total is None else min(total, limit)
    images: list[np.ndarray] = []
    masks: list[np.ndarray | None] = []
    gaze, head, centers, missing = [], [], [], []
    for pair in tqdm(reader, total=total, desc=f"reading {type(reader).__name__}", unit="img",
                     disable=not progress, leave=False):
        image, mask, center = _resized(pair.image, pair.mask, pair.pupil_center, size)
        if mask is None:
            missing.append(len(images))
        images.append(image)
        masks.append(mask)
        gaze.append(_pair2(pair.gaze))
        head.append(_pair2(pair.head_pose))
        centers.append(center)
        if limit is not None and len(images) >= limit:
            break  # bounded memory: read no further
    if not images:
        raise UserError(f"{describe(reader)}: the dataset yielded no images")
    stacked = np.stack(images)
    gazes = np.stack(gaze)
    labels = {"gaze": None if np.isnan(gazes).any() else gazes, "head_pose": np.stack(head),
              "pupil_center": np.stack(centers)}
    source = describe(reader)
    if missing and masker is None:
        if need_masks:
            raise UserError(f"{source}: {len(missing)} of {len(images)} images have no mask; pass a "
                            "segmenter to predict them (masker=SegmenterMasker(...), or the trainer's "
                            "'segmenter' setting)")
        return EyeBatch(stacked, None, reader.labels, **labels, source=source)
    batch = getattr(masker, "batch", None)
    for start in range(0, len(missing), MASK_CHUNK):
        chunk = missing[start:start + MASK_CHUNK]
        stack = stacked[chunk]
        predicted = batch(stack) if batch is not None else [masker(image) for image in stack]  # type: ignore[misc]
        for index, mask in zip(chunk, predicted):
            masks[index] = validate_mask(np.asarray(mask), stack.shape[1:], reader.labels,
                                         source=f"masker output for {describe(reader)} sample {index}",
                                         require_attention=False)
    return EyeBatch(stacked, np.stack(masks).astype(np.uint8), reader.labels, **labels, source=source)


def require_labels(data: EyeBatch, key: str, what: str) -> None:
    """UserError when ``data`` lacks ``key`` or has NaN rows in it (the source format does not provide that label)."""
    value = getattr(data, key)
    rows = np.ones(len(data), bool) if value is None else np.isnan(value).any(axis=1)
    if rows.any():
        raise UserError(f"{what}: {int(rows.sum())} of {len(rows)} samples have no {key} label (this dataset "
                        f"format does not provide it); use a source with {key} labels, e.g. unityeyes or mpiigaze")


def source_arrays(kind: str, path: str | Path, options: dict[str, Any], size: tuple[int, int],
                  limit: int | None = None, masker: Masker | None = None, progress: bool = True,
                  need_masks: bool = True, labels: LabelSet | None = None, what: str = "source"
                  ) -> EyeBatch:
    """Open ``path`` as dataset ``kind`` and materialise it (the trainers' ``format:`` sources).

    Readers that crop (``output_size``) crop straight to ``size`` unless the options say otherwise, so the eye
    box keeps the training aspect ratio. ``labels``: the label set the caller trains on; a reader whose masks
    use another (COCO's background/attention) is a UserError instead of silently mixing label meanings.
    """
    options = dict(options)
    if "masker" in options:
        raise UserError(f"{what}: 'masker' cannot be set in options (masks come from the trainer's segmenter)")
    cls = READERS.get(kind.lower())
    if cls is not None and "output_size" in inspect.signature(cls).parameters and "output_size" not in options:
        options["output_size"] = tuple(size)
    elif options.get("output_size") is not None:
        options["output_size"] = tuple(options["output_size"])
    if not Path(path).exists():
        raise UserError(f"{what} {path}: no such file or folder")
    reader = open_reader(kind, path, **options)
    if labels is not None and reader.labels.names != labels.names:
        raise UserError(f"{what}: {describe(reader)} has masks labelled ({', '.join(reader.labels.names)}) but "
                        f"this trainer needs ({', '.join(labels.names)})")
    return reader_to_arrays(reader, size, limit, masker, progress=progress, need_masks=need_masks)
