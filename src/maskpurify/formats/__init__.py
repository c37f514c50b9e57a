"""Readers of the real dataset formats, all yielding :class:`~maskpurify.pairs.RGBMaskPair`.

Use :func:`open_reader` with a kind name so the CLI and configs need not know the reader classes.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from maskpurify.errors import UserError
from maskpurify.formats.base import CropBox, Masker, Reader
from maskpurify.formats.coco import COCOReader
from maskpurify.formats.folder import FolderReader
from maskpurify.formats.lpw import LPWReader, pupil_agreement
from maskpurify.formats.mpiigaze import MPIIGazeReader
from maskpurify.formats.unityeyes import UnityEyesReader

READERS: dict[str, type[Reader]] = {
    "unityeyes": UnityEyesReader,
    "mpiigaze": MPIIGazeReader,
    "lpw": LPWReader,
    "coco": COCOReader,
    "folder": FolderReader,
}


def open_reader(kind: str, path: str | Path, **options: Any) -> Reader:
    """Open a dataset: ``kind`` names the format, ``path`` its root (for "coco" the annotation JSON),
    ``options`` go to the reader (e.g. ``masker=``, ``persons=``, ``categories=``, ``output_size=``)."""
    try:
        cls = READERS[kind.lower()]
    except KeyError:
        raise UserError(f"unknown dataset kind '{kind}' (choose from {', '.join(READERS)})") from None
    try:
        inspect.signature(cls).bind(path, **options)
    except TypeError as exc:
        raise UserError(f"dataset kind '{kind}': bad option ({exc})") from None
    return cls(path, **options)


__all__ = ["READERS", "COCOReader", "CropBox", "FolderReader", "LPWReader", "MPIIGazeReader", "Masker", "Reader",
           "UnityEyesReader", "open_reader", "pupil_agreement"]
