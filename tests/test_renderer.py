"""The procedural eye renderer: geometry follows gaze, masks agree with landmarks, domains share geometry."""

from __future__ import annotations

import numpy as np
import pytest

from maskpurify.errors import UserError
from maskpurify.geometry import pitchyaw_to_vector
from maskpurify.masks import IRIS, PUPIL, SCLERA, SKIN, region_centroid
from maskpurify.world.domains import GeometryConfig, get_preset
from maskpurify.config import parse_size
from maskpurify.world.renderer import render_batch, render_samples, sample_params


def _params(n=1, seed=0):
    params = sample_params(np.random.default_rng(seed), n)
    params.head_pose[:] = 0.0
    params.roll[:] = 0.0
    params.shift[:] = 0.0
    params.blink[:] = 1.0
    params.upper_lid[:] = 0.75
    params.lower_lid[:] = 0.5
    return params


def _render_gaze(pitch_deg, yaw_deg, size=(72, 120)):
    params = _params(len(pitch_deg))
    params.gaze[:] = np.radians(np.stack([pitch_deg, yaw_deg], 1))
    return render_batch(params, "synthetic", size, np.random.default_rng(0))


def test_iris_follows_yaw_and_pitch():
    yaw = _render_gaze(np.zeros(3), np.array([-20.0, 0.0, 20.0]))
    xs = [region_centroid(m, (IRIS, PUPIL))[0] for m in yaw.masks]
    assert xs[0] > xs[1] + 2 > xs[2] + 4  # positive yaw: looking towards the image's left
    pitch = _render_gaze(np.array([-10.0, 0.0, 10.0]), np.zeros(3))
    ys = [region_centroid(m, (IRIS, PUPIL))[1] for m in pitch.masks]
    assert ys[0] > ys[1] + 1 > ys[2] + 2  # positive pitch: looking up
    # landmarks move the same way
    assert yaw.pupil_center[0, 0] > yaw.pupil_center[2, 0]
    assert pitch.pupil_center[0, 1] > pitch.pupil_center[2, 1]


def test_gaze_vector_matches_geometry_convention():
    batch = render_samples("synthetic", 16, seed=3)
    np.testing.assert_allclose(batch.gaze_vector, pitchyaw_to_vector(batch.gaze.astype(np.float64)), atol=1e-5)
    # iris centre offset from the eyeball centre points along the projected gaze
    offset = batch.pupil_center - batch.eyeball_center
    expected = batch.gaze_vector[:, :2] * batch.eyeball_radius[:, None]
    cos = (offset * expected).sum(1) / (np.linalg.norm(offset, axis=1) * np.linalg.norm(expected, axis=1) + 1e-9)
    assert (cos[np.linalg.norm(expected, axis=1) > 1] > 0.999).all()


def test_mask_containment():
    batch = render_samples("synthetic", 64, (36, 60), seed=5)
    for mask in batch.masks:
        assert set(np.unique(mask)) <= {SKIN, SCLERA, IRIS, PUPIL}
        opening = mask != SKIN
        # every pupil pixel's 4-neighbours are iris or pupil (pupil inside iris), or skin at an eyelid
        padded = np.pad(mask, 1, constant_values=SKIN)
        ys, xs = np.nonzero(mask == PUPIL)
        for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            neighbour = padded[ys + 1 + dy, xs + 1 + dx]
            assert not (neighbour == SCLERA).any()
        if (mask == PUPIL).any():
            cx, cy = region_centroid(mask, PUPIL)
            assert mask[int(round(cy)), int(round(cx))] in (IRIS, PUPIL, SKIN)
        assert opening.sum() > 0


