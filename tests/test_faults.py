"""Fault suite: ``kill -9`` of real ``maskpurify`` processes at random moments, then the same command again; the
result must be byte-identical to an uninterrupted run and no temporary file may remain.

``make test`` runs one kill per command (render, train-gaze, folder purify); ``MASKPURIFY_FUZZ=long`` runs 20 random
kill rounds (1-3 kills each, then a re-run) per command: render, train-gaze, train-segmenter, folder purify, dataset
purify
(``MASKPURIFY_FAULT_KILLS=N`` changes the count, ``MASKPURIFY_FUZZ_SEED`` the random kill moments). Kills inside the checkpoint commit itself are
simulated exhaustively (every write, every rename) in ``test_checkpoints.py``.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from _cli import LONG
from maskpurify.fileio import save_image
from maskpurify.world.dataset import load_arrays, write_dataset

KILLS = int(os.environ.get("MASKPURIFY_FAULT_KILLS", 20 if LONG else 1))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class Scenario:
    name: str
    argv: Callable[[Path, Path], list[str]]  # (data folder, out folder) -> maskpurify arguments
    trigger: str  # kill only after this file exists under OUT (the command is past its start-up)
    compare: Callable[[Path], dict[str, str]]  # what must be byte-identical to the uninterrupted run


def _hashes(out: Path, names: list[str] | None = None) -> dict[str, str]:
    files = [out / n for n in names] if names is not None else sorted(p for p in out.rglob("*") if p.is_file())
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _trained(stem: str) -> Callable[[Path], dict[str, str]]:
    return lambda out: _hashes(out, [f"{stem}.safetensors", f"{stem}.json", "config.yaml"])


def _dataset_files(out: Path) -> dict[str, str]:
    """Every output file but the progress record and run.json (which records when the run happened)."""
    return {k: v for k, v in _hashes(out).items() if not k.startswith(".") and k != "run.json"}


TRAIN = ["--quiet", "--set", f"steps={40 if LONG else 16}", "--set", "batch_size=8", "--set", "checkpoint_every=1",
         "--set", "log_every=5", "--set", "eval_every=8", "--set", "num_threads=1"]

SCENARIOS = {
    "render": Scenario("render", lambda data, out: ["render", "--quiet", "--n", "1200" if LONG else "400",
                                                    "--shard-size", "50", "--seed", "5", "--workers", "2",
                                                    "--out", str(out)],
                       "meta.json", _dataset_files),
    "train-gaze": Scenario("train-gaze", lambda data, out: ["train-gaze", "--data", str(data), "--out", str(out),
                                                            *TRAIN, "--set", "model.hidden=16"],
                           "last.json", _trained("gaze")),
    "train-segmenter": Scenario("train-segmenter", lambda data, out: [
        "train-segmenter", "--data", str(data), "--out", str(out), *TRAIN, "--set", "model.base_channels=4",
        "--set", "model.levels=2"], "last.json", _trained("segmenter")),
    "purify-folder": Scenario("purify-folder", lambda data, out: ["purify", "--quiet", "--input",
                                                                  str(data.parent / "images"), "--out", str(out),
                                                                  "--batch-size", "8"],
                              ".maskpurify-progress.json", _dataset_files),
    "purify-dataset": Scenario("purify-dataset", lambda data, out: ["purify", "--quiet", "--input", str(data),
                                                                    "--out", str(out), "--batch-size", "8"],
                               "meta.json", _dataset_files),
}
FAST = ("render", "train-gaze", "purify-folder")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rendered dataset (``set``) and the same eyes as a folder of PNGs with their masks beside (``images``)."""
    data = write_dataset(tmp_path_factory.mktemp("faultdata") / "set", "synthetic", 96, seed=4, shard_size=16,
                         progress=False)
    arrays = load_arrays(data)
    for i, (image, mask) in enumerate(zip(arrays["images"], arrays["masks"])):
        save_image(data.parent / "images" / f"eye{i:03d}.png", image)
        save_image(data.parent / "images" / f"eye{i:03d}_mask.png", mask)
    return data


