"""The one purification pipeline: an image (and optionally its mask) in, the purified image, the mask used and one
record per eye out.

Every way in goes through :meth:`Pipeline.run`: the library call :func:`maskpurify.purify`, ``maskpurify purify``
for single images, folders, rendered datasets and videos, ``maskpurify gaze`` and the web page. Per image:

1. **Eyes.** A face photo (no mask given, FaceMesh available and the image large enough) gives one crop per eye
   found by FaceMesh, with FaceMesh's mask. Anything else is one eye crop: the smallest box of the working aspect
   (3:5) that holds the whole image, centred on it (edge-replicated where it overhangs).
2. **Working size.** Each eye crop is resized to the purifier's working size (36x60 for the shipped one), so a
   crop of any size meets the networks at the scale they were trained at, and the verdict of the eye check does not
   depend on the crop's resolution. (A purifier of other labels, e.g. binary COCO masks, purifies each image at its
   own size.)
3. **Masks.** A mask given is cut with the crop and trusted; otherwise the segmenter makes one (or FaceMesh did).
4. **Eye check.** Automatic masks that are no plausible eye (:func:`maskpurify.purification.engine.eye_check`) leave
   the crop as it was; the reason is kept.
5. **Engine.** The purifier on every kept crop of the batch, mirrored for crops of the non-canonical eye.
6. **Back.** Each purified crop is resized back and pasted into its box: a whole crop replaces the image, a face's
   eye is blended in with feathered edges, and pixels outside the boxes are never touched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np

from maskpurify.errors import UserError
from maskpurify.fileio import MAX_IMAGE_PIXELS
from maskpurify.formats.base import CropBox
from maskpurify.masks import CANONICAL_EYE, EYE_LABELS, EYE_SIDES, SKIN, resize_mask
from maskpurify.purification import faces, tracking
from maskpurify.purification.engine import Purification

#: What ``eye`` may be: the side an eye crop shows, or ``auto`` (``left`` unless a face photo tells).
EYE_CHOICES = (*EYE_SIDES, "auto")


@dataclass
class EyeResult:
    """One eye of an image: where it is, which side it shows, what happened to it and the working-size arrays.

    ``crop``, ``output`` and ``mask`` are at the working size in the canonical orientation (inner corner on the
    left, as the networks see it): the input a gaze model trained on synthetic eyes takes, purified or not."""

    name: str
    box: tuple[int, int, int, int]  # x0, y0, width, height in the input image (may overhang its border)
    side: str  # "left" (canonical) or "right" (mirrored for the networks)
    purified: bool
    reason: str | None  # why the eye was left as it was, or None
    crop: np.ndarray = field(repr=False)
    output: np.ndarray = field(repr=False)
    mask: np.ndarray = field(repr=False)


@dataclass
class Result:
    """What :meth:`Pipeline.run` returns per image: the output (same size and layout as the input), the label map
    used at the input's size, how it was made (``given``, ``segmenter`` or ``faces``) and one record per eye."""

    image: np.ndarray
    mask: np.ndarray
    method: str
    eyes: list[EyeResult]

    @property
    def purified(self) -> bool:
        """Whether any eye was purified (False: the output is the input, unchanged)."""
        return any(eye.purified for eye in self.eyes)

    @property
    def passed_through(self) -> list[tuple[str, str]]:
        """(eye name, reason) for every eye left as it was."""
        return [(eye.name, eye.reason) for eye in self.eyes if eye.reason is not None]


@dataclass
class _Job:
    """One eye crop on its way through the networks."""

    image: int  # index of the image it comes from
    box: CropBox | faces.RotatedCrop  # a face's eye is cut level (turned by the head's roll)
    side: str
    mask: np.ndarray | None  # working-size mask in the input's orientation; None: the segmenter's
    automatic: bool  # whether the eye check applies (FaceMesh's masks and the segmenter's)
    name: str
    feather: float  # 0: the crop replaces the whole image
    closed: str | None = None  # why the eye is known closed before any mask is looked at (face photos)
    hint: str = ""  # added to the reason when the eye is passed through
    track: tuple[int, str] | None = None  # video: the tracked face's number and the eye's side


