"""Fuzz suite: malformed images, masks, shards, JSON sidecars, .mat, COCO, UnityEyes, LPW and config values fed to
the public entry points (``maskpurify.cli.main`` in-process, and the library's load functions).

The property everywhere: a bad input is refused with exactly one line on stderr and exit code 2, and nothing is
left in the output folder (or anywhere in the work folder); an input that happens to be valid is processed. No
traceback, ever. ``make test`` runs a few deterministic examples per property; ``MASKPURIFY_FUZZ=long`` runs
hundreds of random ones. Each deterministic test below is a row of issue 14's table.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from hypothesis import given, strategies as st
from PIL import Image

from _cli import (assert_one_line_refusal, fuzz_settings, ok_or_refused_cleanly, png_claiming, readonly_folder,
                  run_cli, snapshot)
from maskpurify.checkpoints import WEIGHTS_DIR, load_checkpoint
from maskpurify.config import MAX_PREVIEW_ROWS, MAX_SAMPLES, load_config
from maskpurify.errors import UserError
from maskpurify.fileio import MAX_IMAGE_PIXELS, read_image, read_json
from maskpurify.world.dataset import SHARD_KEYS, load_arrays, save_npz_deterministic, shard_batch, shard_name, \
    write_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

GAZE = str(WEIGHTS_DIR / "gaze")
SEGMENTER = str(WEIGHTS_DIR / "segmenter")


# ----------------------------------------------------------------------------------------------------------------
# Fixtures: a tiny rendered dataset, an eye image, fresh work folders per example


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 rendered synthetic eyes in two shards."""
    return write_dataset(tmp_path_factory.mktemp("fuzzdata") / "set", "synthetic", 16, seed=3, shard_size=8,
                         progress=False)


@pytest.fixture(scope="module")
def eye(dataset: Path) -> np.ndarray:
    return load_arrays(dataset)["images"][0]


def fresh(root: Path) -> Path:
    """A new empty work folder (Hypothesis reuses function-scoped fixtures across examples)."""
    return Path(tempfile.mkdtemp(dir=root))


def copy_dataset(dataset: Path, work: Path) -> Path:
    target = work / "data"
    shutil.copytree(dataset, target)
    return target


def purify_args(src: Path, out: Path, *extra: str) -> list[str]:
    return ["purify", "--quiet", "--input", str(src), "--out", str(out), *extra]


# ----------------------------------------------------------------------------------------------------------------
# Images: decompression bombs of any size, 16-bit and palette images, arbitrary bytes


def test_row_bomb_png_as_image_mask_and_inside_a_folder(tmp_path, eye):
    (tmp_path / "bomb.png").write_bytes(png_claiming(40000, 40000))
    line = assert_one_line_refusal(purify_args(tmp_path / "bomb.png", tmp_path / "o.png"), tmp_path)
    assert "bomb.png: image too large" in line
    Image.fromarray(eye).save(tmp_path / "eye.png")
    (tmp_path / "eye_mask.png").write_bytes(png_claiming(40000, 40000, colour_type=0))
    line = assert_one_line_refusal(purify_args(tmp_path / "eye.png", tmp_path / "o.png"), tmp_path)
    assert "eye_mask.png: image too large" in line
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_claiming(40000, 40000))
    code, _, err = run_cli(purify_args(folder, tmp_path / "folder_out", "--masks", "auto"))
    assert code == 2 and err.count("\n") == 1 and "a.png: image too large" in err


def test_row_refused_folder_leaves_nothing(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_claiming(40000, 40000))
    assert_one_line_refusal(purify_args(folder, tmp_path / "folder_out", "--masks", "auto"), tmp_path)


@fuzz_settings()
@given(width=st.integers(1, 2**31 - 1), height=st.integers(1, 2**31 - 1), colour=st.sampled_from([0, 2, 3, 6]))
def test_fuzz_any_oversized_header_is_refused_before_decoding(tmp_path, width, height, colour):
    if width * height <= MAX_IMAGE_PIXELS:
        height = MAX_IMAGE_PIXELS // width + 1
    work = fresh(tmp_path)
    (work / "big.png").write_bytes(png_claiming(width, height, colour_type=colour))
    assert_one_line_refusal(purify_args(work / "big.png", work / "o.png", "--masks", "auto"), work,
                            match=r"image too large")


