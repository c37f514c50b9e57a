"""MPIIGaze reader on .mat files with the real nested struct (data.left/right.image/gaze/pose)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from maskpurify.errors import UserError
from maskpurify.formats import open_reader
from maskpurify.formats.mpiigaze import pose_to_pitchyaw
from maskpurify.masks import PUPIL


def _gaze(pitch: float, yaw: float) -> list[float]:
    return [-math.cos(pitch) * math.sin(yaw), -math.sin(pitch), -math.cos(pitch) * math.cos(yaw)]


def _eye(n: int, offset: int = 0) -> dict:
    images = np.zeros((n, 36, 60), np.uint8)
    for i in range(n):
        images[i, :, : 10 + offset + i] = 200  # bright left band: shows a horizontal flip
    gaze = np.array([_gaze(0.1 * i, 0.2) for i in range(n)])
    pose = np.zeros((n, 3))
    return {"image": images, "gaze": gaze, "pose": pose}


def write_day(folder: Path, day: str, left: int, right: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{day}.mat"
    scipy.io.savemat(str(path), {"data": {"left": _eye(left), "right": _eye(right, offset=5)},
                                 "filenames": np.array(["day01/0001.jpg"] * max(left, right), dtype=object)})
    return path


def test_fixture_loads_like_real_files(tmp_path: Path) -> None:
    path = write_day(tmp_path / "p00", "day01", 3, 1)
    data = scipy.io.loadmat(str(path), struct_as_record=False, squeeze_me=True)["data"]
    assert data.left.image.shape == (3, 36, 60) and data.left.image.dtype == np.uint8
    assert data.left.gaze.shape == (3, 3) and data.left.pose.shape == (3, 3)
    assert data.right.image.shape == (36, 60) and data.right.gaze.shape == (3,)  # squeeze_me collapses N=1


def test_reads_gaze_pose_and_flips_right_eyes(tmp_path: Path) -> None:
    write_day(tmp_path / "p00", "day01", 3, 1)
    write_day(tmp_path / "p01", "day02", 2, 2)
    reader = open_reader("mpiigaze", tmp_path)
    assert len(reader) == 8
    pairs = list(reader)
    assert [p.name for p in pairs[:4]] == ["p00/day01/left/0000", "p00/day01/left/0001", "p00/day01/left/0002",
                                           "p00/day01/right/0000"]
    left, right = pairs[1], pairs[3]
    assert left.image.shape == (36, 60, 3) and left.mask is None
    assert (left.image[..., 0] == left.image[..., 2]).all()
    np.testing.assert_allclose(left.gaze, [0.1, 0.2], atol=1e-9)
    np.testing.assert_allclose(left.head_pose, [0.0, 0.0], atol=1e-9)
    # Right eye (N=1) mirrored: bright band now on the right, yaw negated, pitch unchanged.
    assert right.extra["flipped"] is True
    assert right.image[0, -1, 0] == 200 and right.image[0, 0, 0] == 0
    np.testing.assert_allclose(right.gaze, [0.0, -0.2], atol=1e-9)
    unflipped = list(open_reader("mpiigaze", tmp_path, persons=["p00"], eyes=["right"], flip_right=False))
    assert len(unflipped) == 1 and unflipped[0].image[0, 0, 0] == 200
    np.testing.assert_allclose(unflipped[0].gaze, [0.0, 0.2], atol=1e-9)


def test_person_selection_and_masker(tmp_path: Path) -> None:
    write_day(tmp_path / "p00", "day01", 2, 2)
    write_day(tmp_path / "p03", "day01", 1, 1)

    def masker(image: np.ndarray) -> np.ndarray:
        return np.full(image.shape[:2], PUPIL, np.uint8)

    pairs = list(open_reader("mpiigaze", tmp_path, persons=[3], eyes=["left"], masker=masker))
    assert [p.name for p in pairs] == ["p03/day01/left/0000"]
    assert pairs[0].mask is not None and (pairs[0].mask == PUPIL).all()
    with pytest.raises(UserError, match=r"no MPIIGaze person folders \['p07'\]"):
        open_reader("mpiigaze", tmp_path, persons=["p07"])
    with pytest.raises(UserError, match="choose from left, right"):
        open_reader("mpiigaze", tmp_path, eyes=["middle"])


def test_head_pose_conversion() -> None:
    # A head turned by +0.3 rad about the camera's y axis: its z axis leans towards +x, so yaw = +0.3.
    np.testing.assert_allclose(pose_to_pitchyaw(np.array([[0.0, 0.3, 0.0]])), [[0.0, 0.3]], atol=1e-9)


def test_wrong_image_shape_names_file(tmp_path: Path) -> None:
    folder = tmp_path / "p00"
    folder.mkdir()
    bad = _eye(2)
    bad["image"] = np.zeros((2, 36, 60, 3), np.uint8)
    scipy.io.savemat(str(folder / "day01.mat"), {"data": {"left": bad, "right": _eye(2)}})
    with pytest.raises(UserError, match=r"day01\.mat: 'data\.left\.image' must be N x H x W uint8"):
        list(open_reader("mpiigaze", tmp_path))


def test_mismatched_gaze_and_missing_fields(tmp_path: Path) -> None:
    folder = tmp_path / "p00"
    folder.mkdir()
    bad = _eye(2)
    bad["gaze"] = np.zeros((3, 3))
    scipy.io.savemat(str(folder / "day01.mat"), {"data": {"left": bad, "right": _eye(2)}})
    with pytest.raises(UserError, match=r"day01\.mat: 'data\.left\.gaze' must be 2 x 3"):
        list(open_reader("mpiigaze", tmp_path))
    scipy.io.savemat(str(folder / "day01.mat"), {"data": {"left": _eye(2)}})
    with pytest.raises(UserError, match=r"day01\.mat: missing 'data\.right'"):
        list(open_reader("mpiigaze", tmp_path))
    (folder / "day01.mat").write_bytes(b"not a mat file at all")
    with pytest.raises(UserError, match=r"day01\.mat: unreadable \.mat file"):
        list(open_reader("mpiigaze", tmp_path))


def test_flip_right_brings_a_right_eye_to_the_canonical_side(tmp_path: Path) -> None:
    """A rendered eye is the canonical side (the subject's left eye, inner corner on the image's left). Stored
    as MPIIGaze's left eye it is read unchanged; its mirror image stored as the right eye (with the mirrored gaze:
    x negated in camera coordinates) is read back as the rendered eye with the rendered gaze."""
    from maskpurify.geometry import pitchyaw_to_vector
    from maskpurify.masks import CANONICAL_EYE, mirror_eyes, mirror_gaze
    from maskpurify.world.renderer import render_samples

    batch = render_samples("synthetic", 3, seed=21, grey=True)
    grey = batch.images[..., 0]
    vectors = pitchyaw_to_vector(batch.gaze)
    folder = tmp_path / "p00"
    folder.mkdir()
    left = {"image": grey, "gaze": vectors, "pose": np.zeros((3, 3))}
    right = {"image": mirror_eyes(grey), "gaze": vectors * [-1.0, 1.0, 1.0], "pose": np.zeros((3, 3))}
    scipy.io.savemat(str(folder / "day01.mat"), {"data": {"left": left, "right": right}})
    pairs = list(open_reader("mpiigaze", tmp_path))
    assert CANONICAL_EYE == "left" and [p.extra["eye"] for p in pairs] == ["left"] * 3 + ["right"] * 3
    for i in range(3):
        for pair in (pairs[i], pairs[3 + i]):
            assert np.array_equal(pair.image[..., 0], grey[i])
            np.testing.assert_allclose(pair.gaze, batch.gaze[i], atol=1e-5)
    raw = list(open_reader("mpiigaze", tmp_path, eyes=["right"], flip_right=False))
    np.testing.assert_allclose(raw[0].gaze, mirror_gaze(batch.gaze[0]), atol=1e-5)
