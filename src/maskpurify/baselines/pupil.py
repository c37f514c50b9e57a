"""The classical pupil detector LPW users pick: Pupil Labs' 2D detector (``pupil-detectors``, the detector of the
Pupil Core software: dark-region coarse search, Canny edges, ellipse fit with support scoring; Swirski et al. 2012
lineage), run as its users run it.

It is tuned for Pupil Labs' eye cameras (320x240 or 400x400 pixels, pupils 10-100 px across), so every frame is
resized to 320x240 (bicubic) before it and the ellipse centre mapped back to the frame's pixels (pixel centres at
integer coordinates). A frame where it finds nothing (confidence 0) has no detection (NaN): a miss at every
threshold. Install: ``pip install --no-deps pupil-detectors==2.0.2 cysignals==1.12.5`` (``make setup`` does; its
wheel asks for ``opencv-python``, which would clash with the project's ``opencv-python-headless``).
"""

from __future__ import annotations

import cv2
import numpy as np

#: The frame size the detector runs at (width, height): a Pupil Labs eye camera's 320x240 mode.
DETECTOR_SIZE = (320, 240)


def classical_available() -> bool:
    """Whether ``pupil-detectors`` is installed (the classical rows are skipped, with a note, when not)."""
    try:
        import pupil_detectors  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def detect_pupils_classical(images: np.ndarray) -> np.ndarray:
    """(N, 2) pupil centres (x, y) in pixels of (N,H,W,3) or (N,H,W) uint8 frames; NaN where nothing was found."""
    from pupil_detectors import Detector2D  # noqa: PLC0415

    detector = Detector2D()
    frames = np.asarray(images)
    if frames.ndim == 4:
        frames = frames[..., 0] if frames.shape[-1] == 1 else cv2.cvtColor(
            np.ascontiguousarray(frames.reshape(-1, frames.shape[2], 3)), cv2.COLOR_RGB2GRAY).reshape(frames.shape[:3])
    height, width = frames.shape[1:3]
    sx, sy = width / DETECTOR_SIZE[0], height / DETECTOR_SIZE[1]
    out = np.full((len(frames), 2), np.nan)
    for i, frame in enumerate(frames):
        big = cv2.resize(np.ascontiguousarray(frame), DETECTOR_SIZE, interpolation=cv2.INTER_CUBIC)
        result = detector.detect(big)
        if result["confidence"] > 0:
            x, y = result["ellipse"]["center"]
            out[i] = ((x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5)
    return out
