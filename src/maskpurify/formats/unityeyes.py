"""UnityEyes renderings: ``N.jpg`` + ``N.json`` per sample, rasterised into eye label maps and cropped.

JSON facts this reader relies on (UnityEyes' EyeballController / GazeML's loader):

- 2-D landmarks are strings ``"(x, y, z)"`` in screen pixels with **y measured from the bottom**; we flip
  them with ``y_img = H - y``.
- ``eye_details.look_vec`` is ``"(x, y, z, 0)"``: the eyeball's forward vector in the *Unity camera's local
  frame* (x right, y up, camera looking along +z; an eye looking into the camera has look_vec ~ (0, 0, -1)).
  Our convention (MPIIGaze, :mod:`maskpurify.geometry`) is the OpenCV camera frame (x right, y down) with
  pitch = asin(-y), yaw = atan2(-x, -z). The two frames differ only in the direction of y, so the gaze vector
  is ``(x, -y, z)``: looking into the camera gives pitch = yaw = 0, looking up (y > 0) gives pitch > 0. This
  is what GazeML computes too (it negates x, uses pitch = asin(y), yaw = atan2(x, z) and then folds yaw by
  pi, which works out to the same angles).
- ``head_pose`` is ``"(pitch, yaw, roll)"`` in degrees of the camera around the face (yaw about 180 for a
  frontal view); converted like GazeML: pitch wrapped to (-180, 180], yaw - 180, both negated, to radians.
- ``eye_details.iris_size`` (0.9..1.0) already scales the limbus vertices, so ``iris_2d`` includes it.
  ``eye_details.pupil_size`` is a shader parameter drawn as N(0, 1)/5 (it can be negative), not a length,
  so a pupil/iris ratio cannot be read from it. We approximate the pupil as an ellipse concentric with the
  fitted iris ellipse with radius ratio ``PUPIL_IRIS_RATIO * (1 + pupil_size)`` clipped to
  ``PUPIL_RATIO_RANGE``: the default dilation at pupil_size 0, wider or narrower with the shader offset.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from maskpurify.errors import UserError
from maskpurify.fileio import check_within, read_image, read_json
from maskpurify.formats.base import CropBox, Masker, Reader
from maskpurify.geometry import vector_to_pitchyaw
from maskpurify.masks import IRIS, PUPIL, SCLERA, validate_mask
from maskpurify.pairs import RGBMaskPair

#: Pupil/iris radius ratio of a UnityEyes eye at pupil_size 0 (approximation, see module docstring).
PUPIL_IRIS_RATIO = 0.45
PUPIL_RATIO_RANGE = (0.15, 0.8)
#: Crop width as a multiple of the eye-corner distance (as in GazeML and the paper's 36x60 crops).
EYE_WIDTH_FACTOR = 1.5

#: Landmarks farther than this many image sides from the image are malformed (e.g. 1e30), not merely off-image.
COORDINATE_SIDES = 10
MAX_POINTS = 10_000
MAX_SCALAR = 1e6
MAX_ANGLE_DEG = 1e4

_NUMBER = r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*"
_SUBPIXEL = 4  # fillPoly fractional bits


@dataclass(frozen=True)
class UnityEyesSample:
    """One parsed JSON: landmarks in image pixels (y down), raw eye details."""

    interior_margin: np.ndarray  # (N, 2) eyelid margin polygon
    caruncle: np.ndarray  # (M, 2)
    iris: np.ndarray  # (K, 2) limbus contour
    look_vec: np.ndarray  # (3,) Unity camera frame
    pupil_size: float
    iris_size: float
    head_pose_deg: np.ndarray  # (pitch, yaw, roll) as stored


def parse_vector(text: object, size: int, source: str) -> np.ndarray:
    """Parse a UnityEyes vector string such as ``"(1.5, -2, 3)"`` with exactly ``size`` numbers."""
    match = re.fullmatch(r"\s*\(" + ",".join([_NUMBER] * size) + r"\)\s*", text) if isinstance(text, str) else None
    if match is None:
        raise UserError(f"{source}: malformed vector {text!r} (expected a string of {size} numbers like "
                        f"\"({', '.join(['0.0'] * size)})\")")
    return np.array([float(g) for g in match.groups()])


def _get(data: Mapping[str, object], key: str, path: Path) -> object:
    node: object = data
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise UserError(f"{path}: missing key '{key}'")
        node = node[part]
    return node


def _points(data: Mapping[str, object], key: str, path: Path, image_height: int, minimum: int,
            limit: float) -> np.ndarray:
    items = _get(data, key, path)
    if not isinstance(items, list) or len(items) < minimum or len(items) > MAX_POINTS:
        raise UserError(f"{path}: '{key}' must be a list of {minimum} to {MAX_POINTS} point strings")
    points = np.array([parse_vector(p, 3, f"{path}: '{key}'[{i}]")[:2] for i, p in enumerate(items)])
    _bounded(points, limit, f"{path}: '{key}'", "pixels from the image")
    points[:, 1] = image_height - points[:, 1]
    return points


def _bounded(values: np.ndarray, limit: float, where: str, unit: str) -> np.ndarray:
    """Refuse NaN, infinities and absurd magnitudes (e.g. 1e30) that would overflow the rasteriser."""
    if not np.all(np.isfinite(values)) or np.any(np.abs(values) > limit):
        bad = values[~np.isfinite(values) | (np.abs(values) > limit)].ravel()[0]
        raise UserError(f"{where}: value {bad:g} is not finite or lies beyond {limit:g} {unit}")
    return values


def _scalar(data: Mapping[str, object], key: str, path: Path) -> float:
    value = _get(data, key, path)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UserError(f"{path}: '{key}' must be a number, got {value!r}") from None
    _bounded(np.array([number]), MAX_SCALAR, f"{path}: '{key}'", "")
    return number


def parse_json(path: str | Path, image_height: int, image_width: int | None = None) -> UnityEyesSample:
    """Read one UnityEyes JSON; landmarks come back in image coordinates (y flipped).

    Numbers must be finite and sane: landmarks within ``COORDINATE_SIDES`` image sides of the image, a non-zero
    look vector, head pose angles within +-``MAX_ANGLE_DEG``.
    """
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object at the top level")
    limit = COORDINATE_SIDES * max(image_height, image_width or image_height)
    look = parse_vector(_get(data, "eye_details.look_vec", path), 4, f"{path}: 'eye_details.look_vec'")[:3]
    _bounded(look, MAX_SCALAR, f"{path}: 'eye_details.look_vec'", "")
    if not np.linalg.norm(look) > 1e-9:
        raise UserError(f"{path}: 'eye_details.look_vec' is a zero vector (no gaze direction)")
    return UnityEyesSample(
        interior_margin=_points(data, "interior_margin_2d", path, image_height, 3, limit),
        caruncle=_points(data, "caruncle_2d", path, image_height, 1, limit),
        iris=_points(data, "iris_2d", path, image_height, 5, limit),
        look_vec=look,
        pupil_size=_scalar(data, "eye_details.pupil_size", path),
        iris_size=_scalar(data, "eye_details.iris_size", path),
        head_pose_deg=_bounded(parse_vector(_get(data, "head_pose", path), 3, f"{path}: 'head_pose'"),
                               MAX_ANGLE_DEG, f"{path}: 'head_pose'", "degrees"),
    )


def look_vec_to_pitchyaw(look_vec: np.ndarray) -> np.ndarray:
    """UnityEyes look_vec (Unity camera frame, y up) -> (pitch, yaw) radians in our convention."""
    x, y, z = np.asarray(look_vec, dtype=np.float64)[:3]
    return vector_to_pitchyaw(np.array([x, -y, z]))


def head_pose_to_pitchyaw(head_pose_deg: np.ndarray) -> np.ndarray:
    """UnityEyes head_pose (degrees, frontal yaw ~180) -> (pitch, yaw) radians, as GazeML converts it."""
    pitch, yaw = float(head_pose_deg[0]), float(head_pose_deg[1])
    if pitch > 180.0:
        pitch -= 360.0
    return np.radians([-pitch, -(yaw - 180.0)])


def pupil_ellipse(sample: UnityEyesSample) -> tuple[tuple[float, float], tuple[float, float], float]:
    """The approximate pupil as a cv2 RotatedRect: the fitted iris ellipse shrunk about its centre."""
    (cx, cy), (w, h), angle = cv2.fitEllipse(sample.iris.astype(np.float32))
    ratio = float(np.clip(PUPIL_IRIS_RATIO * (1.0 + sample.pupil_size), *PUPIL_RATIO_RANGE))
    return (cx, cy), (w * ratio, h * ratio), angle


def rasterise_eye(shape: tuple[int, int], sample: UnityEyesSample) -> np.ndarray:
    """Label map of the full image: skin outside the eyelid margin, sclera inside, iris and pupil clipped to
    the eye opening (the lids cover them)."""
    scale = 1 << _SUBPIXEL

    def fill(points: np.ndarray) -> np.ndarray:
        canvas = np.zeros(shape, np.uint8)
        cv2.fillPoly(canvas, [np.round(points * scale).astype(np.int32)], 1, cv2.LINE_8, _SUBPIXEL)
        return canvas.astype(bool)

    opening = fill(sample.interior_margin)
    pupil = np.zeros(shape, np.uint8)
    cv2.ellipse(pupil, pupil_ellipse(sample), 1, -1)
    mask = np.zeros(shape, np.uint8)
    mask[opening] = SCLERA
    mask[opening & fill(sample.iris)] = IRIS
    mask[opening & pupil.astype(bool)] = PUPIL
    return mask


def eye_crop_box(sample: UnityEyesSample, out_size: tuple[int, int]) -> CropBox:
    """Crop centred on the eyelid margin's bounding-box centre, 1.5x the corner distance wide.

    The inner corner is the caruncle's mean; the outer corner is the margin point farthest from it.
    """
    margin = sample.interior_margin
    center = (margin.min(axis=0) + margin.max(axis=0)) / 2
    inner = sample.caruncle.mean(axis=0)
    corner_distance = float(np.linalg.norm(margin - inner, axis=1).max())
    return CropBox.around((float(center[0]), float(center[1])), EYE_WIDTH_FACTOR * corner_distance, out_size)


class UnityEyesReader(Reader):
    """A folder of UnityEyes samples; masks are rasterised from the landmarks, so no masker is needed.

    output_size: (height, width) of the eye crop, default 36x60 like MPIIGaze; None keeps the full render.
    """

    def __init__(self, root: str | Path, output_size: tuple[int, int] | None = (36, 60), recursive: bool = False,
                 masker: Masker | None = None) -> None:
        super().__init__(masker)
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"{self.root}: not a folder of UnityEyes samples")
        files = self.root.rglob("*.json") if recursive else self.root.glob("*.json")
        self.files = sorted(files, key=lambda p: (str(p.parent), int(p.stem) if p.stem.isdigit() else -1, p.stem))
        if not self.files:
            raise UserError(f"{self.root}: no UnityEyes samples (N.json + N.jpg) found")
        self.output_size = output_size

    def __len__(self) -> int:
        return len(self.files)

    def read(self, json_path: Path) -> RGBMaskPair:
        """One sample: cropped image, label map, gaze, head pose and landmarks in output pixels."""
        where = f"{self.root}: UnityEyes sample"
        check_within(self.root, json_path, where, "json")
        image = read_image(check_within(self.root, json_path.with_suffix(".jpg"), where, "image"))
        sample = parse_json(json_path, image.shape[0], image.shape[1])
        mask = rasterise_eye(image.shape[:2], sample)
        center = np.array(pupil_ellipse(sample)[0])
        landmarks = {"interior_margin": sample.interior_margin, "caruncle": sample.caruncle, "iris": sample.iris}
        if self.output_size is not None:
            box = eye_crop_box(sample, self.output_size)
            image, mask = box.apply_image(image), box.apply_mask(mask)
            center = box.map_points(center)
            landmarks = {k: box.map_points(v) for k, v in landmarks.items()}
        mask = validate_mask(mask, image.shape, source=str(json_path))
        name = str(json_path.relative_to(self.root).with_suffix(""))
        return RGBMaskPair(image=image, mask=mask, name=name, gaze=look_vec_to_pitchyaw(sample.look_vec),
                           head_pose=head_pose_to_pitchyaw(sample.head_pose_deg), pupil_center=center,
                           extra={"landmarks": landmarks, "look_vec": sample.look_vec,
                                  "pupil_size": sample.pupil_size, "iris_size": sample.iris_size})

    def _pairs(self) -> Iterator[RGBMaskPair]:
        for path in self.files:
            yield self.read(path)
