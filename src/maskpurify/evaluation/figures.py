"""Pictures for the report: tiles of small images enlarged pixel-exact, with a header band naming each column (and
optionally a band naming each row), and the text drawing they need.

Tiles are enlarged by an integer factor (nearest neighbour), so every pixel of a 36x60 eye stays a square block; the
labels are drawn with matplotlib's DejaVu Sans on white bands around the tiles, never over them."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: The widest a picture of the report should be, in pixels: the page's width, so the browser never shrinks a tile.
PAGE_WIDTH = 1200
GAP = 3
WHITE = 255
INK = (20, 20, 20)


@functools.lru_cache(maxsize=8)
def font(size: int = 13, bold: bool = False) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """DejaVu Sans (it ships with matplotlib) at ``size`` pixels; PIL's own font when it cannot be found."""
    try:
        from matplotlib import font_manager

        path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans",
                                                                 weight="bold" if bold else "normal"),
                                     fallback_to_default=True)
        return ImageFont.truetype(path, size)
    except Exception:  # noqa: BLE001 - any failure to find a TrueType font: PIL's built-in one still reads
        return ImageFont.load_default(size)


def _width(text: str, face: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> float:
    return ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(text, font=face)


def wrap(text: str, width: int, face: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> list[str]:
    """``text`` as lines no wider than ``width`` pixels: broken at spaces, a word too long for a line broken after a
    hyphen or, failing that, between characters."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        pieces = [word]
        if _width(word, face) > width and "-" in word[:-1]:
            head, tail = word.split("-", 1)
            pieces = [head + "-", tail]
        for piece in pieces:
            candidate = f"{line} {piece}" if line and not line.endswith("-") else line + piece
            if _width(candidate, face) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = ""
            for char in piece:
                if line and _width(line + char, face) > width:
                    lines.append(line)
                    line = ""
                line += char
    if line:
        lines.append(line)
    return lines or [""]


def text_band(lines_by_slot: Sequence[Sequence[str]], slots: Sequence[tuple[int, int]], width: int,
              face: ImageFont.ImageFont | ImageFont.FreeTypeFont, align: str = "center", pad: int = 3,
              min_lines: int = 1) -> np.ndarray:
    """A white band ``width`` wide holding, for each (x0, x1) slot, its lines of text (centred or left-aligned),
    top-aligned; as tall as the slot with the most lines."""
    ascent, descent = face.getmetrics() if hasattr(face, "getmetrics") else (11, 3)
    line_h = ascent + descent + 1
    n_lines = max([min_lines, *(len(lines) for lines in lines_by_slot)])
    band = Image.new("RGB", (width, 2 * pad + n_lines * line_h), (WHITE,) * 3)
    draw = ImageDraw.Draw(band)
    for lines, (x0, x1) in zip(lines_by_slot, slots):
        for k, line in enumerate(lines):
            w = _width(line, face)
            x = x0 + (x1 - x0 - w) / 2 if align == "center" else x0
            draw.text((x, pad + k * line_h), line, fill=INK, font=face)
    return np.asarray(band)


def enlarge(image: np.ndarray, scale: int) -> np.ndarray:
    """uint8 HxW or HxWx3 -> HxWx3 enlarged ``scale`` times by repeating pixels (pixel-exact)."""
    rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
    return np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)


def fit_scale(n_columns: int, tile_width: int, extra: int = 0, limit: int = PAGE_WIDTH,
              choices: Sequence[int] = (3, 2)) -> int:
    """The largest integer enlargement in ``choices`` at which ``n_columns`` tiles (with gaps and ``extra`` pixels
    of row labels) fit ``limit`` pixels; the smallest choice when none does."""
    for scale in choices:
        if n_columns * (tile_width * scale + GAP) - GAP + extra <= limit:
            return scale
    return choices[-1]


def labelled_grid(rows: Sequence[Sequence[np.ndarray]], columns: Sequence[str], scale: int = 3,
                  row_labels: Sequence[str] | None = None, font_size: int = 13,
                  row_label_width: int = 96) -> np.ndarray:
    """Rows of equally sized uint8 images as one RGB picture: each tile enlarged ``scale`` times (pixel-exact),
    white gaps between tiles, a header band with each column's name (wrapped to the tile's width) above the tiles
    and, when ``row_labels`` is given, each row's name in a band on the left."""
    if not rows or not rows[0]:
        raise ValueError("labelled_grid needs at least one row of one tile")
    if len(columns) != len(rows[0]):
        raise ValueError(f"{len(columns)} column names for {len(rows[0])} tiles per row")
    tiles = [[enlarge(c, scale) for c in cells] for cells in rows]
    th, tw = tiles[0][0].shape[:2]
    left = row_label_width + GAP if row_labels is not None else 0
    width = left + len(columns) * (tw + GAP) - GAP
    face = font(font_size)
    slots = [(left + j * (tw + GAP), left + j * (tw + GAP) + tw) for j in range(len(columns))]
    header = text_band([wrap(name, tw - 4, face) for name in columns], slots, width, face)
    parts = [header]
    for i, cells in enumerate(tiles):
        line = np.full((th, width, 3), WHITE, np.uint8)
        for j, tile in enumerate(cells):
            x = slots[j][0]
            line[:, x:x + tw] = tile
        if row_labels is not None:
            label = text_band([wrap(row_labels[i], row_label_width - 4, face)], [(2, row_label_width)],
                              row_label_width, face, align="left")[:th]
            line[:label.shape[0], :row_label_width] = label
        parts.extend([np.full((GAP, width, 3), WHITE, np.uint8), line])
    return np.concatenate(parts, 0)


def stack(pictures: Sequence[np.ndarray], gap: int = 8, align: str = "left") -> np.ndarray:
    """Pictures one above the other on white, as wide as the widest."""
    width = max(p.shape[1] for p in pictures)
    parts = []
    for k, p in enumerate(pictures):
        pad = width - p.shape[1]
        x = pad // 2 if align == "center" else 0
        row = np.full((p.shape[0], width, 3), WHITE, np.uint8)
        row[:, x:x + p.shape[1]] = p
        if k:
            parts.append(np.full((gap, width, 3), WHITE, np.uint8))
        parts.append(row)
    return np.concatenate(parts, 0)


def side_by_side(pictures: Sequence[np.ndarray], gap: int = 12) -> np.ndarray:
    """Pictures next to each other on white, top-aligned, as tall as the tallest."""
    height = max(p.shape[0] for p in pictures)
    parts = []
    for k, p in enumerate(pictures):
        col = np.full((height, p.shape[1], 3), WHITE, np.uint8)
        col[:p.shape[0]] = p
        if k:
            parts.append(np.full((height, gap, 3), WHITE, np.uint8))
        parts.append(col)
    return np.concatenate(parts, 1)
