"""Eyes in face photos: MediaPipe FaceMesh (with iris landmarks) finds them, :func:`rasterise` draws their masks,
and :func:`paste` blends a purified crop back; the pipeline (:mod:`maskpurify.purification.pipeline`) purifies the crops
at the purifier's working size between the two.

MediaPipe is an optional extra (``make setup-faces`` installs ``mediapipe==0.10.21`` without its declared
dependencies; it runs with the project's numpy 2). It is imported lazily, only when a face photo is purified.

Per eye:

- **eyelid polygon**: the 16 FaceMesh eye-contour landmarks (:data:`RIGHT_EYELID`, :data:`LEFT_EYELID`); inside
  it is sclera, outside skin;
- **iris**: a circle centred on the iris-centre landmark (468 right, 473 left) with the mean distance to the
  four rim landmarks (469-472, 474-477) as radius, clipped to the eyelid polygon;
- **pupil**: a concentric circle of :data:`PUPIL_RATIO` x the iris radius (the renderer's mean pupil/iris
  size: sin 10.25 deg / sin 28.5 deg = 0.37), clipped to the eyelid polygon;
- **crop**: a box with aspect 3:5 (height:width) centred between the eye corners, :data:`BOX_SCALE` x the
  corner distance wide (the rendered training eyes span about 34 of 60 pixels between corners), resized to the
  purifier's working size (from its checkpoint; 36x60 for the shipped one), purified, resized back and blended
  into the photo with weights that fall to zero at the box border. Pixels outside the boxes are never touched.

**Sides.** The networks know one eye, the renderer's: inner corner on the image's left, which in an unmirrored
photo is the subject's left eye (FaceMesh 362-263, iris 473). The other eye's crop is mirrored before the
networks and mirrored back before pasting. Which crop needs it is read from where its corners lie
(:attr:`Eye.crop_side`), not from FaceMesh's label, so a mirrored selfie is handled too.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from maskpurify.errors import UserError
from maskpurify.formats.base import CropBox
from maskpurify.masks import CANONICAL_EYE, IRIS, PUPIL, SCLERA, SKIN

RIGHT_EYELID = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_EYELID = (362, 382, 381, 380, 374, 373, 390, 249, 263, 466, 388, 387, 386, 385, 384, 398)
#: Iris centre then the four rim points.
RIGHT_IRIS = (468, 469, 470, 471, 472)
LEFT_IRIS = (473, 474, 475, 476, 477)
#: Eye corners (outer, inner) in FaceMesh numbering (outer = temple side, inner = nose side).
RIGHT_CORNERS = (33, 133)
LEFT_CORNERS = (263, 362)
#: Pupil radius as a fraction of the iris radius.
PUPIL_RATIO = 0.37
#: Crop width as a multiple of the eye-corner distance.
BOX_SCALE = 1.75
#: Crop aspect, height:width.
CROP_ASPECT = (3, 5)
#: Width of the feathered band, as a fraction of the crop's shorter side.
FEATHER = 0.2
#: Images with a shorter side below this are treated as eye crops (FaceMesh needs a face in view).
MIN_FACE_IMAGE_SIDE = 96
INSTALL_HINT = "run `make setup-faces` (installs mediapipe==0.10.21 into .venv)"


def mediapipe_available() -> bool:
    """Whether the optional mediapipe package is installed (without importing it)."""
    return importlib.util.find_spec("mediapipe") is not None


def _import_mediapipe() -> Any:
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import mediapipe as mp  # noqa: PLC0415
        from mediapipe.python.solutions import face_mesh  # noqa: F401, PLC0415
    except ImportError as exc:
        raise UserError(f"face photos need MediaPipe FaceMesh, which is not installed ({exc}); {INSTALL_HINT}") \
            from None
    return mp


@dataclass
class Eye:
    """One eye found in a photo (pixel coordinates)."""

    side: str  # "right" (landmarks 468-472) or "left" (473-477), the subject's side
    eyelid: np.ndarray  # (16, 2) polygon
    iris_center: np.ndarray  # (2,)
    iris_radius: float
    corners: np.ndarray  # (2, 2)
    crop: CropBox

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, width, height) of the crop rectangle in the photo (may extend past its border)."""
        return self.crop.x0, self.crop.y0, self.crop.width, self.crop.height

    @property
    def pupil_radius(self) -> float:
        return PUPIL_RATIO * self.iris_radius

    @property
    def crop_side(self) -> str:
        """``left`` when the crop already shows the canonical side (inner corner on the image's left, as the
        renderer draws it), else ``right``: the value for :meth:`Purification.purify_batch`'s ``eye``."""
        outer, inner = self.corners
        return CANONICAL_EYE if inner[0] < outer[0] else "right"


def check_crop_size(crop_size: Sequence[int]) -> tuple[int, int]:
    h, w = int(crop_size[0]), int(crop_size[1])
    if h < 8 or w < 8:
        raise UserError(f"--face-crop-size {h}x{w}: at least 8x8")
    if abs(h / w - CROP_ASPECT[0] / CROP_ASPECT[1]) > 0.03:
        raise UserError(f"--face-crop-size {h}x{w}: eye crops have aspect 3:5 (height:width), e.g. 36x60 or 72x120")
    return h, w


