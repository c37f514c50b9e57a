"""Checkpoints have one commit point: a kill at any moment of a save leaves the old or the new state, never a mix,
and the next save removes what the killed one left behind."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from maskpurify.checkpoints import WEIGHTS_DIR, checkpoint_paths, commit_checkpoint, load_checkpoint, \
    load_network, read_pointer, save_checkpoint
from maskpurify.errors import UserError
from maskpurify.fileio import atomic_write_bytes, current_umask
from maskpurify.training.common import Checkpointer


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so no ``except Exception`` handler swallows it."""


#: Every call through which a save changes the disk; a kill is simulated just before each of them.
_SIDE_EFFECTS = [(os, "fsync"), (os, "replace"), (os, "rename"), (os, "mkdir"), (os, "chmod"), (os, "unlink"),
                 (os, "rmdir"), (shutil, "rmtree")]


class KillSwitch:
    """Counts side-effect calls; armed at ``k``, the k-th call and every later one raise :class:`Killed`
    (a killed process runs no clean-up, so its temporary files stay behind)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, kill_at: int | None = None) -> None:
        self.calls, self.kill_at, self.dead = 0, kill_at, False
        for module, name in _SIDE_EFFECTS:
            monkeypatch.setattr(module, name, self._wrap(getattr(module, name)))

    def _wrap(self, func):  # noqa: ANN001, ANN202 - test helper
        def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            if self.dead or (self.kill_at is not None and self.calls == self.kill_at):
                self.dead = True
                raise Killed
            self.calls += 1
            return func(*args, **kwargs)
        return wrapper


def _model(step: int) -> torch.nn.Module:
    model = torch.nn.Linear(4, 3)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float(step))
    return model


def _save(out: Path, step: int) -> None:
    model = _model(step)
    opt = torch.optim.SGD(model.parameters(), lr=0.01 * step)
    Checkpointer(out).save(step, {"m": model}, {"o": opt}, {"tag": f"step{step}"})


def _restored_step(out: Path) -> int:
    """Restore into a fresh model and check that weights, optimizer, step and extra all come from ONE save."""
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    step, extra = Checkpointer(out).restore({"m": model}, {"o": opt})
    assert extra == {"tag": f"step{step}"}
    assert all(torch.all(p == float(step)) for p in model.parameters())
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * step)
    return step


def _litter(out: Path) -> list[str]:
    """Anything in ``out`` besides the pointer and the (current, previous) version folders it names."""
    pointer = read_pointer(out)
    assert pointer is not None
    keep = {"last.json", pointer["current"]["folder"]}
    if pointer.get("previous"):
        keep.add(pointer["previous"]["folder"])
    return sorted(p.name for p in out.iterdir() if p.name not in keep)


def _count_side_effects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    out = tmp_path / "count"
    _save(out, 1)
    _save(out, 2)
    with monkeypatch.context() as patch:
        switch = KillSwitch(patch)
        _save(out, 3)
    return switch.calls


def test_kill_at_every_point_of_a_save_leaves_old_or_new_never_a_mix(tmp_path, monkeypatch):
    total = _count_side_effects(tmp_path, monkeypatch)
    assert total >= 8  # folder, two files, their fsyncs, the rename, the pointer: each a kill point
    seen = set()
    for k in range(total + 1):
        out = tmp_path / f"kill{k}"
        _save(out, 1)
        _save(out, 2)  # the run now has a previous (1) and a current (2) version
        with monkeypatch.context() as patch:
            KillSwitch(patch, kill_at=k)
            try:
                _save(out, 3)
                killed = False
            except Killed:
                killed = True
        assert killed == (k < total)
        step = _restored_step(out)  # a fresh process: Checkpointer() also clears the killed save's leftovers
        assert step in (2, 3)
        seen.add(step)
        _save(out, 4)
        assert _litter(out) == [], f"kill point {k}"
        assert _restored_step(out) == 4
    assert seen == {2, 3}  # early kills keep the old state, late ones already committed the new


def test_killed_save_leaves_litter_that_the_next_run_removes(tmp_path, monkeypatch):
    out = tmp_path / "run"
    _save(out, 1)
    with monkeypatch.context() as patch:
        KillSwitch(patch, kill_at=3)  # inside the version folder, before its rename
        with pytest.raises(Killed):
            _save(out, 2)
    assert any(p.name.endswith(".tmp") for p in out.iterdir())
    Checkpointer(out)
    assert not any(p.name.endswith(".tmp") for p in out.iterdir())
    assert _restored_step(out) == 1


def test_damaged_current_version_falls_back_to_the_previous_one(tmp_path):
    out = tmp_path / "run"
    _save(out, 1)
    _save(out, 2)
    pointer = read_pointer(out)
    weights = out / pointer["current"]["folder"] / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])  # torn by a disk failure
    assert _restored_step(out) == 1
    shutil.rmtree(out / pointer["previous"]["folder"])
    with pytest.raises(UserError, match=r"last\.json: no complete checkpoint verifies"):
        _restored_step(out)


def test_only_two_versions_are_kept_and_files_follow_the_umask(tmp_path):
    out = tmp_path / "run"
    for step in range(1, 6):
        _save(out, step)
    assert len([p for p in out.iterdir() if p.is_dir()]) == 2
    assert _litter(out) == []
    folder = out / read_pointer(out)["current"]["folder"]
    for path in (out / "last.json", folder / "weights.safetensors", folder / "meta.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~current_umask(), path
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~current_umask()


def test_load_checkpoint_reads_the_committed_layout(tmp_path):
    out = tmp_path / "run"
    _save(out, 7)
    tensors, meta = load_checkpoint(out / "last")
    assert meta["kind"] == "training-state" and meta["step"] == 7
    assert torch.all(tensors["model.m.weight"] == 7.0)


def test_legacy_layout_is_restored_and_replaced_at_the_next_save(tmp_path):
    out = tmp_path / "run"
    model = _model(5)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    meta = {"kind": "training-state", "step": 5, "optimizers": {"o": {"param_groups": opt.state_dict()["param_groups"],
                                                                        "scalars": {}}},
            "extra": {"tag": "step5"}}
    tensors = {f"model.m.{k}": v for k, v in model.state_dict().items()}
    from safetensors.torch import save as save_bytes
    atomic_write_bytes(out / "last.safetensors", save_bytes(tensors))
    (out / "last.json").write_text(__import__("json").dumps(meta))
    assert Checkpointer(out).exists()
    assert _restored_step(out) == 5
    _save(out, 6)
    assert not (out / "last.safetensors").exists()
    assert _restored_step(out) == 6


def test_plain_checkpoint_with_foreign_sidecar_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "net"
    save_checkpoint(path, {"w": torch.zeros(3)}, {"kind": "x"})
    with monkeypatch.context() as patch:
        switch = KillSwitch(patch)
        save_checkpoint(path, {"w": torch.ones(3)}, {"kind": "x"})
    calls, refused = switch.calls, 0
    for k in range(calls):  # every kill point of the second save: old, new, or a clear refusal -- never a mix
        save_checkpoint(path, {"w": torch.zeros(3)}, {"kind": "x"})
        with monkeypatch.context() as patch:
            KillSwitch(patch, kill_at=k)
            with pytest.raises(Killed):
                save_checkpoint(path, {"w": torch.ones(3)}, {"kind": "x"})
        try:
            tensors, _ = load_checkpoint(path)
        except UserError as exc:
            assert "does not match its sidecar" in str(exc)
            refused += 1
        else:  # the sidecar's hash vouches that these are the weights it was written with
            assert torch.equal(tensors["w"], torch.zeros(3)) or torch.equal(tensors["w"], torch.ones(3))
    assert refused > 0  # the window between the two renames exists, and is caught
    save_checkpoint(path, {"w": torch.ones(3)}, {"kind": "x"})
    assert torch.equal(load_checkpoint(path)[0]["w"], torch.ones(3))


def test_shipped_weights_load_unchanged():
    from maskpurify.nets.gaze import build_gaze_net, gaze_config_from_dict

    weights, sidecar = checkpoint_paths(WEIGHTS_DIR / "gaze")
    assert weights.is_file() and sidecar.is_file()
    _, meta = load_checkpoint(WEIGHTS_DIR / "gaze")
    assert "weights_sha256" not in meta  # shipped without a hash: loaded as before
    net, _ = load_network(WEIGHTS_DIR / "gaze", "gaze", lambda c: build_gaze_net(gaze_config_from_dict(c)))
    assert not net.training


def test_weights_dir_follows_the_environment(tmp_path):
    """An installed (non-editable) package has no repository beside it: MASKPURIFY_WEIGHTS names the weights."""
    code = "from maskpurify.checkpoints import WEIGHTS_DIR; print(WEIGHTS_DIR)"
    env = {**os.environ, "MASKPURIFY_WEIGHTS": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert Path(out.strip()) == tmp_path


def test_commit_point_is_the_pointer(tmp_path):
    folder = commit_checkpoint(tmp_path, "state", 3, {"x": torch.arange(3)}, {"kind": "k"})
    pointer = read_pointer(tmp_path, "state")
    assert pointer["current"]["folder"] == folder.name and pointer["step"] == 3
    assert set(pointer["current"]["files"]) == {"weights.safetensors", "meta.json"}
    tensors, meta = load_checkpoint(tmp_path / "state")
    assert torch.equal(tensors["x"], torch.arange(3)) and meta["step"] == 3
