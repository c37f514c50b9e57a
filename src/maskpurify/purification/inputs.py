"""What the user gave ``maskpurify purify`` (and ``gaze``): the ``--masks`` value parsed once, the kind of input,
and the one mask-file rule (:func:`maskpurify.formats.folder.mask_file_for`) applied to a single image."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from maskpurify.errors import UserError
from maskpurify.fileio import IMAGE_SUFFIXES
from maskpurify.formats.folder import MASK_SUFFIX, mask_file_for
from maskpurify.formats.lpw import is_lpw_folder
from maskpurify.purification.output import PROGRESS_FILE

VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv")

__all__ = ["MASK_SUFFIX", "VIDEO_SUFFIXES", "MaskSource", "input_kind", "is_dataset", "list_images",
           "single_image_mask"]


@dataclass(frozen=True)
class MaskSource:
    """Where masks come from, parsed once from ``--masks``: ``default`` (``NAME_mask.png`` beside each image, else
    automatic; a rendered dataset's stored masks), ``auto`` (the segmenter, or FaceMesh for face photos), ``faces``
    (FaceMesh only) or ``path`` (a folder of ``NAME_mask.png``, or for one image a mask file)."""

    kind: Literal["default", "auto", "faces", "path"] = "default"
    path: Path | None = None

    @classmethod
    def parse(cls, text: str | None) -> MaskSource:
        """The value of ``--masks`` (None when not given)."""
        if text is None:
            return cls()
        if text in ("auto", "faces"):
            return cls(text)  # type: ignore[arg-type]
        return cls("path", Path(text))

    @property
    def automatic(self) -> bool:
        """Whether every mask is made here (no mask files are looked for)."""
        return self.kind in ("auto", "faces")

    @property
    def faces_mode(self) -> str:
        """The pipeline's face mode: ``always`` for ``--masks faces``, else ``auto``."""
        return "always" if self.kind == "faces" else "auto"

    def __str__(self) -> str:
        return str(self.path) if self.kind == "path" else self.kind


def is_dataset(path: Path) -> bool:
    """A rendered dataset folder: ``meta.json`` and at least one ``shard-*.npz``."""
    return (path / "meta.json").is_file() and any(path.glob("shard-*.npz"))


def input_kind(src: Path) -> Literal["dataset", "lpw", "folder", "video", "image", "camera"]:
    """What ``--input`` is: a plain number that names no file is a camera (0: the first webcam); a folder with
    ``K.avi`` + ``K.txt`` is LPW's layout; a missing path or an unknown file type is a UserError."""
    if str(src).isdigit() and not src.exists():
        return "camera"
    if not src.exists():
        raise UserError(f"--input {src}: no such file or folder")
    if src.is_dir():
        return "dataset" if is_dataset(src) else "lpw" if is_lpw_folder(src) else "folder"
    suffix = src.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    raise UserError(f"--input {src}: not an image ({', '.join(IMAGE_SUFFIXES)}) or video "
                    f"({', '.join(VIDEO_SUFFIXES)})")


def list_images(root: Path, recursive: bool, skip: Path | None = None) -> list[Path]:
    """The images under ``root`` (sorted; not mask files, nothing hidden, nothing under ``skip``, e.g. the run's
    own output folder inside the input). ``recursive`` walks the sub-folders, but never into one that holds an
    earlier purify run's progress file (:data:`maskpurify.purification.output.PROGRESS_FILE`): a run's outputs
    are never purified again."""
    skip = skip.resolve() if skip is not None else None
    folders = [root]
    if recursive:
        for folder, subfolders, _ in os.walk(root):  # links to folders are not followed (as rglob does not)
            kept = [name for name in sorted(subfolders) if not name.startswith(".")
                    and not (Path(folder) / name).is_symlink()
                    and not (Path(folder) / name / PROGRESS_FILE).is_file()
                    and (skip is None or (Path(folder) / name).resolve() != skip)]
            folders.extend(Path(folder) / name for name in kept)
            subfolders[:] = kept
    files = sorted(p for folder in folders for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.endswith(MASK_SUFFIX)
                   and not p.name.startswith(".") and (skip is None or skip not in p.resolve().parents))
    if not files:
        raise UserError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    return files


def single_image_mask(src: Path, masks: MaskSource) -> Path | None:
    """The mask file for one image: ``--masks FILE``, ``--masks DIR/NAME_mask.png`` or ``NAME_mask.png`` beside
    the image; None for an automatic mask."""
    if masks.automatic:
        return None
    if masks.path is None:
        return mask_file_for(src)
    if masks.path.is_dir():
        return mask_file_for(src, masks_dir=masks.path)
    if masks.path.is_file():
        return masks.path
    raise UserError(f"--masks {masks}: no such mask file or folder")
