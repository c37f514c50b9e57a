"""Faces in video: found at any scale, tracked by FaceMesh from one frame to the next, their landmarks smoothed
over time so that the eye boxes and masks drawn from them do not jitter.

**Why FaceMesh alone misses faces in HD video.** The legacy FaceMesh finds a face with BlazeFace's short-range
detector, which sees the whole frame squeezed (letterboxed) into 128x128 pixels and was trained on faces that fill a
good part of a selfie. A 1280x720 frame holding scikit-image's astronaut photo 640 px tall (the face itself about
200 px wide) becomes a face about 25 px wide there: FaceMesh on that frame as a photo finds no face, nor at any
other photo size in a 1280x720 or 1920x1080 frame, while in a 640x480 frame a 400-px photo is found. In tracking
mode on the whole frame a face is kept once some frame was detected, so how often it is found depends on luck
(`benchmarks/video_speed.py` records it).

**What is done instead.**

- *Detection* (:meth:`FaceTracker._detect`): the short-range detector on square windows of the frame, of the
  frame's shorter side and of half of it (steps of half a window), each resized to the detector's 128x128; so a
  face anywhere between about a tenth and the whole of the frame height fills enough of some window. Detections of
  one face in several windows are merged (the best score kept). All windows on every frame while no face is tracked;
  while faces are tracked, one window every :data:`SCAN_EVERY` frames, in turn, to pick up faces that come into
  view (a detection on a face already tracked is ignored).
- *Tracking*: each face gets its own FaceMesh (``static_image_mode=False``, one face) fed a square crop of the
  frame around it (:data:`ROI_SCALE` x the size of its landmarks, resampled to :data:`CROP_SIDE` pixels), so the
  face always fills FaceMesh's view whatever the frame size; FaceMesh then tracks it from its own landmarks
  instead of detecting it again. The crop follows the face; a face FaceMesh loses is dropped (detection finds it
  again).
- *Smoothing* (:class:`OneEuroFilter`, :class:`EyeSmoother`): the 478 landmarks of each face go through a One-Euro filter (Casiez et
  al., CHI 2012): an exponential average whose cut-off frequency rises with the face's speed, so a still face is
  steady (landmark noise averaged away) and a moving one is followed without lag. Lengths are measured in units of
  the face's eye-corner distance, so the same settings hold at every scale. The eye boxes, their roll and the
  masks are all drawn from the smoothed landmarks (:func:`maskpurify.purification.faces.eyes_from_landmarks`).
  The purified eye crops then go through a One-Euro filter of their own, driven by how much the input eye changed
  (:class:`EyeSmoother`), before they are pasted back.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from maskpurify.purification import faces

#: The short-range detector's input side, and the windows it is run on (fractions of the frame's shorter side).
DETECTOR_SIDE = 128
WINDOW_FRACTIONS = (1.0, 0.5)
#: A tracked face's crop: ROI_SCALE x the larger side of its landmarks' bounding box, resampled to CROP_SIDE.
ROI_SCALE = 2.0
CROP_SIDE = 256
#: A detection's crop: DETECTION_SCALE x the detector's box (which spans the face from brows to mouth).
DETECTION_SCALE = 2.4
#: Least detector score that starts a track. Faces in the test videos score 0.93-0.98; blurred noise in the
#: background reaches 0.69, and FaceMesh, once started on it, tracks it as a face.
START_CONFIDENCE = 0.75
#: The purified eyes' filter (:class:`EyeSmoother`): cut-off at rest, in cycles per frame, and its rise per unit
#: of input change (mean absolute difference of the input crops, 0-255).
EYE_MIN_CUTOFF = 0.1
EYE_BETA = 0.05
#: While faces are tracked, one detection window every SCAN_EVERY frames, in turn (a new face is picked up within
#: SCAN_EVERY x the number of windows frames: 72 for 1080p, 45 for 720p; a full scan would cost a frame 24 windows).
SCAN_EVERY = 3


class OneEuroFilter:
    """The One-Euro filter on an array of points (any shape, last axis the coordinates), one frame at a time.

    ``min_cutoff`` and ``beta`` are in cycles per frame and per (scale units per frame): the cut-off is
    ``min_cutoff + beta * speed``, where speed is the distance the points' centroid moved since the last frame
    (itself smoothed at ``d_cutoff``) divided by ``scale``: one cut-off for all points keeps the face's shape rigid,
    and the noise of single points, which averages out in the centroid, does not make the filter follow it."""

    def __init__(self, min_cutoff: float = 0.08, beta: float = 4.0, d_cutoff: float = 0.3) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self._value: np.ndarray | None = None
        self._speed = 0.0

    @staticmethod
    def _alpha(cutoff: float) -> float:
        """The exponential average's weight of the new sample at a cut-off in cycles per frame."""
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau)

    def __call__(self, points: np.ndarray, scale: float = 1.0, step: float | None = None) -> np.ndarray:
        """The smoothed ``points`` (a new array); ``scale`` is the length one unit of speed stands for. step: the
        change since the last frame when it is measured on another signal (default: how far the points moved)."""
        points = np.asarray(points, np.float64)
        if self._value is None:
            self._value = points.copy()
            return self._value.copy()
        if step is None:  # how far the points' centroid moved: the noise of single points averages out
            moved = points.reshape(-1, points.shape[-1]).mean(0) - self._value.reshape(-1, points.shape[-1]).mean(0)
            step = float(np.linalg.norm(moved)) / max(scale, 1e-9)
        a = self._alpha(self.d_cutoff)
        self._speed = a * step + (1 - a) * self._speed
        alpha = self._alpha(self.min_cutoff + self.beta * self._speed)
        self._value = alpha * points + (1 - alpha) * self._value
        return self._value.copy()


