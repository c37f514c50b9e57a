"""The one purification pipeline: crops of any size at the working size and back, the same eye check and outputs
for the library call and the CLI, given masks trusted, grey in grey out, and the gaze command on top."""

from __future__ import annotations

import csv
import doctest
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import maskpurify
from maskpurify.errors import UserError
from maskpurify.evaluation.real_eyes import load_real_eyes
from maskpurify.evaluation.real_photos import load_real_photos, working_crops
from maskpurify.fileio import read_image, save_image
from maskpurify.masks import mirror_eyes
from maskpurify.purification.pipeline import Pipeline, whole_image_box

from _cli import run_cli

pytestmark = pytest.mark.usefixtures("one_thread")

SIZES = ((27, 45), (36, 60), (48, 80), (72, 120))


@pytest.fixture(scope="module")
def shipped() -> Pipeline:
    """The shipped purifier and segmenter, eye crops only (no FaceMesh)."""
    return Pipeline.load(device="cpu", faces_mode="never")


@pytest.fixture(scope="module")
def real_crops() -> np.ndarray:
    """The real-eye check set's crops (canonical side, 36x60)."""
    return load_real_eyes().images


def _resize(image: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    h, w = size
    if nearest:
        return cv2.resize(image, (w, h), interpolation=cv2.INTER_NEAREST)
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if h < image.shape[0] else cv2.INTER_CUBIC)


def _mean_iou(a: np.ndarray, b: np.ndarray) -> float:
    ious = []
    for label in (1, 2, 3):
        union = ((a == label) | (b == label)).sum()
        if union:
            ious.append(((a == label) & (b == label)).sum() / union)
    return float(np.mean(ious)) if ious else 1.0  # two masks without any eye label agree


def test_whole_image_box_holds_the_image_at_the_working_aspect() -> None:
    for h, w in ((36, 60), (48, 80), (72, 120), (40, 90), (100, 60), (27, 45), (37, 61)):
        box = whole_image_box(h, w, (36, 60))
        assert box.width >= w and box.height >= h and box.x0 <= 0 and box.y0 <= 0
        assert box.x0 + box.width >= w and box.y0 + box.height >= h
        assert abs(box.height / box.width - 0.6) < 0.03
    assert whole_image_box(72, 120, (36, 60)) == type(box)(0, 0, 120, 72, 36, 60)


def test_any_crop_size_gets_the_same_verdict_and_mask(shipped: Pipeline) -> None:
    """The same real crops (the real-photo set's, cut at 72x120) brought down to 27x45, 36x60 and 48x80: the eye
    check's verdicts agree with the 36x60 ones (at least 95% of the eyes; 27x45 keeps a quarter of the pixels), the
    working-size masks agree (mean IoU over sclera, iris and pupil >= 0.9) and every output has its input's size."""
    data = load_real_photos()
    big = working_crops(data.images, (72, 120))
    sides = ["right" if f else "left" for f in data.canonical_flip]
    runs = {size: shipped.run([_resize(c, size) for c in big], eye=sides) for size in SIZES}
    base = runs[(36, 60)]
    assert np.mean([r.purified for r in base]) > 0.8
    for size, rows in runs.items():
        assert all(r.image.shape == (*size, 3) and r.mask.shape == size for r in rows)
        assert np.mean([r.purified == b.purified for r, b in zip(rows, base)]) >= 0.95, size
        assert np.mean([_mean_iou(r.eyes[0].mask, b.eyes[0].mask) for r, b in zip(rows, base)]) >= 0.9, size


def test_library_and_cli_share_the_path(tmp_path: Path, shipped: Pipeline, real_crops: np.ndarray) -> None:
    """maskpurify.purify and ``maskpurify purify`` give the same pixels for a 48x80 crop, and the same
    pass-through (output byte-equal to the input's pixels) for a blank crop."""
    crop = _resize(real_crops[0], (48, 80))
    save_image(tmp_path / "eye.png", crop)
    code, out, err = run_cli(["purify", "--quiet", "--input", str(tmp_path / "eye.png"), "--out",
                              str(tmp_path / "eye_out.png"), "--masks", "auto"])
    assert code == 0, err
    library = maskpurify.purify(crop)
    assert library.purified and np.array_equal(read_image(tmp_path / "eye_out.png"), library.image)
    blank = np.full((48, 80, 3), 140, np.uint8)
    save_image(tmp_path / "blank.png", blank)
    code, out, err = run_cli(["purify", "--quiet", "--input", str(tmp_path / "blank.png"), "--out",
                              str(tmp_path / "blank_out.png")])
    assert code == 0 and "not purified" in out and "no plausible eye" in err
    assert np.array_equal(read_image(tmp_path / "blank_out.png"), blank)
    result = maskpurify.purify(blank)
    assert not result.purified and result.eyes[0].reason and np.array_equal(result.image, blank)


