"""Checkpoints as safetensors (tensors only, nothing executable) plus a JSON sidecar (config and metadata).

Two layouts, both read by :func:`load_checkpoint`:

- **plain** (final models, the shipped ``weights/``): ``name.safetensors`` holds the weights, ``name.json`` says
  what network they belong to and how it was made. The sidecar is written last and records the weights' sha256
  (``weights_sha256``), so a sidecar that does not belong to its weights is detected instead of silently mixed.
  Sidecars without the hash (the shipped weights) load unchanged.
  A network's sidecar also records the data it works on (:class:`maskpurify.masks.DataSpec`).
- **committed** (training state, written every few steps and killed at any moment): each save goes into a new
  version folder ``name.v<step>-<token>/`` (``weights.safetensors`` + ``meta.json``, built under a temporary name
  and renamed into place when complete), then the pointer ``name.json`` is atomically replaced. The pointer is the
  single commit point: it names the folder and the sha256 of every file in it, and the previous version as a
  fallback. A kill at any moment leaves either the old or the new checkpoint visible, never a mix; the next save
  removes what a killed one left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError

from maskpurify.errors import UserError
from maskpurify.fileio import atomic_write_bytes, atomic_write_json, current_umask, fsync_dir, json_bytes, parse_json, \
    read_json, sha256_file

if TYPE_CHECKING:  # PyTorch is imported where tensors are read or written, so that reading a sidecar needs none
    import torch


#: The shipped checkpoints, the one place every default checkpoint path starts from: ``$MASKPURIFY_WEIGHTS`` when
#: set (an override), else the ``weights/`` folder inside the installed package (package data, so a wheel or
#: ``pip install .`` purifies from any folder; ``weights/`` at the repository root links to it).
WEIGHTS_DIR = Path(os.environ.get("MASKPURIFY_WEIGHTS") or Path(__file__).resolve().parent / "weights")

#: ``format`` of a committed checkpoint's pointer file.
POINTER_FORMAT = "maskpurify-checkpoint"
_WEIGHTS, _META = "weights.safetensors", "meta.json"


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, sidecar) for a checkpoint named with or without its ``.safetensors`` suffix."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_suffix(".safetensors"), path.with_suffix(".json")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tensor_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save as save_bytes

    return save_bytes({k: v.detach().cpu().contiguous() for k, v in tensors.items()})


# ----------------------------------------------------------------------------------------------------------------
# Plain layout (final models)


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write weights, then the sidecar (carrying the weights' sha256), each atomically. Returns the weights path.

    The sidecar is the commit point: after a kill between the two writes the old sidecar no longer matches the
    new weights, and :func:`load_checkpoint` says so instead of mixing them.
    """
    weights, sidecar = checkpoint_paths(path)
    data = _tensor_bytes(tensors)
    atomic_write_bytes(weights, data)
    atomic_write_json(sidecar, {**meta, "weights_sha256": sha256_bytes(data)})
    return weights


def verified_sidecar(path: str | Path) -> dict[str, Any] | None:
    """The sidecar of a plain checkpoint, checked against its weights file (``weights_sha256``) without reading a
    tensor, so without PyTorch; None for a committed checkpoint (training state). A missing, unreadable or
    mismatched file is a UserError naming it."""
    weights, sidecar = checkpoint_paths(path)
    meta = read_json(sidecar) if sidecar.is_file() else None
    if isinstance(meta, dict) and meta.get("format") == POINTER_FORMAT:
        return None
    if not weights.is_file():
        raise UserError(f"{weights}: no such checkpoint")
    if meta is None:
        raise UserError(f"{sidecar}: checkpoint sidecar missing (expected next to {weights.name})")
    if not isinstance(meta, dict):
        raise UserError(f"{sidecar}: checkpoint sidecar must be a JSON object")
    expected = meta.get("weights_sha256")
    if expected is not None and sha256_file(weights) != expected:
        raise UserError(f"{weights}: does not match its sidecar {sidecar.name} (weights_sha256 differs; an "
                        "interrupted save or a replaced file): save it again")
    return meta


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint of either layout; a missing, corrupt or mismatched file is a UserError naming it."""
    weights, sidecar = checkpoint_paths(path)
    meta = verified_sidecar(path)
    if meta is None:
        return load_committed(sidecar.with_suffix(""))
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{weights}: not a readable safetensors file ({exc})") from None
    return tensors, meta


# ----------------------------------------------------------------------------------------------------------------
# Committed layout (training state)


def _temp_pattern(name: str) -> re.Pattern[str]:
    """What a killed save of checkpoint ``name`` can leave: temporary version folders and atomic-write temps."""
    n = re.escape(name)
    return re.compile(rf"^\.(?:{n}\.v\d+-[0-9a-f]+\..*\.tmp|{n}\.json\..*\.tmp|{n}\.safetensors\..*\.tmp)$")


def _version_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(name)}\.v\d+-[0-9a-f]+$")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def read_pointer(directory: str | Path, name: str = "last") -> dict[str, Any] | None:
    """The pointer of committed checkpoint ``directory/name``; None when there is none (or a legacy sidecar)."""
    path = Path(directory) / f"{name}.json"
    if not path.is_file():
        return None
    pointer = read_json(path)
    if isinstance(pointer, dict) and pointer.get("format") == POINTER_FORMAT:
        return pointer
    return None


def clean_stale(directory: str | Path, name: str = "last") -> list[Path]:
    """Remove what interrupted saves of checkpoint ``name`` left in ``directory``: temporary files and folders,
    version folders the pointer names neither as current nor as previous, and a legacy ``name.safetensors``
    once a pointer exists. Returns what was removed. Only the single writer of ``directory`` may call it."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    pointer = read_pointer(directory, name)
    keep = set()
    if pointer is not None:
        keep = {entry["folder"] for entry in (pointer.get("current"), pointer.get("previous"))
                if isinstance(entry, dict) and isinstance(entry.get("folder"), str)}
    temps, versions = _temp_pattern(name), _version_pattern(name)
    removed = []
    for child in directory.iterdir():
        stale = bool(temps.match(child.name)) or (bool(versions.match(child.name)) and child.name not in keep
                                                   and pointer is not None)
        if pointer is not None and child.name == f"{name}.safetensors":
            stale = True  # the legacy layout's weights, superseded by the pointer
        if stale:
            _remove(child)
            removed.append(child)
    return removed


