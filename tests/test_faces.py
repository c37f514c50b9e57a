"""Face photos: FaceMesh eyes -> label maps -> purified eye crops pasted back, the rest of the photo untouched."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data

from maskpurify.purification import faces
from maskpurify.cli import main
from maskpurify.errors import UserError
from maskpurify.fileio import read_image, save_image
from maskpurify.masks import IRIS, PUPIL, SCLERA, SKIN
from maskpurify.purification import Purification
from maskpurify.purification.pipeline import Pipeline, Result

from _landmarks import synthetic_landmarks


pytestmark = pytest.mark.usefixtures("one_thread")


def _outside(shape: tuple[int, ...], boxes: list[tuple[int, int, int, int]], margin: int = 0) -> np.ndarray:
    inside = np.zeros(shape[:2], bool)
    for x0, y0, w, h in boxes:
        x0, y0, w, h = x0 - margin, y0 - margin, w + 2 * margin, h + 2 * margin
        inside[max(0, y0):max(0, y0 + h), max(0, x0):max(0, x0 + w)] = True
    return ~inside



class _GivenEyes:
    """A face finder that places eyes from fixed landmarks (no detector), for tests without MediaPipe."""

    def __init__(self, points: np.ndarray) -> None:
        self.points = points

    def find_eyes(self, image: np.ndarray, crop_size: tuple[int, int]) -> list[faces.Eye]:
        return faces.eyes_from_landmarks(self.points, crop_size)


def _face(engine: Purification, photo: np.ndarray, points: np.ndarray, name: str = "image") -> Result:
    """The pipeline on a face photo whose eyes sit at ``points``."""
    return Pipeline(engine, "always", finder=_GivenEyes(points)).purify(photo, name=name)


def test_landmarks_are_in_pixel_centre_coordinates() -> None:
    """MediaPipe's normalised x spans the image's edges (pixel k covers [k/w, (k+1)/w)); OpenCV, and so the crops
    and masks, put pixel k's centre at k. A landmark at the centre of pixel (3, 7) must come back as (3, 7)."""
    h, w = 40, 50

    class _Point:
        def __init__(self, x: float, y: float) -> None:
            self.x, self.y = x, y

    class _Mesh:
        def process(self, image: np.ndarray) -> object:
            face = type("Face", (), {"landmark": [_Point(3.5 / w, 7.5 / h), _Point(0.0, 1.0)]})
            return type("Result", (), {"multi_face_landmarks": [face]})

    finder = object.__new__(faces.FaceFinder)
    finder._mesh, finder._first = _Mesh(), False
    (points,) = finder.landmarks(np.zeros((h, w, 3), np.uint8))
    np.testing.assert_allclose(points, [[3.0, 7.0], [-0.5, h - 0.5]])


def test_crop_mask_is_drawn_where_the_crop_shows_the_eye() -> None:
    """The iris of :func:`faces.crop_mask` is centred on the iris centre mapped into the crop, for an enlarged
    small eye and a shrunk large one (a map cut from the photo's resolution was blocky and off by up to a pixel)."""
    for half_width in (6.0, 40.0):
        eyes = faces.eyes_from_landmarks(synthetic_landmarks(200.3, 100.7, half_width), (36, 60))
        for eye in eyes:
            mask = faces.crop_mask(eye.crop, eyes)
            ys, xs = np.nonzero(mask >= IRIS)
            cx, cy = eye.crop.map_points(eye.iris_center)
            assert abs(xs.mean() - cx) < 0.3 and abs(ys.mean() - cy) < 0.3, (half_width, eye.side)


def _boxes(result: Result) -> list[tuple[int, int, int, int]]:
    return [eye.box for eye in result.eyes]


