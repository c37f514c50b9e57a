"""Issue 14's output-safety rows through the CLI. The shared check (:class:`maskpurify.fileio.OutputGuard`) is
tested in ``test_fileio.py``; ``purify.py`` routes every output through it (more cases in
``test_purify_outputs.py``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from _cli import assert_one_line_refusal, run_cli

pytestmark = pytest.mark.usefixtures("one_thread")


def _video(path: Path, frames: int = 4) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (60, 36))
    for i in range(frames):
        frame = np.full((36, 60, 3), 120, np.uint8)
        cv2.circle(frame, (25 + i, 18), 6, (30, 30, 30), -1)
        writer.write(frame)
    writer.release()
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


_EYES: list[np.ndarray] = []


def _eye(path: Path, seed: int = 0) -> Path:
    """A rendered wild eye (automatic masks find a plausible eye in it)."""
    if not _EYES:
        from maskpurify.world.domains import get_preset
        from maskpurify.world.renderer import render_samples

        _EYES.extend(render_samples(get_preset("wild"), 3, (36, 60), 11).images)
    Image.fromarray(_EYES[seed]).save(path)
    return path


def test_row_mask_video_may_not_replace_the_input(tmp_path):
    src = _video(tmp_path / "in.avi")
    before = _digest(src)
    code, _, err = run_cli(["purify", "--quiet", "--input", str(src), "--out", str(tmp_path / "out.mp4"),
                            "--mask-video", str(src), "--overwrite"])
    assert _digest(src) == before, "the input video was replaced"
    assert code == 2 and "is the input" in err


def test_row_mask_video_may_not_equal_out(tmp_path):
    src = _video(tmp_path / "in.avi")
    assert_one_line_refusal(["purify", "--quiet", "--input", str(src), "--out", str(tmp_path / "o.mp4"),
                             "--mask-video", str(tmp_path / "o.mp4")], tmp_path, match="also given as")


def test_out_equal_to_input_image_is_refused(tmp_path):
    src = _eye(tmp_path / "eye.png")
    assert_one_line_refusal(["purify", "--quiet", "--input", str(src), "--out", str(src), "--masks", "auto",
                             "--overwrite"], tmp_path)


def test_row_mask_path_that_is_a_folder_is_refused(tmp_path):
    src = _eye(tmp_path / "eye.png")
    (tmp_path / "eye_mask.png").mkdir()
    assert_one_line_refusal(["purify", "--quiet", "--input", str(src), "--out", str(tmp_path / "o.png")], tmp_path,
                            match="eye_mask.png")


def test_row_changed_input_with_the_same_name_is_purified_again(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    _eye(folder / "a.png", seed=1)
    argv = ["purify", "--quiet", "--input", str(folder), "--out", str(tmp_path / "out"), "--masks", "auto"]
    assert run_cli(argv)[0] == 0
    first = _digest(tmp_path / "out" / "a.png")
    _eye(folder / "a.png", seed=2)
    assert run_cli(argv)[0] == 0
    assert _digest(tmp_path / "out" / "a.png") != first, "stale output kept for a changed input"
