"""LPW reader and video I/O on a short MJPG .avi with a moving dark pupil and its per-frame .txt."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskpurify.errors import UserError
from maskpurify.formats import open_reader, pupil_agreement
from maskpurify.formats.video import VideoWriter, iter_frames, video_info
from maskpurify.masks import PUPIL

FRAMES, W, H = 12, 160, 120


def centres() -> np.ndarray:
    return np.array([(40.0 + 6 * i, 50.0 + 2 * i) for i in range(FRAMES)])


def write_video(folder: Path, stem: str = "1", lines: int = FRAMES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 95.0, (W, H))
    for x, y in centres():
        frame = np.full((H, W, 3), 190, np.uint8)
        cv2.circle(frame, (int(x), int(y)), 9, (15, 15, 15), -1)
        writer.write(frame)
    writer.release()
    text = "".join(f"{x:.2f} {y:.2f}\n" for x, y in centres()[:lines])
    if lines > FRAMES:
        text += "".join("100.00 60.00\n" for _ in range(lines - FRAMES))
    path.with_suffix(".txt").write_text(text)
    return path


def dark_masker(image: np.ndarray) -> np.ndarray:
    """A stand-in for the project's segmenter: dark pixels are pupil."""
    return np.where(image.mean(axis=2) < 80, PUPIL, 0).astype(np.uint8)


def test_frames_centres_and_masker_agreement(tmp_path: Path) -> None:
    write_video(tmp_path / "1")
    reader = open_reader("lpw", tmp_path, masker=dark_masker)
    assert len(reader) == FRAMES
    pairs = list(reader)
    assert len(pairs) == FRAMES and pairs[0].name == "1/1/000000" and pairs[0].image.shape == (H, W, 3)
    np.testing.assert_allclose(np.array([p.pupil_center for p in pairs]), centres())
    distances = [pupil_agreement(p.mask, p.pupil_center) for p in pairs]  # type: ignore[arg-type]
    assert max(distances) < 1.5
    assert pupil_agreement(np.zeros((H, W), np.uint8), (1.0, 1.0)) == math.inf


def test_every_kth_frame_and_eye_crop(tmp_path: Path) -> None:
    write_video(tmp_path)
    reader = open_reader("lpw", tmp_path, every=5, output_size=(36, 60), crop_width=60, masker=dark_masker)
    assert len(reader) == 3
    pairs = list(reader)
    assert [p.extra["frame"] for p in pairs] == [0, 5, 10]
    for pair in pairs:
        assert pair.image.shape == (36, 60, 3)
        np.testing.assert_allclose(pair.pupil_center, [29.5, 17.5], atol=0.6)  # the crop centres the pupil
        assert pupil_agreement(pair.mask, pair.pupil_center) < 1.5  # type: ignore[arg-type]
    resized = next(iter(open_reader("lpw", tmp_path, output_size=(60, 80))))
    assert resized.image.shape == (60, 80, 3)
    np.testing.assert_allclose(resized.pupil_center, [(40 + 0.5) / 2 - 0.5, (50 + 0.5) / 2 - 0.5])


def test_annotation_count_mismatch(tmp_path: Path) -> None:
    write_video(tmp_path, lines=FRAMES - 2)
    with pytest.raises(UserError, match=r"1\.avi: 12 video frames but 10 pupil annotations in 1\.txt"):
        list(open_reader("lpw", tmp_path))
    with pytest.warns(UserWarning, match="using the first 10"):
        pairs = list(open_reader("lpw", tmp_path, on_mismatch="truncate"))
    assert len(pairs) == 10


def test_bad_annotation_line(tmp_path: Path) -> None:
    path = write_video(tmp_path)
    path.with_suffix(".txt").write_text("1 2\n3 four\n")
    with pytest.raises(UserError, match=r"1\.txt:2: expected a pupil centre 'x y'"):
        list(open_reader("lpw", tmp_path))


def test_truncated_video(tmp_path: Path) -> None:
    path = write_video(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=r"1\.avi: truncated or corrupt video: decoded \d+ of 12 frames"):
        list(open_reader("lpw", tmp_path))
    path.write_bytes(data[:300])
    with pytest.raises(UserError, match=r"1\.avi: unreadable video"):
        list(open_reader("lpw", tmp_path))


def test_video_writer_round_trip_and_atomicity(tmp_path: Path) -> None:
    source = write_video(tmp_path)
    info = video_info(source)
    assert (round(info.fps), info.width, info.height, info.frame_count) == (95, W, H, FRAMES)
    out = tmp_path / "out" / "purified.mp4"
    with VideoWriter(out, info.fps, (info.width, info.height)) as writer:
        for frame in iter_frames(source):
            writer.write(frame)
    copy = video_info(out)
    assert (copy.width, copy.height, copy.frame_count) == (W, H, FRAMES) and copy.fps == pytest.approx(95, abs=0.5)
    first = next(iter_frames(out))
    assert first[50, 40].mean() < 80 and first[5, 5].mean() > 150  # colours survive (RGB in, RGB out)
    failed = tmp_path / "failed.mp4"
    with pytest.raises(RuntimeError), VideoWriter(failed, 10.0) as writer:
        writer.write(np.zeros((H, W, 3), np.uint8))
        raise RuntimeError("interrupted")
    assert not failed.exists() and not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp.mp4")]
