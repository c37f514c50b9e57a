"""Gaze geometry in the MPIIGaze convention: camera looks along -z, pitch = asin(-y), yaw = atan2(-x, -z)."""

from __future__ import annotations

import numpy as np


def pitchyaw_to_vector(pitchyaw: np.ndarray) -> np.ndarray:
    """(..., 2) pitch/yaw in radians -> (..., 3) unit gaze vectors."""
    pitch, yaw = pitchyaw[..., 0], pitchyaw[..., 1]
    return np.stack([-np.cos(pitch) * np.sin(yaw), -np.sin(pitch), -np.cos(pitch) * np.cos(yaw)], axis=-1)


def vector_to_pitchyaw(vectors: np.ndarray) -> np.ndarray:
    """(..., 3) gaze vectors (any length) -> (..., 2) pitch/yaw in radians."""
    v = vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.stack([np.arcsin(-v[..., 1]), np.arctan2(-v[..., 0], -v[..., 2])], axis=-1)


def angular_error_deg(pred_pitchyaw: np.ndarray, true_pitchyaw: np.ndarray) -> np.ndarray:
    """Angle in degrees between predicted and true 3-D gaze directions, per sample."""
    a, b = pitchyaw_to_vector(pred_pitchyaw), pitchyaw_to_vector(true_pitchyaw)
    cos = np.clip((a * b).sum(-1), -1.0, 1.0)
    return np.degrees(np.arccos(cos))