def test_masks_and_paste_without_mediapipe(ckpts: dict[str, Path]) -> None:
    """Rasterised labels, the 3:5 crop and pixel-identity outside the crops, with eyes given directly."""
    photo = skimage.data.astronaut()
    eyes = faces.eyes_from_landmarks(synthetic_landmarks(200.0, 100.0, 12.0), (36, 60))
    assert len(eyes) == 2
    for eye in eyes:
        _, _, w, h = eye.box
        assert abs(h / w - 0.6) < 0.05 and w == pytest.approx(faces.BOX_SCALE * 24, abs=1)
    mask = faces.rasterise(photo.shape, eyes)
    assert set(np.unique(mask)) == {SKIN, SCLERA, IRIS, PUPIL}
    assert mask[100, 200] == PUPIL and mask[100, 200 + 4] == IRIS and mask[100, 200 + 8] == SCLERA
    assert mask[120, 200] == SKIN
    engine = Purification.load(ckpts["p"], False)
    result = _face(engine, photo, synthetic_landmarks(200.0, 100.0, 12.0))
    assert result.method == "faces" and result.image.shape == photo.shape
    assert [e.name for e in result.eyes] == ["image (right eye)", "image (left eye)"]
    assert [e.side for e in result.eyes] == ["right", "left"]  # the subject's left eye is canonical
    assert np.array_equal(result.mask, mask)
    outside = _outside(photo.shape, _boxes(result))
    assert np.array_equal(result.image[outside], photo[outside])
    assert (result.image[~outside] != photo[~outside]).any()
    weights = faces.feather_weights(18, 30)
    assert weights.max() == 1.0 and weights[0].max() < 0.2 and weights[9, 15] == 1.0
    with pytest.raises(UserError, match="aspect 3:5"):
        faces.check_crop_size((36, 36))


