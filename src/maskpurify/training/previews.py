"""Preview grids written during training: input | mask overlay | output | a style sample, one row per image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from maskpurify.fileio import save_image
from maskpurify.masks import overlay


def _u8(images: torch.Tensor) -> np.ndarray:
    return (images.detach().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)


def save_preview_grid(path: str | Path, inputs: torch.Tensor, masks: torch.Tensor, outputs: torch.Tensor,
                      style: torch.Tensor, scale: int = 4) -> None:
    """Write a PNG grid (nearest-upscaled by ``scale``) with a 2-px gap between cells."""
    columns = [_u8(inputs), np.stack([overlay(i, m) for i, m in zip(_u8(inputs), masks.cpu().numpy().astype(np.uint8))]),
               _u8(outputs), _u8(style[: len(inputs)])]
    rows = []
    for r in range(len(inputs)):
        cells = [np.kron(col[r], np.ones((scale, scale, 1), np.uint8)) for col in columns]
        gap = np.full((cells[0].shape[0], 2, 3), 255, np.uint8)
        rows.append(np.concatenate([x for c in cells for x in (c, gap)][:-1], axis=1))
    hgap = np.full((2, rows[0].shape[1], 3), 255, np.uint8)
    save_image(path, np.concatenate([x for r in rows for x in (r, hgap)][:-1], axis=0))