def _eye_png_bytes(eye: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(eye).save(buffer, format="PNG")
    return buffer.getvalue()


@fuzz_settings(fast=8, long=300)
@given(data=st.data())
def test_fuzz_mutated_image_bytes_are_purified_or_refused_in_one_line(tmp_path, eye, data):
    raw = bytearray(_eye_png_bytes(eye))
    for _ in range(data.draw(st.integers(1, 8), label="mutations")):
        position = data.draw(st.integers(0, len(raw) - 1), label="position")
        raw[position] = data.draw(st.integers(0, 255), label="byte")
    if data.draw(st.booleans(), label="truncate"):
        raw = raw[:data.draw(st.integers(0, len(raw)), label="length")]
    as_mask = data.draw(st.booleans(), label="as mask")
    work = fresh(tmp_path)
    if as_mask:
        Image.fromarray(eye).save(work / "eye.png")
        (work / "eye_mask.png").write_bytes(bytes(raw))
    else:
        (work / "eye.png").write_bytes(bytes(raw))
    argv = purify_args(work / "eye.png", work / "out.png", *(() if as_mask else ("--masks", "auto")))
    if ok_or_refused_cleanly(argv, work, prefix="maskpurify purify: error: ") == 0:
        assert read_image(work / "out.png").shape == (36, 60, 3)


def test_row_sixteen_bit_and_palette_images_purify_like_their_8_bit_twins(tmp_path, eye):
    Image.fromarray(eye).save(tmp_path / "eye8.png")
    grey8 = np.asarray(Image.fromarray(eye).convert("L"))
    Image.fromarray(grey8).save(tmp_path / "grey8.png")
    Image.fromarray(grey8.astype(np.uint16) * 257).save(tmp_path / "grey16.png")  # the same eye in 16 bits
    assert Image.open(tmp_path / "grey16.png").mode.startswith("I")
    Image.fromarray(eye).quantize(256).save(tmp_path / "pal.png")
    Image.open(tmp_path / "pal.png").convert("RGB").save(tmp_path / "pal_rgb.png")
    outs = {}
    for name in ("grey8", "grey16", "pal", "pal_rgb"):
        code, _, err = run_cli(purify_args(tmp_path / f"{name}.png", tmp_path / f"{name}_out.png", "--masks", "auto"))
        assert code == 0, err
        outs[name] = read_image(tmp_path / f"{name}_out.png")
    assert np.array_equal(outs["grey8"], outs["grey16"])  # scaled, not saturated to white
    assert np.array_equal(outs["pal"], outs["pal_rgb"])
    assert read_image(tmp_path / "grey16.png").std() > 10


def _no_eye_picture(data: st.DataObject, height: int = 36, width: int = 60) -> np.ndarray:
    """A picture with no eye in it: flat, uniform noise (any range) or a flat colour with noise."""
    kind = data.draw(st.sampled_from(["flat", "noise", "flat+noise"]), label="kind")
    colour = np.array(data.draw(st.tuples(*[st.integers(0, 255)] * 3), label="colour"), np.int64)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    if kind == "flat":
        return np.broadcast_to(colour, (height, width, 3)).astype(np.uint8)
    if kind == "noise":
        low = data.draw(st.integers(0, 254), label="low")
        high = data.draw(st.integers(low + 1, 255), label="high")
        return rng.integers(low, high + 1, (height, width, 3)).astype(np.uint8)
    sigma = data.draw(st.integers(1, 60), label="sigma")
    return np.clip(colour + rng.normal(0, sigma, (height, width, 3)), 0, 255).astype(np.uint8)


@fuzz_settings(fast=4, long=150)
@given(data=st.data())
def test_fuzz_row_no_eye_pictures_are_never_purified_silently(tmp_path, data):
    """Issue 14's row "automatic masks with an empty attention region (blank or noise images) purified without a
    word": blank, flat and noise pictures, alone and in a folder, under automatic masks. Each is left unpurified
    (written unchanged / skipped) with one stderr line saying why, exit 0; never purified without a word."""
    work = fresh(tmp_path)
    pictures = [_no_eye_picture(data) for _ in range(3)]
    Image.fromarray(pictures[0]).save(work / "blank.png")
    code, stdout, err = run_cli(purify_args(work / "blank.png", work / "out.png", "--masks", "auto"))
    assert code == 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "not purified, no plausible eye in the automatic mask" in lines[0], err
    assert "not purified" in stdout and np.array_equal(read_image(work / "out.png"), pictures[0])
    folder = work / "folder"
    folder.mkdir()
    for i, picture in enumerate(pictures):
        Image.fromarray(picture).save(folder / f"p{i}.png")
    code, stdout, err = run_cli(purify_args(folder, work / "folder_out", "--masks", "auto"))
    assert code == 0, err
    assert len(err.strip().splitlines()) == 3 and "3 not purified: no plausible eye" in stdout, err
    assert not list((work / "folder_out").glob("*.png"))


@fuzz_settings()
@given(data=st.data())
def test_fuzz_mask_arrays_are_used_or_refused_in_one_line(tmp_path, eye, data):
    dtype = data.draw(st.sampled_from([np.uint8, np.uint16]), label="dtype")
    shape = data.draw(st.sampled_from([(36, 60), (36, 61), (35, 60), (36, 60, 3), (1, 1)]), label="shape")
    top = data.draw(st.sampled_from([1, 3, 4, 255, 65535]), label="max")
    values = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed")).integers(0, top + 1, shape)
    work = fresh(tmp_path)
    Image.fromarray(eye).save(work / "eye.png")
    Image.fromarray(values.astype(np.uint8 if len(shape) == 3 else dtype)).save(work / "eye_mask.png")
    if ok_or_refused_cleanly(purify_args(work / "eye.png", work / "out.png"), work) == 0:
        assert shape in ((36, 60), (36, 60, 3))


# ----------------------------------------------------------------------------------------------------------------
# Dataset shards: one validator for every command that reads them

CORRUPTIONS = {
    "float images": lambda a: {**a, "images": a["images"].astype(np.float32)},
    "uint16 images": lambda a: {**a, "images": a["images"].astype(np.uint16)},
    "images without channels": lambda a: {**a, "images": a["images"][..., 0]},
    "four channels": lambda a: {**a, "images": np.concatenate([a["images"], a["images"][..., :1]], axis=-1)},
    "(N,1) gaze": lambda a: {**a, "gaze": a["gaze"][:, :1]},
    "(N,3) gaze": lambda a: {**a, "gaze": np.concatenate([a["gaze"], a["gaze"][:, :1]], axis=1)},
    "NaN gaze": lambda a: {**a, "gaze": np.full_like(a["gaze"], np.nan)},
    "integer gaze": lambda a: {**a, "gaze": a["gaze"].astype(np.int64)},
    "masks of another size": lambda a: {**a, "masks": a["masks"][:, :-1]},
    "masks with channels": lambda a: {**a, "masks": a["masks"][..., None]},
    "float masks": lambda a: {**a, "masks": a["masks"].astype(np.float32)},
    "unknown mask label": lambda a: {**a, "masks": a["masks"] + 9},
    "fewer masks": lambda a: {**a, "masks": a["masks"][:-1]},
    "fewer gaze rows": lambda a: {**a, "gaze": a["gaze"][:-2]},
    "missing gaze": lambda a: {k: v for k, v in a.items() if k != "gaze"},
}
META_CORRUPTIONS = {
    "num_shards text": lambda m: {**m, "num_shards": "2"},
    "num_shards too many": lambda m: {**m, "num_shards": 3},
    "negative n": lambda m: {**m, "n": -16},
    "not a dataset": lambda m: {**m, "format": "other"},
    "incomplete": lambda m: {**m, "complete": False},
    "a list": lambda m: [1, 2],
}


def _corrupt_shard(folder: Path, corruption: str, index: int = 1) -> None:
    with np.load(folder / shard_name(index)) as shard:
        arrays = {k: shard[k] for k in shard.files}
    save_npz_deterministic(folder / shard_name(index), CORRUPTIONS[corruption](arrays))


def _shard_commands(data: Path, out: Path) -> list[list[str]]:
    return [["evaluate-gaze", "--model", GAZE, "--data", str(data), "--out", str(out / "eval")],
            ["evaluate-segmenter", "--model", SEGMENTER, "--data", str(data), "--out", str(out / "seg")],
            ["train-gaze", "--data", str(data), "--out", str(out / "train"), "--quiet", "--set", "steps=2",
             "--set", "batch_size=4"],
            ["train-segmenter", "--data", str(data), "--out", str(out / "trainseg"), "--quiet", "--set", "steps=2",
             "--set", "batch_size=4"]]


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_row_bad_shards_are_refused_by_every_command(tmp_path, dataset, corruption):
    data = copy_dataset(dataset, tmp_path)
    _corrupt_shard(data, corruption)
    for argv in _shard_commands(data, tmp_path / "out"):
        if corruption in ("unknown mask label", "float masks", "masks with channels", "masks of another size",
                          "fewer masks") and argv[0] == "evaluate-gaze":
            pass  # the gaze evaluation reads no masks, but the one validator still refuses the dataset
        assert_one_line_refusal(argv, tmp_path)


@pytest.mark.parametrize("corruption", sorted(META_CORRUPTIONS))
def test_bad_dataset_meta_is_refused(tmp_path, dataset, corruption):
    data = copy_dataset(dataset, tmp_path)
    meta = json.loads((data / "meta.json").read_text())
    (data / "meta.json").write_text(json.dumps(META_CORRUPTIONS[corruption](meta)))
    for argv in _shard_commands(data, tmp_path / "out")[:2]:
        assert_one_line_refusal(argv, tmp_path)


@fuzz_settings(fast=6, long=150)
@given(data=st.data())
def test_fuzz_shard_bytes_and_arrays(tmp_path, dataset, data):
    work = fresh(tmp_path)
    folder = copy_dataset(dataset, work)
    if data.draw(st.booleans(), label="raw bytes"):
        raw = bytearray((folder / shard_name(0)).read_bytes())
        for _ in range(data.draw(st.integers(1, 20), label="mutations")):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        raw = raw[:data.draw(st.integers(0, len(raw)), label="length")]
        (folder / shard_name(0)).write_bytes(bytes(raw))
    else:
        names = data.draw(st.lists(st.sampled_from(sorted(CORRUPTIONS)), min_size=1, max_size=3, unique=True))
        with np.load(folder / shard_name(0)) as shard:
            arrays = {k: shard[k] for k in shard.files}
        for name in names:
            try:
                arrays = CORRUPTIONS[name](arrays)
            except KeyError:  # composed with "missing gaze"
                pass
        save_npz_deterministic(folder / shard_name(0), arrays)
    argv = _shard_commands(folder, work / "out")[data.draw(st.integers(0, 1), label="command")]
    ok_or_refused_cleanly(argv, work)
    try:  # the library path: the one validator, or UserError from the loader
        shard_batch(load_arrays(folder), str(folder))
    except UserError:
        pass


def test_shard_batch_accepts_a_rendered_dataset_and_names_the_problem(dataset):
    arrays = load_arrays(dataset)
    assert shard_batch(arrays, "set").images.shape == (16, 36, 60, 3)
    with pytest.raises(UserError, match=r"^set: 'gaze' must have shape \(N,2\), got float32 \(16, 1\)$"):
        shard_batch(CORRUPTIONS["(N,1) gaze"](arrays), "set")
    with pytest.raises(UserError, match=r"masks are 35x60 but images are 36x60"):
        shard_batch(CORRUPTIONS["masks of another size"](arrays), "set")
    with pytest.raises(UserError, match=r"'masks' has 15 rows but the dataset has 16"):
        shard_batch(CORRUPTIONS["fewer masks"](arrays), "set")
    with pytest.raises(UserError, match=r"images must be uint8"):
        shard_batch(CORRUPTIONS["float images"](arrays), "set")


# ----------------------------------------------------------------------------------------------------------------
# JSON: checkpoint sidecars and dataset meta

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4), max_leaves=12)


