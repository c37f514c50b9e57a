"""COCO instance annotations as binary attention masks (the paper's non-eye experiments).

The attention region is the union of all instances of the chosen categories (crowd regions included, since
they are still objects of that category); everything else is background. Masks use
:data:`maskpurify.masks.BINARY_LABELS` (0 background, 1 attention). pycocotools decodes polygons and RLE.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from maskpurify.errors import UserError
from maskpurify.fileio import MAX_IMAGE_PIXELS, MAX_INDEX_BYTES, read_image, read_json, resolve_within
from maskpurify.formats.base import Masker, Reader
from maskpurify.masks import BINARY_LABELS, validate_mask
from maskpurify.pairs import RGBMaskPair


def load_coco(path: str | Path) -> COCO:
    """Parse and index a COCO annotation file, turning malformed JSON into a one-line UserError."""
    path = Path(path)
    dataset = read_json(path, max_bytes=MAX_INDEX_BYTES)  # a COCO index of a large dataset is hundreds of MB
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
            check_segmentation(ann, height, width, str(self.annotations))
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
            for key in ("height", "width"):
                value = info[key]
                if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_IMAGE_PIXELS:
                    raise UserError(f"{self.annotations}: image {image_id} has an invalid {key} {value!r}")
            path = resolve_within(self.images, info["file_name"], f"{self.annotations}: image {image_id}",
                                  "file_name")
            image = read_image(path)
            if image.shape[:2] != (info["height"], info["width"]):
                raise UserError(f"{path}: image is {image.shape[1]}x{image.shape[0]} but {self.annotations.name} "
                                f"says {info['width']}x{info['height']}")
            mask = validate_mask(self.mask_for(image_id, *image.shape[:2]), image.shape, BINARY_LABELS,
                                 source=str(path), require_attention=False)
            yield RGBMaskPair(image=image, mask=mask, name=Path(info["file_name"]).with_suffix("").as_posix(),
                              extra={"coco_id": image_id})


#: Polygon coordinates beyond this many image sides from the origin are malformed, not merely outside the image
#: (pycocotools allocates memory in proportion to a polygon's extent).
COORDINATE_SIDES = 10


def check_segmentation(ann: object, height: int, width: int, source: str) -> None:
    """Refuse a malformed COCO segmentation with one line before pycocotools sees it: polygons must be lists of
    at least 3 finite (x, y) pairs; RLE needs ``counts`` and a ``size`` equal to the image's."""
    if not isinstance(ann, dict):
        raise UserError(f"{source}: an annotation is not a JSON object")
    where = f"{source}: annotation {ann.get('id')!r}"
    segm = ann.get("segmentation")
    if isinstance(segm, list):
        if not segm:
            raise UserError(f"{where}: empty segmentation")
        for polygon in segm:
            if not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2:
                count = len(polygon) if isinstance(polygon, list) else type(polygon).__name__
                raise UserError(f"{where}: a polygon needs an even number (at least 6) of coordinates, got {count}")
            limit = COORDINATE_SIDES * max(height, width)
            for value in polygon:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                        or abs(value) > limit:
                    raise UserError(f"{where}: polygon coordinate {value!r} is not a finite number within "
                                    f"+-{limit} (image {width}x{height})")
    elif isinstance(segm, dict):
        size, counts = segm.get("size"), segm.get("counts")
        if size != [height, width]:
            raise UserError(f"{where}: RLE size {size!r} differs from the image size [{height}, {width}]")
        if isinstance(counts, str):
            counts = _rle_string_counts(counts)  # pycocotools' C decoder trusts these: check them first
        if not isinstance(counts, list):
            raise UserError(f"{where}: RLE counts must be a list of integers or a compressed string")
        if not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= height * width for c in counts) \
                or sum(counts) != height * width:
            raise UserError(f"{where}: RLE counts must be non-negative integers summing to height*width "
                            f"({height * width})")
    else:
        raise UserError(f"{where}: segmentation must be a list of polygons or an RLE object, got {segm!r:.60}")


def _rle_string_counts(text: str) -> list[int] | None:
    """The run lengths of a compressed COCO RLE string (a port of pycocotools' ``rleFrString``); None when the
    string is not in that alphabet or ends inside a number."""
    counts: list[int] = []
    p = 0
    while p < len(text):
        x = k = 0
        more = True
        while more:
            if p >= len(text) or not 48 <= ord(text[p]) < 48 + 64:
                return None
            c = ord(text[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts
