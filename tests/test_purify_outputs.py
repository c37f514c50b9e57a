"""``maskpurify purify``'s outputs through the one output guard, and resume by input content (issue 14)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from _cli import assert_one_line_refusal, run_cli
from maskpurify.fileio import save_image
from maskpurify.masks import IRIS, PUPIL, SCLERA
from maskpurify.purification.output import PROGRESS_FILE
from maskpurify.world.dataset import load_shard, save_npz_deterministic, write_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


def _eye(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(40, 220, (36, 60, 3), dtype=np.uint8)
    mask = np.zeros((36, 60), np.uint8)
    mask[9:27, 10:50] = SCLERA
    mask[12:24, 24:36] = IRIS
    mask[16:20, 28:32] = PUPIL
    return image, mask


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _args(ckpts: dict[str, Path], src: Path, out: Path, *extra: str) -> list[str]:
    return ["purify", "--quiet", "--input", str(src), "--out", str(out), "--checkpoint", str(ckpts["p"]),
            "--segmenter", str(ckpts["s"]), "--no-eye-check", *extra]


def test_saved_mask_may_not_replace_the_input_mask(tmp_path, ckpts):
    image, mask = _eye()
    save_image(tmp_path / "eye.png", image)
    save_image(tmp_path / "eye_mask.png", mask)
    before = _digest(tmp_path / "eye_mask.png")
    # eye.jpg's saved mask would be eye_mask.png: the input's mask, even with --overwrite.
    line = assert_one_line_refusal(_args(ckpts, tmp_path / "eye.png", tmp_path / "eye.jpg", "--save-masks",
                                         "--overwrite"), tmp_path, match="is the input")
    assert "eye_mask.png" in line and _digest(tmp_path / "eye_mask.png") == before


def test_folder_mask_path_that_is_a_folder_is_refused(tmp_path, ckpts):
    src = tmp_path / "in"
    save_image(src / "a.png", _eye()[0])
    (src / "a_mask.png").mkdir()
    assert_one_line_refusal(_args(ckpts, src, tmp_path / "out"), tmp_path, match="a_mask.png: is a folder")


def test_folder_outputs_that_collide_are_refused_before_writing(tmp_path, ckpts):
    src = tmp_path / "in"
    save_image(src / "a.png", _eye(1)[0])
    save_image(src / "a.jpg", _eye(2)[0])  # both would save out/a_mask.png
    assert_one_line_refusal(_args(ckpts, src, tmp_path / "out", "--masks", "auto", "--save-masks"), tmp_path,
                            match="also given as")


def test_folder_masks_dir_may_not_be_the_output(tmp_path, ckpts):
    src, masks = tmp_path / "in", tmp_path / "masks"
    image, mask = _eye()
    save_image(src / "a.png", image)
    save_image(masks / "a_mask.png", mask)
    assert_one_line_refusal(_args(ckpts, src, masks, "--masks", str(masks), "--save-masks", "--overwrite"),
                            tmp_path, match="is the input")


def test_folder_resume_redoes_a_changed_mask_and_cleans_stale_temps(tmp_path, ckpts):
    src, out = tmp_path / "in", tmp_path / "out"
    image, mask = _eye()
    save_image(src / "a.png", image)
    save_image(src / "a_mask.png", mask)
    save_image(src / "b.png", _eye(1)[0])
    save_image(src / "b_mask.png", mask)
    argv = _args(ckpts, src, out)
    assert run_cli(argv)[0] == 0
    record = json.loads((out / PROGRESS_FILE).read_text())
    assert set(record["done"]["a.png"]["input"]) == {"image", "mask"}
    first = {name: _digest(out / name) for name in ("a.png", "b.png")}
    (out / ".a.png.abcd1234.tmp").write_bytes(b"left by a killed run")
    changed = mask.copy()
    changed[changed == PUPIL] = IRIS
    save_image(src / "a_mask.png", changed)
    code, stdout, _ = run_cli(argv)
    assert code == 0 and "purified 1 images" in stdout and "1 already done" in stdout
    assert _digest(out / "a.png") != first["a.png"] and _digest(out / "b.png") == first["b.png"]
    assert not list(out.glob("*.tmp"))


def test_folder_holding_only_temp_files_of_a_killed_run_is_claimed(tmp_path, ckpts):
    src, out = tmp_path / "in", tmp_path / "out"
    save_image(src / "a.png", _eye()[0])
    out.mkdir()
    (out / f".{PROGRESS_FILE}.abcd1234.tmp").write_bytes(b"{")
    assert run_cli(_args(ckpts, src, out, "--masks", "auto"))[0] == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([PROGRESS_FILE, "a.png", "config.yaml", "run.json"])


def test_dataset_resume_redoes_a_changed_shard_and_refuses_a_bad_one(tmp_path, ckpts):
    src, out = write_dataset(tmp_path / "set", "synthetic", 6, seed=2, shard_size=4, progress=False), tmp_path / "out"
    argv = _args(ckpts, src, out)
    assert run_cli(argv)[0] == 0
    first = {i: _digest(out / f"shard-0000{i}.npz") for i in (0, 1)}
    shard = load_shard(src, 1)
    shard["images"] = shard["images"][:, :, ::-1].copy()
    save_npz_deterministic(src / "shard-00001.npz", shard)
    code, stdout, err = run_cli(argv)
    assert code == 0, err
    assert _digest(out / "shard-00000.npz") == first[0] and _digest(out / "shard-00001.npz") != first[1]
    # A shard that fails the one validator: one line, exit 2, nothing written (a fresh output folder).
    shard["images"] = shard["images"].astype(np.float32)
    save_npz_deterministic(src / "shard-00000.npz", shard)
    assert_one_line_refusal(_args(ckpts, src, tmp_path / "fresh"), tmp_path, match="shard-00000.npz")