@fuzz_settings(fast=8, long=300)
@given(data=st.data())
def test_fuzz_checkpoint_sidecars(tmp_path, dataset, data):
    work = fresh(tmp_path)
    for suffix in (".safetensors", ".json"):
        shutil.copy(WEIGHTS_DIR / f"gaze{suffix}", work / f"gaze{suffix}")
    meta = read_json(work / "gaze.json")
    how = data.draw(st.sampled_from(["replace", "config key", "top key", "text"]), label="how")
    if how == "replace":
        meta = data.draw(json_values, label="sidecar")
    elif how == "config key":
        meta["config"][data.draw(st.sampled_from(sorted(meta["config"])), label="key")] = data.draw(json_values)
    elif how == "top key":
        meta[data.draw(st.sampled_from(["kind", "config", "weights_sha256"]), label="key")] = data.draw(json_values)
    text = data.draw(st.text(max_size=40), label="text") if how == "text" else json.dumps(meta)
    (work / "gaze.json").write_text(text)
    argv = ["evaluate-gaze", "--model", str(work / "gaze"), "--data", str(dataset), "--out", str(work / "eval")]
    ok_or_refused_cleanly(argv, work)
    try:
        load_checkpoint(work / "gaze")
    except UserError:
        pass


# ----------------------------------------------------------------------------------------------------------------
# Config values: one validation in config resolution, whatever the command


