"""The RGB-mask contract: every violation is a one-line UserError; decoding, resizing and erosion behave."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from maskpurify import fileio
from maskpurify.errors import UserError
from maskpurify.masks import (EYE_LABELS, EYE_PALETTE, IRIS, PUPIL, SCLERA, SKIN, LabelSet, attention_region,
                              colourise, erode_region, label_set_from_mapping, labels_from_colours, load_mask,
                              overlay, region_centroid, resize_mask, validate_mask)


def _mask(h=12, w=20):
    m = np.zeros((h, w), np.uint8)
    m[3:9, 4:16] = SCLERA
    m[4:8, 8:12] = IRIS
    m[5:7, 9:11] = PUPIL
    return m


def _one_line(exc):
    text = str(exc.value)
    assert text and "\n" not in text
    return text


def test_valid_mask_passes_and_squeezes_channel():
    m = _mask()
    assert validate_mask(m[..., None], (12, 20, 3)).shape == (12, 20)
    assert validate_mask(m.astype(np.int64)).dtype == np.uint8


def test_three_channel_mask_without_palette(tmp_path):
    with pytest.raises(UserError) as exc:
        validate_mask(np.zeros((4, 4, 3), np.uint8))
    assert "palette" in _one_line(exc)
    colour = colourise(_mask())
    path = tmp_path / "colour.png"
    Image.fromarray(colour).save(path)
    with pytest.raises(UserError) as exc:
        load_mask(path)
    assert "colour.png" in _one_line(exc)
    # a grey label map saved as RGB is accepted
    grey = tmp_path / "grey.png"
    Image.fromarray(np.repeat(_mask()[..., None], 3, 2)).save(grey)
    assert np.array_equal(load_mask(grey), _mask())


def test_palette_decoding(tmp_path):
    labels = LabelSet(palette=EYE_PALETTE)
    path = tmp_path / "pal.png"
    Image.fromarray(colourise(_mask())).save(path)
    assert np.array_equal(load_mask(path, labels=labels), _mask())
    bad = colourise(_mask())
    bad[0, 0] = (1, 2, 3)
    with pytest.raises(UserError) as exc:
        labels_from_colours(bad, EYE_PALETTE)
    assert "(1, 2, 3)" in _one_line(exc)
    with pytest.raises(UserError):
        LabelSet(palette=((0, 0, 0),))


def test_size_mismatch_and_dtype():
    with pytest.raises(UserError) as exc:
        validate_mask(_mask(), (10, 20))
    assert "does not match" in _one_line(exc)
    with pytest.raises(UserError):
        validate_mask(_mask().astype(np.float32))


def test_unknown_labels_are_listed():
    m = _mask()
    m[0, 0], m[0, 1] = 7, 9
    with pytest.raises(UserError) as exc:
        validate_mask(m, source="eye.png")
    text = _one_line(exc)
    assert "[7, 9]" in text and "eye.png" in text


def test_empty_attention_region():
    with pytest.raises(UserError) as exc:
        validate_mask(np.zeros((5, 5), np.uint8))
    assert "empty attention" in _one_line(exc)
    assert validate_mask(np.zeros((5, 5), np.uint8), require_attention=False).shape == (5, 5)


def test_unreadable_truncated_and_too_large_files(tmp_path):
    with pytest.raises(UserError):
        load_mask(tmp_path / "missing.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(UserError) as exc:
        load_mask(junk)
    assert "unreadable" in _one_line(exc)
    full = tmp_path / "full.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 4, (64, 64), dtype=np.uint8)).save(full)
    truncated = tmp_path / "trunc.png"
    truncated.write_bytes(full.read_bytes()[:200])
    with pytest.raises(UserError) as exc:
        load_mask(truncated)
    assert "trunc.png" in _one_line(exc)
    with pytest.raises(UserError) as exc:
        fileio.read_image(full, mode=None, max_pixels=100)
    assert "too large" in _one_line(exc)


def test_binary_masks(tmp_path):
    path = tmp_path / "bin.png"
    Image.fromarray((_mask() > 0).astype(np.uint8) * 255).save(path)
    m = load_mask(path, binary=True)
    assert set(np.unique(m)) == {0, 1}
    assert np.array_equal(m, (_mask() > 0).astype(np.uint8))


def test_nearest_resize_never_creates_new_labels():
    m = _mask()
    m[0, 0] = SKIN
    for size in ((7, 13), (36, 60), (5, 5), (100, 31)):
        out = resize_mask(m, size)
        assert out.shape == size and set(np.unique(out)) <= set(np.unique(m))


def test_nearest_resize_keeps_labels_on_their_image_pixels():
    """A label blob lands where the same blob of an image does: source pixel centre x maps to (x + 0.5) s - 0.5
    (cv2.resize's mapping for images). Nearest neighbour rounds each blob by up to half a pixel, but over blobs at
    every offset and size the error mostly averages out (within 0.13 px at these scales); cv2's INTER_NEAREST is
    off by 0.31-0.38 px, always right and down."""
    for size in ((48, 80), (27, 45), (45, 75), (60, 100)):
        sy, sx = size[0] / 36, size[1] / 60
        errors = []
        for y0 in range(6, 14):
            for x0 in range(20, 28):
                for k in (8, 9, 10):
                    src = np.zeros((36, 60), np.uint8)
                    src[y0:y0 + k, x0:x0 + k] = IRIS
                    ys, xs = np.nonzero(resize_mask(src, size))
                    centre = (y0 + (k - 1) / 2 + 0.5) * sy - 0.5, (x0 + (k - 1) / 2 + 0.5) * sx - 0.5
                    errors.append((ys.mean() - centre[0], xs.mean() - centre[1]))
        bias = np.mean(errors, axis=0)
        assert np.abs(bias).max() <= 0.13, (size, bias)


def test_erosion_and_regions():
    region = attention_region(_mask())
    assert region.sum() == 6 * 12
    eroded = erode_region(region, 1)
    assert eroded.sum() < region.sum() and not (eroded & ~region).any()
    assert erode_region(region, 0) is region
    assert region_centroid(_mask(), PUPIL) == (9.5, 5.5)
    assert region_centroid(np.zeros((3, 3), np.uint8), PUPIL) is None
    blended = overlay(np.zeros((12, 20, 3), np.uint8), _mask())
    assert (blended[0, 0] == 0).all() and blended[5, 9].any()


def test_label_set_from_mapping():
    labels = label_set_from_mapping({"names": ["bg", "eye"], "attention": [1]})
    assert labels.num_labels == 2 and labels.attention == (1,)
    with pytest.raises(UserError):
        label_set_from_mapping({"names": ["bg"], "attention": [3]})
    assert EYE_LABELS.num_labels == 4