def test_other_eye_reaches_the_networks_mirrored(ckpts: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The crop of the subject's right eye (inner corner on the image's right) is mirrored to the canonical side
    before the purifier sees it, and its output is mirrored back before pasting; the left eye is not mirrored."""
    from maskpurify.nets.purifier import Purifier

    photo = skimage.data.astronaut()
    eyes = faces.eyes_from_landmarks(synthetic_landmarks(200.0, 100.0, 12.0), (36, 60))
    engine = Purification.load(ckpts["p"], False)
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    original = Purifier.forward

    def spy(self: Purifier, x: object, m: object) -> object:
        y = original(self, x, m)
        seen.append((x.numpy().copy(), y.numpy().copy()))  # type: ignore[attr-defined]
        return y

    monkeypatch.setattr(Purifier, "forward", spy)
    result = _face(engine, photo, synthetic_landmarks(200.0, 100.0, 12.0))
    assert len(seen) == 1
    inputs, outputs = seen[0]
    expected_photo = photo.copy()
    for k, eye in enumerate(eyes):
        crop = eye.crop.apply_image(photo).astype(np.float32) / 255.0
        expected = crop[:, ::-1] if eye.crop_side == "right" else crop
        np.testing.assert_allclose(inputs[k].transpose(1, 2, 0), expected, atol=1e-6)
        # What is pasted is the network's change to its input, mirrored back for the right eye.
        patch = np.clip(np.round(outputs[k].transpose(1, 2, 0) * 255), 0, 255).astype(np.float32)
        change = patch - np.round(expected * 255)
        faces.paste(expected_photo, change[:, ::-1] if eye.crop_side == "right" else change, eye.crop)
    assert np.abs(result.image.astype(int) - expected_photo).max() <= 1  # float32 rounding of the output only


def test_closed_eye_is_left_as_it_was(ckpts: dict[str, Path]) -> None:
    """A closed eye (the eyelid contour collapsed to a line) has no plausible eye mask: it is not purified, its
    box stays pixel-identical, and it is listed; the open eye is purified as usual. --no-eye-check purifies both."""
    photo = skimage.data.astronaut()
    points = synthetic_landmarks(200.0, 100.0, 12.0)
    lid = list(faces.LEFT_EYELID)
    points[lid, 1] = 100.0  # upper and lower lid meet
    engine = Purification.load(ckpts["p"], False)
    result = _face(engine, photo, points, name="face.png")
    assert result.purified and len(result.passed_through) == 1
    name, reason = result.passed_through[0]
    assert name == "face.png (left eye)" and reason
    boxes = {e.name.split("(")[1].split()[0]: e.box for e in result.eyes}
    x0, y0, w, h = boxes["left"]
    assert np.array_equal(result.image[y0:y0 + h, x0:x0 + w], photo[y0:y0 + h, x0:x0 + w])
    x0, y0, w, h = boxes["right"]
    assert not np.array_equal(result.image[y0:y0 + h, x0:x0 + w], photo[y0:y0 + h, x0:x0 + w])
    engine.check_eyes = False
    everything = _face(engine, photo, points, name="face.png")
    assert everything.passed_through == []
    x0, y0, w, h = boxes["left"]
    assert not np.array_equal(everything.image[y0:y0 + h, x0:x0 + w], photo[y0:y0 + h, x0:x0 + w])


def test_missing_mediapipe_is_a_clear_error(tmp_path: Path, ckpts: dict[str, Path],
                                            capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import mediapipe -> ImportError
    save_image(tmp_path / "face.png", skimage.data.astronaut())
    code = main(["purify", "--input", str(tmp_path / "face.png"), "--out", str(tmp_path / "out.png"),
                 "--checkpoint", str(ckpts["p"]), "--masks", "faces"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "make setup-faces" in err[0]


@pytest.fixture()
def mediapipe() -> object:
    return pytest.importorskip("mediapipe", reason="mediapipe is not installed (optional extra: make setup-faces)")


def test_astronaut_face_photo(ckpts: dict[str, Path], mediapipe: object) -> None:
    photo = skimage.data.astronaut()
    engine = Purification.load(ckpts["p"], False)
    with Pipeline(engine, "always") as pipeline:
        result = pipeline.purify(photo)
    assert result.method == "faces" and len(result.eyes) == 2
    # The eyes of skimage's astronaut (Eileen Collins) are around x 190-260, y 95-110. Her left eye (on the
    # image's right, inner corner towards the nose on its left) is the canonical side; her right eye is mirrored.
    assert {e.name: e.side for e in result.eyes} == {"image (right eye)": "right", "image (left eye)": "left"}
    for eye in result.eyes:
        x0, y0, w, h = eye.box
        assert 170 < x0 + w / 2 < 270 and 85 < y0 + h / 2 < 120 and abs(h / w - 0.6) < 0.05
        assert {SCLERA, IRIS, PUPIL} <= set(np.unique(eye.mask))
        assert eye.crop.shape == (36, 60, 3) and eye.output.shape == (36, 60, 3)
    # her head is rolled by a few degrees, so the turned boxes' corners reach a pixel or two past the upright ones
    outside = _outside(photo.shape, _boxes(result), margin=2)
    assert outside.mean() > 0.99
    assert np.array_equal(result.image[outside], photo[outside])  # pixel-identical outside the crops
    assert (result.image[~outside] != photo[~outside]).any(axis=-1).mean() > 0.3  # purified inside


def test_cli_auto_face_photo_and_eye_crop(tmp_path: Path, ckpts: dict[str, Path],
                                          capsys: pytest.CaptureFixture[str], mediapipe: object) -> None:
    photo = skimage.data.astronaut()
    save_image(tmp_path / "face.png", photo)
    out = tmp_path / "out" / "face.png"
    code = main(["purify", "--quiet", "--input", str(tmp_path / "face.png"), "--out", str(out), "--checkpoint",
                 str(ckpts["p"]), "--masks", "auto", "--save-masks", "--face-crop-size", "72x120"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "mask: faces, 2 eyes" in captured.out
    result = read_image(out)
    assert result.shape == photo.shape and not np.array_equal(result, photo)
    assert (out.parent / "face_overlay.png").is_file() and (out.parent / "face_mask.png").is_file()
    # A close-up eye crop: FaceMesh finds no face, the segmenter makes the mask.
    crop = photo[90:126, 180:240]
    save_image(tmp_path / "crop.png", crop)
    code = main(["purify", "--quiet", "--input", str(tmp_path / "crop.png"), "--out", str(tmp_path / "c.png"),
                 "--checkpoint", str(ckpts["p"]), "--segmenter", str(ckpts["s"]), "--masks", "auto"])
    captured = capsys.readouterr()
    assert code == 0 and "mask: segmenter" in captured.out
    # --masks faces on a picture without a face.
    noise = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    save_image(tmp_path / "noise.png", noise)
    code = main(["purify", "--quiet", "--input", str(tmp_path / "noise.png"), "--out", str(tmp_path / "n.png"),
                 "--checkpoint", str(ckpts["p"]), "--masks", "faces"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "FaceMesh found no face" in err[-1]


def test_face_photo_prints_nothing_but_its_line(tmp_path: Path, mediapipe: object) -> None:
    """MediaPipe's own C++ log lines (set-up, first image) do not reach the user's stderr: a face photo purified
    through the CLI prints its one summary line and nothing else."""
    import subprocess

    save_image(tmp_path / "face.png", skimage.data.astronaut())
    done = subprocess.run([sys.executable, "-m", "maskpurify", "purify", "--quiet", "--device", "cpu", "--input",
                           "face.png", "--out", "out.png"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.strip().splitlines() == ["purified face.png -> out.png (mask: faces, 2 eyes)"]
