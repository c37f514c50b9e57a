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

import contextlib
import functools
import importlib.util
import math
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
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
#: An eye less open than this (:attr:`Eye.opening`) is closed: it is passed through, whatever its mask says.
#: The middle of the gap on the tune half of the real-photo check set (closed eyes at most 0.092, open ones at
#: least 0.161, measured on the FaceMesh masks by ``benchmarks/real_photos.py``).
MIN_OPENING = 0.125
#: Images with a shorter side below this are treated as eye crops (FaceMesh needs a face in view).
MIN_FACE_IMAGE_SIDE = 96
INSTALL_HINT = ("run `make setup-faces` in a clone, or `pip install --no-deps mediapipe==0.10.21 absl-py attrs "
                "flatbuffers 'protobuf>=4.25.3,<5'`")


def mediapipe_available() -> bool:
    """Whether the optional mediapipe package is installed (without importing it)."""
    return importlib.util.find_spec("mediapipe") is not None


def mediapipe_missing_for(shape: Sequence[int]) -> str:
    """What to tell the user about an image (or video frame) of ``shape`` taken as an eye crop only because
    MediaPipe, which finds faces, is missing: empty when it is too small to be a face photo or MediaPipe is there."""
    if min(shape[:2]) < MIN_FACE_IMAGE_SIDE or mediapipe_available():
        return ""
    return f"its faces are found by MediaPipe FaceMesh, which is not installed ({INSTALL_HINT})"


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null while MediaPipe's C++ code runs: it logs through absl/glog straight
    to stderr ("W0000 ... feedback manager", "Created TensorFlow Lite XNNPACK delegate"), lines a user cannot act
    on, which would bury the tool's own one-line messages. Python exceptions are unaffected."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


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
    crop: RotatedCrop
    track: int | None = None  # in video: the tracked face it belongs to (the same number from frame to frame)

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, width, height) of the crop rectangle in the photo (may extend past its border)."""
        return self.crop.x0, self.crop.y0, self.crop.width, self.crop.height

    @property
    def pupil_radius(self) -> float:
        return PUPIL_RATIO * self.iris_radius

    @property
    def opening(self) -> float:
        """How open the eye is: the eyelid polygon's area over the squared corner distance (about 0.2-0.3 for
        an open eye, near 0 for a closed one; scale-free, like the eye aspect ratio of blink detectors)."""
        x, y = self.eyelid[:, 0], self.eyelid[:, 1]
        area = 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
        width = float(np.linalg.norm(self.corners[1] - self.corners[0]))
        return area / max(width, 1e-6) ** 2

    @property
    def crop_side(self) -> str:
        """``left`` when the crop already shows the canonical side (inner corner on the image's left, as the
        renderer draws it), else ``right``: the value for :meth:`Purification.purify_batch`'s ``eye``."""
        outer, inner = self.corners
        return CANONICAL_EYE if inner[0] < outer[0] else "right"