def commit_checkpoint(directory: str | Path, name: str, step: int, tensors: dict[str, torch.Tensor],
                      meta: dict[str, Any], keep_previous: bool = True) -> Path:
    """Save a training-state checkpoint with one commit point (see the module docstring); returns the new
    version folder. ``keep_previous`` keeps the version before it as a fallback."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    clean_stale(directory, name)
    old = read_pointer(directory, name)
    folder_name = f"{name}.v{int(step):09d}-{secrets.token_hex(4)}"
    temp = directory / f".{folder_name}.{secrets.token_hex(4)}.tmp"
    files: dict[str, dict[str, Any]] = {}
    temp.mkdir()
    try:
        for file_name, data in ((_WEIGHTS, _tensor_bytes(tensors)),
                                (_META, json_bytes({**meta, "step": int(step)}))):
            with open(temp / file_name, "xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp / file_name, 0o666 & ~current_umask())
            files[file_name] = {"sha256": sha256_bytes(data), "size": len(data)}
        fsync_dir(temp)
        os.chmod(temp, 0o777 & ~current_umask())
        os.rename(temp, directory / folder_name)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    fsync_dir(directory)
    current = {"folder": folder_name, "step": int(step), "files": files}
    previous = old.get("current") if (old is not None and keep_previous) else None
    atomic_write_json(directory / f"{name}.json", {"format": POINTER_FORMAT, "version": 1, "step": int(step),
                                                   "current": current, "previous": previous})
    fsync_dir(directory)
    clean_stale(directory, name)
    return directory / folder_name


def _verified(directory: Path, entry: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """The tensors and metadata of one version entry, or None unless every file is present with its hash."""
    if not isinstance(entry, dict) or not isinstance(entry.get("folder"), str) or "/" in entry["folder"] \
            or entry["folder"] in ("", ".", "..") or not isinstance(entry.get("files"), dict):
        return None
    folder = directory / entry["folder"]
    blobs: dict[str, bytes] = {}
    for file_name in (_WEIGHTS, _META):
        expected = entry["files"].get(file_name)
        try:
            data = (folder / file_name).read_bytes()
        except OSError:
            return None
        if not isinstance(expected, dict) or sha256_bytes(data) != expected.get("sha256"):
            return None
        blobs[file_name] = data
    try:
        from safetensors.torch import load as load_bytes

        tensors = load_bytes(blobs[_WEIGHTS])
        meta = parse_json(blobs[_META], str(folder / _META))
    except (SafetensorError, ValueError, UserError):
        return None
    return (tensors, meta) if isinstance(meta, dict) else None


def load_committed(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The newest complete, verified version of committed checkpoint ``path`` (``dir/name``): the pointer's
    current version, else its previous one. UserError when neither verifies."""
    path = Path(path)
    directory, name = path.parent, path.name
    pointer = read_pointer(directory, name)
    if pointer is None:
        raise UserError(f"{directory / (name + '.json')}: no committed checkpoint")
    for key in ("current", "previous"):
        found = _verified(directory, pointer.get(key))
        if found is not None:
            return found
    raise UserError(f"{directory / (name + '.json')}: no complete checkpoint verifies against its sha256 "
                    "(files damaged or removed); start afresh with --no-resume or a new --out")


