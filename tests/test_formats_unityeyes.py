"""UnityEyes reader on a fixture written exactly like a UnityEyes render (jpg + json, y from the bottom)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskpurify.errors import UserError
from maskpurify.formats import open_reader
from maskpurify.formats.unityeyes import head_pose_to_pitchyaw, look_vec_to_pitchyaw, parse_vector
from maskpurify.masks import IRIS, PUPIL, SCLERA, SKIN

H, W = 240, 320
EYE_CENTER, EYE_AXES = (160.0, 100.0), (60.0, 25.0)
IRIS_CENTER, IRIS_RADIUS = (175.0, 95.0), 18.0


def _ring(center: tuple[float, float], axes: tuple[float, float], n: int) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([center[0] + axes[0] * np.cos(t), center[1] + axes[1] * np.sin(t)], axis=1)


def _to_json_points(points: np.ndarray) -> list[str]:
    """Image (x, y-down) -> UnityEyes strings with y measured from the bottom and a depth component."""
    return [f"({x:.4f}, {H - y:.4f}, {10.0 + 0.01 * i:.4f})" for i, (x, y) in enumerate(points)]


def write_sample(folder: Path, stem: str = "1", look_vec: str = "(0.0000, 0.0000, -1.0000, 0.0000)") -> dict:
    margin = _ring(EYE_CENTER, EYE_AXES, 16)
    iris = _ring(IRIS_CENTER, (IRIS_RADIUS, IRIS_RADIUS), 32)
    caruncle = np.array([[98.0, 99.0], [100.0, 97.0], [102.0, 99.0], [101.0, 102.0], [99.0, 103.0]])  # mean (100, 100)
    data = {
        "interior_margin_2d": _to_json_points(margin),
        "caruncle_2d": _to_json_points(caruncle),
        "iris_2d": _to_json_points(iris),
        "eye_details": {"look_vec": look_vec, "pupil_size": "0.0000", "iris_size": "0.95",
                        "iris_texture": "eyeball_brown"},
        "lighting_details": {"skybox_texture": "cape_hill", "skybox_exposure": "1.0", "skybox_rotation": "12",
                             "ambient_intensity": "0.9", "light_rotation": "(30.0, 20.0, 0.0)",
                             "light_intensity": "1.1"},
        "eye_region_details": {"primary_skin_texture": "m01", "head_texture": "m01_head"},
        "head_pose": "(351.9546, 189.2452, 0.0000)",
    }
    image = np.full((H, W, 3), (190, 150, 130), np.uint8)  # skin
    cv2.ellipse(image, (160, 100), (60, 25), 0, 0, 360, (240, 240, 240), -1)
    cv2.circle(image, (175, 95), 18, (90, 60, 30), -1)
    cv2.circle(image, (175, 95), 8, (10, 10, 10), -1)
    cv2.imwrite(str(folder / f"{stem}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    (folder / f"{stem}.json").write_text(json.dumps(data))
    return data


def test_mask_landmarks_and_crop(tmp_path: Path) -> None:
    write_sample(tmp_path)
    reader = open_reader("unityeyes", tmp_path)
    assert len(reader) == 1
    pair = next(iter(reader))
    assert pair.image.shape == (36, 60, 3) and pair.mask is not None and pair.mask.shape == (36, 60)
    # Crop: centre (160, 100); corner distance 120 (caruncle mean (100, 100) to margin point (220, 100));
    # box 180 x 108 from (70, 46) -> scale 1/3. The iris centre (175, 95) lands at:
    expected = np.array([(175 - 70 + 0.5) / 3 - 0.5, (95 - 46 + 0.5) / 3 - 0.5])
    np.testing.assert_allclose(pair.pupil_center, expected, atol=0.05)
    x, y = np.round(expected).astype(int)
    assert pair.mask[y, x] == PUPIL
    assert pair.mask[y, x + 5] == IRIS  # 15 source px right of the centre: inside the iris (r 18), outside pupil
    assert pair.mask[16, 15] == SCLERA  # source (116, 95): inside the eye opening, left of the iris
    assert pair.mask[0, 0] == SKIN and pair.mask[35, 59] == SKIN
    # Iris is clipped by the eyelids: none above the opening's top (source y 75 -> row ~9.3).
    assert not (pair.mask[:9] == IRIS).any()
    # The rendered pixels agree with the rasterised labels (dark pupil, bright sclera).
    grey = pair.image.mean(axis=2)
    assert grey[pair.mask == PUPIL].mean() < 60 < 200 < grey[pair.mask == SCLERA].mean()
    iris_landmarks = pair.extra["landmarks"]["iris"]  # type: ignore[index]
    np.testing.assert_allclose(iris_landmarks.mean(axis=0), expected, atol=0.05)


def test_full_resolution_keeps_render_size(tmp_path: Path) -> None:
    write_sample(tmp_path)
    pair = next(iter(open_reader("unityeyes", tmp_path, output_size=None)))
    assert pair.image.shape == (H, W, 3)
    np.testing.assert_allclose(pair.pupil_center, IRIS_CENTER, atol=0.05)
    assert pair.mask[95, 175] == PUPIL


def test_gaze_conversion_signs() -> None:
    np.testing.assert_allclose(look_vec_to_pitchyaw(np.array([0.0, 0.0, -1.0])), [0.0, 0.0], atol=1e-9)
    up = look_vec_to_pitchyaw(np.array([0.0, math.sin(0.3), -math.cos(0.3)]))  # Unity y is up
    np.testing.assert_allclose(up, [0.3, 0.0], atol=1e-9)
    right = look_vec_to_pitchyaw(np.array([math.sin(0.2), 0.0, -math.cos(0.2)]))  # towards image +x
    np.testing.assert_allclose(right, [0.0, -0.2], atol=1e-9)  # MPIIGaze: yaw = atan2(-x, -z)
    np.testing.assert_allclose(head_pose_to_pitchyaw(np.array([0.0, 180.0, 0.0])), [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(head_pose_to_pitchyaw(np.array([350.0, 190.0, 0.0])),
                               np.radians([10.0, -10.0]), atol=1e-12)


def test_reader_gaze_from_json(tmp_path: Path) -> None:
    write_sample(tmp_path, look_vec="(0.0000, 0.5000, -0.8660, 0.0000)")
    pair = next(iter(open_reader("unityeyes", tmp_path)))
    assert pair.gaze is not None and pair.gaze[0] == pytest.approx(math.radians(30), abs=1e-3)
    assert pair.gaze[1] == pytest.approx(0.0, abs=1e-6)


def test_missing_key_names_file_and_key(tmp_path: Path) -> None:
    data = write_sample(tmp_path)
    del data["eye_details"]["iris_size"]
    (tmp_path / "1.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"1\.json.*'eye_details\.iris_size'"):
        next(iter(open_reader("unityeyes", tmp_path)))


def test_malformed_point_string(tmp_path: Path) -> None:
    data = write_sample(tmp_path)
    data["iris_2d"][3] = "(1.0, 2.0)"
    (tmp_path / "1.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"1\.json: 'iris_2d'\[3\]: malformed vector"):
        next(iter(open_reader("unityeyes", tmp_path)))


def test_bad_json_and_missing_image(tmp_path: Path) -> None:
    write_sample(tmp_path)
    (tmp_path / "1.json").write_text("{not json")
    with pytest.raises(UserError, match=r"1\.json: bad JSON"):
        next(iter(open_reader("unityeyes", tmp_path)))
    write_sample(tmp_path)
    (tmp_path / "1.jpg").unlink()
    with pytest.raises(UserError, match=r"1\.jpg: no such image file"):
        next(iter(open_reader("unityeyes", tmp_path)))


def test_parse_vector_rejects_non_numbers() -> None:
    assert parse_vector("(1, -2.5e-1, .5)", 3, "x").tolist() == [1.0, -0.25, 0.5]
    with pytest.raises(UserError, match="malformed vector"):
        parse_vector("(1, a, 2)", 3, "x")
    with pytest.raises(UserError, match="malformed vector"):
        parse_vector([1, 2, 3], 3, "x")