def test_row_config_values_are_refused_before_anything_is_written(tmp_path, dataset):
    cases = {"batch_size=0": "batch_size' must be at least 1", "lr=-1": "'lr' must be above 0",
             "lr=.nan": "'lr' must be a finite number", "steps=0": "'steps' must be at least 1",
             "steps=-5": "'steps' must be at least 1", "seed=-1": "'seed' must be at least 0",
             "steps=1e3": "'steps' must be an integer", "lr=.inf": "finite"}
    for command in ("train-gaze", "train-segmenter"):
        for override, message in cases.items():
            out = tmp_path / f"{command}_{override}"
            line = assert_one_line_refusal([command, "--data", str(dataset), "--out", str(out), "--quiet", "--set",
                                            override], tmp_path)
            assert message in line and not out.exists()
    for override in ("batch_size=0", "lr=.nan", "steps=-5", "seed=-1"):
        assert_one_line_refusal(["train-purifier", "--content", str(dataset), "--style", str(dataset), "--out",
                                 str(tmp_path / "p"), "--quiet", "--set", override], tmp_path)


def test_row_render_seed_count_and_preview_bounds(tmp_path):
    out = tmp_path / "r"
    for argv in (["--seed", "-1", "--n", "3"], ["--n", "1000000000000"], ["--n", str(MAX_SAMPLES + 1)],
                 ["--n", "0"], ["--n", "3", "--shard-size", "0"], ["--n", "3", "--size", "40000x40000"]):
        assert_one_line_refusal(["render", "--quiet", "--out", str(out), *argv], tmp_path)
    for rows in ("100000", str(MAX_PREVIEW_ROWS + 1), "0", "-3"):
        assert_one_line_refusal(["render", "--preview", str(tmp_path / "s.png"), "--preview-n", rows], tmp_path)