class EyeSmoother:
    """The purified eyes of a video averaged over time, one One-Euro filter per tracked eye (face number and side)
    on its purified working-size crop. The filter's speed is how much the *input* crop changed since the last frame
    (mean absolute difference, 0-255), so an eye that holds still gets a steady purified eye, and a blink, a
    saccade or a turn of the head comes through at once; the purifier's own flicker never speeds the filter up.
    The crops follow the eye (their boxes come from the tracked landmarks), so the average never smears the eye
    across the frame. An eye not purified in a frame (closed, lost) starts afresh when it comes back."""

    def __init__(self, min_cutoff: float = EYE_MIN_CUTOFF, beta: float = EYE_BETA) -> None:
        self.min_cutoff, self.beta = min_cutoff, beta
        self._eyes: dict[tuple[int, str], tuple[OneEuroFilter, np.ndarray]] = {}

    def __call__(self, key: tuple[int, str], crop: np.ndarray, output: np.ndarray) -> np.ndarray:
        """The smoothed purified crop (uint8) of eye ``key`` given this frame's input ``crop`` and ``output``."""
        smoother, before = self._eyes.get(key, (None, None))
        if smoother is None or before is None or before.shape != crop.shape:
            smoother, step = OneEuroFilter(self.min_cutoff, self.beta, d_cutoff=1.0), None
        else:
            step = float(np.abs(crop.astype(np.int16) - before.astype(np.int16)).mean())
        value = smoother(output.astype(np.float32), step=step)
        self._eyes[key] = (smoother, crop)
        return np.clip(np.round(value), 0, 255).astype(np.uint8)

    def keep(self, keys: set[tuple[int, str]]) -> None:
        """Forget every eye but ``keys`` (those purified in the frame just done)."""
        self._eyes = {key: value for key, value in self._eyes.items() if key in keys}


