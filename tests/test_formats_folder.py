"""Folder reader: images with optional NAME_mask.png label maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from maskpurify.errors import UserError
from maskpurify.fileio import save_image
from maskpurify.formats import open_reader
from maskpurify.masks import IRIS, SCLERA


def _mask(h: int = 20, w: int = 30) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    mask[5:15, 5:25] = SCLERA
    mask[8:12, 12:18] = IRIS
    return mask


def test_pairs_masker_and_recursion(tmp_path: Path) -> None:
    save_image(tmp_path / "a.png", np.full((20, 30, 3), 100, np.uint8))
    save_image(tmp_path / "a_mask.png", _mask())
    save_image(tmp_path / "b.jpg", np.full((20, 30, 3), 50, np.uint8))
    save_image(tmp_path / "sub" / "c.png", np.full((10, 10, 3), 10, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    pairs = list(open_reader("folder", tmp_path))
    assert [p.name for p in pairs] == ["a", "b"]
    assert pairs[0].mask is not None and (pairs[0].mask == _mask()).all() and pairs[1].mask is None
    filled = list(open_reader("folder", tmp_path, recursive=True,
                              masker=lambda image: np.full(image.shape[:2], SCLERA, np.uint8)))
    assert [p.name for p in filled] == ["a", "b", "sub/c"]
    assert (filled[0].mask == _mask()).all() and (filled[2].mask == SCLERA).all()  # type: ignore[union-attr]
    binary = next(iter(open_reader("folder", tmp_path, binary=True)))
    assert set(np.unique(binary.mask)) == {0, 1}  # type: ignore[arg-type]


def test_colour_mask_is_an_error(tmp_path: Path) -> None:
    save_image(tmp_path / "a.png", np.zeros((20, 30, 3), np.uint8))
    colour = np.zeros((20, 30, 3), np.uint8)
    colour[5:15, 5:25] = (255, 0, 0)
    save_image(tmp_path / "a_mask.png", colour)
    with pytest.raises(UserError, match=r"a_mask\.png: 3-channel colour mask"):
        list(open_reader("folder", tmp_path))


def test_size_mismatch_and_bad_labels(tmp_path: Path) -> None:
    save_image(tmp_path / "a.png", np.zeros((20, 30, 3), np.uint8))
    save_image(tmp_path / "a_mask.png", _mask(10, 30))
    with pytest.raises(UserError, match=r"a_mask\.png: mask size 30x10 does not match image size 30x20"):
        list(open_reader("folder", tmp_path))
    save_image(tmp_path / "a_mask.png", np.full((20, 30), 9, np.uint8))
    with pytest.raises(UserError, match=r"a_mask\.png: unknown mask labels \[9\]"):
        list(open_reader("folder", tmp_path))


def test_image_limits_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no images"):
        open_reader("folder", tmp_path)
    save_image(tmp_path / "big.png", np.zeros((20, 30, 3), np.uint8))
    with pytest.raises(UserError, match=r"big\.png: image too large"):
        list(open_reader("folder", tmp_path, max_pixels=100))
    with pytest.raises(UserError, match="bad option"):
        open_reader("folder", tmp_path, colour=True)
