"""Datasets on disk: deterministic shards, resume/overwrite rules, torch reading, UnityEyes json, render CLI."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from maskpurify.cli import main
from maskpurify.errors import UserError
from maskpurify.fileio import read_image
from maskpurify.world.dataset import EyeDataset, load_arrays, write_dataset
from maskpurify.world.renderer import render_samples


def _hashes(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("shard-*.npz"))}


def test_same_seed_same_bytes_and_shards_match_renderer(tmp_path):
    a = write_dataset(tmp_path / "a", "wild", 70, (36, 60), seed=4, shard_size=32, progress=False)
    b = write_dataset(tmp_path / "b", "wild", 70, (36, 60), seed=4, shard_size=32, progress=False)
    assert len(_hashes(a)) == 3 and _hashes(a) == _hashes(b)
    arrays = load_arrays(a)
    direct = render_samples("wild", 70, (36, 60), seed=4)
    assert np.array_equal(arrays["images"], direct.images) and np.array_equal(arrays["masks"], direct.masks)
    assert np.array_equal(arrays["eyelid_landmarks"], direct.eyelid_landmarks)


def test_overwrite_and_resume_rules(tmp_path):
    out = write_dataset(tmp_path / "d", "synthetic", 40, (36, 60), seed=1, shard_size=16, progress=False)
    before = _hashes(out)
    (out / "shard-00001.npz").unlink()
    write_dataset(out, "synthetic", 40, (36, 60), seed=1, shard_size=16, progress=False)  # resumes
    assert _hashes(out) == before
    with pytest.raises(UserError, match="overwrite"):
        write_dataset(out, "synthetic", 40, (36, 60), seed=2, shard_size=16, progress=False)
    write_dataset(out, "synthetic", 20, (36, 60), seed=2, shard_size=16, overwrite=True, progress=False)
    assert len(EyeDataset(out)) == 20 and len(_hashes(out)) == 2
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        write_dataset(other, "synthetic", 4, progress=False)
    with pytest.raises(UserError):
        EyeDataset(tmp_path / "missing")


def test_eye_dataset_items(tmp_path):
    out = write_dataset(tmp_path / "g", "wild", 10, (36, 60), seed=0, grey=True, shard_size=4, progress=False)
    data = EyeDataset(out)
    item = data[9]
    assert item["image"].shape == (1, 36, 60) and item["image"].dtype.is_floating_point
    assert 0.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
    assert item["mask"].shape == (36, 60) and str(item["mask"].dtype) == "torch.int64"
    assert item["gaze"].shape == (2,) and item["head_pose"].shape == (2,) and item["pupil_center"].shape == (2,)
    with pytest.raises(IndexError):
        data[10]


def test_unityeyes_json_flips_y(tmp_path):
    out = write_dataset(tmp_path / "u", "synthetic", 3, (36, 60), seed=3, unityeyes=True, progress=False)
    batch = render_samples("synthetic", 3, (36, 60), seed=3)
    record = json.loads((out / "unityeyes" / "2.json").read_text())
    assert read_image(out / "unityeyes" / "2.jpg").shape == (36, 60, 3)
    iris = np.array([[float(v) for v in s.strip("()").split(",")] for s in record["iris_2d"]])
    np.testing.assert_allclose(iris[:, 0], batch.iris_landmarks[1, :, 0], atol=1e-3)
    np.testing.assert_allclose(iris[:, 1], 36 - batch.iris_landmarks[1, :, 1], atol=1e-3)
    assert len(record["interior_margin_2d"]) == 16 and len(record["caruncle_2d"]) == 7
    look = np.array([float(v) for v in record["eye_details"]["look_vec"].strip("()").split(",")])
    g = batch.gaze_vector[1]
    np.testing.assert_allclose(look[:3], [g[0], -g[1], g[2]], atol=1e-3)
    # pitch = asin(look_y), yaw = atan2(-look_x, -look_z) recover our gaze
    np.testing.assert_allclose([np.arcsin(look[1]), np.arctan2(-look[0], -look[2])], batch.gaze[1], atol=2e-3)


def test_render_cli_writes_a_dataset_and_sheet(tmp_path, capsys):
    out, sheet = tmp_path / "cli", tmp_path / "sheet.png"
    code = main(["render", "--domain", "wild", "--n", "12", "--size", "24x40", "--seed", "5", "--out", str(out),
                 "--preview", str(sheet), "--preview-n", "2", "--quiet", "--set", "wild.noise_sigma=[0.0,0.02]"])
    assert code == 0
    data = EyeDataset(out)
    assert len(data) == 12 and data[0]["image"].shape == (3, 24, 40)
    assert data.meta["preset"]["noise_sigma"] == [0.0, 0.02]
    assert read_image(sheet).shape[1] >= 4 * 240
    for bad in (["--n", "0", "--out", str(tmp_path / "x")], ["--n", "3", "--out", str(tmp_path / "y"), "--size", "36by60"],
                ["--n", "3", "--out", str(tmp_path / "z"), "--size", "2048x2048"], ["--n", "3"],
                ["--n", "3", "--out", str(out)], ["--n", "3", "--out", str(tmp_path / "w"), "--set", "wild.nope=1"]):
        capsys.readouterr()
        assert main(["render", *bad]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("maskpurify render: error:") and "\n" not in err


def test_render_resumes_after_a_kill_and_removes_its_temporary_files(tmp_path):
    """What ``kill -9`` leaves mid-write (a temporary meta.json or shard) neither blocks the re-run nor stays."""
    from maskpurify.world.dataset import write_dataset

    reference = write_dataset(tmp_path / "ref", "synthetic", 6, seed=2, shard_size=2, progress=False)
    out = tmp_path / "killed"
    out.mkdir()
    (out / ".meta.json.k1ll3d_a.tmp").write_text("{")  # killed before the first meta.json was renamed in place
    write_dataset(out, "synthetic", 6, seed=2, shard_size=2, progress=False, command="x")
    (out / ".shard-00001.npz.abcdefgh.tmp").write_bytes(b"partial")  # a later run killed mid-shard
    (out / "shard-00002.npz").unlink()
    write_dataset(out, "synthetic", 6, seed=2, shard_size=2, progress=False, command="x")
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in reference.iterdir())
    for shard in reference.glob("shard-*.npz"):
        assert (out / shard.name).read_bytes() == shard.read_bytes()


def test_parallel_writer_gives_the_bytes_of_a_serial_write(tmp_path):
    """Shards written by the writer thread while later shards render are the bytes of each shard saved on its own."""
    from maskpurify.world.dataset import SHARD_KEYS, save_npz_deterministic

    out = write_dataset(tmp_path / "p", "wild", 50, (36, 60), seed=7, shard_size=16, progress=False)
    direct = render_samples("wild", 50, (36, 60), seed=7)
    for index, start in enumerate(range(0, 50, 16)):
        serial = tmp_path / f"serial-{index}.npz"
        save_npz_deterministic(serial, {k: getattr(direct, k)[start:start + 16] for k in SHARD_KEYS})
        assert (out / f"shard-{index:05d}.npz").read_bytes() == serial.read_bytes()


def test_render_processes_write_the_bytes_of_one_process(tmp_path):
    """Chunks rendered by two worker processes, shards that cut chunks in two included, give the same files as a
    render in this process."""
    one = write_dataset(tmp_path / "one", "wild", 700, (36, 60), seed=5, shard_size=300, progress=False, workers=1)
    two = write_dataset(tmp_path / "two", "wild", 700, (36, 60), seed=5, shard_size=300, progress=False, workers=2)
    assert len(_hashes(one)) == 3 and _hashes(two) == _hashes(one)


def test_workers_must_be_a_positive_count(tmp_path):
    with pytest.raises(UserError, match="--workers must be at least 1, got 0"):
        write_dataset(tmp_path / "w", "wild", 10, progress=False, workers=0)


def test_a_failing_shard_write_stops_the_render_and_the_rerun_finishes_it(tmp_path, monkeypatch):
    """An error in the writer thread reaches the caller; shards already written stay whole, meta.json says
    incomplete, and the same call again finishes byte-identical to an uninterrupted run."""
    import maskpurify.world.dataset as dataset

    reference = write_dataset(tmp_path / "ref", "synthetic", 40, (36, 60), seed=3, shard_size=8, progress=False)
    real = dataset.save_npz_deterministic

    def failing(path, arrays):
        if path.name == "shard-00002.npz":
            raise OSError("disk full")
        real(path, arrays)

    monkeypatch.setattr(dataset, "save_npz_deterministic", failing)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        write_dataset(out, "synthetic", 40, (36, 60), seed=3, shard_size=8, progress=False)
    assert not (out / "shard-00002.npz").exists() and (out / "shard-00001.npz").is_file()
    assert json.loads((out / "meta.json").read_text())["complete"] is False
    monkeypatch.setattr(dataset, "save_npz_deterministic", real)
    write_dataset(out, "synthetic", 40, (36, 60), seed=3, shard_size=8, progress=False)
    assert _hashes(out) == _hashes(reference)