NUMERIC_FIELDS = ["steps", "batch_size", "lr", "seed", "warmup", "log_every", "eval_every", "checkpoint_every",
                  "num_threads", "weight_decay", "augment", "data.render_n", "data.render_seed", "data.limit",
                  "data.val_fraction", "model.dropout", "model.hidden"]
bad_numbers = st.sampled_from(["0", "-1", "-5", ".nan", ".inf", "-.inf", "1e400", "100000000000000", "true",
                               "[1, 2]", "{a: 1}", "abc", "''", "0.5", "-0.0", "1e-400"])


@fuzz_settings(fast=12, long=400)
@given(field=st.sampled_from(NUMERIC_FIELDS), value=bad_numbers)
def test_fuzz_config_overrides_are_valid_or_one_line(tmp_path, field, value):
    work = fresh(tmp_path)
    # --data names no dataset, so a value that happens to be valid still stops (exit 2) before any training.
    argv = ["train-gaze", "--data", str(work / "missing"), "--out", str(work / "out"), "--quiet", "--set",
            f"{field}={value}"]
    line = assert_one_line_refusal(argv, work)
    assert "config:" in line or "--data" in line or "data.path" in line


@fuzz_settings(fast=8, long=300)
@given(text=st.text(max_size=60) | json_values.map(json.dumps))
def test_fuzz_config_files(tmp_path, text):
    work = fresh(tmp_path)
    (work / "c.yaml").write_text(text)
    assert_one_line_refusal(["train-gaze", "--config", str(work / "c.yaml"), "--data", str(work / "missing"),
                             "--out", str(work / "out"), "--quiet"], work)
    try:
        from maskpurify.training.gaze import GazeTrainConfig
        load_config(GazeTrainConfig, work / "c.yaml")
    except UserError:
        pass


@fuzz_settings(fast=10, long=300)
@given(flag=st.sampled_from(["--n", "--seed", "--preview-n", "--shard-size", "--size"]),
       value=st.integers(-2**70, -1).map(str) | st.integers(10**10, 2**70).map(str)
       | st.text(min_size=1, max_size=12).filter(lambda t: not t.strip().lstrip("+").isdigit()))
def test_fuzz_render_flags(tmp_path, flag, value):
    work = fresh(tmp_path)
    argv = ["render", "--quiet", "--out", str(work / "r"), "--n", "2", "--preview", str(work / "p.png")]
    argv += [f"{flag}={value}"]
    assert_one_line_refusal(argv, work)


# ----------------------------------------------------------------------------------------------------------------
# Read-only output folders


