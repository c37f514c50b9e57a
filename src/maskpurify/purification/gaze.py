"""Gaze, the task users come for: the shipped synthetic-trained estimator reads each eye the pipeline returns, from
the purified crop and, as the control every claim stands beside, from the mask alone.

Both estimators were trained on clean synthetic eyes only (``weights/gaze``: grey 36x60 images;
``weights/gaze_from_labels``: the label map drawn as a cartoon eye). They read the canonical side; an eye of the
other side was mirrored for them, so its yaw is mirrored back here: every angle is in the photo's own frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from maskpurify.checkpoints import WEIGHTS_DIR
from maskpurify.errors import UserError
from maskpurify.masks import CANONICAL_EYE, label_image, mirror_gaze
from maskpurify.nets.gaze import load_gaze_net, predict_gaze
from maskpurify.purification.pipeline import Result

DEFAULT_GAZE = WEIGHTS_DIR / "gaze"
DEFAULT_GAZE_FROM_MASK = WEIGHTS_DIR / "gaze_from_labels"


@dataclass
class EyeGaze:
    """One eye's gaze, in degrees, in the photo's own frame (MPIIGaze convention: positive pitch looks up,
    positive yaw looks towards the image's left). ``pitch``/``yaw`` are read from the purified crop (the raw crop
    when the eye was passed through); ``mask_pitch``/``mask_yaw`` from the mask alone."""

    name: str
    side: str
    box: tuple[int, int, int, int]
    purified: bool
    reason: str | None
    pitch: float
    yaw: float
    mask_pitch: float
    mask_yaw: float

    def row(self) -> dict[str, Any]:
        """A flat dict for CSV and JSON (the box as x0, y0, width, height)."""
        data = asdict(self)
        x0, y0, w, h = data.pop("box")
        return {**data, "x0": x0, "y0": y0, "width": w, "height": h, "reason": self.reason or ""}


class GazeReader:
    """The image estimator and the mask-alone estimator, loaded once."""

    def __init__(self, image_net: torch.nn.Module, mask_net: torch.nn.Module) -> None:
        self.image_net = image_net.eval()
        self.mask_net = mask_net.eval()

    @classmethod
    def load(cls, image_checkpoint: str | Path | None = None, mask_checkpoint: str | Path | None = None,
             device: str = "cpu") -> GazeReader:
        image_path = Path(image_checkpoint or DEFAULT_GAZE)
        mask_path = Path(mask_checkpoint or DEFAULT_GAZE_FROM_MASK)
        for path in (image_path, mask_path):
            if not path.with_suffix(".safetensors").is_file():
                raise UserError(f"no gaze estimator at {path}.safetensors; give --gaze-checkpoint CKPT")
        return cls(load_gaze_net(image_path, device), load_gaze_net(mask_path, device))

    def read(self, results: Sequence[Result]) -> list[list[EyeGaze]]:
        """One list of :class:`EyeGaze` per result, every eye of every result read in one batch."""
        eyes = [eye for result in results for eye in result.eyes]
        if not eyes:
            return [[] for _ in results]
        images = torch.from_numpy(np.stack([eye.output for eye in eyes]))
        masks = torch.from_numpy(label_image(np.stack([eye.mask for eye in eyes])))
        flips = np.array([eye.side != CANONICAL_EYE for eye in eyes])
        from_image = mirror_gaze(np.degrees(predict_gaze(self.image_net, images).numpy()), flips)
        from_mask = mirror_gaze(np.degrees(predict_gaze(self.mask_net, masks).numpy()), flips)
        out: list[list[EyeGaze]] = []
        k = 0
        for result in results:
            row = []
            for eye in result.eyes:
                row.append(EyeGaze(eye.name, eye.side, eye.box, eye.purified, eye.reason,
                                   float(from_image[k, 0]), float(from_image[k, 1]),
                                   float(from_mask[k, 0]), float(from_mask[k, 1])))
                k += 1
            out.append(row)
        return out


def draw_gaze(image: np.ndarray, gazes: Sequence[EyeGaze]) -> np.ndarray:
    """The image with each eye's box and gaze arrow drawn on it: yellow from the purified eye, cyan from the mask
    alone; a passed-through eye's box is red."""
    rgb = np.ascontiguousarray(image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2))[..., :3].copy()
    scale = max(1, round(max(rgb.shape[:2]) / 400))
    for gaze in gazes:
        x0, y0, w, h = gaze.box
        colour = (60, 200, 60) if gaze.purified else (220, 40, 40)
        cv2.rectangle(rgb, (x0, y0), (x0 + w - 1, y0 + h - 1), colour, scale)
        centre = np.array([x0 + w / 2, y0 + h / 2])
        length = 2.0 * w
        for (pitch, yaw), arrow in (((gaze.mask_pitch, gaze.mask_yaw), (0, 200, 255)),
                                    ((gaze.pitch, gaze.yaw), (255, 220, 0))):
            p, y = np.radians(pitch), np.radians(yaw)
            tip = centre + length * np.array([-np.cos(p) * np.sin(y), -np.sin(p)])
            cv2.arrowedLine(rgb, tuple(int(v) for v in centre.round()), tuple(int(v) for v in tip.round()), arrow,
                            scale + 1, cv2.LINE_AA, tipLength=0.2)
    return rgb