def _run(argv: list[str], timeout: float = 300) -> None:
    done = subprocess.run([sys.executable, "-m", "maskpurify", *argv], env=ENV, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr


def _timed_run(argv: list[str], trigger: Path) -> float:
    """Run to completion; returns the seconds between ``trigger`` appearing and the end (the kill window)."""
    proc = subprocess.Popen([sys.executable, "-m", "maskpurify", *argv], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    seen = None
    while proc.poll() is None:
        if seen is None and trigger.exists():
            seen = time.monotonic()
        time.sleep(0.005)
    end = time.monotonic()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    assert seen is not None, f"{trigger} never appeared"
    return end - seen


def _kill_at_random(argv: list[str], trigger: Path, rng: random.Random, window: float) -> bool:
    """Start the command, wait for ``trigger``, SIGKILL it after a random part of ``window`` seconds. Returns
    whether it was killed (False: it finished first)."""
    proc = subprocess.Popen([sys.executable, "-m", "maskpurify", *argv], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not trigger.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.05, 0.7) * window)
        if proc.poll() is not None:
            return False
        children = _children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 20
        while any(Path(f"/proc/{pid}").exists() for pid in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in children if Path(f"/proc/{pid}").exists()], "a child outlived its killed parent"
        return True
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc; empty elsewhere). The render's workers among them must
    end with their parent."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while being read
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _temp_files(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if ".tmp" in p.name)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SCENARIOS) if LONG else list(FAST))
def test_kill_9_then_rerun_is_byte_identical(tmp_path, data, name):
    scenario = SCENARIOS[name]
    out = tmp_path / "out"  # every run writes here, so the recorded commands are identical too
    window = _timed_run(scenario.argv(data, out), out / scenario.trigger)
    expected = scenario.compare(out)
    assert expected and _temp_files(out) == []
    shutil.move(out, tmp_path / "reference")
    rng = random.Random(f"{name}-{os.environ.get('MASKPURIFY_FUZZ_SEED', '0')}")
    killed = 0
    for attempt in range(KILLS):
        for _ in range(rng.randint(1, 3) if LONG else 1):
            killed += _kill_at_random(scenario.argv(data, out), out / scenario.trigger, rng, window)
        _run(scenario.argv(data, out))
        assert scenario.compare(out) == expected, f"{name}: run {attempt} differs after a kill"
        assert _temp_files(out) == [], f"{name}: temporary files left: {_temp_files(out)}"
        shutil.rmtree(out)
    assert killed >= 1  # at least one kill landed while the command was working


def _video_frames(path: Path) -> list[bytes]:
    from maskpurify.formats.video import iter_frames

    return [frame.tobytes() for frame in iter_frames(path)]


def _video_temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".o.") and ".tmp" in p.name)


@pytest.mark.slow
def test_kill_9_of_a_video_run_then_rerun_gives_the_same_video(tmp_path, data):
    """``maskpurify purify --input v.avi --out o.mp4`` killed (SIGKILL) while it writes, then run again: no
    ``.o.*.tmp.mp4`` is left and the output is byte-identical to an uninterrupted run's (x264 with the same
    settings and the same frames is deterministic, and the MP4 muxer writes no time stamp), so bytes are compared
    first; the decoded frames are compared as well, which is what must hold whatever the encoder does."""
    from maskpurify.formats.video import VideoWriter

    arrays = load_arrays(data)
    src = tmp_path / "v.avi"
    with VideoWriter(src, 10, (60, 36)) as writer:
        for image in arrays["images"]:
            writer.write(image)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "o.mp4"
    argv = ["purify", "--quiet", "--input", str(src), "--out", str(out), "--batch-size", "4", "--overwrite"]
    _run(argv)
    reference = out.read_bytes()
    reference_frames = _video_frames(out)
    assert len(reference_frames) == len(arrays["images"])
    out.unlink()
    rng = random.Random(f"video-{os.environ.get('MASKPURIFY_FUZZ_SEED', '0')}")
    killed = 0
    for attempt in range(max(1, KILLS // 4) if LONG else 2):
        proc = subprocess.Popen([sys.executable, "-m", "maskpurify", *argv], env=ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while not _video_temps(out_dir) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, 0.3))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                killed += 1
                assert not out.exists() or out.read_bytes() == reference  # never a half-written o.mp4
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        _run(argv)
        assert _video_temps(out_dir) == [], f"temporary files left: {_video_temps(out_dir)}"
        assert out.read_bytes() == reference, f"run {attempt}: the video differs after a kill"
        assert _video_frames(out) == reference_frames
        out.unlink()
    assert killed >= 1  # at least one kill landed while the command was writing


@pytest.mark.slow
def test_ctrl_c_of_a_parallel_render_is_one_line_and_leaves_no_worker(tmp_path):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) of a render with two worker processes: exit
    130 with one line, no worker traceback, no worker left, and the same command finishes the dataset."""
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "maskpurify", "render", "--quiet", "--domain", "wild", "--n", "3000",
            "--shard-size", "256", "--seed", "5", "--workers", "2", "--out", str(out)]
    proc = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (out / "shard-00000.npz").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    children = _children(proc.pid)
    assert children, "the render started no worker"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip().splitlines() == [
        "maskpurify render: interrupted (partial outputs are resumable)"], err
    deadline = time.monotonic() + 20
    while any(Path(f"/proc/{pid}").exists() for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]
    _run(argv[3:])
    assert len(list(out.glob("shard-*.npz"))) == 12 and _temp_files(out) == []