@dataclass(frozen=True)
class RotatedCrop:
    """A box of ``width`` x ``height`` photo pixels centred on ``centre`` and turned by ``angle`` degrees (the
    head's roll), resampled upright to ``out_height`` x ``out_width``: the eye reaches the networks level, as the
    renderer draws it, and goes back turned. ``x0, y0, width, height`` of the upright box are kept for reports;
    :attr:`bounds` is the axis-aligned rectangle the turned box covers."""

    centre: tuple[float, float]
    width: int
    height: int
    angle: float
    out_height: int
    out_width: int

    @property
    def x0(self) -> int:
        """The first pixel column of the upright box (pixel centres at integers: it spans centre +- (width-1)/2)."""
        return int(round(self.centre[0] - (self.width - 1) / 2))

    @property
    def y0(self) -> int:
        return int(round(self.centre[1] - (self.height - 1) / 2))

    @property
    def scale(self) -> tuple[float, float]:
        return self.out_width / self.width, self.out_height / self.height

    def matrix(self) -> np.ndarray:
        """The 2x3 affine map from photo pixels to crop pixels (pixel centres, as cv2 uses them); read-only."""
        return self._matrix

    @functools.cached_property
    def _matrix(self) -> np.ndarray:
        # computed once per crop: a video frame's eyes map points, cut, mask and paste through it many times
        sx, sy = self.scale
        theta = math.radians(self.angle)
        cos, sin = math.cos(theta), math.sin(theta)
        cx, cy = self.centre
        # scale x rotation (which turns the box's axis level), then the box centre to the crop centre
        a, b, c, d = sx * cos, sx * sin, -sy * sin, sy * cos
        matrix = np.array([[a, b, (self.out_width - 1) / 2 - (a * cx + b * cy)],
                           [c, d, (self.out_height - 1) / 2 - (c * cx + d * cy)]], np.float64)
        matrix.setflags(write=False)
        return matrix

    @functools.cached_property
    def bounds(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the photo pixels the turned box touches (may overhang the photo)."""
        corners = np.array([[0, 0], [self.out_width - 1, 0], [0, self.out_height - 1],
                            [self.out_width - 1, self.out_height - 1]], np.float64)
        inverse = cv2.invertAffineTransform(self.matrix())
        pts = corners @ inverse[:, :2].T + inverse[:, 2]
        return (int(np.floor(pts[:, 0].min())) - 1, int(np.floor(pts[:, 1].min())) - 1,
                int(np.ceil(pts[:, 0].max())) + 2, int(np.ceil(pts[:, 1].max())) + 2)

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        """The upright crop (low-passed first when shrinking, so a large eye is not aliased). Only the window
        around the box is blurred and read (an HD video frame is not copied for each eye); the warp samples
        inside it, and where the window meets the image border, replicating either edge is the same."""
        shrink = 1.0 / max(self.scale)
        matrix = self.matrix()
        if shrink > 1.5:
            sigma = 0.5 * np.sqrt(shrink ** 2 - 1)
            x0, y0, x1, y1 = self.bounds
            pad = int(3 * sigma) + 1
            h, w = image.shape[:2]
            ya, yb, xa, xb = max(0, y0 - pad), min(h, y1 + pad), max(0, x0 - pad), min(w, x1 + pad)
            if yb > ya and xb > xa:
                window = cv2.GaussianBlur(image[ya:yb, xa:xb], (0, 0), sigma)
                matrix = matrix.copy()
                matrix[:, 2] += matrix[:, :2] @ np.array([xa, ya], np.float64)  # window pixels -> crop pixels
                return cv2.warpAffine(window, matrix, (self.out_width, self.out_height), flags=cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_REPLICATE)
        return cv2.warpAffine(image, matrix, (self.out_width, self.out_height), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)

    def apply_mask(self, mask: np.ndarray) -> np.ndarray:
        """The upright crop of a label map (nearest: labels never blend; outside the photo is label 0)."""
        return cv2.warpAffine(mask, self.matrix(), (self.out_width, self.out_height), flags=cv2.INTER_NEAREST,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def map_points(self, points: np.ndarray) -> np.ndarray:
        """Map (..., 2) photo (x, y) pixel coordinates into the crop."""
        m = self.matrix()
        points = np.asarray(points, np.float64)
        return points @ m[:, :2].T + m[:, 2]


def check_crop_size(crop_size: Sequence[int]) -> tuple[int, int]:
    h, w = int(crop_size[0]), int(crop_size[1])
    if h < 8 or w < 8:
        raise UserError(f"--face-crop-size {h}x{w}: at least 8x8")
    if abs(h / w - CROP_ASPECT[0] / CROP_ASPECT[1]) > 0.03:
        raise UserError(f"--face-crop-size {h}x{w}: eye crops have aspect 3:5 (height:width), e.g. 36x60 or 72x120")
    return h, w


def head_roll(points: np.ndarray) -> float:
    """The face's roll in degrees: the angle of the line from the image-left eye's centre (between its corners)
    to the image-right one's; 0 for a level face, positive when the image-right eye is lower."""
    a = points[list(RIGHT_CORNERS)].mean(0)
    b = points[list(LEFT_CORNERS)].mean(0)
    left, right = (a, b) if a[0] <= b[0] else (b, a)
    return float(np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0])))


