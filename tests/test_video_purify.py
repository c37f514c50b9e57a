"""``maskpurify purify`` on videos: streamed, same frame count/fps/size, optional mask video, constant memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskpurify.cli import main
from maskpurify.formats.video import iter_frames, video_info


pytestmark = pytest.mark.usefixtures("one_thread")


def _make_video(path: Path, frames: int, size: tuple[int, int] = (36, 60), fps: float = 25.0) -> Path:
    """An MJPG .avi of a dark disc (a 'pupil') moving over a bright ellipse (an 'eye')."""
    h, w = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for i in range(frames):
        frame = np.full((h, w, 3), (90, 120, 170), np.uint8)
        cv2.ellipse(frame, (w // 2, h // 2), (w // 3, h // 4), 0, 0, 360, (235, 235, 235), -1)
        cx = int(w / 2 + (w / 8) * np.sin(i / 7))
        cv2.circle(frame, (cx, h // 2), max(2, h // 6), (40, 60, 90), -1)
        cv2.circle(frame, (cx, h // 2), max(1, h // 14), (10, 10, 10), -1)
        writer.write(frame)
    writer.release()
    return path


def test_video_end_to_end_with_mask_video(tmp_path: Path, ckpts: dict[str, Path],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    src = _make_video(tmp_path / "eye.avi", 60, (120, 200), fps=30.0)
    out, masks = tmp_path / "out" / "eye.mp4", tmp_path / "out" / "eye_masks.avi"
    code = main(["purify", "--quiet", "--input", str(src), "--out", str(out), "--checkpoint", str(ckpts["p"]),
                 "--segmenter", str(ckpts["s"]), "--mask-video", str(masks), "--batch-size", "16"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "purified 60 frames (200x120 at 30 fps)" in captured.out
    for path in (out, masks):
        info = video_info(path)
        assert (info.width, info.height) == (200, 120) and info.fps == pytest.approx(30.0)
        assert sum(1 for _ in iter_frames(path)) == 60
    first_in, first_out = next(iter_frames(src)), next(iter_frames(out))
    assert first_out.shape == first_in.shape
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []  # no temp files left

    # Existing output: refused without --overwrite, one line.
    code = main(["purify", "--quiet", "--input", str(src), "--out", str(out), "--checkpoint", str(ckpts["p"]),
                 "--segmenter", str(ckpts["s"])])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "already exists; pass --overwrite" in err[0]
    # No segmenter: videos need automatic masks.
    code = main(["purify", "--quiet", "--input", str(src), "--out", str(tmp_path / "x.mp4"),
                 "--checkpoint", str(ckpts["p"]), "--segmenter", "none"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no segmenter" in err[0]
    # A truncated video is named.
    broken = tmp_path / "broken.avi"
    broken.write_bytes(src.read_bytes()[: len(src.read_bytes()) // 2])
    code = main(["purify", "--quiet", "--input", str(broken), "--out", str(tmp_path / "y.mp4"),
                 "--checkpoint", str(ckpts["p"]), "--segmenter", str(ckpts["s"])])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "broken.avi" in err[0]
    assert not (tmp_path / "y.mp4").exists()


_MEMORY_PROBE = """
import ctypes, ctypes.util, json, os, sys
from maskpurify.purification import Purification
from maskpurify.purification.video import purify_video
from maskpurify.purification.pipeline import Pipeline

def current_rss_bytes():
    # resident set size of this process now (Linux /proc; 0 elsewhere)
    try:
        with open(f"/proc/{os.getpid()}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
src, out, purifier, segmenter = sys.argv[1:5]
libc = ctypes.CDLL(ctypes.util.find_library("c"))
engine = Purification.load(purifier, segmenter, batch_size=16)
samples = []

def sample(n):
    libc.malloc_trim(0)  # hand freed heap back first, so RSS follows live memory, not allocator caching
    samples.append((n, current_rss_bytes()))

stats = purify_video(Pipeline(engine, "never", video=True), src, out, out + ".masks.mp4", progress=False, on_frames=sample)
print(json.dumps({"frames": stats.frames, "samples": samples}))
"""


def test_video_memory_is_constant(tmp_path: Path, ckpts: dict[str, Path]) -> None:
    """Resident memory does not grow with the number of frames: the median RSS over frames 300-400 stays
    within 6 MB of the median over frames 100-200, while keeping every 120x200 frame would add 14 MB per 200
    frames. Measured in a fresh process (the rest of the test session's memory would blur it) and after
    malloc_trim at each sample (glibc otherwise keeps freed arenas, making RSS swing by tens of MB)."""
    src = _make_video(tmp_path / "long.avi", 400, (120, 200))
    result = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(src), str(tmp_path / "long.mp4"),
                             str(ckpts["p"]), str(ckpts["s"])], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    samples = probe["samples"]
    assert probe["frames"] == 400
    if not samples[0][1]:
        pytest.skip("no /proc RSS on this platform")
    early = float(np.median([rss for n, rss in samples if 100 <= n <= 200])) / 2**20
    late = float(np.median([rss for n, rss in samples if 300 <= n <= 400])) / 2**20
    print(f"video memory: median RSS {early:.1f} MB (frames 100-200), {late:.1f} MB (frames 300-400), "
          f"growth {late - early:+.2f} MB")
    assert late - early < 6.0



@pytest.mark.skipif(not Path("weights/segmenter.safetensors").is_file(), reason="needs the shipped segmenter")
def test_video_frames_without_a_plausible_eye_pass_through(tmp_path: Path, ckpts: dict[str, Path],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Black frames (a closed camera, a cut) get no invented eye: written as they came, one line each, counted."""
    from maskpurify.world.renderer import render_samples

    eyes = render_samples("synthetic", 6, seed=12).images
    src = tmp_path / "eyes.avi"
    writer = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (60, 36))
    for frame in [*eyes[:3], np.zeros((36, 60, 3), np.uint8), *eyes[3:], np.zeros((36, 60, 3), np.uint8)]:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    out = tmp_path / "out.avi"
    code = main(["purify", "--quiet", "--input", str(src), "--out", str(out), "--checkpoint", str(ckpts["p"]),
                 "--segmenter", "weights/segmenter", "--batch-size", "4"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "purified 8 frames" in captured.out and "2 written unchanged: no plausible eye" in captured.out
    lines = captured.err.strip().splitlines()
    assert [line.split(": not purified")[0] for line in lines] == [f"{src} frame 3", f"{src} frame 7"]
    frames_in, frames_out = list(iter_frames(src)), list(iter_frames(out))
    assert len(frames_out) == 8
    for i in (3, 7):  # unchanged up to the codec
        assert np.abs(frames_out[i].astype(int) - frames_in[i]).mean() < 3