def checkpoint_meta(path: str | Path) -> dict[str, Any] | None:
    """The metadata (``step``, ``extra``, ...) of the checkpoint ``dir/name`` that restoring would load, read
    without its tensors: the pointer's current version, else its previous one (each only when its ``meta.json``
    matches the sha256 the pointer records), or a legacy sidecar. None when there is none or none can be read
    (restoring then says what is wrong)."""
    weights, sidecar = checkpoint_paths(path)
    try:
        pointer = read_pointer(sidecar.parent, sidecar.stem)
        if pointer is None:
            meta = read_json(sidecar) if weights.is_file() and sidecar.is_file() else None
            return meta if isinstance(meta, dict) else None
    except UserError:
        return None
    for key in ("current", "previous"):
        entry = pointer.get(key)
        if not isinstance(entry, dict) or not isinstance(entry.get("folder"), str) or "/" in entry["folder"] \
                or entry["folder"] in ("", ".", "..") or not isinstance(entry.get("files"), dict):
            continue
        expected = entry["files"].get(_META)
        try:
            data = (sidecar.parent / entry["folder"] / _META).read_bytes()
            if not isinstance(expected, dict) or sha256_bytes(data) != expected.get("sha256"):
                continue
            meta = parse_json(data, str(sidecar.parent / entry["folder"] / _META))
        except (OSError, ValueError, UserError):
            continue
        if isinstance(meta, dict):
            return meta
    return None


def remove_checkpoint(directory: str | Path, name: str = "last") -> None:
    """Remove checkpoint ``name`` from ``directory`` (either layout, with what killed saves left): the pointer
    first, so a kill part-way leaves no checkpoint rather than part of one. Only the single writer of
    ``directory`` may call it."""
    directory = Path(directory)
    if not directory.is_dir():
        return
    _remove(directory / f"{name}.json")
    _remove(directory / f"{name}.safetensors")
    temps, versions = _temp_pattern(name), _version_pattern(name)
    for child in directory.iterdir():
        if temps.match(child.name) or versions.match(child.name):
            _remove(child)


def checkpoint_exists(path: str | Path) -> bool:
    """Whether ``dir/name`` holds a checkpoint of either layout (a pointer, or weights + sidecar)."""
    weights, sidecar = checkpoint_paths(path)
    if weights.is_file() and sidecar.is_file():
        return True
    if not sidecar.is_file():
        return False
    try:
        return read_pointer(sidecar.parent, sidecar.stem) is not None
    except UserError:
        return True  # a pointer that is there but unreadable: restoring will say what is wrong


def optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's state dict into safetensors-able tensors and JSON-able metadata."""
    import torch

    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, slots in state["state"].items():
        for slot, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{slot}"] = value
            else:
                scalars[f"{pid}.{slot}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Inverse of :func:`optimizer_state`."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, slot = name.split(".", 2)
            state.setdefault(int(pid), {})[slot] = value
    for name, value in meta.get("scalars", {}).items():
        pid, slot = name.split(".", 1)
        state.setdefault(int(pid), {})[slot] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def load_network(path: str | Path, kind: str, build: Callable[[dict[str, Any]], torch.nn.Module],
                 device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild a network from its checkpoint: the sidecar must say ``kind`` and hold the ``config`` that
    ``build`` turns into the module; returns it in eval mode on ``device``, with the sidecar (for what else it
    records, e.g. the data spec). Mismatches are UserErrors."""
    tensors, meta = load_checkpoint(path)
    if meta.get("kind") != kind or "config" not in meta:
        raise UserError(f"{path}: not a {kind} checkpoint (sidecar kind is {meta.get('kind')!r})")
    config = meta["config"]
    # A dry build on the meta device allocates nothing: a sidecar config naming a huge network, or one that does
    # not fit the weights, is refused before any memory is spent on it.
    shapes = _build_checked(path, build, config, meta_device=True)
    mismatch = sorted(set(shapes) ^ set(tensors)) or sorted(k for k in shapes if shapes[k] != tuple(tensors[k].shape))
    if mismatch:
        raise UserError(f"{path}: weights do not match the network in its sidecar (first difference: "
                        f"{mismatch[0]!r})")
    model = _build_checked(path, build, config, meta_device=False)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        raise UserError(f"{path}: weights do not match the network in its sidecar ({str(exc).splitlines()[0]})") \
            from None
    return model.to(device).eval(), meta


#: What building a network from a sidecar's config can raise when the config is malformed.
_BUILD_ERRORS = (TypeError, ValueError, KeyError, AttributeError, IndexError, RuntimeError, OverflowError,
                 ZeroDivisionError, NotImplementedError)


def _build_checked(path: str | Path, build: Callable[[dict[str, Any]], torch.nn.Module], config: Any,
                   meta_device: bool) -> Any:
    """``build(config)``, with a malformed sidecar config turned into one UserError; on the meta device returns
    the state dict's shapes instead of the module."""
    if not isinstance(config, dict):
        raise UserError(f"{path}: sidecar 'config' must be a JSON object, got {type(config).__name__}")
    import torch

    try:
        if meta_device:
            with torch.device("meta"):
                return {k: tuple(v.shape) for k, v in build(config).state_dict().items()}
        return build(config)
    except UserError:
        raise
    except _BUILD_ERRORS as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path}: sidecar config does not describe a network ({detail[:200]})") from None
