"""MPIIGaze "Normalized" data: ``pXX/dayYY.mat`` files of 36x60 grey eye images with gaze and head pose.

Each file holds ``data.left`` and ``data.right``, each with ``image`` (N x 36 x 60 uint8), ``gaze`` (N x 3 unit
vectors in the normalised camera frame) and ``pose`` (N x 3 head rotation vectors). Conventions follow
hysts/pytorch_mpiigaze, the usual reference implementation:

- gaze: pitch = asin(-y), yaw = atan2(-x, -z) (:func:`maskpurify.geometry.vector_to_pitchyaw`);
- head pose: R = Rodrigues(pose); the head's z axis v = R[:, 2]; pitch = asin(v_y), yaw = atan2(v_x, v_z);
- ``flip_right``: right-eye images are mirrored horizontally so every sample looks like a left eye; mirroring
  negates x in camera coordinates, so both gaze yaw and head yaw change sign (pitch is unchanged). MPIIGaze's
  ``left`` is the participant's left eye seen by an unmirrored webcam (inner corner on the image's left), which is
  the project's canonical side (:data:`maskpurify.masks.CANONICAL_EYE`, the side the renderer draws), so with
  ``flip_right`` every sample reaches the networks the way they were trained. The flip is the shared
  :func:`maskpurify.masks.mirror_eyes` / :func:`~maskpurify.masks.mirror_gaze`.

Grey images are repeated into three identical RGB channels. MPIIGaze has no masks: they come from the masker.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import scipy.io

from maskpurify.errors import UserError
from maskpurify.formats.base import Masker, Reader
from maskpurify.geometry import vector_to_pitchyaw
from maskpurify.masks import CANONICAL_EYE, mirror_eyes, mirror_gaze
from maskpurify.pairs import RGBMaskPair

EYES = ("left", "right")


def pose_to_pitchyaw(rotation_vectors: np.ndarray) -> np.ndarray:
    """(N, 3) head rotation vectors -> (N, 2) head (pitch, yaw) radians, as pytorch_mpiigaze converts them."""
    out = np.empty((len(rotation_vectors), 2))
    for i, vector in enumerate(rotation_vectors):
        axis = cv2.Rodrigues(np.asarray(vector, np.float64).reshape(3, 1))[0][:, 2]
        out[i] = np.arcsin(np.clip(axis[1], -1.0, 1.0)), np.arctan2(axis[0], axis[2])
    return out


def load_day(path: str | Path, eyes: Sequence[str] = EYES) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per eye: (images N x H x W uint8, gaze N x 3, pose N x 3) from one .mat file, read once.

    ``squeeze_me`` turns a single sample into (H, W) / (3,) arrays; they are restored to N = 1 here.
    """
    path = Path(path)
    try:
        mat = scipy.io.loadmat(str(path), struct_as_record=False, squeeze_me=True)
    except (OSError, ValueError, TypeError, IndexError, NotImplementedError, scipy.io.matlab.MatReadError) as exc:
        raise UserError(f"{path}: unreadable .mat file ({exc})") from None
    return {eye: _eye_arrays(path, mat.get("data"), eye) for eye in eyes}


def _eye_arrays(path: Path, data: object, eye: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    side = getattr(data, eye, None)
    if side is None:
        raise UserError(f"{path}: missing 'data.{eye}' (expected MPIIGaze Normalized data)")
    fields = {}
    for key in ("image", "gaze", "pose"):
        if not hasattr(side, key):
            raise UserError(f"{path}: missing 'data.{eye}.{key}'")
        fields[key] = np.asarray(getattr(side, key))
    images, gaze, pose = fields["image"], fields["gaze"], fields["pose"]
    if images.size == 0:
        return np.zeros((0, 36, 60), np.uint8), np.zeros((0, 3)), np.zeros((0, 3))
    if images.ndim == 2:
        images, gaze, pose = images[None], gaze.reshape(1, -1), pose.reshape(1, -1)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise UserError(f"{path}: 'data.{eye}.image' must be N x H x W uint8 grey images, "
                        f"got shape {images.shape} {images.dtype}")
    n = len(images)
    for key, array in (("gaze", gaze), ("pose", pose)):
        if array.shape != (n, 3) or not np.issubdtype(array.dtype, np.number):
            raise UserError(f"{path}: 'data.{eye}.{key}' must be {n} x 3 numbers (one per image), "
                            f"got shape {array.shape}")
    return images, gaze.astype(np.float64), pose.astype(np.float64)


class MPIIGazeReader(Reader):
    """The Normalized MPIIGaze folder (containing p00 ... p14), or one person's folder.

    persons: names ("p03") or numbers (3) to include; None for all. eyes: which of "left"/"right".
    """

    def __init__(self, root: str | Path, persons: Sequence[str | int] | None = None,
                 eyes: Sequence[str] = EYES, flip_right: bool = True, masker: Masker | None = None) -> None:
        super().__init__(masker)
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"{self.root}: not a folder (expected MPIIGaze's Data/Normalized)")
        unknown = [e for e in eyes if e not in EYES]
        if unknown or not eyes:
            raise UserError(f"MPIIGaze eyes {list(eyes)}: choose from {', '.join(EYES)}")
        self.eyes = tuple(eyes)
        self.flip_right = flip_right
        folders = [self.root] if list(self.root.glob("day*.mat")) else sorted(self.root.glob("p[0-9]*"))
        if persons is not None:
            wanted = {f"p{p:02d}" if isinstance(p, int) else str(p) for p in persons}
            missing = wanted - {f.name for f in folders}
            if missing:
                raise UserError(f"{self.root}: no MPIIGaze person folders {sorted(missing)} "
                                f"(found {', '.join(f.name for f in folders) or 'none'})")
            folders = [f for f in folders if f.name in wanted]
        self.files = [mat for folder in folders for mat in sorted(folder.glob("day*.mat"))]
        if not self.files:
            raise UserError(f"{self.root}: no pXX/dayYY.mat files found")
        self._length: int | None = None

    def __len__(self) -> int:
        """Number of eye images; the first call reads every file's arrays to count them."""
        if self._length is None:
            self._length = sum(len(arrays[0]) for f in self.files for arrays in load_day(f, self.eyes).values())
        return self._length

    def _pairs(self) -> Iterator[RGBMaskPair]:
        for path in self.files:
            person, day = path.parent.name, path.stem
            for eye, (images, gaze_vectors, poses) in load_day(path, self.eyes).items():
                gaze, head = vector_to_pitchyaw(gaze_vectors), pose_to_pitchyaw(poses)
                flip = eye != CANONICAL_EYE and self.flip_right
                if flip:
                    images, gaze, head = mirror_eyes(images), mirror_gaze(gaze), mirror_gaze(head)
                for i, grey in enumerate(images):
                    yield RGBMaskPair(image=np.repeat(grey[:, :, None], 3, axis=2), mask=None,
                                      name=f"{person}/{day}/{eye}/{i:04d}", gaze=gaze[i], head_pose=head[i],
                                      extra={"person": person, "day": day, "eye": eye, "index": i,
                                             "flipped": flip})
