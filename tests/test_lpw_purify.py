"""``maskpurify purify`` on an LPW-layout folder: every K.avi purified into the same layout with its K.txt, the frame
count and timing kept, so the reader reads the purified videos back with their labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from maskpurify.cli import main
from maskpurify.formats.lpw import LPWReader, write_lpw_video
from maskpurify.formats.video import video_info
from maskpurify.world.renderer import render_sequence

pytestmark = pytest.mark.usefixtures("one_thread")


def test_purify_keeps_an_lpw_folder_aligned(tmp_path: Path, ckpts: dict[str, Path],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "lpw"
    for person, name, seed in (("1", "1", 3), ("1", "2", 4), ("2", "1", 5)):
        seq = render_sequence("nir-wild", 24 + seed, (48, 64), seed=seed)
        write_lpw_video(src / person, name, seq.images, seq.pupil_center, 95.0)
    out = tmp_path / "purified"
    code = main(["purify", "--quiet", "--input", str(src), "--out", str(out), "--checkpoint", str(ckpts["p"]),
                 "--segmenter", str(ckpts["s"]), "--batch-size", "8"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "of 3 LPW videos (95 fps)" in captured.out
    before, after = list(LPWReader(src)), list(LPWReader(out))
    assert [p.name for p in after] == [p.name for p in before] and len(after) == 27 + 28 + 29
    assert all(np.array_equal(a.pupil_center, b.pupil_center) for a, b in zip(before, after))
    for video in src.rglob("*.avi"):
        raw, done = video_info(video), video_info(out / video.relative_to(src))
        assert done.frame_count == raw.frame_count and done.fps == pytest.approx(raw.fps)
        assert (done.width, done.height) == (raw.width, raw.height)
        assert (out / video.relative_to(src)).with_suffix(".txt").read_bytes() == video.with_suffix(".txt").read_bytes()
    # an existing output is refused without --overwrite, in one line
    code = main(["purify", "--quiet", "--input", str(src), "--out", str(out), "--checkpoint", str(ckpts["p"]),
                 "--segmenter", str(ckpts["s"])])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--overwrite" in err[0]


def test_an_lpw_folder_takes_the_near_ir_weights_by_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seq = render_sequence("nir-wild", 12, (96, 128), seed=8)
    write_lpw_video(tmp_path / "lpw", "1", seq.images, seq.pupil_center, 95.0)
    code = main(["purify", "--quiet", "--input", str(tmp_path / "lpw"), "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "purified 12 frames of 1 LPW videos" in captured.out, captured.out
    pairs = list(LPWReader(tmp_path / "out"))
    assert len(pairs) == 12 and pairs[0].image.shape == (96, 128, 3)
