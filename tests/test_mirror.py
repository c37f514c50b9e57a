"""Left and right eyes: one canonical side (the renderer's), the other eye mirrored before the networks and back
after, with the gaze yaw negated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from maskpurify.cli import main
from maskpurify.errors import UserError
from maskpurify.fileio import read_image, save_image
from maskpurify.geometry import pitchyaw_to_vector, vector_to_pitchyaw
from maskpurify.masks import CANONICAL_EYE, PUPIL, mirror_eyes, mirror_flags, mirror_gaze, region_centroid
from maskpurify.purification.engine import DEFAULT_SEGMENTER, Purification, checkpoint_exists
from maskpurify.world.renderer import render_samples

pytestmark = pytest.mark.usefixtures("one_thread")


def test_mirror_helpers() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (3, 4, 5, 3), dtype=np.uint8)
    masks = rng.integers(0, 4, (3, 4, 5), dtype=np.uint8)
    flags = mirror_flags(["left", "right", "left"], 3)
    assert flags.tolist() == [False, True, False] and CANONICAL_EYE == "left"
    out = mirror_eyes(images, flags, channels=True)
    assert np.array_equal(out[1], images[1, :, ::-1]) and np.array_equal(out[[0, 2]], images[[0, 2]])
    assert np.array_equal(mirror_eyes(out, flags, channels=True), images)  # an involution
    assert np.array_equal(mirror_eyes(masks)[2], masks[2, :, ::-1])
    assert out.flags.c_contiguous and images is not out
    np.testing.assert_allclose(mirror_gaze(np.array([[0.1, 0.3], [-0.2, -0.4]])), [[0.1, -0.3], [-0.2, 0.4]])
    np.testing.assert_allclose(mirror_gaze(np.array([0.1, 0.3])), [0.1, -0.3])
    with pytest.raises(UserError, match="--eye middle: choose left or right"):
        mirror_flags("middle", 2)
    with pytest.raises(UserError, match="2 eye sides for 3 images"):
        mirror_flags(["left", "right"], 3)
    with pytest.raises(ValueError):
        mirror_eyes(masks, channels=True)  # (N,H,W) has no channel axis


def test_yaw_sign_follows_the_mirror() -> None:
    """The renderer's yaw > 0 puts the pupil left of the eyeball centre; in the mirror the pupil is on the right,
    which is what a negated yaw means, and the gaze vector's x flips sign (the camera-frame mirror)."""
    batch = render_samples("synthetic", 64, seed=5)
    keep = np.abs(batch.gaze[:, 1]) > np.radians(8)
    assert keep.sum() > 20
    mirrored_masks, mirrored_gaze = mirror_eyes(batch.masks), mirror_gaze(batch.gaze)
    width = batch.masks.shape[2]
    for i in np.flatnonzero(keep):
        pupil = region_centroid(batch.masks[i], PUPIL)
        pupil_m = region_centroid(mirrored_masks[i], PUPIL)
        if pupil is None:
            continue
        centre_x = batch.eyeball_center[i, 0]
        assert np.sign(centre_x - pupil[0]) == np.sign(batch.gaze[i, 1])  # yaw > 0: pupil left of centre
        assert pupil_m[0] == pytest.approx(width - 1 - pupil[0])
        assert np.sign((width - 1 - centre_x) - pupil_m[0]) == np.sign(mirrored_gaze[i, 1])
    vectors = pitchyaw_to_vector(batch.gaze)
    mirrored_vectors = vectors * np.array([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(vector_to_pitchyaw(mirrored_vectors), mirrored_gaze, atol=1e-6)


@pytest.mark.skipif(not checkpoint_exists(DEFAULT_SEGMENTER), reason="no shipped segmenter in weights/")
def test_shipped_segmenter_mirrored_crops_give_mirrored_masks() -> None:
    """The segmenter only learnt the canonical side, so it is not exactly mirror-equivariant; on rendered eyes the
    mask of a mirrored crop is still the mirror of the crop's mask for the large majority of pixels. Declared as
    the other eye, the engine segments the mirror exactly as it segments the canonical crop."""
    from maskpurify.nets.segmenter import load_segmenter, predict_masks

    segmenter = load_segmenter(DEFAULT_SEGMENTER)
    for domain, pixel_floor in (("synthetic", 0.95), ("wild", 0.9)):
        batch = render_samples(domain, 96, seed=4242)
        direct = predict_masks(segmenter, batch.images)
        of_mirror = predict_masks(segmenter, mirror_eyes(batch.images, channels=True))
        agreement = (mirror_eyes(of_mirror) == direct).mean(axis=(1, 2))
        assert agreement.mean() >= pixel_floor, (domain, agreement.mean())
        eye_pixels = (direct > 0) | (mirror_eyes(of_mirror) > 0)
        eye_agreement = ((mirror_eyes(of_mirror) == direct) & eye_pixels).sum() / eye_pixels.sum()
        assert eye_agreement >= pixel_floor - 0.2, (domain, eye_agreement)
    # The engine's "right" path: mirror in, mirror out, so the network sees exactly the canonical pixels.
    from maskpurify.nets.purifier import Purifier, PurifierConfig

    engine = Purification(Purifier(PurifierConfig(8, 1, head="subpixel", gaze_prior=None)), segmenter)
    batch = render_samples("wild", 16, seed=77)
    canonical = engine.masks_for(batch.images)
    other = engine.masks_for(mirror_eyes(batch.images, channels=True), eye="right")
    assert np.array_equal(other, mirror_eyes(canonical))


def test_purifying_the_other_eye_is_the_mirror_of_purifying_the_canonical_one(ckpts: dict[str, Path]) -> None:
    engine = Purification.load(ckpts["p"], ckpts["s"], batch_size=5)
    batch = render_samples("wild", 7, seed=3)
    images, masks = batch.images, batch.masks
    other_images, other_masks = mirror_eyes(images, channels=True), mirror_eyes(masks)
    canonical = engine.purify_arrays(images, masks)
    other = engine.purify_arrays(other_images, other_masks, eye="right")
    assert np.array_equal(other, mirror_eyes(canonical, channels=True))
    # Not a no-op: without declaring the side the network sees a right eye and answers differently.
    assert not np.array_equal(engine.purify_arrays(other_images, other_masks), other)
    # Per-image sides in one batch, automatic masks, grey images.
    mixed = np.where(np.arange(7)[:, None, None, None] % 2 == 1, other_images, images)
    sides = ["right" if i % 2 else "left" for i in range(7)]
    auto_mixed = engine.purify_arrays(mixed, None, eye=sides)
    auto_canonical = engine.purify_arrays(images)
    assert np.array_equal(mirror_eyes(auto_mixed, np.arange(7) % 2 == 1, channels=True), auto_canonical)
    grey = images[..., :1]
    assert np.array_equal(engine.purify_arrays(mirror_eyes(grey, channels=True), other_masks, eye="right"),
                          mirror_eyes(engine.purify_arrays(grey, masks), channels=True))


def test_cli_eye_right(tmp_path: Path, ckpts: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    batch = render_samples("wild", 1, seed=11)
    save_image(tmp_path / "left.png", batch.images[0])
    save_image(tmp_path / "left_mask.png", batch.masks[0])
    save_image(tmp_path / "right.png", batch.images[0, :, ::-1])
    save_image(tmp_path / "right_mask.png", batch.masks[0, :, ::-1])
    common = ["purify", "--quiet", "--checkpoint", str(ckpts["p"]), "--segmenter", str(ckpts["s"])]
    assert main([*common, "--input", str(tmp_path / "left.png"), "--out", str(tmp_path / "l_out.png")]) == 0
    assert main([*common, "--input", str(tmp_path / "right.png"), "--out", str(tmp_path / "r_out.png"),
                 "--eye", "right"]) == 0
    assert np.array_equal(read_image(tmp_path / "r_out.png"), read_image(tmp_path / "l_out.png")[:, ::-1])
    # Automatic masks too.
    assert main([*common, "--input", str(tmp_path / "left.png"), "--out", str(tmp_path / "la.png"),
                 "--masks", "auto", "--save-masks"]) == 0
    assert main([*common, "--input", str(tmp_path / "right.png"), "--out", str(tmp_path / "ra.png"),
                 "--masks", "auto", "--eye", "right", "--save-masks"]) == 0
    assert np.array_equal(read_image(tmp_path / "ra.png"), read_image(tmp_path / "la.png")[:, ::-1])
    assert np.array_equal(read_image(tmp_path / "ra_mask.png", mode="L"),
                          read_image(tmp_path / "la_mask.png", mode="L")[:, ::-1])
    capsys.readouterr()
    try:
        code = main([*common, "--input", str(tmp_path / "left.png"), "--out", str(tmp_path / "x.png"), "--eye", "both"])
    except SystemExit as exc:  # argparse's own exit, where the CLI does not turn it into a return code
        code = int(exc.code or 0)
    assert code == 2 and "invalid choice: 'both'" in capsys.readouterr().err
