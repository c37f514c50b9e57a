"""The real-eye check set: the shipped file is consistent, the metrics are right on known cases, the contact
sheet is written; eye_problem on rendered, blank and noise masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from maskpurify.errors import UserError
from maskpurify.evaluation.real_eyes import (REAL_EYES, evaluate_masks, evaluate_real_eyes, load_real_eyes,
                                             write_contact_sheet)
from maskpurify.fileio import read_image
from maskpurify.masks import EYE_CHECK, IRIS, PUPIL, SCLERA, eye_problem, eye_problems, region_centroid
from maskpurify.nets.segmenter import Segmenter, SegmenterConfig
from maskpurify.world.renderer import render_samples

pytestmark = pytest.mark.usefixtures("one_thread")


def test_shipped_set_is_consistent() -> None:
    eyes = load_real_eyes()
    n = len(eyes)
    assert n >= 10 and REAL_EYES.stat().st_size < 200_000
    assert eyes.images.shape == (n, 36, 60, 3) and eyes.images.dtype == np.uint8
    assert eyes.masks.shape == (n, 36, 60) and eyes.masks.dtype == np.uint8
    assert set(np.unique(eyes.masks)) <= {0, 1, 2, 3}
    assert set(eyes.source.tolist()) <= {"astronaut", "t1", "voc"} and "astronaut" in set(eyes.source.tolist())
    assert set(eyes.eye.tolist()) <= {"left", "right"}
    # The subject's right eye is the one mirrored to the canonical side.
    assert np.array_equal(eyes.mirrored, eyes.eye == "right")
    for i in range(n):
        mask = eyes.masks[i]
        assert {SCLERA, IRIS, PUPIL} <= set(np.unique(mask))  # FaceMesh draws an iris in every eye
        # five of t1's eyes are closed: their references are slits, and the eye check says so
        assert (eye_problem(mask) or "eye closed").startswith("eye closed")
        assert (eye_problem(mask) is None) == (i not in (2, 3, 8, 10, 11))
        # FaceMesh's iris centre lies within the reference iris disc's extent, near its centroid.
        centroid = region_centroid(mask, (IRIS, PUPIL))
        assert centroid is not None
        assert np.hypot(*(np.asarray(centroid) - eyes.iris_center[i])) < 4.0
    assert "never train on it" in (Path(REAL_EYES).parent / "README.md").read_text().lower()


def test_reference_against_itself_and_known_errors() -> None:
    eyes = load_real_eyes()
    perfect = evaluate_masks(eyes.masks, eyes.masks)
    assert perfect["iou_sclera"] == perfect["iou_iris"] == perfect["iou_pupil"] == perfect["mean_iou"] == 1.0
    assert perfect["iris_centre_error_px"] == 0.0 and perfect["iris_missing"] == 0
    # Shifting every mask 2 px right: the iris centre moves 2 px (discs never touch the crop border).
    shifted = np.zeros_like(eyes.masks)
    shifted[:, :, 2:] = eyes.masks[:, :, :-2]
    moved = evaluate_masks(shifted, eyes.masks)
    assert moved["iris_centre_error_px"] == pytest.approx(2.0, abs=1e-6) and moved["mean_iou"] < 1.0
    # No iris predicted: counted as missing, IoU of iris and pupil 0.
    empty = evaluate_masks(np.zeros_like(eyes.masks), eyes.masks)
    assert empty["iris_missing"] == len(eyes) and empty["iou_iris"] == 0.0 and empty["mean_iou"] == 0.0


def test_evaluate_writes_the_contact_sheet(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    segmenter = Segmenter(SegmenterConfig(base_channels=4, levels=2)).eval()
    result = evaluate_real_eyes(segmenter, tmp_path / "report")
    eyes = load_real_eyes()
    for key in ("iou_sclera", "iou_iris", "iou_pupil", "mean_iou", "iris_centre_error_px"):
        assert key in result
    assert result["n"] == len(eyes) and result["reference_flagged"] == 5  # the closed eyes
    assert 0 <= result["flagged"] <= len(eyes) and len(result["flagged_reasons"]) == result["flagged"]
    assert sum(result["sources"].values()) == len(eyes)
    sheet = Path(result["contact_sheet"])
    assert sheet == tmp_path / "report" / "real_eyes_contact_sheet.png"
    picture = read_image(sheet)
    assert picture.shape[0] > 3 * 36 * len(eyes) and picture.shape[1] >= 3 * 3 * 60
    assert [p.name for p in sheet.parent.iterdir()] == [sheet.name]  # written atomically, nothing left over
    assert evaluate_real_eyes(segmenter, None)["contact_sheet"] is None
    write_contact_sheet(tmp_path / "again.png", eyes, eyes.masks)  # a sheet of the reference itself
    assert read_image(tmp_path / "again.png").shape == picture.shape


def test_missing_or_broken_set_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nope.npz: no real-eye check set"):
        load_real_eyes(tmp_path / "nope.npz")
    np.savez(tmp_path / "bad.npz", images=np.zeros((2, 36, 60, 3), np.uint8))
    with pytest.raises(UserError, match="bad.npz: not a real-eye check set"):
        load_real_eyes(tmp_path / "bad.npz")


# -- eye_problem -----------------------------------------------------------------------------------------------

def test_eye_problem_never_fires_on_rendered_eyes() -> None:
    for domain in ("wild", "synthetic"):
        batch = render_samples(domain, 300, seed=8080)
        flagged = [eye_problem(m) for m in batch.masks]
        assert flagged.count(None) == len(flagged), [f for f in flagged if f][:3]
    # Larger renders too: the thresholds are fractions.
    big = render_samples("wild", 20, size=(72, 120), seed=1)
    assert all(eye_problem(m) is None for m in big.masks)


def test_eye_problem_names_what_is_wrong() -> None:
    eye = render_samples("synthetic", 1, seed=2).masks[0]
    assert eye_problem(eye) is None
    assert eye_problem(np.zeros((36, 60), np.uint8)) == "no eye in the mask (no sclera, iris or pupil pixel)"
    closed = eye.copy()
    closed[closed >= IRIS] = SCLERA
    assert eye_problem(closed) == "no iris"
    sliver = np.zeros((36, 60), np.uint8)
    sliver[15:20, 10:50] = SCLERA
    sliver[17:19, 28:30] = IRIS
    assert eye_problem(sliver).startswith("iris too small")
    slit = np.zeros((36, 60), np.uint8)
    slit[18, 10:50] = SCLERA
    slit[18, 26:32] = IRIS
    assert eye_problem(slit).startswith("eye closed")
    tiny = np.zeros((36, 60), np.uint8)
    tiny[10:13, 10:14] = IRIS
    assert eye_problem(tiny).startswith("eye region too small")
    two = np.zeros((36, 60), np.uint8)
    for x in (5, 35):
        two[10:26, x:x + 20] = SCLERA
        two[13:23, x + 6:x + 14] = IRIS
    assert eye_problem(two).startswith("eye region in 2 pieces")
    pupil_out = np.zeros((36, 60), np.uint8)
    pupil_out[10:26, 10:50] = SCLERA
    pupil_out[12:24, 24:34] = IRIS
    pupil_out[17:19, 14:17] = PUPIL  # in the sclera, away from the iris
    assert eye_problem(pupil_out) == "pupil outside the iris"
    pupil_out[17:19, 14:17] = SCLERA
    pupil_out[17:19, 28:31] = PUPIL
    assert eye_problem(pupil_out) is None
    rng = np.random.default_rng(0)
    for _ in range(5):
        assert eye_problem(rng.integers(0, 4, (36, 60)).astype(np.uint8)) is not None  # label noise
    # The batch form gives the same answers (pieces never leak from one image into the next).
    batch = np.stack([eye, closed, sliver, tiny, two, pupil_out, np.zeros((36, 60), np.uint8), eye])
    assert eye_problems(batch) == [eye_problem(m) for m in batch]
    assert eye_problems(np.zeros((0, 36, 60), np.uint8)) == []
    assert set(EYE_CHECK) >= {"min_eye_fraction", "min_iris_fraction_of_eye", "max_eye_pieces"}


@pytest.mark.skipif(not Path("weights/segmenter.safetensors").is_file(), reason="no shipped segmenter")
def test_eye_problem_flags_blank_and_noise_images_through_the_shipped_segmenter() -> None:
    import cv2

    from maskpurify.nets.segmenter import load_segmenter, predict_masks

    segmenter = load_segmenter("weights/segmenter")
    rng = np.random.default_rng(0)
    images = [np.full((36, 60, 3), v, np.uint8) for v in (0, 128, 255)]
    images += [rng.integers(0, 256, (36, 60, 3), dtype=np.uint8) for _ in range(10)]
    images += [cv2.GaussianBlur(rng.integers(0, 256, (36, 60, 3), dtype=np.uint8), (0, 0), 1.5) for _ in range(10)]
    masks = predict_masks(segmenter, np.stack(images))
    flagged = [eye_problem(m) is not None for m in masks]
    assert all(flagged[:3]) and sum(flagged) >= len(flagged) - 1, flagged
    eyes = render_samples("synthetic", 50, seed=31337)
    predicted = predict_masks(segmenter, eyes.images)
    assert sum(eye_problem(m) is not None for m in predicted) <= 1
