"""Checkpoints as safetensors (tensors only, nothing executable) plus a JSON sidecar (config and metadata).

``name.safetensors`` holds the weights, ``name.json`` says what network they belong to and how it was made.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save as save_bytes

from maskpurify.errors import UserError
from maskpurify.fileio import atomic_write_bytes, atomic_write_json, read_json


#: The shipped checkpoints (``weights/`` at the repository root, beside ``src/``).
WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, sidecar) for a checkpoint named with or without its ``.safetensors`` suffix."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_suffix(".safetensors"), path.with_suffix(".json")


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write weights then sidecar, each atomically. Returns the weights path."""
    weights, sidecar = checkpoint_paths(path)
    contiguous = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write_bytes(weights, save_bytes(contiguous))
    atomic_write_json(sidecar, meta)
    return weights


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint; a missing or corrupt file is a UserError naming it."""
    weights, sidecar = checkpoint_paths(path)
    if not weights.is_file():
        raise UserError(f"{weights}: no such checkpoint")
    if not sidecar.is_file():
        raise UserError(f"{sidecar}: checkpoint sidecar missing (expected next to {weights.name})")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{weights}: not a readable safetensors file ({exc})") from None
    return tensors, read_json(sidecar)


def optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's state dict into safetensors-able tensors and JSON-able metadata."""
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
                 device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild a network from its checkpoint: the sidecar must say ``kind`` and hold the ``config`` that
    ``build`` turns into the module; returns it in eval mode on ``device``. Mismatches are UserErrors."""
    tensors, meta = load_checkpoint(path)
    if meta.get("kind") != kind or "config" not in meta:
        raise UserError(f"{path}: not a {kind} checkpoint (sidecar kind is {meta.get('kind')!r})")
    model = build(meta["config"])
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        raise UserError(f"{path}: weights do not match the network in its sidecar ({str(exc).splitlines()[0]})") \
            from None
    return model.to(device).eval()