def test_row_read_only_output_folder_is_one_line_for_every_writer(tmp_path, dataset, eye):
    ro = readonly_folder(tmp_path)
    Image.fromarray(eye).save(tmp_path / "eye.png")
    (tmp_path / "folder").mkdir()
    Image.fromarray(eye).save(tmp_path / "folder" / "a.png")
    commands = [
        ["render", "--quiet", "--n", "2", "--out", str(ro / "mp_render")],
        ["render", "--preview", str(ro / "mp_sheet.png")],
        ["train-gaze", "--quiet", "--data", str(dataset), "--out", str(ro / "mp_train"), "--set", "steps=2",
         "--set", "batch_size=4"],
        ["evaluate-gaze", "--model", GAZE, "--data", str(dataset), "--out", str(ro / "mp_eval")],
        purify_args(tmp_path / "eye.png", ro / "mp_eye.png", "--masks", "auto"),
        purify_args(tmp_path / "folder", ro / "mp_folder", "--masks", "auto"),
        purify_args(dataset, ro / "mp_dataset"),
    ]
    for argv in commands:
        line = assert_one_line_refusal(argv, tmp_path)
        assert str(ro) in line and ("Permission denied" in line or "not permitted" in line), line


# ----------------------------------------------------------------------------------------------------------------
# COCO, UnityEyes, LPW, .mat: the readers behind the trainers' ``data.format`` sources


def _coco(root: Path, eye: np.ndarray, file_name: object = "a.png", segmentation: object = None) -> Path:
    images = root / "images"
    images.mkdir(exist_ok=True)
    Image.fromarray(eye).save(images / "a.png")
    ann = {"images": [{"id": 1, "file_name": file_name, "height": 36, "width": 60}],
           "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "iscrowd": 0,
                            "segmentation": [[10, 10, 30, 10, 30, 20]] if segmentation is None else segmentation}],
           "categories": [{"id": 1, "name": "person"}]}
    (root / "ann.json").write_text(json.dumps(ann))
    return root / "ann.json"


def _read_all(kind: str, path: Path, **options: object) -> list:
    from maskpurify.formats import open_reader

    return list(open_reader(kind, path, **options))


def test_row_coco_paths_may_not_leave_the_images_folder(tmp_path, eye):
    (tmp_path / "secret.png").write_bytes(_eye_png_bytes(eye))
    for name in (str(tmp_path / "secret.png"), "../secret.png", "x/../../secret.png"):
        ann = _coco(tmp_path, eye, file_name=name)
        with pytest.raises(UserError, match=r"ann\.json: image 1: file_name .* is absolute or climbs out"):
            _read_all("coco", ann, images=tmp_path / "images")
    (tmp_path / "images" / "link.png").symlink_to(tmp_path / "secret.png")
    with pytest.raises(UserError, match="leads outside"):
        _read_all("coco", _coco(tmp_path, eye, file_name="link.png"), images=tmp_path / "images")
    assert len(_read_all("coco", _coco(tmp_path, eye), images=tmp_path / "images")) == 1


def test_row_coco_malformed_numbers(tmp_path, eye):
    for segmentation, message in (([[1, 2, 3]], "at least 6"), ([[1e30, 0, 5, 5, 9, 9]], "not a finite number"),
                                  ([[1, 2, 3, 4, 5, 6, 7]], "even number"), ({"size": [36, 60], "counts": "@@@"},
                                                                            "RLE counts"),
                                  ({"size": [99, 60], "counts": [2160]}, "RLE size"), ("x", "segmentation must be")):
        ann = _coco(tmp_path, eye, segmentation=segmentation)
        with pytest.raises(UserError, match=message):
            _read_all("coco", ann, images=tmp_path / "images")


coco_numbers = st.one_of(st.integers(-10**12, 10**12), st.floats(), st.text(max_size=3), st.none(), st.booleans())


@fuzz_settings(fast=10, long=400)
@given(segmentation=st.one_of(st.lists(st.lists(coco_numbers, max_size=9), max_size=3),
                              st.fixed_dictionaries({"size": st.lists(st.integers(-5, 80), max_size=3),
                                                     "counts": st.text(max_size=12)
                                                     | st.lists(st.integers(-5, 3000), max_size=6)}),
                              json_values),
       file_name=st.one_of(st.just("a.png"), st.text(max_size=12), st.integers()))
