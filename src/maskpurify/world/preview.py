"""Contact sheets: the same geometry in both domains, side by side, with masks and gaze labels."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from maskpurify.config import parse_size
from maskpurify.fileio import save_image
from maskpurify.masks import overlay
from maskpurify.world.domains import RenderConfig
from maskpurify.world.renderer import REF_SIZE, render_samples

COLUMNS = ("synthetic", "synthetic + mask", "wild", "wild + mask")


def _label(tile: np.ndarray, text: str, scale: float) -> None:
    org = (4, tile.shape[0] - 5)
    cv2.putText(tile, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(tile, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def contact_sheet(n: int = 8, size: tuple[int, int] | str = REF_SIZE, seed: int = 0,
                  config: RenderConfig | None = None, min_tile_width: int = 240) -> np.ndarray:
    """An RGB sheet: one row per sample (synthetic | synthetic+mask | wild | wild+mask), upscaled by nearest
    neighbour to at least ``min_tile_width`` pixels per tile, labelled with gaze pitch/yaw in degrees."""
    config = config or RenderConfig()
    height, width = parse_size(size)
    syn = render_samples(config.preset("synthetic"), n, (height, width), seed, geometry=config.geometry)
    wild = render_samples(config.preset("wild"), n, (height, width), seed, geometry=config.geometry)
    scale = max(1, int(np.ceil(min_tile_width / width)))
    text_scale = 0.4
    rows = []
    header = np.full((22, 4 * width * scale + 3 * 2, 3), 40, np.uint8)
    for c, name in enumerate(COLUMNS):
        cv2.putText(header, name, (c * (width * scale + 2) + 4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1, cv2.LINE_AA)
    rows.append(header)
    for i in range(n):
        tiles = []
        for batch in (syn, wild):
            image = batch.images[i]
            rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
            tiles += [rgb, overlay(rgb, batch.masks[i])]
        big = [cv2.resize(t, (width * scale, height * scale), interpolation=cv2.INTER_NEAREST) for t in tiles]
        pitch, yaw = np.degrees(syn.gaze[i])
        hp, hy = np.degrees(syn.head_pose[i])
        _label(big[0], f"gaze p{pitch:+.0f} y{yaw:+.0f}", text_scale)
        _label(big[2], f"head p{hp:+.0f} y{hy:+.0f}", text_scale)
        sep = np.full((height * scale, 2, 3), 255, np.uint8)
        rows.append(np.concatenate([big[0], sep, big[1], sep, big[2], sep, big[3]], axis=1))
        rows.append(np.full((2, rows[-1].shape[1], 3), 255, np.uint8))
    return np.concatenate(rows, axis=0)


def preview_sheet(path: str | Path, n: int = 8, size: tuple[int, int] | str = REF_SIZE, seed: int = 0,
                  config: RenderConfig | None = None) -> Path:
    """Write :func:`contact_sheet` as a PNG (atomically) and return its path."""
    path = Path(path)
    save_image(path, contact_sheet(n, size, seed, config))
    return path
