"""A face video made from a photo that ships inside a package (scikit-image's astronaut, matplotlib's Grace
Hopper): the input of ``benchmarks/video_speed.py`` and of the face-video tests, at any frame size.

The photo moves on a smooth path and grows and shrinks by ``zoom`` around its mean size, over a textured
background (so the encoder has something to do), and always stays whole inside the frame: the face is fully
visible in every frame, which is what "found in every frame" is measured on.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from maskpurify.evaluation.real_photos_panel import PHOTOS
from maskpurify.formats.video import VideoWriter


def face_frames(photo: np.ndarray, size: tuple[int, int], count: int, height_fraction: float = 0.85,
                zoom: float = 0.12, period: int = 300, seed: int = 0) -> Iterator[np.ndarray]:
    """Yield ``count`` RGB frames of ``size`` (height, width): ``photo`` at ``height_fraction`` of the frame height on
    average (times 1 +- ``zoom``), its centre moving on a smooth Lissajous path that keeps it inside the frame and
    comes round every ``period`` frames (10 s at 30 fps: across the frame and back, up and down three times)."""
    height, width = size
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    background = cv2.resize(cv2.GaussianBlur(noise, (0, 0), 2), (width, height), interpolation=cv2.INTER_CUBIC)
    ph, pw = photo.shape[:2]
    for t in range(count):
        phase = 2 * math.pi * t / max(period, 1)
        scale = height_fraction * height / ph * (1 + zoom * math.sin(2 * phase))
        sw, sh = pw * scale, ph * scale
        room_x, room_y = max(0.0, (width - sw) / 2 - 1), max(0.0, (height - sh) / 2 - 1)
        cx = width / 2 + room_x * math.sin(phase)
        cy = height / 2 + room_y * math.sin(3 * phase + 0.5)
        matrix = np.array([[scale, 0, cx - scale * (pw - 1) / 2], [0, scale, cy - scale * (ph - 1) / 2]])
        yield cv2.warpAffine(photo, matrix, (width, height), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_TRANSPARENT, dst=background.copy())


def write_face_video(path: str | Path, size: tuple[int, int] = (720, 1280), count: int = 300, fps: float = 30.0,
                     photo: str = "astronaut", height_fraction: float = 0.85, seed: int = 0) -> Path:
    """Write :func:`face_frames` of the photo ``photo`` (a key of
    :data:`maskpurify.evaluation.real_photos_panel.PHOTOS`) as an H.264 video (the name's container)."""
    image = PHOTOS[photo][1]()
    with VideoWriter(path, fps, (size[1], size[0])) as writer:
        for frame in face_frames(image, size, count, height_fraction, seed=seed):
            writer.write(frame)
    return Path(path)