def test_fuzz_coco_reader(tmp_path, eye, segmentation, file_name):
    work = fresh(tmp_path)
    try:
        pairs = _read_all("coco", _coco(work, eye, file_name, segmentation), images=work / "images")
    except UserError as exc:
        assert "\n" not in str(exc)
    else:
        assert all(p.mask.shape == (36, 60) for p in pairs)


def _unityeyes(root: Path, dataset: Path) -> Path:
    write_dataset(root / "ue", "synthetic", 2, seed=1, unityeyes=True, progress=False)
    return root / "ue" / "unityeyes"


def test_row_unityeyes_huge_coordinates_and_links_outside(tmp_path, dataset):
    folder = _unityeyes(tmp_path, dataset)
    record = json.loads((folder / "1.json").read_text())
    record["iris_2d"][0] = "(1e30, 5.0, 0.0)"
    (folder / "1.json").write_text(json.dumps(record))
    with pytest.raises(UserError, match=r"1\.json: 'iris_2d': value 1e\+30 is not finite"):
        _read_all("unityeyes", folder)
    out = tmp_path / "train"
    assert_one_line_refusal(["train-gaze", "--quiet", "--out", str(out), "--set", "data.format=unityeyes", "--set",
                             f"data.path={folder}", "--set", "steps=1", "--set", "batch_size=1"], tmp_path,
                            match="1e\\+30")
    (folder / "1.json").unlink()
    shutil.move(folder / "2.jpg", tmp_path / "outside.jpg")
    (folder / "2.jpg").symlink_to(tmp_path / "outside.jpg")
    with pytest.raises(UserError, match="leads outside"):
        _read_all("unityeyes", folder)


unity_numbers = st.one_of(st.floats(), st.integers(-10**40, 10**40), st.sampled_from(["1e30", "nan", "inf", "1e400"]))


@fuzz_settings(fast=10, long=400)
@given(data=st.data())
def test_fuzz_unityeyes_json(tmp_path_factory, dataset, data):
    work = fresh(tmp_path_factory.getbasetemp())
    folder = work / "ue"
    shutil.copytree(_unity_template(tmp_path_factory, dataset), folder)
    record = json.loads((folder / "1.json").read_text())
    key = data.draw(st.sampled_from(["interior_margin_2d", "caruncle_2d", "iris_2d", "look_vec", "head_pose",
                                     "pupil_size", "whole"]), label="key")
    number = data.draw(unity_numbers, label="number")
    vector = "(" + ", ".join(str(number) for _ in range(data.draw(st.integers(1, 4), label="arity"))) + ")"
    if key.endswith("_2d"):
        points = record[key]
        points[data.draw(st.integers(0, len(points) - 1), label="index")] = vector
    elif key in ("look_vec", "pupil_size"):
        record["eye_details"][key] = vector if key == "look_vec" else number
    elif key == "head_pose":
        record[key] = vector
    else:
        record = data.draw(json_values, label="record")
    (folder / "1.json").write_text(json.dumps(record, allow_nan=True))
    try:
        pairs = _read_all("unityeyes", folder)
    except UserError as exc:
        assert "\n" not in str(exc)
    else:
        assert all(np.isfinite(p.gaze).all() and p.mask.shape == (36, 60) for p in pairs)


_UNITY: dict[str, Path] = {}


def _unity_template(factory: pytest.TempPathFactory, dataset: Path) -> Path:
    if "t" not in _UNITY:
        _UNITY["t"] = _unityeyes(factory.mktemp("unity"), dataset)
        for path in _UNITY["t"].glob("2.*"):
            path.unlink()
    return _UNITY["t"]


@fuzz_settings(fast=10, long=300)
@given(lines=st.lists(st.one_of(st.tuples(unity_numbers, unity_numbers).map(lambda t: f"{t[0]} {t[1]}"),
                                st.text(max_size=10)), max_size=6))
def test_fuzz_lpw_annotations(tmp_path, lines):
    from maskpurify.formats.lpw import read_annotations

    work = fresh(tmp_path)
    (work / "1.txt").write_text("\n".join(lines))
    try:
        centres = read_annotations(work / "1.txt")
    except UserError as exc:
        assert "\n" not in str(exc)
    else:
        assert np.isfinite(centres).all() and np.abs(centres).max(initial=0) <= 1e5


def test_row_lpw_video_linked_from_outside_is_refused(tmp_path):
    from maskpurify.formats import open_reader

    root = tmp_path / "lpw"
    root.mkdir()
    (tmp_path / "other.avi").write_bytes(b"x")
    (root / "1.avi").symlink_to(tmp_path / "other.avi")
    (root / "1.txt").write_text("1 2\n")
    with pytest.raises(UserError, match="leads outside"):
        open_reader("lpw", root)