def windows(height: int, width: int) -> list[tuple[int, int, int]]:
    """(x0, y0, side) of the square detection windows of a ``height`` x ``width`` frame (see the module doc)."""
    out = []
    for fraction in WINDOW_FRACTIONS:
        side = max(1, int(min(height, width) * fraction))
        step = max(1, side // 2)
        ys = sorted(set(range(0, height - side + 1, step)) | {height - side})
        xs = sorted(set(range(0, width - side + 1, step)) | {width - side})
        out.extend((x, y, side) for y in ys for x in xs)
    return out


def square_crop(frame: np.ndarray, centre: tuple[float, float], side: float, out: int) -> np.ndarray:
    """The ``side`` x ``side`` square of ``frame`` centred on ``centre`` (continuous pixel coordinates, 0 at the
    frame's left edge), resampled to ``out`` x ``out``, black outside the frame. A square more than twice ``out``
    is first halved with ``cv2.pyrDown`` (low-pass, so a large face is not aliased), then warped."""
    x0, y0 = centre[0] - side / 2, centre[1] - side / 2
    source, origin, factor = frame, (0, 0), 1
    halvings = max(0, int(math.floor(math.log2(side / out))))
    if halvings:
        h, w = frame.shape[:2]
        wx0, wy0 = max(0, int(x0) - 2 ** halvings), max(0, int(y0) - 2 ** halvings)
        wx1, wy1 = min(w, int(x0 + side) + 2 ** (halvings + 1)), min(h, int(y0 + side) + 2 ** (halvings + 1))
        if wx1 - wx0 >= 2 ** (halvings + 1) and wy1 - wy0 >= 2 ** (halvings + 1):
            source, origin, factor = frame[wy0:wy1, wx0:wx1], (wx0, wy0), 2 ** halvings
            for _ in range(halvings):
                source = cv2.pyrDown(source)
    scale = out / side * factor  # output pixels per source pixel
    sx0, sy0 = (x0 - origin[0]) / factor, (y0 - origin[1]) / factor
    matrix = np.array([[scale, 0, -scale * sx0], [0, scale, -scale * sy0]])
    matrix[:, 2] += 0.5 * scale - 0.5  # continuous coordinates -> pixel centres, as cv2 samples
    return cv2.warpAffine(source, matrix, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def _started(build: Callable[[], Any], side: int) -> Any:
    """A MediaPipe graph, built and run once on a blank image with the native stderr silenced: it logs its set-up
    ("Created TensorFlow Lite XNNPACK delegate", feedback-manager warnings) from its own threads around then,
    lines a user cannot act on."""
    with faces._native_stderr_silenced():
        graph = build()
        graph.process(np.zeros((side, side, 3), np.uint8))
    return graph


def _covered(centre: tuple[float, float], faces_kept: list[np.ndarray]) -> bool:
    """Whether a detection's centre lies on a face already kept (inside its landmarks' bounding box)."""
    for points in faces_kept:
        lo, hi = points.min(0), points.max(0)
        if lo[0] <= centre[0] <= hi[0] and lo[1] <= centre[1] <= hi[1]:
            return True
    return False


@dataclass
class _Track:
    """One tracked face: its own FaceMesh, where to crop the next frame, and its landmark filter."""

    mesh: Any
    centre: tuple[float, float]
    side: float
    ident: int
    smoother: OneEuroFilter = field(default_factory=OneEuroFilter)
    points: np.ndarray | None = None  # the smoothed landmarks of the last frame
    last: np.ndarray | None = None  # the centre of the raw landmarks' box in the last frame


class FaceTracker:
    """Faces in a stream of frames (one call per frame, in order): the video counterpart of
    :class:`maskpurify.purification.faces.FaceFinder`, with the same ``landmarks`` / ``find_eyes`` calls.

    max_faces: faces tracked at most. min_confidence: the detector score that starts a track. scan_every: frames
    between two detection windows while faces are tracked. smooth: False returns FaceMesh's raw landmarks (for
    measuring what the filter does)."""

    def __init__(self, max_faces: int = 4, min_confidence: float = START_CONFIDENCE, scan_every: int = SCAN_EVERY,
                 smooth: bool = True) -> None:
        self._mp = faces._import_mediapipe()
        self._detector = _started(lambda: self._mp.solutions.face_detection.FaceDetection(
            model_selection=0, min_detection_confidence=min_confidence), DETECTOR_SIDE)
        self.max_faces = max_faces
        self.min_confidence = min_confidence
        self.scan_every = max(1, scan_every)
        self.smooth = smooth
        self._tracks: list[_Track] = []
        self._spare: list[Any] = []  # FaceMesh graphs of lost faces, reused (building one takes ~50 ms)
        self._frame = 0  # frames seen
        self._next_window = 0  # the window the round-robin scan looks at next
        self._next_ident = 0  # the number the next new face gets

    # -- detection ------------------------------------------------------------------------------------------
    def _detect(self, frame: np.ndarray, which: list[tuple[int, int, int]]) -> list[tuple[tuple[float, float],
                                                                                          float, float]]:
        """(centre, side of the crop to track it in, score) of each face the detector finds in the windows
        ``which``."""
        found: list[tuple[tuple[float, float], float, float]] = []
        for x0, y0, side in which:
            window = cv2.resize(frame[y0:y0 + side, x0:x0 + side], (DETECTOR_SIDE, DETECTOR_SIDE),
                                interpolation=cv2.INTER_AREA)
            for detection in self._detector.process(window).detections or []:
                if float(detection.score[0]) < self.min_confidence:  # the graph's own threshold lets 0.5 through
                    continue
                box = detection.location_data.relative_bounding_box
                centre = (x0 + (box.xmin + box.width / 2) * side, y0 + (box.ymin + box.height / 2) * side)
                size = max(box.width, box.height) * side
                found.append((centre, DETECTION_SCALE * size, float(detection.score[0])))
        kept: list[tuple[tuple[float, float], float, float]] = []
        for face in sorted(found, key=lambda f: -f[2]):  # one per face: the best-scoring window's
            if all(math.dist(face[0], other[0]) > other[1] / (2 * DETECTION_SCALE) for other in kept):
                kept.append(face)
        return kept

    def _mesh(self) -> Any:
        if self._spare:
            return self._spare.pop()
        return _started(lambda: self._mp.solutions.face_mesh.FaceMesh(static_image_mode=False,
                                                                      refine_landmarks=True, max_num_faces=1),
                        CROP_SIDE)

    def _retire(self, track: _Track) -> None:
        """A lost face's FaceMesh goes back to the spares, its tracking state cleared (a blank image does it)."""
        track.mesh.process(np.zeros((CROP_SIDE, CROP_SIDE, 3), np.uint8))
        self._spare.append(track.mesh)

    # -- per frame ------------------------------------------------------------------------------------------
    def landmarks(self, image: np.ndarray) -> list[np.ndarray]:
        """One (478, 2) pixel-coordinate array per face in this frame (smoothed over the frames before)."""
        return [points for _, points in self.faces(image)]

    def faces(self, image: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """(the face's number, kept while it is tracked; its (478, 2) landmarks) per face in this frame. The
        tracker works in continuous coordinates (0 at the frame's edge); the landmarks come out in pixel-centre
        coordinates, as :meth:`maskpurify.purification.faces.FaceFinder.landmarks` gives them."""
        frame = np.ascontiguousarray(image[..., :3])
        tracked = len(self._tracks)
        out = self._follow_all(frame, self._tracks)
        every = windows(*frame.shape[:2])
        if len(out) < max(1, tracked):  # nothing tracked, or a face lost: look everywhere, in this frame
            which = every
        elif self._frame % self.scan_every == 0:
            which = [every[self._next_window % len(every)]]
            self._next_window += 1
        else:
            which = []
        self._frame += 1
        new = []
        for centre, side, _ in self._detect(frame, which):
            if len(out) + len(new) < self.max_faces and not _covered(centre, [p for _, p in out]):
                new.append(_Track(self._mesh(), centre, side, self._next_ident))
                self._next_ident += 1
        out += self._follow_all(frame, new, [p for _, p in out])
        self._tracks = [track for track, _ in out]
        return [(track.ident, points - 0.5) for track, points in out]

    def _follow_all(self, frame: np.ndarray, tracks: list[_Track],
                    kept: list[np.ndarray] | None = None) -> list[tuple[_Track, np.ndarray]]:
        """Each track followed into ``frame``; lost ones, and ones on a face already kept, retired."""
        out: list[tuple[_Track, np.ndarray]] = []
        kept = list(kept or [])
        for track in tracks:
            points = self._follow(track, frame)
            if points is None or self._duplicate(points, kept):
                self._retire(track)
                continue
            out.append((track, points))
            kept.append(points)
        return out

    def _follow(self, track: _Track, frame: np.ndarray) -> np.ndarray | None:
        """FaceMesh on the track's crop of ``frame``: the face's smoothed landmarks in frame pixels (None: lost).
        The crop for the next frame is placed from the raw landmarks (the smoothed ones lag a fast face) where the
        face will be if it keeps its speed."""
        crop = square_crop(frame, track.centre, track.side, CROP_SIDE)
        # A graph's first face logs a warning about square regions (ours are square): silenced like the set-up.
        with faces._native_stderr_silenced() if track.points is None else contextlib.nullcontext():
            result = track.mesh.process(crop)
        if not result.multi_face_landmarks:
            track.points = None
            return None
        local = np.array([(p.x, p.y) for p in result.multi_face_landmarks[0].landmark], np.float64) * CROP_SIDE
        raw = (local - CROP_SIDE / 2) * (track.side / CROP_SIDE) + np.array(track.centre)
        corners = float(np.linalg.norm(raw[faces.RIGHT_CORNERS[0]] - raw[faces.LEFT_CORNERS[0]]))
        points = track.smoother(raw, corners) if self.smooth else raw
        lo, hi = raw.min(0), raw.max(0)
        centre = (lo + hi) / 2
        velocity = centre - track.last if track.last is not None else np.zeros(2)
        track.last = centre
        track.centre = (float(centre[0] + velocity[0]), float(centre[1] + velocity[1]))
        track.side = float(ROI_SCALE * max(hi - lo))
        track.points = points
        return points

    @staticmethod
    def _duplicate(points: np.ndarray, kept: list[np.ndarray]) -> bool:
        """Whether ``points`` are a face already kept this frame (two tracks that converged on one face)."""
        centre = points.mean(0)
        spread = float(np.linalg.norm(points[faces.RIGHT_CORNERS[0]] - points[faces.LEFT_CORNERS[0]]))
        return any(np.linalg.norm(other.mean(0) - centre) < 0.5 * spread for other in kept)

    def find_eyes(self, image: np.ndarray, crop_size: tuple[int, int]) -> list[faces.Eye]:
        """Both eyes of every face in this frame, cut at ``crop_size`` (as FaceFinder.find_eyes)."""
        eyes = []
        for ident, points in self.faces(image):
            for eye in faces.eyes_from_landmarks(points, crop_size):
                eye.track = ident
                eyes.append(eye)
        return eyes

    def close(self) -> None:
        """Release every MediaPipe graph."""
        for mesh in [t.mesh for t in self._tracks] + self._spare:
            with contextlib.suppress(Exception):
                mesh.close()
        self._detector.close()
        self._tracks, self._spare = [], []

    def __enter__(self) -> FaceTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
