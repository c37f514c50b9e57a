"""Test helper: FaceMesh-numbered landmarks of a made-up frontal face, for tests that need eyes without MediaPipe."""

from __future__ import annotations

import numpy as np

from maskpurify.purification import faces

def synthetic_landmarks(cx: float, cy: float, half_width: float) -> np.ndarray:
    """478 FaceMesh-numbered points of a frontal face: the subject's right eye around (cx, cy) on the image's
    left, the left eye 4 half-widths to its right; inner corners (nose side) face each other, as in a photo."""
    points = np.zeros((478, 2))
    for lid, iris, corners, x, toward_nose in (
            (faces.RIGHT_EYELID, faces.RIGHT_IRIS, faces.RIGHT_CORNERS, cx, 1.0),
            (faces.LEFT_EYELID, faces.LEFT_IRIS, faces.LEFT_CORNERS, cx + 4 * half_width, -1.0)):
        angles = np.linspace(0, 2 * np.pi, len(lid), endpoint=False)
        points[list(lid)] = np.stack([x + half_width * np.cos(angles), cy + 0.45 * half_width * np.sin(angles)], 1)
        points[list(corners)] = [(x - toward_nose * half_width, cy), (x + toward_nose * half_width, cy)]
        r = 0.4 * half_width
        points[list(iris)] = [(x, cy), (x + r, cy), (x, cy - r), (x - r, cy), (x, cy + r)]
    return points
