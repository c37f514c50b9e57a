"""Face video: faces found at every scale and tracked across frames, landmarks and purified eyes smoothed over time,
live sources dropping frames rather than queueing them, and the summary (faces found, eyes purified, steadiness)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskpurify.cli import main
from maskpurify.evaluation.real_eyes import load_real_eyes
from maskpurify.formats.video import VideoWriter, iter_frames
from maskpurify.purification import faces
from maskpurify.purification.tracking import EyeSmoother, OneEuroFilter, windows
from maskpurify.purification.video import LiveFrames, purify_video

from _landmarks import synthetic_landmarks

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mediapipe() -> object:
    return pytest.importorskip("mediapipe", reason="mediapipe is not installed (optional extra: make setup-faces)")


def _landmarks(cx: float, cy: float, half_width: float) -> np.ndarray:
    """478 FaceMesh-numbered points of a level frontal face with both eyes around (cx, cy)."""
    return synthetic_landmarks(cx - 2 * half_width, cy, half_width)


def _box_centres(points_per_frame: list[np.ndarray]) -> np.ndarray:
    """(frames, eyes, 3): each eye box's centre x, y and width, as the pipeline cuts it."""
    return np.array([[(*e.crop.centre, e.crop.width) for e in faces.eyes_from_landmarks(p, (36, 60))]
                     for p in points_per_frame])


def test_one_euro_smoothing_reduces_box_jitter_and_follows_motion() -> None:
    """FaceMesh-like landmark noise (1.5 px on a face whose eyes are 40 px wide) moves the raw eye boxes; through
    the filter, box centres and widths jitter at most half as much. A face that then moves steadily is followed:
    the smoothed boxes trail it by less than 2 px after a few frames."""
    rng = np.random.default_rng(0)
    truth = _landmarks(640, 360, 20)
    raw = [truth + rng.normal(0, 1.5, truth.shape) for _ in range(120)]
    smoother = OneEuroFilter()
    smoothed = []
    for points in raw:
        corners = float(np.linalg.norm(points[faces.RIGHT_CORNERS[0]] - points[faces.LEFT_CORNERS[0]]))
        smoothed.append(smoother(points, corners))
    jitter_raw = _box_centres(raw)[20:].std(0)
    jitter_smooth = _box_centres(smoothed)[20:].std(0)
    assert (jitter_smooth < 0.5 * jitter_raw).all(), (jitter_raw, jitter_smooth)
    # Steady motion, 6 px per frame to the right: the lag stays small.
    lags = []
    for k in range(1, 31):
        moved = truth + np.array([6.0 * k, 0.0])
        out = smoother(moved, 80.0)
        lags.append(float(np.abs(out - moved).mean()))
    assert max(lags[-10:]) < 2.0, lags


def test_eye_smoother_steadies_a_still_eye_and_passes_a_blink() -> None:
    """Purifier flicker on a still eye is averaged down; a big change of the input eye (a blink) comes through
    within a frame or two."""
    rng = np.random.default_rng(1)
    crop = np.full((36, 60, 3), 120, np.uint8)
    smoother = EyeSmoother()
    outputs = []
    for _ in range(60):
        flicker = np.clip(150 + rng.normal(0, 8, crop.shape), 0, 255).astype(np.uint8)
        outputs.append(smoother((0, "left"), crop, flicker).astype(float))
    raw_change = 8 * np.sqrt(2) * np.sqrt(2 / np.pi)  # mean |difference| of two independent N(0, 8) draws
    assert np.mean([np.abs(a - b).mean() for a, b in zip(outputs[20:], outputs[21:])]) < 0.6 * raw_change
    closed = np.full((36, 60, 3), 40, np.uint8)
    dark = np.full((36, 60, 3), 30, np.uint8)
    after = [smoother((0, "left"), closed, dark).astype(float) for _ in range(2)]
    assert np.abs(after[1] - 30).mean() < 0.15 * 120  # within 15% of the new eye after two frames
    smoother.keep(set())
    fresh = smoother((0, "left"), crop, np.full_like(crop, 200))
    assert (fresh == 200).all()  # a forgotten eye starts afresh


def test_detection_windows_cover_every_frame_size() -> None:
    for height, width in ((480, 640), (720, 1280), (1080, 1920), (1280, 720)):
        for fraction_side in {side for _, _, side in windows(height, width)}:
            covered = np.zeros((height, width), bool)
            for x, y, side in windows(height, width):
                if side == fraction_side:
                    covered[y:y + side, x:x + side] = True
            assert covered.all() and fraction_side <= min(height, width)


