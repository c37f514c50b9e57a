"""The engine's networks as checkpoints: described by their sidecars, built in PyTorch only when PyTorch runs them.

Importing PyTorch takes about 2 s on a 2-core CPU, longer than ONNX Runtime needs to purify a photo. A checkpoint's
sidecar already says everything the engine asks of a network before running it (its kind, its config, the data it
works on) and the sha256 of its weights, which the shipped ONNX exports record too. So
:meth:`maskpurify.purification.Purification.load` reads the sidecars only (:class:`NetworkCheckpoint`); the ONNX
backend finds the export made from those very weights, and the PyTorch module is built (:meth:`NetworkCheckpoint.
build`) only when the PyTorch backend runs, or a network must be exported or hashed.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maskpurify.checkpoints import verified_sidecar
from maskpurify.errors import UserError
from maskpurify.masks import DataSpec, label_set_for

if TYPE_CHECKING:
    from torch import nn

#: The kinds the engine runs: the sidecar's ``kind`` -> the config key of its label count, and its attention labels
_LABELS = {"purifier": ("num_labels", "attention_labels"), "segmenter": ("num_classes", None)}
#: What the engine reads of each kind's config before running it
_READ = {"purifier": ("num_labels", "attention_labels", "use_mask"), "segmenter": ("num_classes",)}


class NetworkCheckpoint:
    """A purifier or segmenter checkpoint read without PyTorch: ``kind``, ``config`` (its sidecar's config, read as
    attributes like the network's own config), ``spec`` (the data it works on, as the loaded network's) and
    ``weights_sha256``, the hash the sidecar records for the weights file and that was checked against it."""

    def __init__(self, path: str | Path, kind: str, meta: dict[str, Any]) -> None:
        config = meta.get("config")
        if meta.get("kind") != kind or not isinstance(config, dict):
            raise UserError(f"{path}: not a {kind} checkpoint (sidecar kind is {meta.get('kind')!r})")
        count, attention = _LABELS[kind]
        missing = [key for key in _READ[kind] if key not in config]
        if missing:
            raise UserError(f"{path}: sidecar config lacks {missing}")
        try:
            labels = label_set_for(int(config[count]), config[attention] if attention else
                                   range(1, int(config[count])))
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{path}: sidecar config does not describe a {kind} (no valid {count!r})") from None
        self.path, self.kind, self.meta = Path(path), kind, meta
        self.config = types.SimpleNamespace(**config)
        self.spec = DataSpec.from_meta(meta, path, DataSpec(labels=labels))
        self.weights_sha256: str = meta["weights_sha256"]

    @classmethod
    def read(cls, path: str | Path, kind: str) -> NetworkCheckpoint | None:
        """The checkpoint at ``path`` when its sidecar records its weights' hash (every checkpoint this package
        saves) and describes a ``kind``; None otherwise (a training checkpoint, an older or foreign sidecar): those
        are built in PyTorch at once, whose loader names any problem."""
        meta = verified_sidecar(path)
        if meta is None or not isinstance(meta.get("weights_sha256"), str):
            return None
        try:
            return cls(path, kind, meta)
        except UserError:  # not this kind, or a config it cannot read: PyTorch's loader says what is wrong
            return None

    def build(self, device: Any = "cpu") -> nn.Module:
        """The PyTorch network, loaded from the checkpoint (which checks that the weights fit the config)."""
        return _build(self.path, self.kind, device)


def _build(path: str | Path, kind: str, device: Any) -> nn.Module:
    if kind == "purifier":
        from maskpurify.nets.purifier import load_purifier

        return load_purifier(path, device)
    from maskpurify.nets.segmenter import load_segmenter

    return load_segmenter(path, device)


def open_network(path: str | Path, kind: str, device: Any = "cpu", lazy: bool = False) -> Any:
    """A purifier or segmenter checkpoint: its :class:`NetworkCheckpoint` when ``lazy`` and it can be one (built on
    demand), else the PyTorch network."""
    if lazy:
        found = NetworkCheckpoint.read(path, kind)
        if found is not None:
            return found
    return _build(path, kind, device)