def test_blank_and_noise_pass_through_and_open_eyes_do_not(shipped: Pipeline, real_crops: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    negatives = [np.full((48, 80, 3), v, np.uint8) for v in (0, 90, 200)]
    negatives += [rng.integers(0, 256, (36, 60, 3), dtype=np.uint8) for _ in range(3)]
    assert not any(r.purified for r in shipped.run(negatives, eye="left"))


def test_right_eye_is_mirrored_and_given_masks_are_trusted(shipped: Pipeline, real_crops: np.ndarray) -> None:
    """A right-eye crop (the mirror image of a left one) purifies to the mirror image of the left result; a given
    mask is used as it is, with no eye check, even a blank one."""
    left = shipped.purify(real_crops[1], eye="left")
    right = shipped.purify(np.ascontiguousarray(real_crops[1][:, ::-1]), eye="right")
    assert right.eyes[0].side == "right"
    np.testing.assert_array_equal(right.image, mirror_eyes(left.image[None], channels=True)[0])
    np.testing.assert_array_equal(right.eyes[0].output, left.eyes[0].output)  # canonical side in both
    given = np.zeros((36, 60), np.uint8)
    result = shipped.purify(real_crops[1], given, eye="left")
    assert result.method == "given" and result.purified and np.array_equal(result.mask, given)


def test_grey_in_grey_out_and_odd_aspect(shipped: Pipeline, real_crops: np.ndarray) -> None:
    grey = cv2.cvtColor(_resize(real_crops[2], (50, 70)), cv2.COLOR_RGB2GRAY)
    result = shipped.purify(grey, eye="left")
    assert result.image.shape == grey.shape and result.image.dtype == np.uint8 and result.mask.shape == grey.shape


def test_grey_photo_stored_as_rgb_comes_back_grey(shipped: Pipeline, real_crops: np.ndarray) -> None:
    grey = cv2.cvtColor(real_crops[1], cv2.COLOR_RGB2GRAY)
    as_rgb = np.repeat(grey[..., None], 3, axis=2)
    as_rgb[0, 0, 0] = min(255, int(as_rgb[0, 0, 0]) + 2)  # JPEG decoding leaves a level or two between channels
    result = shipped.purify(as_rgb, eye="left")
    assert result.purified and result.image.shape == as_rgb.shape
    spread = result.image.max(axis=2).astype(int) - result.image.min(axis=2)
    assert spread.max() == 0  # no colour added to a grey photo
    exact = shipped.purify(np.repeat(grey[..., None], 3, axis=2), eye="left").image
    np.testing.assert_array_equal(exact[..., 0], shipped.purify(grey, eye="left").image)  # as grey as HxW grey
    colour = shipped.purify(real_crops[1], eye="left").image
    assert (colour.max(axis=2).astype(int) - colour.min(axis=2)).max() > 10  # a colour photo stays in colour


def test_large_crop_keeps_its_detail(shipped: Pipeline, real_crops: np.ndarray) -> None:
    """A crop larger than the working size gets the purifier's change, not its blurred-up output: the photo's fine
    detail stays (here a pixel-level texture the working size cannot hold), and shrunk to the working size the
    result is the purifier's output."""
    rng = np.random.default_rng(5)
    big = _resize(real_crops[0], (108, 180)).astype(np.int16) + rng.integers(-12, 13, (108, 180, 1))
    big = np.clip(big, 0, 255).astype(np.uint8)
    result = shipped.purify(big, eye="left")
    assert result.purified
    texture = big.astype(np.float32) - cv2.GaussianBlur(big, (0, 0), 1.5).astype(np.float32)
    kept = result.image.astype(np.float32) - cv2.GaussianBlur(result.image, (0, 0), 1.5).astype(np.float32)
    assert np.corrcoef(texture.ravel(), kept.ravel())[0, 1] > 0.9
    small = cv2.resize(result.image, (60, 36), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(small - result.eyes[0].output).mean() < 3


def test_closed_real_eyes_pass_through(shipped: Pipeline, real_crops: np.ndarray) -> None:
    # crops 2, 8 and 11 are closed eyes of insightface's t1 group photo; 0 and 1 are the astronaut's open eyes
    results = shipped.run([real_crops[i] for i in (0, 1, 2, 8, 11)], eye="left")
    assert [r.purified for r in results] == [True, True, False, False, False]
    assert all(r.eyes[0].reason.startswith("eye closed") for r in results[2:])


def test_run_stream_gives_what_run_gives_chunk_by_chunk(shipped: Pipeline, real_crops: np.ndarray) -> None:
    """run_stream (the video path: the next chunk prepared in a second thread) returns, per chunk and in order,
    the tags and the results run gives; an error in a chunk's preparation reaches the caller."""
    chunks = [list(real_crops[i:i + 3]) for i in range(0, 9, 3)]
    streamed = list(shipped.run_stream(((c, [f"c{k}/{j}" for j in range(len(c))], k) for k, c in enumerate(chunks))))
    assert [tag for tag, _ in streamed] == [0, 1, 2]
    for chunk, (_, results) in zip(chunks, streamed):
        for got, want in zip(results, shipped.run(chunk)):
            assert np.array_equal(got.image, want.image) and np.array_equal(got.mask, want.mask)
    with pytest.raises(UserError, match="eye 'up'"):
        list(shipped.run_stream([(chunks[0], ["a", "b", "c"], 0)], eye="up"))


def test_bad_inputs_are_one_clear_error(shipped: Pipeline) -> None:
    with pytest.raises(maskpurify.errors.UserError, match="uint8"):
        shipped.purify(np.zeros((36, 60, 3), np.float32))
    with pytest.raises(maskpurify.errors.UserError, match="too small"):
        shipped.purify(np.zeros((4, 60, 3), np.uint8))
    with pytest.raises(maskpurify.errors.UserError, match="choose left, right or auto"):
        shipped.purify(np.zeros((36, 60, 3), np.uint8), eye="up")


def test_api_docstring_examples_run() -> None:
    failures, tried = doctest.testmod(maskpurify, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert tried >= 5 and failures == 0


def test_gaze_command(tmp_path: Path, real_crops: np.ndarray) -> None:
    """``maskpurify gaze`` on a folder: one CSV row per eye with the purified and mask-alone angles, a JSON with
    the command, a picture per image, the purified crops; a second run refuses to overwrite."""
    folder = tmp_path / "eyes"
    folder.mkdir()
    for i, crop in enumerate(real_crops[[0, 1, 4]]):  # open eyes (2 is closed)
        save_image(folder / f"eye{i}.png", _resize(crop, (72, 120)))
    save_image(folder / "blank.png", np.full((36, 60, 3), 128, np.uint8))
    out = tmp_path / "gaze"
    code, stdout, err = run_cli(["gaze", "--quiet", "--input", str(folder), "--out", str(out), "--save-crops",
                                 "--device", "cpu"])
    assert code == 0, err
    with open(out / "gaze.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["input"] for r in rows] == ["blank.png", "eye0.png", "eye1.png", "eye2.png"]
    assert rows[0]["purified"] == "False" and rows[0]["reason"]
    for row in rows[1:]:
        assert row["purified"] == "True" and abs(float(row["pitch"])) < 45 and abs(float(row["yaw"])) < 60
        assert row["width"] == "120" and row["height"] == "72"
    record = json.loads((out / "gaze.json").read_text())
    assert record["command"].startswith("maskpurify gaze") and len(record["eyes"]) == 4
    assert read_image(out / "eye0_gaze.png").shape == (72, 120, 3)
    assert read_image(out / "crops" / "eye0_0.png").shape == (36, 60, 3)
    code, _, err = run_cli(["gaze", "--quiet", "--input", str(folder), "--out", str(out), "--device", "cpu"])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "exists" in err


def test_a_photo_without_mediapipe_says_how_to_get_the_face_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """An image large enough to be a face photo, taken as an eye crop only because MediaPipe is missing: the
    reason it was passed through says how to install the face path."""
    from maskpurify.purification import faces

    monkeypatch.setattr(faces, "mediapipe_available", lambda: False)
    pipeline = Pipeline.load(device="cpu")
    result = pipeline.purify(np.full((300, 400, 3), 120, np.uint8))
    assert not result.purified and "MediaPipe" in result.eyes[0].reason and "setup-faces" in result.eyes[0].reason
    small = pipeline.purify(np.full((36, 60, 3), 120, np.uint8))
    assert "MediaPipe" not in small.eyes[0].reason


def test_readme_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    real_crops: np.ndarray) -> None:
    """The README's Python blocks, run as written in a folder holding an eye.png."""
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert len(blocks) >= 2
    save_image(tmp_path / "eye.png", _resize(real_crops[0], (72, 120)))
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), scope)  # noqa: S102 - the project's own README
    result = scope["result"]
    assert result.image.shape == (72, 120, 3) and result.purified  # type: ignore[attr-defined]
    assert len(scope["gazes"]) == 1  # type: ignore[arg-type]
