"""Resuming checks what changed (one place, :func:`maskpurify.training.loop.fit`, for every trainer); a training run
refused for bad settings or data leaves nothing behind; ``purify --recursive`` never walks into an earlier run's
output folder; the video container follows the extension of ``--out``."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from _cli import assert_one_line_refusal, run_cli, snapshot
from maskpurify.checkpoints import read_pointer
from maskpurify.config import from_dict
from maskpurify.errors import UserError
from maskpurify.fileio import save_image
from maskpurify.purification.inputs import list_images
from maskpurify.purification.output import PROGRESS_FILE
from maskpurify.training.loop import RESUME_MAY_CHANGE
from maskpurify.world.dataset import write_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

#: A tiny gaze run: 8-eye batches, a 16-wide hidden layer, one thread.
TINY = ["--quiet", "--set", "batch_size=8", "--set", "model.hidden=16", "--set", "log_every=2", "--set",
        "eval_every=4", "--set", "checkpoint_every=2", "--set", "num_threads=1", "--set", "warmup=1"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 rendered synthetic eyes (36x60) in two shards."""
    return write_dataset(tmp_path_factory.mktemp("resume") / "set", "synthetic", 40, seed=5, shard_size=20,
                         progress=False)


def _gaze(dataset: Path, out: Path, *extra: str) -> list[str]:
    return ["train-gaze", "--data", str(dataset), "--out", str(out), *TINY, *extra]


def _ok(argv: list[str]) -> dict:
    code, stdout, err = run_cli(argv)
    assert code == 0, err
    return json.loads(stdout.strip().splitlines()[-1])


def _trained_steps(out: Path) -> int:
    return json.loads((out / "gaze.json").read_text())["trained"]["steps"]