def eyes_from_landmarks(points: np.ndarray, crop_size: tuple[int, int]) -> list[Eye]:
    """Both eyes of one face from its (478, 2) FaceMesh landmarks in pixels, cropped at ``crop_size`` and turned
    level by the head's roll (:func:`head_roll`): the networks only ever saw upright eyes."""
    if len(points) < 478:
        raise ValueError(f"need the 478 refined FaceMesh landmarks (iris included), got {len(points)}")
    roll = head_roll(points)
    eyes = []
    for side, lid, iris, corners in (("right", RIGHT_EYELID, RIGHT_IRIS, RIGHT_CORNERS),
                                     ("left", LEFT_EYELID, LEFT_IRIS, LEFT_CORNERS)):
        centre = points[iris[0]]
        radius = float(np.linalg.norm(points[list(iris[1:])] - centre, axis=1).mean())
        corner_pts = points[list(corners)]
        width = float(np.linalg.norm(corner_pts[1] - corner_pts[0]))
        mid = corner_pts.mean(0)
        box_w = max(4, int(round(max(4.0, BOX_SCALE * width))))
        box_h = max(1, int(round(box_w * crop_size[0] / crop_size[1])))
        crop = RotatedCrop((float(mid[0]), float(mid[1])), box_w, box_h, roll, int(crop_size[0]), int(crop_size[1]))
        eyes.append(Eye(side, points[list(lid)].astype(np.float64), centre.astype(np.float64), radius,
                        corner_pts.astype(np.float64), crop))
    return eyes


def rasterise(shape: Sequence[int], eyes: Sequence[Eye]) -> np.ndarray:
    """An HxW label map: skin everywhere, sclera inside each eyelid, iris and pupil discs clipped to it.

    Each eye is drawn in the window its eyelid polygon covers (integer offsets keep cv2's rasterisation exact), so
    an HD video frame costs its eyes' pixels, not the frame's."""
    h, w = int(shape[0]), int(shape[1])
    mask = np.full((h, w), SKIN, np.uint8)
    shift = 4  # sub-pixel precision for cv2 drawing
    scale = 1 << shift
    for eye in eyes:
        x0, y0 = (max(0, int(np.floor(v)) - 1) for v in eye.eyelid.min(0))
        x1, y1 = min(w, int(np.ceil(eye.eyelid[:, 0].max())) + 2), min(h, int(np.ceil(eye.eyelid[:, 1].max())) + 2)
        if x1 <= x0 or y1 <= y0:
            continue
        offset = np.array([x0, y0], np.float64)
        lid = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(lid, [np.round((eye.eyelid - offset) * scale).astype(np.int32)], 1, lineType=cv2.LINE_8,
                     shift=shift)
        lid_on = lid.astype(bool)
        centre = tuple(int(round(c * scale)) for c in eye.iris_center - offset)
        for label, radius in ((IRIS, eye.iris_radius), (PUPIL, eye.pupil_radius)):
            disc = np.zeros_like(lid)
            cv2.circle(disc, centre, max(1, int(round(radius * scale))), 1, -1, lineType=cv2.LINE_8, shift=shift)
            lid[(disc > 0) & lid_on] = label
        window = mask[y0:y1, x0:x1]
        window[lid_on] = np.where(lid[lid_on] == 1, SCLERA, lid[lid_on])
    return mask


def in_crop(eye: Eye, crop: RotatedCrop | CropBox) -> Eye:
    """``eye`` with its landmarks mapped into ``crop``'s pixels (radius scaled by the crop's mean scale)."""
    return replace(eye, eyelid=crop.map_points(eye.eyelid), iris_center=crop.map_points(eye.iris_center),
                   iris_radius=eye.iris_radius * float(np.mean(crop.scale)), corners=crop.map_points(eye.corners))


