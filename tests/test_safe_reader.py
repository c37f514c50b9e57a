"""Hardening: the one safe reader of structured files, bounds on every numeric setting, one owner per output folder.

Every hostile JSON / YAML (too large, not UTF-8, UTF-16, nested 100,000 deep, a 5,000-digit number, a billion
laughs of YAML aliases) reaching any reader (weights sidecars, ``last.json``, purify progress files, dataset
``meta.json``, UnityEyes sample JSON, ``--config``, ``--set``) is one line naming the file or key: exit 2 through
the CLI, inputs intact, nothing left behind. A purify output folder has one owner at a time (``flock``), and a
resumed run trusts an output only when its sha256 still matches.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st

from _cli import assert_one_line_refusal, fuzz_settings, run_cli, snapshot
from maskpurify.checkpoints import WEIGHTS_DIR, commit_checkpoint, load_checkpoint, load_committed, read_pointer
from maskpurify.config import MAX_CHANNELS, load_config
from maskpurify.errors import UserError
from maskpurify.fileio import MAX_NESTING, MAX_STRUCTURED_BYTES, FolderLock, parse_json, read_json, read_yaml, \
    save_image
from test_purify_outputs import _eye
from maskpurify.purification.output import LOCK_FILE, PROGRESS_FILE, OutputDir
from maskpurify.world.dataset import read_meta, write_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

GAZE = WEIGHTS_DIR / "gaze"

#: 100,000 levels of nesting: Python's json and PyYAML would raise RecursionError (or worse) on it.
DEEP_JSON = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a": ' * 100_000 + b"1" + b"}" * 100_000
#: The classic "billion laughs": 379 bytes of YAML aliases that would expand to ~ 9^8 strings (tens of MB).
LAUGHS = textwrap.dedent("""\
    a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
    d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
    f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
    g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
    h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
    """).encode()

#: name -> (file bytes, what the one line must say)
HOSTILE_JSON = {
    "deep list": (DEEP_JSON, r"nested 100000 levels deep; the limit is 64"),
    "deep object": (DEEP_OBJECT, r"nested 100000 levels deep"),
    "byte 0xff": (b'{"kind": "gaze"}\xff', r"not UTF-8 text \(byte 0xff at offset 16"),
    "UTF-16 with BOM": ('{"kind": "gaze"}'.encode("utf-16"), r"not UTF-8 text \(byte 0xff at offset 0"),
    "UTF-16 without BOM": ('{"kind": "gaze"}'.encode("utf-16-le"), r"NUL characters \(UTF-16"),
    "5000-digit integer": (b'{"step": ' + b"7" * 5000 + b"}", r"number with more than 100 characters"),
    "101-digit integer": (b"[" + b"1" * 101 + b"]", r"number with more than 100 characters"),
    "long float": (b"[0." + b"1" * 200 + b"]", r"number with more than 100 characters"),
    "not JSON": (b"{'kind': gaze", r"bad JSON"),
}


def _one_line_error(call, match: str) -> str:
    with pytest.raises(UserError, match=match) as info:
        call()
    assert "\n" not in str(info.value)
    return str(info.value)


# ----------------------------------------------------------------------------------------------------------------
# The reader itself


@pytest.mark.parametrize("case", sorted(HOSTILE_JSON))
def test_read_json_refuses_hostile_files_in_one_line_naming_them(tmp_path, case):
    data, match = HOSTILE_JSON[case]
    path = tmp_path / "x.json"
    path.write_bytes(data)
    line = _one_line_error(lambda: read_json(path), match)
    assert line.startswith(f"{path}: ")
    assert path.read_bytes() == data  # the input is never touched
    line = _one_line_error(lambda: parse_json(data, "blob"), match)  # the in-memory twin, same rules
    assert line.startswith("blob: ")


def test_read_json_size_limit_is_checked_before_parsing(tmp_path):
    path = tmp_path / "big.json"
    with open(path, "wb") as handle:
        handle.truncate(MAX_STRUCTURED_BYTES + 1)  # sparse: no 16 MiB write on a shared machine
    assert MAX_STRUCTURED_BYTES == 16 * 1024 * 1024
    _one_line_error(lambda: read_json(path), rf"^{path}: JSON file too large \(over the 16 MiB limit")
    _one_line_error(lambda: read_json(tmp_path / "missing.json"), "cannot read")


def test_read_json_accepts_what_it_should(tmp_path):
    path = tmp_path / "ok.json"
    nested = "[" * (MAX_NESTING - 2) + "]" * (MAX_NESTING - 2)  # inside {"a": [...]}: 64 levels in all
    path.write_text('\ufeff{"a": [1, -2.5e-3, "[[[{{{\\"", ' + nested + '], "b": ' + "9" * 100 + "}")
    value = read_json(path)
    assert value["a"][:3] == [1, -2.5e-3, '[[[{{{"'] and value["b"] == int("9" * 100)
    path.write_text("[" * (MAX_NESTING + 1) + "]" * (MAX_NESTING + 1))
    _one_line_error(lambda: read_json(path), "nested 65 levels deep")


def test_yaml_aliases_are_refused_before_expanding(tmp_path):
    assert len(LAUGHS) <= 512
    path = tmp_path / "laughs.yaml"
    path.write_bytes(LAUGHS)
    _one_line_error(lambda: read_yaml(path), rf"^{path}: YAML anchors and aliases .* are not allowed")
    path.write_text("a: &x 1\nb: 2\n")  # an anchor alone is refused too (nothing to gain from allowing it)
    _one_line_error(lambda: read_yaml(path), "anchors and aliases")


@pytest.mark.parametrize("data, match", [
    (b"[" * 100_000 + b"]" * 100_000, r"nested more than 64 levels deep"),
    ("".join("  " * i + "k:\n" for i in range(200)).encode(), r"nested more than 64 levels deep"),
    (b"steps: 10\xff\n", r"not UTF-8 text \(byte 0xff"),
    ("steps: 10\n".encode("utf-16"), r"not UTF-8 text \(byte 0xff at offset 0"),
    (b"steps: " + b"1" * 101, r"number with more than 100 characters"),
    (b"steps: !!python/object/apply:os.system [echo hi]", r"not valid YAML"),
    (b"steps: [1,", r"not valid YAML"),
])
def test_read_yaml_refuses_hostile_files_in_one_line(tmp_path, data, match):
    path = tmp_path / "c.yaml"
    path.write_bytes(data)
    line = _one_line_error(lambda: read_yaml(path), match)
    assert line.startswith(f"{path}: ")


def test_yaml_numbers_follow_yaml_1_2(tmp_path):
    path = tmp_path / "n.yaml"
    path.write_text("a: 030\nb: 1:30\nc: 1e-3\nd: yes\ne: 0x1f\nf: -.inf\ng: ~\nh: 2e5\ni: off\nj: 1.5\nk: +7\n")
    value = read_yaml(path)
    assert value == {"a": 30, "b": "1:30", "c": 0.001, "d": "yes", "e": 31, "f": float("-inf"), "g": None,
                     "h": 200000.0, "i": "off", "j": 1.5, "k": 7}
    assert isinstance(value["a"], int) and isinstance(value["h"], float)


# ----------------------------------------------------------------------------------------------------------------
# --config and --set through the CLI: one line, exit 2, nothing written


def _train_gaze(work: Path, *extra: str) -> list[str]:
    # --data names no dataset, so even a valid config stops (exit 2) before any training.
    return ["train-gaze", "--quiet", "--data", str(work / "missing"), "--out", str(work / "out"), *extra]


@pytest.mark.parametrize("data, match", [
    (LAUGHS, r"laughs\.yaml: YAML anchors and aliases"),
    (b"[" * 100_000 + b"]" * 100_000, r"laughs\.yaml: nested more than 64 levels deep"),
    (b"lr: 0.1\xff\n", r"laughs\.yaml: not UTF-8 text"),
    ("lr: 0.1\n".encode("utf-16"), r"laughs\.yaml: not UTF-8 text"),
    (b"steps: " + b"9" * 400, r"laughs\.yaml: number with more than 100 characters"),
])
def test_config_file_attacks_are_one_line(tmp_path, data, match):
    (tmp_path / "laughs.yaml").write_bytes(data)
    assert_one_line_refusal(_train_gaze(tmp_path, "--config", str(tmp_path / "laughs.yaml")), tmp_path, match=match)


@pytest.mark.parametrize("override, match", [
    ("model.hidden=-5", r"'model\.hidden' must be at least 1, got -5"),
    ("model.hidden=100000000", rf"'model\.hidden' must be at most {MAX_CHANNELS:,}"),
    ("model.base_channels=5000", r"'model\.base_channels' must be at most"),
    ("model.conv_channels=[20, 0]", r"'model\.conv_channels' must be at least 1"),
    ("model.depth=1000000", r"'model\.depth' must be at most"),
    ("augment=-5", r"'augment' must be at least 0"),
    ("steps=10000000000", r"'steps' must be at most"),
    ("batch_size=70000", r"'batch_size' must be at most 65,536"),
    ("device=nonsense", r"'device' must be auto, cpu, cuda, cuda:N or mps, got 'nonsense'"),
    ("lr=1:30", r"'lr' must be a number, got '1:30'"),
    ("steps=1:30", r"'steps' must be an integer, got '1:30'"),
    ("seed=" + "1" * 101, r"--set seed: number with more than 100 characters"),
    ("lr=*a", r"--set lr: YAML anchors and aliases"),
    ("model=" + "[" * 100 + "]" * 100, r"--set model: nested more than 64 levels deep"),
])
def test_set_values_are_bounded_in_one_line_naming_the_key(tmp_path, override, match):
    assert_one_line_refusal(_train_gaze(tmp_path, "--set", override), tmp_path, match=match)


def test_bad_device_flags_are_one_line(tmp_path):
    assert_one_line_refusal(_train_gaze(tmp_path, "--device", "nonsense"), tmp_path, match="--device")
    assert_one_line_refusal(["purify", "--input", str(tmp_path / "none.png"), "--out", str(tmp_path / "o.png"),
                             "--device", "cuda:x"], tmp_path, match="--device must be")


def test_set_numbers_are_yaml_1_2():
    from maskpurify.training.gaze import GazeTrainConfig

    config = load_config(GazeTrainConfig, overrides=["lr=1e-3", "steps=030", "weight_decay=5E-5", "device=cuda:1"])
    assert config.lr == 0.001 and config.steps == 30 and config.weight_decay == 5e-5 and config.device == "cuda:1"


# ----------------------------------------------------------------------------------------------------------------
# Every other reader goes through the same function


def _copy_gaze(work: Path) -> Path:
    for suffix in (".safetensors", ".json"):
        shutil.copy(WEIGHTS_DIR / f"gaze{suffix}", work / f"gaze{suffix}")
    return work / "gaze"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("safe") / "set", "synthetic", 8, seed=3, shard_size=8,
                         progress=False)


@pytest.mark.parametrize("case", ["deep list", "byte 0xff", "UTF-16 with BOM", "5000-digit integer"])
def test_hostile_weights_sidecar_is_one_line(tmp_path, dataset, case):
    model = _copy_gaze(tmp_path)
    data, match = HOSTILE_JSON[case]
    (tmp_path / "gaze.json").write_bytes(data)
    _one_line_error(lambda: load_checkpoint(model), rf"gaze\.json: .*{match}")
    assert_one_line_refusal(["evaluate-gaze", "--model", str(model), "--data", str(dataset), "--out",
                             str(tmp_path / "eval")], tmp_path, match=rf"gaze\.json: .*{match}")


@pytest.mark.parametrize("case", ["deep object", "byte 0xff", "101-digit integer"])
def test_hostile_dataset_meta_is_one_line(tmp_path, dataset, case):
    data_dir = tmp_path / "data"
    shutil.copytree(dataset, data_dir)
    (data_dir / "meta.json").write_bytes(HOSTILE_JSON[case][0])
    _one_line_error(lambda: read_meta(data_dir), r"meta\.json: ")
    assert_one_line_refusal(["evaluate-gaze", "--model", str(GAZE), "--data", str(data_dir), "--out",
                             str(tmp_path / "eval")], tmp_path, match=r"meta\.json: ")
    # Rendering into that folder: the unreadable meta.json is "another dataset", refused without --overwrite.
    assert_one_line_refusal(["render", "--quiet", "--out", str(data_dir), "--n", "8", "--seed", "3"], tmp_path,
                            match="holds a different dataset")


def test_hostile_committed_checkpoint_pointer_and_meta(tmp_path):
    import torch

    commit_checkpoint(tmp_path, "last", 5, {"w": torch.zeros(2)}, {"kind": "x"})
    pointer = tmp_path / "last.json"
    good = pointer.read_bytes()
    pointer.write_bytes(DEEP_JSON)
    _one_line_error(lambda: read_pointer(tmp_path), r"last\.json: bad JSON \(nested 100000 levels deep")
    _one_line_error(lambda: load_committed(tmp_path / "last"), r"last\.json: ")
    # A version's meta.json that is hostile but carries the hash the pointer records: refused, not parsed deep.
    pointer.write_bytes(good)
    record = json.loads(good)
    folder = tmp_path / record["current"]["folder"]
    (folder / "meta.json").write_bytes(DEEP_OBJECT)
    record["current"]["files"]["meta.json"]["sha256"] = hashlib.sha256(DEEP_OBJECT).hexdigest()
    pointer.write_text(json.dumps(record))
    _one_line_error(lambda: load_committed(tmp_path / "last"), r"last\.json: no complete checkpoint verifies")


def test_hostile_unityeyes_sample_json_is_one_line(tmp_path):
    from maskpurify.formats import open_reader

    write_dataset(tmp_path / "ue", "synthetic", 2, seed=1, unityeyes=True, progress=False)
    folder = tmp_path / "ue" / "unityeyes"
    for case in ("deep object", "UTF-16 with BOM", "5000-digit integer"):
        data, match = HOSTILE_JSON[case]
        (folder / "1.json").write_bytes(data)
        _one_line_error(lambda: list(open_reader("unityeyes", folder)), rf"1\.json: .*{match}")


def test_purify_progress_file_is_read_safely(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / PROGRESS_FILE).write_bytes(DEEP_JSON)
    before = snapshot(out)
    _one_line_error(lambda: OutputDir(out, {"input": "x"}), "not empty and was not written by maskpurify")
    assert snapshot(out) == before


# ----------------------------------------------------------------------------------------------------------------
# One owner per output folder


def test_two_owners_of_one_folder_conflict(tmp_path):
    out, settings = tmp_path / "out", {"input": "x"}
    first = OutputDir(out, settings)
    second = OutputDir(out, settings)  # nothing written yet: both may look
    assert not out.exists()
    first.begin()
    assert (out / LOCK_FILE).read_text().strip() == str(os.getpid())
    line = _one_line_error(second.begin, rf"^{out}: is in use by another maskpurify run \(pid {os.getpid()}\)")
    assert "in use" in line
    _one_line_error(lambda: OutputDir(out, settings), "is in use by another maskpurify run")  # refused up front
    (out / "a.png").write_bytes(b"result")
    first.mark("a.png", out / "a.png", {"sha256": "in"})
    first.save(complete=True)
    # A complete run leaves only results and its progress file: no lock file.
    assert sorted(p.name for p in out.iterdir()) == sorted([PROGRESS_FILE, "a.png"])
    third = OutputDir(out, settings)  # the folder is free again, and resumes
    assert third.is_done("a.png", out / "a.png", {"sha256": "in"})
    third.begin()
    third.close()
    assert not (out / LOCK_FILE).exists()


def test_a_killed_owner_does_not_block_the_next_run(tmp_path):
    out, settings = tmp_path / "out", {"input": "x"}
    script = ("import sys, time\nfrom maskpurify.purification.output import OutputDir\n"
              f"owner = OutputDir({str(out)!r}, {settings!r})\nowner.begin()\nprint('locked', flush=True)\ntime.sleep(120)\n")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        line = _one_line_error(lambda: OutputDir(out, settings).begin(), rf"pid {child.pid}\)")
        assert str(out) in line
        code, _, err = run_cli(["purify", "--quiet", "--input", str(tmp_path / "none.png"), "--out", str(out)])
        assert code == 2 and err.count("\n") == 1
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert (out / LOCK_FILE).is_file()  # the file stays, the lock does not
    target = OutputDir(out, settings)
    target.begin()  # takes over: the kernel released the killed process's flock
    assert (out / LOCK_FILE).read_text().strip() == str(os.getpid())
    target.save(complete=True)
    assert sorted(p.name for p in out.iterdir()) == [PROGRESS_FILE]


def test_folder_lock_file_removed_under_a_waiter_is_not_shared(tmp_path):
    first = FolderLock(tmp_path, ".l")
    first.acquire()
    stale = os.open(tmp_path / ".l", os.O_RDONLY)  # a waiter that opened the file before the owner let go
    try:
        first.release(remove=True)
        second, third = FolderLock(tmp_path, ".l"), FolderLock(tmp_path, ".l")
        second.acquire()
        with pytest.raises(UserError, match="in use"):
            third.acquire()
        second.release(remove=True)
    finally:
        os.close(stale)


def test_purify_into_a_folder_in_use_and_same_size_corruption(tmp_path, ckpts):
    src, out = tmp_path / "in", tmp_path / "out"
    for name, seed in (("a", 0), ("b", 1)):
        image, mask = _eye(seed)
        save_image(src / f"{name}.png", image)
        save_image(src / f"{name}_mask.png", mask)
    argv = ["purify", "--quiet", "--input", str(src), "--out", str(out), "--checkpoint", str(ckpts["p"]),
            "--segmenter", str(ckpts["s"]), "--no-eye-check"]
    assert run_cli(argv)[0] == 0
    assert not (out / LOCK_FILE).exists()
    record = json.loads((out / PROGRESS_FILE).read_text())
    assert len(record["done"]["a.png"]["sha256"]) == 64
    good = (out / "a.png").read_bytes()
    # Another run holds the folder: one line naming it and the pid, nothing changed.
    holder = OutputDir(out, record["settings"])
    holder.begin()
    try:
        assert_one_line_refusal(argv, tmp_path, match=rf"{out}: is in use by another maskpurify run \(pid \d+\)")
    finally:
        holder.close()
    # An output damaged in place at the same size is redone on resume; the other is trusted.
    damaged = bytearray(good)
    damaged[len(damaged) // 2] ^= 0xFF
    (out / "a.png").write_bytes(bytes(damaged))
    code, stdout, err = run_cli(argv)
    assert code == 0, err
    assert "purified 1 images" in stdout and "1 already done" in stdout
    assert (out / "a.png").read_bytes() == good
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [PROGRESS_FILE, "a.png", "b.png", "config.yaml", "run.json"])


# ----------------------------------------------------------------------------------------------------------------
# Property: whatever the bytes, the reader returns a value or one line (never a traceback)
_pieces = st.sampled_from([b"[", b"]", b"{", b"}", b'"a":', b",", b"1", b"9" * 60, b"e5", b"-", b"&x ", b"*x",
                           b": ", b"\n  ", b"- ", b"\xff", b"\x00", b"\xfe\xff", b"!!int ", b"1:30", b"'", b'"'])


@fuzz_settings(fast=30, long=1000)
@given(data=st.lists(_pieces, max_size=200).map(b"".join) | st.binary(max_size=200),
       depth=st.integers(0, 3000))
def test_fuzz_structured_bytes_give_a_value_or_one_line(tmp_path, data, depth):
    for name, reader in (("x.json", read_json), ("x.yaml", read_yaml)):
        path = tmp_path / name
        path.write_bytes(b"[" * depth + data + b"]" * depth)
        try:
            reader(path)
        except UserError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(f"{path}: ")