def test_resume_with_other_settings_is_refused_naming_each_key(tmp_path, dataset):
    out = tmp_path / "run"
    assert _ok(_gaze(dataset, out, "--set", "steps=6", "--max-steps", "4")) == {"steps_done": 4, "finished": False}
    # Other settings: one line naming every differing key with its old and new value; nothing written or read.
    line = assert_one_line_refusal(_gaze(dataset, out, "--set", "steps=6", "--set", "lr=0.5"), tmp_path, dataset)
    assert line.endswith(f"{out}: holds a run with lr=0.002; this command asks lr=0.5; rerun with the same settings "
                         "to resume, or --no-resume to start over"), line
    assert_one_line_refusal(_gaze(dataset, out, "--set", "steps=6", "--set", "lr=0.5", "--set", "model.hidden=32"),
                            tmp_path, dataset,
                            match=r"with lr=0\.002, model\.hidden=16; this command asks lr=0\.5, model\.hidden=32;")
    # Fewer steps than the checkpoint holds: never exported under a sidecar that says fewer.
    assert_one_line_refusal(_gaze(dataset, out, "--set", "steps=3"), tmp_path, dataset,
                            match=r"with steps=6; this command asks steps=3;")
    assert_one_line_refusal(_gaze(dataset, out, "--set", "steps=6", "--set", "data.val_fraction=0.5"),
                            tmp_path, dataset, match=r"data\.val_fraction=0\.05; this command asks data\.val_fra")
    assert not (out / "gaze.safetensors").exists()
    # What does not change the weights may change: threads, device, the intervals (and --max-steps, --quiet).
    # The intervals: the weights are bit for bit those of the same run uninterrupted, with the first intervals.
    twin = tmp_path / "twin"
    shutil.copytree(out, twin)
    summary = _ok(_gaze(dataset, out, "--set", "steps=6", "--set", "log_every=3", "--set", "eval_every=2",
                        "--set", "checkpoint_every=1", "--device", "cpu"))
    assert summary["finished"] and summary["steps_done"] == 6 and _trained_steps(out) == 6
    full = tmp_path / "full"
    _ok(_gaze(dataset, full, "--set", "steps=6"))
    a, b = load_file(full / "gaze.safetensors"), load_file(out / "gaze.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # Threads: the same up to floating-point rounding (sums in another order).
    assert _ok(_gaze(dataset, twin, "--set", "steps=6", "--set", "num_threads=2"))["finished"]
    c = load_file(twin / "gaze.safetensors")
    # (a conv bias before batch norm has no gradient but rounding noise, which Adam scales up: 1e-4 absolute)
    assert all(torch.allclose(a[k], c[k], rtol=1e-3, atol=1e-4) for k in a)
    assert {"num_threads", "device", "log_every", "eval_every", "preview_every", "checkpoint_every"} == \
        RESUME_MAY_CHANGE


def test_no_resume_starts_over_cleanly_and_the_sidecar_says_the_steps_trained(tmp_path, dataset):
    out = tmp_path / "run"
    _ok(_gaze(dataset, out, "--set", "steps=6"))
    (out / "previews").mkdir(exist_ok=True)
    (out / "previews" / "step_000006.png").write_bytes(b"an old preview")
    (out / "notes.txt").write_text("mine")
    before = snapshot(dataset)
    # Start over with other settings, stopped after one step: nothing of the earlier run is left to mistake.
    assert _ok(_gaze(dataset, out, "--set", "steps=3", "--no-resume", "--max-steps", "1"))["steps_done"] == 1
    for gone in ("gaze.safetensors", "gaze.json", "previews", "log.csv"):
        assert not (out / gone).exists(), gone
    assert (out / "notes.txt").read_text() == "mine"
    pointer = read_pointer(out)
    assert pointer is not None and pointer["step"] == 1 and pointer["previous"] is None
    assert sorted(p.name for p in out.glob("last.v*")) == [pointer["current"]["folder"]]
    # Resumed with its own settings: the sidecar records the 3 steps trained, and so does the log.
    summary = _ok(_gaze(dataset, out, "--set", "steps=3"))
    assert summary["steps_done"] == 3 and _trained_steps(out) == 3
    assert (out / "log.csv").read_text().splitlines()[-1].startswith("3,")
    # A finished run, rerun with the same settings, exports the same steps again; with more steps it is refused.
    assert _ok(_gaze(dataset, out, "--set", "steps=3"))["steps_done"] == 3 and _trained_steps(out) == 3
    assert_one_line_refusal(_gaze(dataset, out, "--set", "steps=5"), tmp_path, dataset,
                            match=r"with steps=3; this command asks steps=5;")
    assert snapshot(dataset) == before


def test_every_trainer_checks_its_settings_on_resume(tmp_path):
    """The check is in fit: the segmenter (library call, in-memory arrays) is refused the same way."""
    from test_training_common import _arrays

    from maskpurify.training.segmenter import SegmenterTrainConfig, train_segmenter

    data = _arrays(32)
    small = {"steps": 4, "batch_size": 8, "log_every": 2, "eval_every": 4, "checkpoint_every": 2,
             "model": {"base_channels": 4, "levels": 2}}
    train_segmenter(from_dict(SegmenterTrainConfig, small), tmp_path, arrays=data, progress=False, stop_at=2)
    other = from_dict(SegmenterTrainConfig, {**small, "model": {"base_channels": 8, "levels": 2}, "dice_weight": 1.0})
    with pytest.raises(UserError, match=r"with dice_weight=0\.5, model\.base_channels=4; this command asks "
                                        r"dice_weight=1\.0, model\.base_channels=8;"):
        train_segmenter(other, tmp_path, arrays=data, progress=False)
    assert train_segmenter(other, tmp_path, resume=False, arrays=data, progress=False)["finished"]


def test_a_refused_training_run_leaves_nothing_behind(tmp_path, dataset):
    render = ["--set", "steps=2", "--set", "data.render_n=6"]  # 6 rendered eyes: fewer than one batch of 8
    # A new OUT: the rendered set in OUT/data and OUT itself go.
    out = tmp_path / "new" / "run"
    line = assert_one_line_refusal(["train-gaze", "--out", str(out), *TINY, *render], tmp_path)
    assert "smaller than one batch" in line and not (tmp_path / "new").exists()
    # An OUT with the user's files and an earlier rendered set: those stay, this run's render goes.
    out = tmp_path / "mine"
    (out / "data" / "synthetic_n40_seed1001").mkdir(parents=True)
    (out / "data" / "synthetic_n40_seed1001" / "meta.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    assert_one_line_refusal(["train-gaze", "--out", str(out), *TINY, *render], tmp_path)
    # An OUT without data/: this run's data/ goes.
    (out / "data" / "synthetic_n40_seed1001" / "meta.json").unlink()
    (out / "data" / "synthetic_n40_seed1001").rmdir()
    (out / "data").rmdir()
    assert_one_line_refusal(["train-gaze", "--out", str(out), *TINY, *render], tmp_path)
    # Bad settings found by the trainer, and bad data: the same.
    assert_one_line_refusal(["train-gaze", "--out", str(tmp_path / "x"), *TINY, "--set", "data.render_n=16",
                             "--set", "degradation.strength=1", "--set", "model.inputs=labels"], tmp_path,
                            match="degradation.strength")
    assert_one_line_refusal(["train-gaze", "--data", str(tmp_path / "mine"), "--out", str(tmp_path / "y"), *TINY],
                            tmp_path)


# -- purify --recursive ------------------------------------------------------------------------------------------


def _image(path: Path, seed: int) -> None:
    save_image(path, np.random.default_rng(seed).integers(0, 255, (36, 60, 3), dtype=np.uint8))


def test_list_images_skips_folders_of_earlier_purify_runs(tmp_path):
    _image(tmp_path / "a.png", 0)
    _image(tmp_path / "sub" / "b.png", 1)
    _image(tmp_path / "sub" / "old" / "b.png", 2)
    (tmp_path / "sub" / "old" / PROGRESS_FILE).write_text("{}")
    _image(tmp_path / "sub" / "old" / "deeper" / "c.png", 3)
    _image(tmp_path / ".hidden" / "d.png", 4)
    assert list_images(tmp_path, True) == [tmp_path / "a.png", tmp_path / "sub" / "b.png"]
    assert list_images(tmp_path / "sub" / "old", False) == [tmp_path / "sub" / "old" / "b.png"]  # asked for


def test_recursive_purify_never_purifies_an_earlier_runs_outputs(tmp_path, ckpts):
    src = tmp_path / "in"
    _image(src / "a.png", 0)
    _image(src / "sub" / "b.png", 1)
    args = ["--checkpoint", str(ckpts["p"]), "--segmenter", str(ckpts["s"]), "--no-eye-check", "--recursive",
            "--batch-size", "2"]
    code, stdout, err = run_cli(["purify", "--quiet", "--input", str(src), "--out", str(src / "sub" / "res"), *args])
    assert code == 0 and "purified 2 images" in stdout, err
    assert (src / "sub" / "res" / "a.png").is_file() and (src / "sub" / "res" / PROGRESS_FILE).is_file()
    before = snapshot(src)
    code, stdout, err = run_cli(["purify", "--quiet", "--input", str(src), "--out", str(tmp_path / "again"), *args])
    assert code == 0 and "purified 2 images" in stdout, err
    assert sorted(str(p.relative_to(tmp_path / "again")) for p in (tmp_path / "again").rglob("*.png")) == \
        ["a.png", "sub/b.png"]
    assert snapshot(src) == before


# -- the video container follows the extension -------------------------------------------------------------------


def test_video_container_follows_the_extension(tmp_path, ckpts):
    import av

    from maskpurify.formats.video import VideoWriter

    src = tmp_path / "v.avi"
    base = np.random.default_rng(1).integers(0, 256, (36, 60, 3), dtype=np.uint8)
    with VideoWriter(src, 10, (60, 36)) as writer:
        for i in range(6):
            writer.write(np.roll(base, i, axis=1))
    args = ["--checkpoint", str(ckpts["p"]), "--segmenter", str(ckpts["s"]), "--batch-size", "6"]
    for name, container, codec in (("o.avi", "avi", None), ("o.mp4", "mp4", "h264")):
        code, _, err = run_cli(["purify", "--quiet", "--input", str(src), "--out", str(tmp_path / name), *args])
        assert code == 0, err
        with av.open(str(tmp_path / name)) as handle:
            assert container in handle.format.name, handle.format.name
            stream = handle.streams.video[0]
            assert codec is None or stream.codec_context.name == codec, stream.codec_context.name
            assert sum(1 for _ in handle.decode(stream)) == 6
    line = assert_one_line_refusal(["purify", "--quiet", "--input", str(src), "--out", str(tmp_path / "o.webm"),
                                    *args], tmp_path)
    assert "o.webm" in line and ".mp4" in line, line


def test_simgan_starting_over_removes_its_earlier_refiner_and_refined_gaze_run(tmp_path):
    from test_simgan import _arrays as simgan_arrays

    from maskpurify.training.simgan import RefinerNetConfig, SimGANTrainConfig, train_simgan

    config = SimGANTrainConfig(steps=2, pretrain_r=1, pretrain_d=1, batch_size=8, history_size=20, log_every=2,
                               preview_every=2, checkpoint_every=2, net=RefinerNetConfig(8, 1, 8), device="cpu")
    arrays = (simgan_arrays(0), simgan_arrays(1))
    assert train_simgan(config, tmp_path, progress=False, arrays=arrays)["finished"]
    assert (tmp_path / "refiner.safetensors").is_file() and any((tmp_path / "previews").iterdir())
    (tmp_path / "gaze").mkdir()
    (tmp_path / "gaze" / "config.yaml").write_text("steps: 3\n")  # as train-simgan --train-gaze leaves it
    with pytest.raises(UserError, match=r"with lr_r=0\.001; this command asks lr_r=0\.01;"):
        train_simgan(dataclasses.replace(config, lr_r=0.01), tmp_path, progress=False, arrays=arrays)
    train_simgan(dataclasses.replace(config, lr_r=0.01), tmp_path, resume=False, progress=False, arrays=arrays,
                 stop_at=1)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("last.v")) == \
        ["config.yaml", "last.json", "run.json"]