def crop_mask(crop: RotatedCrop | CropBox, eyes: Sequence[Eye]) -> np.ndarray:
    """The label map of ``crop`` drawn at the crop's own resolution from the landmarks of ``eyes`` mapped into it:
    sharper than cutting a map drawn at the photo's resolution, which is blocky where a small eye is enlarged."""
    return rasterise((crop.out_height, crop.out_width), [in_crop(e, crop) for e in eyes])


def feather_weights(height: int, width: int, feather: float = FEATHER) -> np.ndarray:
    """(height, width) blend weights: 1 inside, falling linearly to ~0 at the rectangle border."""
    band = max(1.0, feather * min(height, width))
    ys = np.arange(height, dtype=np.float32) + 0.5
    xs = np.arange(width, dtype=np.float32) + 0.5
    dy = np.minimum(ys, height - ys)[:, None]
    dx = np.minimum(xs, width - xs)[None, :]
    return np.clip(np.minimum(dy, dx) / band, 0.0, 1.0)


@functools.lru_cache(maxsize=16)
def _paste_weights(height: int, width: int, feather: float) -> np.ndarray:
    """:func:`feather_weights` with a zero rim, so resampling leaks nothing past the crop's border; read-only,
    shared by every paste of a crop size."""
    weights = feather_weights(height, width, feather)
    weights[[0, -1], :] = 0.0
    weights[:, [0, -1]] = 0.0
    weights.setflags(write=False)
    return weights


class FaceFinder:
    """A FaceMesh instance (refined landmarks: iris included). static=False tracks faces across video frames."""

    def __init__(self, static: bool = True, max_faces: int = 4, min_confidence: float = 0.5) -> None:
        mp = _import_mediapipe()
        with _native_stderr_silenced():
            self._mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=static, refine_landmarks=True,
                                                         max_num_faces=max_faces,
                                                         min_detection_confidence=min_confidence)
        self._first = True  # MediaPipe logs its set-up on the first image too

    def landmarks(self, image: np.ndarray) -> list[np.ndarray]:
        """One (478, 2) pixel-coordinate array per face found in an HxWx3 uint8 RGB image."""
        h, w = image.shape[:2]
        with _native_stderr_silenced() if self._first else contextlib.nullcontext():
            result = self._mesh.process(np.ascontiguousarray(image[..., :3]))
        self._first = False
        faces = []
        for face in result.multi_face_landmarks or []:
            # normalised coordinates span the image's edges (MediaPipe's own drawing floors x * w to a pixel
            # index); OpenCV draws and warps with pixel centres at integers, hence the half pixel
            faces.append(np.array([(p.x * w - 0.5, p.y * h - 0.5) for p in face.landmark], np.float64))
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


def paste(photo: np.ndarray, change: np.ndarray, crop: RotatedCrop, feather: float = FEATHER) -> None:
    """Add ``change`` (the purifier's output minus its input, the crop's working-size float arrays, upright) to
    ``photo`` in place, turned back into the crop's place, with weights that fall to zero at the crop's border:
    pixels outside it are never touched. Pasting the change rather than the output keeps the photo's own detail
    where the eye is larger than the working size."""
    h, w = photo.shape[:2]
    x0, y0, x1, y1 = crop.bounds
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        return
    inverse = cv2.invertAffineTransform(crop.matrix())
    inverse[:, 2] -= (x0, y0)  # into the window's own pixels
    size = (x1 - x0, y1 - y0)
    big = cv2.warpAffine(np.asarray(change, np.float32), inverse, size, flags=cv2.INTER_CUBIC,
                         borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(_paste_weights(crop.out_height, crop.out_width, feather), inverse, size,
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)[..., None]
    region = photo[y0:y1, x0:x1].astype(np.float32)
    blended = region + alpha * big
    photo[y0:y1, x0:x1] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
