"""The real-photo check set (src/maskpurify/data/real_photos.npz) and the artefact measures of
maskpurify.evaluation.real_photos. Fast: numpy/scipy/cv2 only, fixtures drawn here, no network, no torch."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from maskpurify.evaluation.real_photos import (
    REAL_PHOTOS, artefacts, contact_sheet, corner_colour_ratio, extra_dark_blobs, extra_dark_blobs_by_zone,
    load_real_photos, new_dark_outside_iris, score_purifier, working_crops, working_masks,
)
from maskpurify.masks import IRIS, PUPIL, SCLERA, SKIN

#: Eyes the shipped set holds (scripts/make_real_photos.py); update with the set.
EXPECTED_EYES = 83


@pytest.fixture(scope="module")
def data():
    return load_real_photos()


def test_set_loads_and_is_small(data):
    assert REAL_PHOTOS.stat().st_size < 3 * 1024 * 1024
    assert len(data) == EXPECTED_EYES >= 60
    assert data.images.shape == (len(data), 72, 120, 3) and data.images.dtype == np.uint8
    assert data.masks.shape == (len(data), 72, 120)
    assert set(np.unique(data.masks).tolist()) <= {SKIN, SCLERA, IRIS, PUPIL}
    assert all((m == SCLERA).any() for m in data.masks)  # every crop has an eye in its reference
    assert set(data.eye.tolist()) == {"left", "right"}
    assert set(data.half.tolist()) == {"tune", "report"}
    assert data.open.sum() > len(data) // 2 and (~data.open).sum() >= 3  # closed eyes kept as negatives


def test_halves_split_by_photo_and_balanced(data):
    tune, report = load_real_photos("tune"), load_real_photos("report")
    assert len(tune) + len(report) == len(data)
    assert not set(tune.photo.tolist()) & set(report.photo.tolist())
    assert abs(len(tune) - len(report)) <= 0.2 * len(data)
    with pytest.raises(Exception, match="tune or report"):
        load_real_photos("train")


def test_canonical_flip_follows_the_corners(data):
    # The crop is stored as in the photo; the subject's right eye (FaceMesh 33/133) has its inner corner on the
    # image's right unless the photo is mirrored, so it is the one to flip.
    assert (data.canonical_flip == (data.eye == "right")).mean() > 0.95


def test_working_crops_cut_the_centre(data):
    crops, masks = working_crops(data.images[:4]), working_masks(data.masks[:4])
    assert crops.shape == (4, 36, 60, 3) and masks.shape == (4, 36, 60)
    # the eye (sclera and iris) fills more of the working framing than of the stored one
    assert (masks > 0).mean() > (data.masks[:4] > 0).mean()


def test_contact_sheet_draws_every_crop():
    data = load_real_photos()
    sheet = contact_sheet(data.subset(np.arange(len(data)) < 10), columns=5, scale=1)
    assert sheet.ndim == 3 and sheet.shape[1] == 5 * 124


# ---------------------------------------------------------------------------------------------- synthetic eye
def synthetic_eye(h: int = 36, w: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """A flat cartoon eye: skin, an almond sclera, a mid-brown iris, a dark pupil."""
    s = h / 36
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (w // 2, h // 2), (int(20 * s), int(8 * s)), 0, 0, 360, SCLERA, -1)
    iris = np.zeros_like(mask)
    cv2.circle(iris, (w // 2, h // 2), int(7 * s), 1, -1)
    pupil = np.zeros_like(mask)
    cv2.circle(pupil, (w // 2, h // 2), int(3 * s), 1, -1)
    mask[(iris > 0) & (mask == SCLERA)] = IRIS
    mask[(pupil > 0) & (mask > 0)] = PUPIL
    colours = {SKIN: (200, 150, 120), SCLERA: (230, 225, 220), IRIS: (130, 110, 90), PUPIL: (20, 15, 15)}
    image = np.zeros((h, w, 3), np.uint8)
    for label, colour in colours.items():
        image[mask == label] = colour
    rng = np.random.default_rng(0)
    image = np.clip(image.astype(int) + rng.integers(-4, 5, image.shape), 0, 255).astype(np.uint8)
    return image, mask


def test_identity_is_undamaged():
    image, mask = synthetic_eye()
    result = artefacts(image, image.copy(), mask)
    assert result["new_dark_fraction"] == 0 and not result["damaged_a"]
    assert result["extra_dark_blobs"] == 0 and not result["damaged_b"]
    assert not result["damaged_c"] and np.isnan(result["corner_ratio"])


def test_dark_disc_on_the_sclera_is_damage_a():
    image, mask = synthetic_eye()
    out = image.copy()
    cv2.circle(out, (44, 18), 2, (15, 15, 15), -1)  # a "second pupil" on the sclera, right of the iris
    a = new_dark_outside_iris(image, out, mask)
    assert a["fraction"] > 0 and a["largest_blob_px"] >= 9 and a["damaged"]
    # the same disc inside the iris is not measure (a)'s business
    inside = image.copy()
    cv2.circle(inside, (30, 18), 2, (15, 15, 15), -1)
    assert not new_dark_outside_iris(image, inside, mask)["damaged"]


def test_a_single_dark_pixel_is_not_damage(tmp_path):
    image, mask = synthetic_eye()
    out = image.copy()
    out[18, 46] = (10, 10, 10)
    a = new_dark_outside_iris(image, out, mask)
    assert 0 < a["fraction"] <= 0.01 and a["largest_blob_px"] == 1 and not a["damaged"]


def test_split_pupil_or_second_blob_is_damage_b():
    image, mask = synthetic_eye()
    split = image.copy()
    split[:, 29:31] = np.where(mask[:, 29:31, None] == PUPIL, 200, split[:, 29:31])  # bright bar through the pupil
    assert extra_dark_blobs(image, split, mask) >= 1
    second = image.copy()
    cv2.circle(second, (33, 13), 1, (10, 10, 10), -1)  # a second dark spot in the iris
    assert extra_dark_blobs(image, second, mask) == 1
    assert artefacts(image, second, mask)["damaged_b"]


def test_damage_b_says_whether_its_blobs_are_at_the_iris_edge_or_centre():
    """A limbal ring cut by the lids gives two dark bars at the iris edge; a split pupil gives two blobs at the
    centre: both are damage (b), told apart by where they lie."""
    image, mask = synthetic_eye()
    bars = image.copy()
    for x in (24, 36):  # 6 px from the centre of an iris 15 px wide: 0.8 of its half-width
        bars[14:23, x] = np.where(np.isin(mask[14:23, x], (IRIS, PUPIL))[:, None], 12, bars[14:23, x])
    result = artefacts(image, bars, mask)
    assert result["extra_dark_blobs"] == 2 and result["damaged_b_edge"] and not result["damaged_b_centre"]
    assert extra_dark_blobs_by_zone(image, bars, mask) == (0, 2)
    split = image.copy()
    split[:, 29:31] = np.where(mask[:, 29:31, None] == PUPIL, 200, split[:, 29:31])
    result = artefacts(image, split, mask)
    assert result["damaged_b_centre"] and not result["damaged_b_edge"]
    assert not any(artefacts(image, image, mask)[k] for k in ("damaged_b_centre", "damaged_b_edge"))


def test_corner_blotch_raises_ratio_c_but_a_global_shift_does_not():
    image, mask = synthetic_eye()
    blotch = image.copy()
    cv2.circle(blotch, (12, 18), 3, (220, 60, 140), -1)  # magenta blotch at the inner corner
    c = corner_colour_ratio(image, blotch, mask)
    assert c["ratio"] > 2 and c["damaged"]
    shifted = np.clip(image.astype(int) + np.array([12, -8, 6]), 0, 255).astype(np.uint8)
    g = corner_colour_ratio(image, shifted, mask)
    assert 0.85 < g["ratio"] < 1.15 and not g["damaged"]


def test_measures_scale_with_the_crop():
    image, mask = synthetic_eye(72, 120)
    out = image.copy()
    cv2.circle(out, (88, 36), 4, (15, 15, 15), -1)
    assert artefacts(image, out, mask)["damaged_a"]
    assert not any(artefacts(image, image, mask)[k] for k in ("damaged_a", "damaged_b", "damaged_c"))


# ------------------------------------------------------------------------------------------------------ scoring
def test_score_identity_and_a_vandal(data):
    def identity(crops, flips):
        return crops.copy(), np.ones(len(crops), bool)

    result = score_purifier(identity, "tune")
    assert result["n"] == int((data.half == "tune").sum())
    assert result["open_passed"] == 1.0 and result["not_open_passed"] == 1.0
    assert result["damaged_a"] == result["damaged_b"] == result["damaged_c"] == 0.0
    assert result["binocular_yaw_gap_before"] is None

    def vandal(crops, flips, masks):  # paints a dark spot on the sclera of open eyes only; needs the masks
        out = crops.copy()
        for o, m in zip(out, masks):
            ys, xs = np.nonzero(m == SCLERA)
            far = np.argmax(np.abs(xs - xs.mean()))
            cv2.circle(o, (int(xs[far]), int(ys[far])), 2, (0, 0, 0), -1)
        return out, np.ones(len(crops), bool)

    damaged = score_purifier(vandal, "report", pass_masks=True)
    assert damaged["damaged_a"] > 0.5

    def gaze(crops):  # a fake gaze: yaw from the dark centroid, in the crop's own frame
        y = crops.astype(float).mean(-1)
        xs = np.arange(crops.shape[2])
        w = (y.max(axis=(1, 2), keepdims=True) - y).sum(1)
        return np.stack([np.zeros(len(crops)), (w * xs).sum(1) / w.sum(1) - crops.shape[2] / 2], 1)

    with_gaze = score_purifier(identity, "tune", gaze_fn=gaze)
    assert with_gaze["binocular_faces"] >= 10
    assert with_gaze["binocular_yaw_gap_before"] == pytest.approx(with_gaze["binocular_yaw_gap_after"])
