"""The near-infrared eye-camera world: monochrome frames whose pupil labels agree with their masks, deterministic
from seeds; sequences of one eye; LPW's layout written and read back; the LPW metric; the classical baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from maskpurify.baselines.pupil import classical_available, detect_pupils_classical
from maskpurify.formats.lpw import LPWReader, read_annotations, write_lpw_video
from maskpurify.formats.video import video_info
from maskpurify.masks import IRIS, PUPIL
from maskpurify.metrics.pupil import detection_curve, detection_rate, pupil_errors
from maskpurify.nets.gaze import build_gaze_net
from maskpurify.nets.pupil import PUPIL_NET, predict_pupil, pupil_target
from maskpurify.world.domains import NIR_SIZE
from maskpurify.world.renderer import render_samples, render_sequence


@pytest.fixture(scope="module")
def frames() -> tuple:
    return (render_samples("nir-synthetic", 64, NIR_SIZE, seed=11), render_samples("nir-wild", 64, NIR_SIZE, seed=11))


def test_nir_frames_are_grey_with_labels_that_match_their_masks(frames: tuple) -> None:
    clean, wild = frames
    for batch in frames:
        assert batch.images.shape == (64, *NIR_SIZE, 3)
        assert np.array_equal(batch.images[..., 0], batch.images[..., 1])
        assert np.array_equal(batch.images[..., 0], batch.images[..., 2])
    # the pupil label is the pupil ellipse's centre: where the whole pupil is visible (ringed by iris), its mask's
    # centroid is there
    checked = 0
    for mask, centre in zip(clean.masks, clean.pupil_center):
        pupil = mask == PUPIL
        ring = ndimage.binary_dilation(pupil) & ~pupil
        if pupil.sum() > 20 and (mask[ring] == IRIS).all():
            ys, xs = np.nonzero(pupil)
            assert np.hypot(xs.mean() - centre[0], ys.mean() - centre[1]) < 0.4
            checked += 1
    assert checked > 30
    # both domains draw the same eyes: same pupil centres; the pupil is dark in the clean frames
    assert np.allclose(clean.pupil_center, wild.pupil_center)
    pupil, skin = clean.masks == PUPIL, clean.masks == 0
    assert clean.images[..., 0][pupil].mean() < 0.5 * clean.images[..., 0][skin].mean()


def test_nir_rendering_is_deterministic_and_leaves_the_eye_world_alone(frames: tuple) -> None:
    again = render_samples("nir-wild", 8, NIR_SIZE, seed=11, start=3)
    assert np.array_equal(again.images, frames[1].images[3:11]) and np.array_equal(again.masks, frames[1].masks[3:11])
    eye = render_samples("synthetic", 4, (36, 60), seed=11)
    assert not np.array_equal(eye.images[..., 0], eye.images[..., 2])  # the eye world stays in colour


def test_a_sequence_is_one_eye_moving_and_blinking() -> None:
    seq = render_sequence("nir-wild", 200, NIR_SIZE, seed=5)
    assert len(seq) == 200 and np.array_equal(seq.images, render_sequence("nir-wild", 200, NIR_SIZE, seed=5).images)
    steps = np.linalg.norm(np.diff(seq.pupil_center, axis=0), axis=1)
    assert (steps < 0.05).mean() > 0.5 and steps.max() > 1.0  # mostly fixations, some saccades
    pupil = (seq.masks == PUPIL).sum((1, 2))
    assert pupil.min() < 0.2 * np.median(pupil)  # a blink covers the pupil
    assert np.array_equal(seq.eyeball_radius, np.full(200, seq.eyeball_radius[0]))


def test_lpw_layout_written_is_read_back_frame_by_frame(tmp_path: Path) -> None:
    seq = render_sequence("nir-synthetic", 30, (48, 64), seed=2)
    write_lpw_video(tmp_path / "p1", "3", seq.images, seq.pupil_center, 95.0)
    info = video_info(tmp_path / "p1" / "3.avi")
    assert info.frame_count == 30 and info.fps == pytest.approx(95.0)
    pairs = list(LPWReader(tmp_path))
    assert len(pairs) == 30 and pairs[7].name == "p1/3/000007"
    assert np.allclose([p.pupil_center for p in pairs], seq.pupil_center, atol=0.006)
    assert np.abs(pairs[7].image.astype(int) - seq.images[7]).mean() < 6  # MPEG-4 keeps the frame


def test_detection_rate_counts_frames_within_5_lpw_pixels() -> None:
    truth = np.zeros((5, 2))
    # a 64-pixel-wide frame: 1 px here is 10 LPW px; errors 0.3, 0.5, 0.6, 1.2 px and a miss
    pred = np.array([[0.3, 0.0], [0.0, 0.5], [0.6, 0.0], [0.0, 1.2], [np.nan, np.nan]])
    errors = pupil_errors(pred, truth, 64)
    assert np.allclose(errors[:4], [3.0, 5.0, 6.0, 12.0]) and np.isinf(errors[4])
    assert detection_rate(errors) == pytest.approx(0.4)
    curve = detection_curve(errors)
    assert len(curve) == 15 and curve[0] == 0.0 and curve[4] == pytest.approx(0.4)
    assert curve[5] == pytest.approx(0.6) and curve[14] == pytest.approx(0.8)


def test_the_detector_reads_fractions_of_any_frame_size() -> None:
    net = build_gaze_net(PUPIL_NET)
    centres = torch.tensor([[32.0, 24.0]])
    assert torch.allclose(pupil_target(centres, (48, 64)), torch.tensor([[0.5, 0.5]]))
    frames = torch.zeros(2, 96, 128, 3, dtype=torch.uint8)
    out = predict_pupil(net, frames)
    assert out.shape == (2, 2) and (out[:, 0] <= 128).all() and (out[:, 1] <= 96).all()


@pytest.mark.skipif(not classical_available(), reason="pupil-detectors is not installed")
def test_the_classical_detector_finds_the_pupil_on_clean_frames(frames: tuple) -> None:
    clean = frames[0]
    open_eyes = [i for i in range(32) if (clean.masks[i] == PUPIL).sum() > 25][:12]
    found = detect_pupils_classical(clean.images[open_eyes])
    errors = pupil_errors(found, clean.pupil_center[open_eyes], NIR_SIZE[1])
    assert detection_rate(errors, 10.0) >= 0.6  # within 1 px of a 48x64 frame
    assert np.isnan(detect_pupils_classical(np.full((1, 48, 64, 3), 200, np.uint8))).all()


def test_annotations_keep_two_decimals(tmp_path: Path) -> None:
    write_lpw_video(tmp_path, "1", np.zeros((2, 16, 16, 3), np.uint8), np.array([[1.234, 5.0], [2.0, 3.0]]), 95.0)
    assert np.allclose(read_annotations(tmp_path / "1.txt"), [[1.23, 5.0], [2.0, 3.0]])


def test_margins_are_paired_by_detector_seed() -> None:
    """A seed that reads every wild frame worse moves raw and purified alike: the paired margin's spread is that of
    the per-seed differences, not of either row."""
    from maskpurify.evaluation.lpw import lpw_table, paired_margins

    rows = [{"name": "raw", "rates": [0.15, 0.03, 0.08]},
            {"name": "purified", "rates": [0.27, 0.12, 0.23]},
            {"name": "synthetic (floor)", "rates": [0.97, 0.89, 0.96]}]
    margins = {m["name"]: m for m in paired_margins(rows)}
    assert set(margins) == {"purified - raw"}  # rows missing from the table give no margin
    m = margins["purified - raw"]
    assert m["per_seed"] == pytest.approx([0.12, 0.09, 0.15])
    assert m["margin"] == pytest.approx(0.12) and m["smallest"] == pytest.approx(0.09)
    assert m["spread"] == pytest.approx(0.06)  # the rows' own spreads are 0.12 and 0.15
    table = lpw_table({"rows": [], "margins": [m]})
    assert "purified - raw" in table and "+12.0" in table and "spread  6.0" in table
    with pytest.raises(ValueError):  # rows scored over different numbers of seeds cannot be paired
        paired_margins([{"name": "raw", "rates": [0.1, 0.2]}, {"name": "purified", "rates": [0.3]}])