def test_pupil_landmark_matches_mask_centroid_and_iris_contour_on_boundary():
    params = _params(24, seed=7)
    batch = render_batch(params, "synthetic", (144, 240), np.random.default_rng(1))
    checked = 0
    for i in range(len(batch)):
        mask = batch.masks[i]
        lid = batch.eyelid_landmarks[i]
        pupil = mask == PUPIL
        ys, xs = np.nonzero(pupil)
        if len(xs) == 0:
            continue
        # skip pupils cut by an eyelid: their pixels touch skin
        padded = np.pad(mask, 1, constant_values=SKIN)
        touching = any((padded[ys + 1 + dy, xs + 1 + dx] == SKIN).any() for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)))
        if touching:
            continue
        cx, cy = region_centroid(mask, PUPIL)
        assert abs(cx - batch.pupil_center[i, 0]) < 0.6 and abs(cy - batch.pupil_center[i, 1]) < 0.6
        checked += 1
        # visible iris contour points: within one pixel there is iris and there is sclera (or pupil never)
        for x, y in batch.iris_landmarks[i]:
            xi, yi = int(round(x)), int(round(y))
            window = mask[max(yi - 1, 0):yi + 2, max(xi - 1, 0):xi + 2]
            if (window == SKIN).any():
                continue  # occluded by an eyelid
            assert (window == IRIS).any() and (window == SCLERA).any()
        assert lid.shape == (16, 2)
    assert checked >= 10


def test_determinism_and_chunk_independence():
    a = render_samples("wild", 40, seed=11)
    b = render_samples("wild", 40, seed=11)
    assert a.images.tobytes() == b.images.tobytes() and a.masks.tobytes() == b.masks.tobytes()
    part = render_samples("wild", 10, seed=11, start=25)
    assert part.images.tobytes() == a.images[25:35].tobytes()
    c = render_samples("wild", 40, seed=12)
    assert c.images.tobytes() != a.images.tobytes()


def test_same_geometry_across_domains_and_wild_looks_different():
    syn = render_samples("synthetic", 64, seed=2)
    wild = render_samples("wild", 64, seed=2)
    assert np.array_equal(syn.masks, wild.masks)
    for key in ("gaze", "head_pose", "pupil_center", "iris_landmarks", "eyelid_landmarks"):
        assert np.array_equal(getattr(syn, key), getattr(wild, key))
    s, w = syn.images.astype(np.float32), wild.images.astype(np.float32)
    assert np.abs(s - w).mean() > 20
    skin = syn.masks == SKIN

    # wild light varies much more across the skin of each image (shading gradients, shadows, glare) ...
    def variation(images):
        grey = images.mean(-1)
        return np.mean([grey[i][skin[i]].std() / (grey[i][skin[i]].mean() + 1) for i in range(len(grey))])
    assert variation(w) > 1.4 * variation(s)
    # ... and the synthetic domain is noise-free
    def roughness(images):
        grey = images.mean(-1)
        return np.abs(np.diff(grey, axis=2))[skin[:, :, 1:]].mean()
    assert roughness(w) > 1.5 * roughness(s)


def test_grey_and_sizes():
    batch = render_samples("wild", 4, (48, 80), seed=0, grey=True)
    assert batch.images.shape == (4, 48, 80, 1) and batch.masks.shape == (4, 48, 80)
    big = render_samples("synthetic", 1, (480, 640), seed=0)
    assert big.images.shape == (1, 480, 640, 3) and (big.masks == PUPIL).sum() > 100
    assert parse_size("36x60") == (36, 60)
    for bad in ("36", "axb", "8x8", "2000x60", "36x60x3"):
        with pytest.raises(UserError):
            parse_size(bad)


def test_half_blink_and_looking_down_lower_the_upper_lid():
    params = _params(3)
    params.gaze[:] = np.radians([[10.0, 0.0], [-20.0, 0.0], [10.0, 0.0]])
    params.blink[2] = 0.4
    batch = render_batch(params, "synthetic", (72, 120), np.random.default_rng(0))
    top = [np.nonzero((m != SKIN).any(1))[0].min() for m in batch.masks]
    assert top[1] > top[0] and top[2] > top[0]


def test_bad_configs_are_user_errors():
    with pytest.raises(UserError):
        get_preset("indoor")
    with pytest.raises(UserError):
        sample_params(np.random.default_rng(0), 2, GeometryConfig(gaze_pitch=(10.0, -10.0)))
    with pytest.raises(UserError):
        render_samples("synthetic", 0)
