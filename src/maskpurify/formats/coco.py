"""COCO instance annotations as binary attention masks (the paper's non-eye experiments).

The attention region is the union of all instances of the chosen categories (crowd regions included, since
they are still objects of that category); everything else is background. Masks use
:data:`maskpurify.masks.BINARY_LABELS` (0 background, 1 attention). pycocotools decodes polygons and RLE.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from maskpurify.errors import UserError
from maskpurify.fileio import read_image, read_json
from maskpurify.formats.base import Masker, Reader
from maskpurify.masks import BINARY_LABELS, validate_mask
from maskpurify.pairs import RGBMaskPair


def load_coco(path: str | Path) -> COCO:
    """Parse and index a COCO annotation file, turning malformed JSON into a one-line UserError."""
    path = Path(path)
    dataset = read_json(path)
    if not isinstance(dataset, dict):
        raise UserError(f"{path}: expected a JSON object with images, annotations and categories")
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(dataset.get(k), list)]
    if missing:
        raise UserError(f"{path}: missing or non-list COCO keys {missing}")
    coco = COCO()
    coco.dataset = dataset
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            coco.createIndex()
    except (KeyError, TypeError) as exc:
        raise UserError(f"{path}: malformed COCO entry (missing or wrong field {exc})") from None
    return coco


class COCOReader(Reader):
    """Images of a COCO annotation file with binary masks of the chosen categories.

    images: the image folder (default: the annotation file's folder). categories: category names forming the
    attention region. only_with_categories: skip images without any instance of them.
    """

    labels = BINARY_LABELS

    def __init__(self, annotations: str | Path, images: str | Path | None = None,
                 categories: Sequence[str] = ("person",), only_with_categories: bool = True,
                 masker: Masker | None = None) -> None:
        super().__init__(masker)
        self.annotations = Path(annotations)
        self.images = Path(images) if images is not None else self.annotations.parent
        if not self.images.is_dir():
            raise UserError(f"{self.images}: COCO image folder does not exist")
        self.coco = load_coco(self.annotations)
        by_name = {c.get("name"): c["id"] for c in self.coco.dataset["categories"] if "id" in c}
        unknown = [c for c in categories if c not in by_name]
        if unknown or not categories:
            raise UserError(f"{self.annotations}: unknown categories {unknown or '(none given)'}; available: "
                            f"{', '.join(sorted(str(n) for n in by_name))}")
        self.category_ids = [by_name[c] for c in categories]
        if only_with_categories:
            ids = {img for cat in self.category_ids for img in self.coco.getImgIds(catIds=[cat])}
            self.image_ids = sorted(ids)
        else:
            self.image_ids = sorted(self.coco.getImgIds())

    def __len__(self) -> int:
        return len(self.image_ids)

    def mask_for(self, image_id: int, height: int, width: int) -> np.ndarray:
        """Binary label map of the attention categories for one image."""
        mask = np.zeros((height, width), np.uint8)
        for ann in self.coco.loadAnns(self.coco.getAnnIds(imgIds=[image_id], catIds=self.category_ids)):
            try:
                mask |= self.coco.annToMask(ann).astype(np.uint8)
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise UserError(f"{self.annotations}: annotation {ann.get('id')} has a malformed segmentation "
                                f"({type(exc).__name__}: {exc})") from None
        return mask

    def _pairs(self) -> Iterator[RGBMaskPair]:
        for image_id in self.image_ids:
            info = self.coco.imgs[image_id]
            if "file_name" not in info or "height" not in info or "width" not in info:
                raise UserError(f"{self.annotations}: image {image_id} lacks file_name, height or width")
            path = self.images / info["file_name"]
            image = read_image(path)
            if image.shape[:2] != (info["height"], info["width"]):
                raise UserError(f"{path}: image is {image.shape[1]}x{image.shape[0]} but {self.annotations.name} "
                                f"says {info['width']}x{info['height']}")
            mask = validate_mask(self.mask_for(image_id, *image.shape[:2]), image.shape, BINARY_LABELS,
                                 source=str(path), require_attention=False)
            yield RGBMaskPair(image=image, mask=mask, name=Path(info["file_name"]).with_suffix("").as_posix(),
                              extra={"coco_id": image_id})