def eyes_from_landmarks(points: np.ndarray, crop_size: tuple[int, int]) -> list[Eye]:
    """Both eyes of one face from its (478, 2) FaceMesh landmarks in pixels, cropped at ``crop_size``."""
    if len(points) < 478:
        raise ValueError(f"need the 478 refined FaceMesh landmarks (iris included), got {len(points)}")
    eyes = []
    for side, lid, iris, corners in (("right", RIGHT_EYELID, RIGHT_IRIS, RIGHT_CORNERS),
                                     ("left", LEFT_EYELID, LEFT_IRIS, LEFT_CORNERS)):
        centre = points[iris[0]]
        radius = float(np.linalg.norm(points[list(iris[1:])] - centre, axis=1).mean())
        corner_pts = points[list(corners)]
        width = float(np.linalg.norm(corner_pts[1] - corner_pts[0]))
        mid = corner_pts.mean(0)
        crop = CropBox.around((float(mid[0]), float(mid[1])), max(4.0, BOX_SCALE * width), crop_size)
        eyes.append(Eye(side, points[list(lid)].astype(np.float64), centre.astype(np.float64), radius,
                        corner_pts.astype(np.float64), crop))
    return eyes


def rasterise(shape: Sequence[int], eyes: Sequence[Eye]) -> np.ndarray:
    """An HxW label map: skin everywhere, sclera inside each eyelid, iris and pupil discs clipped to it."""
    h, w = int(shape[0]), int(shape[1])
    mask = np.full((h, w), SKIN, np.uint8)
    shift = 4  # sub-pixel precision for cv2 drawing
    scale = 1 << shift
    for eye in eyes:
        lid = np.zeros((h, w), np.uint8)
        cv2.fillPoly(lid, [np.round(eye.eyelid * scale).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=shift)
        lid_on = lid.astype(bool)
        centre = tuple(int(round(c * scale)) for c in eye.iris_center)
        for label, radius in ((IRIS, eye.iris_radius), (PUPIL, eye.pupil_radius)):
            disc = np.zeros((h, w), np.uint8)
            cv2.circle(disc, centre, max(1, int(round(radius * scale))), 1, -1, lineType=cv2.LINE_8, shift=shift)
            lid[(disc > 0) & lid_on] = label
        mask[lid_on] = np.where(lid[lid_on] == 1, SCLERA, lid[lid_on])
    return mask


def feather_weights(height: int, width: int, feather: float = FEATHER) -> np.ndarray:
    """(height, width) blend weights: 1 inside, falling linearly to ~0 at the rectangle border."""
    band = max(1.0, feather * min(height, width))
    ys = np.arange(height, dtype=np.float32) + 0.5
    xs = np.arange(width, dtype=np.float32) + 0.5
    dy = np.minimum(ys, height - ys)[:, None]
    dx = np.minimum(xs, width - xs)[None, :]
    return np.clip(np.minimum(dy, dx) / band, 0.0, 1.0)


class FaceFinder:
    """A FaceMesh instance (refined landmarks: iris included). static=False tracks faces across video frames."""

    def __init__(self, static: bool = True, max_faces: int = 4, min_confidence: float = 0.5) -> None:
        mp = _import_mediapipe()
        self._mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=static, refine_landmarks=True,
                                                     max_num_faces=max_faces,
                                                     min_detection_confidence=min_confidence)

    def landmarks(self, image: np.ndarray) -> list[np.ndarray]:
        """One (478, 2) pixel-coordinate array per face found in an HxWx3 uint8 RGB image."""
        h, w = image.shape[:2]
        result = self._mesh.process(np.ascontiguousarray(image[..., :3]))
        faces = []
        for face in result.multi_face_landmarks or []:
            faces.append(np.array([(p.x * w, p.y * h) for p in face.landmark], np.float64))
        return faces

    def find_eyes(self, image: np.ndarray, crop_size: tuple[int, int]) -> list[Eye]:
        return [eye for points in self.landmarks(image) if len(points) >= 478
                for eye in eyes_from_landmarks(points, crop_size)]

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> FaceFinder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def paste(photo: np.ndarray, patch: np.ndarray, crop: CropBox, feather: float = FEATHER) -> None:
    """Blend ``patch`` (the crop's output-size purified image) back into ``photo`` in place, inside the crop
    rectangle only (the part of it that lies inside the photo)."""
    h, w = photo.shape[:2]
    big = cv2.resize(patch, (crop.width, crop.height), interpolation=cv2.INTER_CUBIC if crop.width > patch.shape[1]
                     else cv2.INTER_AREA)
    alpha = feather_weights(crop.height, crop.width, feather)
    x0, y0 = max(0, crop.x0), max(0, crop.y0)
    x1, y1 = min(w, crop.x0 + crop.width), min(h, crop.y0 + crop.height)
    if x1 <= x0 or y1 <= y0:
        return
    sy, sx = slice(y0 - crop.y0, y1 - crop.y0), slice(x0 - crop.x0, x1 - crop.x0)
    a = alpha[sy, sx, None]
    region = photo[y0:y1, x0:x1].astype(np.float32)
    blended = a * big[sy, sx].astype(np.float32) + (1.0 - a) * region
    photo[y0:y1, x0:x1] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