def test_live_source_drops_frames_rather_than_queueing() -> None:
    """A consumer slower than the source gets the newest frame each time: frames it could not take are dropped
    and counted, never queued; the frames it gets come in order and the last one is not lost."""
    frames = [np.full((4, 4, 3), i, np.uint8) for i in range(40)]
    live = LiveFrames(iter(frames), pace=0.004)
    taken = []
    for frame in live:
        taken.append(int(frame[0, 0, 0]))
        time.sleep(0.03)  # the slow machine
    assert taken == sorted(taken) and len(set(taken)) == len(taken)
    assert taken[-1] == 39
    assert live.dropped > 0 and live.dropped + len(taken) == live.delivered == 40


def _eye_video(path: Path, count: int) -> Path:
    rng = np.random.default_rng(2)
    with VideoWriter(path, 30.0, (60, 36)) as writer:
        for _ in range(count):
            writer.write(rng.integers(80, 180, (36, 60, 3), dtype=np.uint8))
    return path


def test_live_file_drops_frames_when_the_pipeline_is_slow(tmp_path: Path, ckpts: dict[str, Path]) -> None:
    """purify_video on a file read live (a camera's stand-in) with a pipeline slower than the frame rate: frames
    are dropped, the run does not fall further behind, and the output keeps the source's duration (each processed
    frame at its own time, repeated over the dropped ones after it)."""
    from maskpurify.purification import Purification
    from maskpurify.purification.pipeline import Pipeline

    src = _eye_video(tmp_path / "cam.mp4", 45)
    engine = Purification.load(ckpts["p"], ckpts["s"], batch_size=8, check_eyes=False)
    fast = engine.purify_batch

    def slow(*args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(0.1)  # networks at a third of a frame rate of 30 fps
        return fast(*args, **kwargs)

    engine.purify_batch = slow  # type: ignore[method-assign]
    out = tmp_path / "out.mp4"
    stats = purify_video(Pipeline(engine, "never", video=True), src, out, progress=False, live=True)
    written = list(iter_frames(out))
    assert stats.dropped > 0 and stats.frames + stats.dropped == 45 and stats.frames < 30
    assert len(written) == 45  # the source's 1.5 s at 30 fps, not stats.frames at 30 fps
    # dropped frames are held, not skipped (H.264 may alter a repeat slightly; the source's frames are noise)
    repeats = sum(np.abs(a.astype(int) - b).mean() < 2 for a, b in zip(written, written[1:]))
    assert repeats >= stats.dropped - 2


def test_encoder_preset_trades_size_for_speed(tmp_path: Path, ckpts: dict[str, Path],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """--encoder-preset reaches the H.264 encoder (ultrafast: a larger file of the same frames); a name x264 does
    not know is one line and nothing written."""
    src = _eye_video(tmp_path / "eye.mp4", 8)
    sizes = {}
    for preset in ("ultrafast", "veryfast"):
        out = tmp_path / f"{preset}.mp4"
        assert main(["purify", "--quiet", "--input", str(src), "--out", str(out), "--checkpoint", str(ckpts["p"]),
                     "--no-eye-check", "--encoder-preset", preset]) == 0
        sizes[preset] = out.stat().st_size
        assert sum(1 for _ in iter_frames(out)) == 8
    assert sizes["ultrafast"] > 1.3 * sizes["veryfast"]
    capsys.readouterr()
    code = main(["purify", "--quiet", "--input", str(src), "--out", str(tmp_path / "x.mp4"), "--checkpoint",
                 str(ckpts["p"]), "--encoder-preset", "warp"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and "unknown H.264 preset 'warp'" in lines[0]
    assert not (tmp_path / "x.mp4").exists()


def _face_video(path: Path, size: tuple[int, int], count: int) -> Path:
    from maskpurify.evaluation.face_video import write_face_video

    return write_face_video(path, size, count)


SUMMARY = re.compile(r"a face in (\d+) of (\d+) frames, (\d+) eyes purified; eyes' frame-to-frame change "
                     r"([\d.]+) in, ([\d.]+) out")


def test_hd_face_video_tracked_in_every_frame_and_steady(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         mediapipe: object) -> None:
    """A 1280x720 video of a face photo 610 px tall moving and zooming through the frame (FaceMesh on the whole
    first frame finds no face): the face is found and both eyes purified in at least 99% of the frames, and the
    purified eyes (the shipped networks) change from frame to frame no more than the input eyes."""
    src = _face_video(tmp_path / "face.mp4", (720, 1280), 60)
    with faces.FaceFinder() as finder:  # what the video path did before: FaceMesh on the whole frame
        assert finder.landmarks(next(iter_frames(src))) == []
    out = tmp_path / "face_purified.mp4"
    code = main(["purify", "--quiet", "--input", str(src), "--out", str(out), "--masks", "faces"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    match = SUMMARY.search(captured.out)
    assert match, captured.out
    found, frames, eyes, change_in, change_out = (float(v) for v in match.groups())
    assert frames == 60 and found >= 0.99 * frames and eyes >= 2 * 0.99 * frames
    assert change_out <= change_in
    assert sum(1 for _ in iter_frames(out)) == 60


def test_face_video_found_without_asking(tmp_path: Path, ckpts: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                         mediapipe: object) -> None:
    """Without --masks, a face video is purified as a face video (decided on its first frames, as a photo is),
    and a video of eye crops stays an eye video."""
    src = _face_video(tmp_path / "face.mp4", (480, 640), 12)
    out = tmp_path / "face_purified.mp4"
    code = main(["purify", "--quiet", "--input", str(src), "--out", str(out), "--checkpoint", str(ckpts["p"])])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    match = SUMMARY.search(captured.out)
    assert match and float(match.group(1)) == 12 and float(match.group(3)) >= 2 * 12, captured.out
    eyes = tmp_path / "eyes.mp4"  # an eye close-up, large enough that FaceMesh is asked
    with VideoWriter(eyes, 30.0, (200, 120)) as writer:
        for _ in range(3):
            writer.write(cv2.resize(load_real_eyes().images[0], (200, 120), interpolation=cv2.INTER_CUBIC))
    code = main(["purify", "--quiet", "--input", str(eyes), "--out", str(tmp_path / "eyes_out.mp4")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "a face in" not in captured.out and "purified 3 frames" in captured.out
    assert "written unchanged" not in captured.out  # the eye was purified


def test_face_video_without_mediapipe_says_how_to_get_it(tmp_path: Path, ckpts: dict[str, Path],
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Without MediaPipe a large video is taken as an eye video, with one line saying how to purify its faces."""
    monkeypatch.setattr(faces, "mediapipe_available", lambda: False)
    src = _eye_video(tmp_path / "frames.mp4", 3)
    big = tmp_path / "big.mp4"
    with VideoWriter(big, 30.0, (200, 120)) as writer:
        for frame in iter_frames(src):
            writer.write(cv2.resize(frame, (200, 120)))
    code = main(["purify", "--quiet", "--input", str(big), "--out", str(tmp_path / "out.mp4"), "--checkpoint",
                 str(ckpts["p"]), "--no-eye-check"])
    err = capsys.readouterr().err
    assert code == 0 and "taken as an eye video" in err and "make setup-faces" in err, err
    code = main(["purify", "--quiet", "--input", str(big), "--out", str(tmp_path / "x.mp4"), "--checkpoint",
                 str(ckpts["p"]), "--segmenter", "none"])  # nothing to make masks with: one line says both
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "no segmenter" in lines[0] and "MediaPipe" in lines[0], lines


def test_face_video_at_480p_and_1080p(tmp_path: Path, ckpts: dict[str, Path], mediapipe: object) -> None:
    """The same face in a 640x480 and a 1920x1080 frame is found in every frame too."""
    from maskpurify.purification import Purification
    from maskpurify.purification.inputs import MaskSource
    from maskpurify.purification.pipeline import Pipeline

    engine = Purification.load(ckpts["p"], False)
    for size in ((480, 640), (1080, 1920)):
        src = _face_video(tmp_path / f"face{size[0]}.mp4", size, 20)
        with Pipeline(engine, "always", video=True) as pipeline:
            stats = purify_video(pipeline, src, tmp_path / f"out{size[0]}.mp4", masks=MaskSource("faces"),
                                 progress=False)
        assert stats.frames == 20 and stats.face_frames == 20, size


def test_video_without_a_face_exits_non_zero_with_one_line(tmp_path: Path, ckpts: dict[str, Path],
                                                           capsys: pytest.CaptureFixture[str],
                                                           mediapipe: object) -> None:
    rng = np.random.default_rng(3)
    src = tmp_path / "noface.mp4"
    with VideoWriter(src, 30.0, (320, 240)) as writer:
        for _ in range(10):
            writer.write(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
    out = tmp_path / "out.mp4"
    code = main(["purify", "--quiet", "--input", str(src), "--out", str(out), "--masks", "faces",
                 "--checkpoint", str(ckpts["p"])])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and "no face found in any of its 10 frames" in lines[0], captured.err
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_missing_camera_is_one_line(tmp_path: Path, ckpts: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """A camera number with no camera behind it: one line, exit 2, nothing written (97: no machine has it)."""
    out = tmp_path / "cam.mp4"
    code = main(["purify", "--quiet", "--input", "97", "--out", str(out), "--checkpoint", str(ckpts["p"]),
                 "--segmenter", str(ckpts["s"])])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and lines == ["maskpurify purify: error: --input 97: no camera 97 (OpenCV cannot open it)"]
    assert not out.exists()
