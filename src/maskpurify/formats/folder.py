"""Plain folders of images, each with an optional ``NAME_mask.png`` label map beside it.

The simplest way to bring one's own data: masks are read through :func:`maskpurify.masks.load_mask`, so the
same validation applies (single channel or declared palette, known labels, image size). Images without a
mask file get the masker's mask, or None.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from maskpurify.errors import UserError
from maskpurify.fileio import IMAGE_SUFFIXES, MAX_IMAGE_PIXELS, read_image
from maskpurify.formats.base import Masker, Reader
from maskpurify.masks import BINARY_LABELS, EYE_LABELS, LabelSet, load_mask
from maskpurify.pairs import RGBMaskPair

MASK_SUFFIX = "_mask.png"


def mask_file_for(image: Path, rel: Path | None = None, masks_dir: Path | None = None) -> Path | None:
    """The one mask-file rule: ``NAME_mask.png`` under ``masks_dir`` (at the image's relative path ``rel``) or,
    without a masks folder, beside the image; None when there is none. Something under that name that is not a
    file (a folder, a broken link) is a UserError, never a silent fall-back to an automatic mask. A candidate name
    the file system cannot even hold (an image name of 247-255 bytes plus ``_mask``) means no mask file."""
    if masks_dir is not None:
        rel = Path(image.name) if rel is None else rel
        candidate = masks_dir / rel.with_name(rel.stem + MASK_SUFFIX)
    else:
        candidate = image.with_name(image.stem + MASK_SUFFIX)
    try:
        if candidate.is_file():
            return candidate
    except OSError:  # a candidate name too long for the file system ("File name too long"): no mask file
        return None
    if os.path.lexists(candidate):
        what = "a folder" if candidate.is_dir() else "not a regular file (a broken link?)"
        raise UserError(f"{candidate}: is {what}, not a mask file; remove or rename it, or give --masks")
    return None


class FolderReader(Reader):
    """Images under ``root`` (sorted; ``recursive`` descends into sub-folders).

    labels: the label set of the mask files. binary: treat every non-zero mask value as attention.
    max_pixels: refuse larger images (decompression-bomb guard of :func:`maskpurify.fileio.read_image`).
    """

    def __init__(self, root: str | Path, recursive: bool = False, labels: LabelSet = EYE_LABELS,
                 binary: bool = False, max_pixels: int = MAX_IMAGE_PIXELS, masker: Masker | None = None) -> None:
        super().__init__(masker)
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"{self.root}: not a folder of images")
        self.labels = BINARY_LABELS if binary else labels
        self.binary, self.max_pixels = binary, max_pixels
        candidates = self.root.rglob("*") if recursive else self.root.glob("*")
        self.files = sorted(p for p in candidates if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                            and not p.name.endswith(MASK_SUFFIX) and not p.name.startswith("."))
        if not self.files:
            raise UserError(f"{self.root}: no images ({', '.join(IMAGE_SUFFIXES)}) found")

    def __len__(self) -> int:
        return len(self.files)

    def _pairs(self) -> Iterator[RGBMaskPair]:
        for path in self.files:
            image = read_image(path, max_pixels=self.max_pixels)
            mask_path = mask_file_for(path)
            mask = (load_mask(mask_path, image.shape, self.labels, binary=self.binary)
                    if mask_path is not None else None)
            yield RGBMaskPair(image=image, mask=mask, name=path.relative_to(self.root).with_suffix("").as_posix(),
                              extra={"path": str(path)})