@fuzz_settings(fast=8, long=300)
@given(data=st.data())
def test_fuzz_mpiigaze_mat_files(tmp_path, data):
    work = fresh(tmp_path)
    (work / "p00").mkdir()
    n = data.draw(st.integers(0, 3), label="n")
    image_shape = data.draw(st.sampled_from([(n, 36, 60), (n, 36), (36, 60), (n, 2, 2, 2)]), label="shape")
    dtype = data.draw(st.sampled_from([np.uint8, np.float64, np.int16]), label="dtype")
    gaze_cols = data.draw(st.sampled_from([3, 2]), label="gaze columns")
    fill = data.draw(st.sampled_from([0.5, np.nan, np.inf, 1e30]), label="fill")
    side = {"image": np.zeros(image_shape, dtype), "gaze": np.full((n, gaze_cols), fill),
            "pose": np.full((n, 3), fill)}
    if data.draw(st.booleans(), label="drop a key"):
        side.pop(data.draw(st.sampled_from(sorted(side))))
    path = work / "p00" / "day01.mat"
    if data.draw(st.booleans(), label="raw bytes"):
        path.write_bytes(data.draw(st.binary(max_size=200), label="bytes"))
    else:
        scipy.io.savemat(str(path), {"data": {"left": side, "right": side}})
    try:
        pairs = _read_all("mpiigaze", work)
    except UserError as exc:
        assert "\n" not in str(exc)
    else:
        assert all(p.image.dtype == np.uint8 and p.image.shape[-1] == 3 for p in pairs)


# ----------------------------------------------------------------------------------------------------------------
# Every sub-command: a bad config value or a bad file is one line, exit 2, nothing written


def test_every_command_refuses_bad_numbers_in_one_line(tmp_path, dataset):
    out = str(tmp_path / "out")
    commands = [
        ["demo", "--out", out, "--set", "test.n=0"],
        ["evaluate", "--out", out, "--set", "test.seed=-1"],
        ["evaluate", "--out", out, "--set", "batch_size=.nan"],
        ["train-simgan", "--out", out, "--quiet", "--set", "steps=-5"],
        ["train-simgan", "--out", out, "--quiet", "--set", "lr_r=-1"],
        ["train-purifier", "--out", out, "--quiet", "--set", "lr=.nan"],
        ["train-gaze", "--out", out, "--quiet", "--max-steps", "-1"],
        ["render", "--out", out, "--n", "3", "--set", "geometry=3"],
    ]
    for argv in commands:
        assert_one_line_refusal(argv, tmp_path)


@pytest.mark.parametrize("value", ["0", "-3", "70000", "1e3"])
def test_batch_size_flags_follow_the_shared_rule(tmp_path, dataset, value):
    out = str(tmp_path / "out")
    commands = [["purify", "--input", str(dataset), "--out", out],
                ["evaluate-gaze", "--model", GAZE, "--data", str(dataset), "--out", out],
                ["evaluate-segmenter", "--model", SEGMENTER, "--data", str(dataset), "--out", out],
                ["simgan-refine", "--refiner", str(WEIGHTS_DIR / "simgan_real2syn"), "--data", str(dataset),
                 "--out", out]]
    for argv in commands:
        assert_one_line_refusal([*argv, "--batch-size", value], tmp_path, match="--batch-size")


def test_simgan_refine_refuses_a_bad_refiner_sidecar(tmp_path, dataset):
    for suffix in (".safetensors", ".json"):
        shutil.copy(WEIGHTS_DIR / f"simgan_real2syn{suffix}", tmp_path / f"r{suffix}")
    meta = read_json(tmp_path / "r.json")
    meta["config"]["base_channels"] = -3
    (tmp_path / "r.json").write_text(json.dumps(meta))
    assert_one_line_refusal(["simgan-refine", "--refiner", str(tmp_path / "r"), "--data", str(dataset), "--out",
                             str(tmp_path / "out")], tmp_path, match="r(\\.json)?: ")


def test_simgan_refine_refuses_bad_shards(tmp_path, dataset):
    data = copy_dataset(dataset, tmp_path)
    _corrupt_shard(data, "float images", index=0)
    assert_one_line_refusal(["simgan-refine", "--refiner", str(WEIGHTS_DIR / "simgan_real2syn"), "--data", str(data),
                             "--out", str(tmp_path / "out")], tmp_path)