@dataclass
class _Plan:
    """A chunk of images after :meth:`Pipeline._plan`: what :meth:`Pipeline._finish` needs."""

    images: Sequence[np.ndarray]
    given: list[np.ndarray | None]
    rgbs: list[np.ndarray]
    greys: list[bool]
    methods: list[str]
    jobs: list[_Job]
    face_masks: dict[int, np.ndarray]


_T = TypeVar("_T")
_Tag = TypeVar("_Tag")


def whole_image_box(height: int, width: int, working_size: tuple[int, int]) -> CropBox:
    """The smallest box of the working aspect that holds a ``height`` x ``width`` image, centred on it (an image
    of the working aspect is its own box)."""
    wh, ww = working_size
    box_w = max(width, math.ceil(height * ww / wh - 1e-6))
    box_h = max(height, math.ceil(box_w * wh / ww - 1e-6))
    return CropBox(-((box_w - width) // 2), -((box_h - height) // 2), box_w, box_h, wh, ww)


#: Largest working box (the 3:5 frame around a whole image) in pixels: twice the image limit. The box is cut,
#: resized and pasted back at full size, so a very thin image (a 32768x2048 strip frames as 32768x54614) would
#: need gigabytes; such an image is refused in one line, to be cropped closer to the eye.
MAX_BOX_PIXELS = 2 * MAX_IMAGE_PIXELS
#: A grey photo stored as RGB (JPEG decoding leaves a level or two between channels) comes back grey.
GREY_TOLERANCE = 2


def _check_box(box: CropBox, shape: tuple[int, ...], working_size: tuple[int, int], name: str) -> None:
    pixels = box.width * box.height
    if pixels > MAX_BOX_PIXELS:
        raise UserError(f"{name}: a {shape[1]}x{shape[0]} image is framed as {box.width}x{box.height} for the "
                        f"networks (aspect {working_size[1]}:{working_size[0]}), which would take "
                        f"{pixels * 4 // 2 ** 20} MiB; the limit is {MAX_BOX_PIXELS} pixels; crop it closer to "
                        "the eye")


def _is_grey_rgb(rgb: np.ndarray) -> bool:
    """Whether an RGB image is a grey photo stored in colour: every pixel's channels within GREY_TOLERANCE."""
    def grey(image: np.ndarray) -> bool:
        r, g, b = cv2.split(image)  # uint8 absolute differences: no int16 copies of a whole video frame
        return bool(max(cv2.absdiff(r, g).max(), cv2.absdiff(g, b).max()) <= GREY_TOLERANCE)
    # a colour image nearly always shows it in every 8th pixel already (a 720p frame: 0.02 ms instead of 1 ms)
    return grey(np.ascontiguousarray(rgb[::8, ::8])) and grey(rgb)


def _to_rgb(image: np.ndarray, name: str) -> tuple[np.ndarray, bool]:
    """uint8 HxW, HxWx1, HxWx3 or HxWx4 -> HxWx3 and whether it was grey (alpha dropped). A grey photo stored
    as RGB counts as grey, so that it comes back grey: the purifier's colours are not in the photo."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise UserError(f"{name}: images must be uint8, got {image.dtype}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 1):
        return np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=2), True
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise UserError(f"{name}: expected an HxW grey or HxWx3 RGB image, got shape {tuple(image.shape)}")
    if min(image.shape[:2]) < 8:
        raise UserError(f"{name}: image of {image.shape[0]}x{image.shape[1]} pixels is too small (at least 8x8)")
    rgb = np.ascontiguousarray(image[..., :3])
    return rgb, _is_grey_rgb(rgb)


def _like_input(rgb: np.ndarray, original: np.ndarray, grey: bool) -> np.ndarray:
    """The output in the input's layout: grey inputs get the channel mean (HxW, HxWx1, or HxWx3 for a grey
    photo stored as RGB)."""
    if not grey:
        return rgb
    out = np.round(rgb.astype(np.float32).mean(-1)).astype(np.uint8)
    original = np.asarray(original)
    if original.ndim == 2:
        return out
    return out[..., None] if original.shape[-1] == 1 else np.repeat(out[..., None], 3, axis=2)


def _mask_back(box: CropBox, mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A working-size label map of a whole-image box resized to the image (nearest: labels never blend)."""
    big = resize_mask(mask, (box.height, box.width))
    h, w = shape
    out = np.zeros((h, w), np.uint8)
    x0, y0 = max(0, box.x0), max(0, box.y0)
    x1, y1 = min(w, box.x0 + box.width), min(h, box.y0 + box.height)
    out[y0:y1, x0:x1] = big[y0 - box.y0:y1 - box.y0, x0 - box.x0:x1 - box.x0]
    return out


class Pipeline:
    """The purifier, the segmenter and FaceMesh (when installed) behind one call, :meth:`run`.

    engine: the loaded networks (:class:`~maskpurify.purification.engine.Purification`). faces_mode: ``auto`` (an image
    without a mask goes through FaceMesh when it is installed and the image is large enough to hold a face),
    ``always`` (``--masks faces``: FaceMesh must find a face) or ``never`` (every image is an eye crop).
    face_crop_size: what each eye of a face is purified at (default: the working size). video: the images are the
    frames of one video, in order: faces are found at any scale and tracked from frame to frame, their eyes
    smoothed over time (:class:`~maskpurify.purification.tracking.FaceTracker`), and with ``always`` a frame
    without a face has no eyes and is returned unchanged. finder: a face finder to use instead of FaceMesh
    (anything with ``find_eyes(image, crop_size)``; tests use it to place eyes without a detector).
    """

    def __init__(self, engine: Purification, faces_mode: str = "auto",
                 face_crop_size: tuple[int, int] | None = None, video: bool = False,
                 finder: faces.FaceFinder | tracking.FaceTracker | None = None) -> None:
        if faces_mode not in ("auto", "always", "never"):
            raise ValueError(f"faces_mode must be auto, always or never, got {faces_mode!r}")
        self.engine = engine
        self.faces_mode = faces_mode
        # face crops are cut at 3:5; a pipeline that never looks for faces (eye videos, LPW's 4:3 near-IR frames)
        # keeps whatever working size its purifier has
        size = face_crop_size or engine.working_size
        self.face_crop_size = faces.check_crop_size(size) if faces_mode != "never" else (int(size[0]), int(size[1]))
        self._video = video
        self._smoother = tracking.EyeSmoother()
        self._finder = finder
        self._own_finder = finder is None

    @classmethod
    def load(cls, checkpoint: str | Path | None = None, segmenter: str | Path | None | bool = None,
             device: str = "auto", batch_size: int = 64, check_eyes: bool = True, faces_mode: str = "auto",
             video: bool = False, backend: str = "auto") -> Pipeline:
        """The shipped networks (or the checkpoints given) on ``device`` (``auto``: CUDA when present), run by
        ``backend`` (``auto``: ONNX Runtime when it is installed and the networks are exported, as the shipped
        ones are; see :func:`maskpurify.purification.engine.resolve_backend`)."""
        return cls(Purification.load(checkpoint, segmenter, device, batch_size, check_eyes, backend), faces_mode,
                   video=video)

    @property
    def working_size(self) -> tuple[int, int]:
        return self.engine.working_size

    def close(self) -> None:
        """Release FaceMesh (if it was started)."""
        if self._finder is not None and self._own_finder:
            self._finder.close()
            self._finder = None

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def settle_video_mode(self, frames: Sequence[np.ndarray]) -> bool:
        """Decide, once for a whole video in ``auto`` face mode, whether it is a face video (FaceMesh finds a face
        in one of ``frames``, its first ones) or an eye video, as a photo is decided, so that every frame goes the
        same way. Returns whether it is a face video; ``faces_mode`` becomes ``always`` or ``never``."""
        if self.faces_mode == "auto":
            found = any(self._face_jobs(0, _to_rgb(frame, "video frame")[0], "video frame") is not None
                        for frame in frames)
            if self._finder is not None and self._own_finder:  # the run starts its tracking at frame 0 again
                self._finder.close()
                self._finder = None
            self.faces_mode = "always" if found else "never"
        return self.faces_mode == "always"

    # -- one image ------------------------------------------------------------------------------------------
    def purify(self, image: np.ndarray, mask: np.ndarray | None = None, eye: str = "auto",
               name: str = "image") -> Result:
        """One image (an eye crop of any size or a face photo) and optionally its label map -> :class:`Result`."""
        return self.run([image], [mask], [name], eye)[0]

    # -- many images ----------------------------------------------------------------------------------------
    def run(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray | None] | None = None,
            names: Sequence[str] | None = None, eye: str | Sequence[str] = "auto") -> list[Result]:
        """Purify images of any sizes, each with its mask or None; the eye crops of all of them are batched.

        eye: which eye the eye crops show (``left``, ``right``, or ``auto``: the canonical ``left``), one for all
        or one per image; a face photo's eyes take their side from FaceMesh. Running out of memory (numpy's or
        OpenCV's MemoryError, torch's allocation RuntimeError) is a one-line UserError naming the image(s)."""
        names = list(names) if names is not None else [f"image {i}" for i in range(len(images))]
        return self._guarded(names, lambda: self._finish(self._plan(images, masks, names, eye)))

    def run_stream(self, chunks: Iterable[tuple[Sequence[np.ndarray], Sequence[str], _Tag]], eye: str = "auto"
                   ) -> Iterator[tuple[_Tag, list[Result]]]:
        """:meth:`run` over a stream of ``(images, names, tag)`` chunks, in order: ``(tag, results)`` per chunk.

        The faces of the next chunk are found (FaceMesh, which releases the GIL) by a second thread while this
        chunk's eyes go through the networks, so a video's two heaviest stages share the two cores. At most two
        chunks are held."""
        source = iter(chunks)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="face-finder") as finder:
            def plan_next() -> tuple[_Tag, list[str], Any] | None:
                item = next(source, None)
                if item is None:
                    return None
                images, names, tag = item
                names = list(names)
                return tag, names, finder.submit(self._guarded, names,
                                                 lambda: self._plan(images, None, names, eye))

            pending = plan_next()
            while pending is not None:
                tag, names, planned = pending
                plan = planned.result()
                pending = plan_next()  # the next chunk's faces are found while this one is finished
                yield tag, self._guarded(names, lambda: self._finish(plan))

    @staticmethod
    def _guarded(names: Sequence[str], work: Callable[[], _T]) -> _T:
        """``work()``, with running out of memory (numpy's or OpenCV's MemoryError, torch's allocation
        RuntimeError) turned into a one-line UserError naming the image(s)."""
        try:
            return work()
        except (MemoryError, RuntimeError, cv2.error) as exc:
            text = str(exc)
            if not isinstance(exc, MemoryError) and not any(
                    word in text.lower() for word in ("memory", "alloc", "oom")):
                raise
            where = str(names[0]) if len(names) == 1 else f"{names[0]} (and {len(names) - 1} more)" if names \
                else "0 images"
            detail = (text.strip().splitlines() or [type(exc).__name__])[-1][:160]
            raise UserError(f"{where}: out of memory while purifying ({detail}); try a smaller --batch-size or "
                            "a smaller image") from None

    def _plan(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray | None] | None,
              names: list[str], eye: str | Sequence[str]) -> _Plan:
        """Everything before the networks: the images as RGB, and their eye crops (a face photo's found by
        FaceMesh) as jobs."""
        n = len(images)
        given = list(masks) if masks is not None else [None] * n
        sides = [eye] * n if isinstance(eye, str) else list(eye)
        if len(given) != n or len(names) != n or len(sides) != n:
            raise UserError(f"got {n} images but {len(given)} masks, {len(names)} names and {len(sides)} eye sides")
        for side in set(sides):
            if side not in EYE_CHOICES:
                raise UserError(f"eye {side!r}: choose left, right or auto (left is the canonical side: inner "
                                "corner on the image's left)")
        rgbs, greys, methods, jobs, face_masks = [], [], [], [], {}
        for i, image in enumerate(images):
            rgb, grey = _to_rgb(image, names[i])
            rgbs.append(rgb)
            greys.append(grey)
            face = self._face_jobs(i, rgb, names[i]) if given[i] is None else None
            if face is not None:
                methods.append("faces")
                face_jobs, face_masks[i] = face
                jobs.extend(face_jobs)
                continue
            box = self._crop_box(*rgb.shape[:2])
            _check_box(box, rgb.shape[:2], self.working_size, names[i])
            mask = None
            if given[i] is not None:
                full = self.engine.check_mask(np.asarray(given[i]), rgb.shape[:2], f"mask of {names[i]}")
                mask = box.apply_mask(full)
            side = CANONICAL_EYE if sides[i] == "auto" else sides[i]
            methods.append("given" if mask is not None else "segmenter")
            jobs.append(_Job(i, box, side, mask, mask is None, names[i], 0.0, hint=self._face_hint(rgb)))
        return _Plan(images, given, rgbs, greys, methods, jobs, face_masks)

    def _finish(self, plan: _Plan) -> list[Result]:
        """The jobs through the networks, and each image's purified eyes pasted back."""
        images, given, rgbs, greys, methods, jobs, face_masks = (
            plan.images, plan.given, plan.rgbs, plan.greys, plan.methods, plan.jobs, plan.face_masks)
        n = len(images)
        outputs = self._purify_jobs(jobs, rgbs)
        per_image: list[list[tuple[_Job, EyeResult]]] = [[] for _ in range(n)]
        for job, out in zip(jobs, outputs):
            per_image[job.image].append((job, out))
        results = []
        for i, mine in enumerate(per_image):
            picture = rgbs[i].copy()
            if self._video:  # frames in order: each tracked eye's purified crop averaged over time
                for job, out in mine:
                    if out.purified and job.track is not None:
                        out.output = self._smoother(job.track, out.crop, out.output)
                self._smoother.keep({job.track for job, out in mine if out.purified and job.track is not None})
            for job, out in mine:
                if out.purified:  # the purifier's change is pasted, so the photo keeps the detail of its own size
                    change = out.output.astype(np.float32) - out.crop.astype(np.float32)
                    change = np.ascontiguousarray(change[:, ::-1]) if job.side != CANONICAL_EYE else change
                    if job.feather > 0:
                        faces.paste(picture, change, job.box, job.feather)
                    else:
                        picture = _paste_whole(picture, change, job.box)
            if methods[i] == "faces":
                label_map = face_masks[i]
            elif given[i] is not None:
                label_map = np.asarray(given[i]).astype(np.uint8)
            else:
                job, out = mine[0]
                canonical = out.mask[:, ::-1] if job.side != CANONICAL_EYE else out.mask
                label_map = _mask_back(job.box, np.ascontiguousarray(canonical), rgbs[i].shape[:2])
            results.append(Result(_like_input(picture, images[i], greys[i]), label_map, methods[i],
                                  [out for _, out in mine]))
        return results

    # -- pieces ---------------------------------------------------------------------------------------------
    def _crop_box(self, height: int, width: int) -> CropBox:
        """An eye crop's box: the whole image at the working size and aspect. A purifier of other labels (COCO
        scenes, binary masks) has no working framing and purifies every image at its own size."""
        if self.engine.labels is EYE_LABELS:
            return whole_image_box(height, width, self.working_size)
        return CropBox(0, 0, width, height, height, width)

    def _face_hint(self, rgb: np.ndarray) -> str:
        """What to tell the user when an image large enough to be a face photo was taken as an eye crop only
        because MediaPipe is missing."""
        missing = "" if self.faces_mode != "auto" or self._finder is not None else faces.mediapipe_missing_for(rgb.shape)
        return f"; if this is a face photo, {missing}" if missing else ""

    def _face_jobs(self, i: int, rgb: np.ndarray, name: str) -> tuple[list[_Job], np.ndarray] | None:
        """The eye crops of a face photo with FaceMesh's masks, or None when the image is no face photo."""
        if self.faces_mode == "never" or self.engine.labels is not EYE_LABELS:
            return None
        if self.faces_mode == "auto" and (min(rgb.shape[:2]) < faces.MIN_FACE_IMAGE_SIDE or
                                          (self._finder is None and not faces.mediapipe_available())):
            return None
        if self._finder is None:
            self._finder = tracking.FaceTracker() if self._video else faces.FaceFinder()
        eyes = self._finder.find_eyes(rgb, self.face_crop_size)
        if not eyes:
            if self._video and self.faces_mode == "always":
                return [], np.full(rgb.shape[:2], SKIN, np.uint8)  # a frame without a face: no eyes, unchanged
            if self.faces_mode == "always":
                raise UserError(f"{name}: FaceMesh found no face (--masks faces needs a face photo; use --masks "
                                "auto for eye crops)")
            return None
        full = faces.rasterise(rgb.shape, eyes)
        jobs = [_Job(i, e.crop, e.crop_side, faces.crop_mask(e.crop, eyes), True, f"{name} ({e.side} eye)", faces.FEATHER,
                     None if not self.engine.check_eyes or e.opening >= faces.MIN_OPENING else
                     f"closed eye (eyelid opening {e.opening:.3f} < {faces.MIN_OPENING})",
                     track=None if e.track is None else (e.track, e.side))
                for e in eyes]
        return jobs, full

    def _purify_jobs(self, jobs: list[_Job], rgbs: list[np.ndarray]) -> list[EyeResult]:
        """All crops through the engine, one batch per crop size (face crops may have their own size)."""
        crops = [_cut(job.box, rgbs[job.image]) for job in jobs]
        outputs: list[EyeResult | None] = [None] * len(jobs)
        for k, job in enumerate(jobs):
            if job.closed is not None:
                outputs[k] = self._eye_result(job, crops[k], crops[k], job.mask, job.closed)  # type: ignore[arg-type]
        for shape in dict.fromkeys(c.shape for c in crops):
            idx = [k for k, c in enumerate(crops) if c.shape == shape and jobs[k].closed is None]
            if not idx:
                continue
            done = self.engine.purify_batch(np.stack([crops[k] for k in idx]), [jobs[k].mask for k in idx],
                                            [jobs[k].name for k in idx], [jobs[k].side for k in idx],
                                            automatic=[jobs[k].automatic for k in idx])
            for j, k in enumerate(idx):
                outputs[k] = self._eye_result(jobs[k], crops[k], done.images[j], done.masks[j], done.problems[j])
        return outputs  # type: ignore[return-value]

    def _eye_result(self, job: _Job, crop: np.ndarray, output: np.ndarray, mask: np.ndarray,
                    problem: str | None) -> EyeResult:
        """The working-size arrays in the canonical orientation (the engine returns them in the crop's own)."""
        flip = job.side != CANONICAL_EYE

        def canon(a: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(a[:, ::-1]) if flip else a

        box = job.box
        reason = None if problem is None else problem + job.hint
        return EyeResult(job.name, (box.x0, box.y0, box.width, box.height), job.side, problem is None, reason,
                         canon(crop), canon(output), canon(mask))


def _cut(box: CropBox | faces.RotatedCrop, image: np.ndarray) -> np.ndarray:
    """The box's working-size crop (the image itself when it already is one: no resampling)."""
    if isinstance(box, CropBox) and (box.x0, box.y0, box.width, box.height, box.out_height, box.out_width) == (
            0, 0, image.shape[1], image.shape[0], *image.shape[:2]):
        return image
    return box.apply_image(image)


def _paste_whole(picture: np.ndarray, change: np.ndarray, box: CropBox) -> np.ndarray:
    """``picture`` plus the purifier's change to its whole-image box's working-size crop (float, output minus
    input), resized back to the box and cut to the image: at the working size the result is the purifier's output,
    and a larger crop keeps the detail the working size cannot hold."""
    h, w = picture.shape[:2]
    if (box.x0, box.y0, box.width, box.height) != (0, 0, w, h) or change.shape[:2] != (h, w):
        shrink = box.width < change.shape[1]
        change = cv2.resize(change, (box.width, box.height),
                            interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
        change = change[-box.y0:-box.y0 + h, -box.x0:-box.x0 + w]
    return np.clip(np.round(picture.astype(np.float32) + change), 0, 255).astype(np.uint8)
