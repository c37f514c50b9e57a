"""Videos and cameras through the one pipeline (:meth:`~maskpurify.purification.pipeline.Pipeline.run`), behind
``maskpurify purify --input VIDEO|CAMERA``.

- **Files** are processed whole: a thread decodes ahead and another encodes behind (OpenCV's decoder and FFmpeg's
  encoder release the GIL, so they run beside FaceMesh and the networks), through bounded queues, so memory holds
  a few chunks whatever the video's length. Frames go through the pipeline ``batch_size`` at a time (fewer for
  large frames), so the eyes of many frames share one forward pass.
- **Live sources** (a camera, ``--input 0``; or a file with ``live=True``, read at its own frame rate, as a
  stand-in for a camera in tests) are read by a thread that keeps only the newest frame (:class:`LiveFrames`):
  when the machine falls behind, frames are dropped and counted, never queued, so the output stays current.
  Each frame goes through the pipeline alone (both eyes of each face in one batch). A camera runs until it stops
  or Ctrl-C; the video written up to then is kept.
- **Threads**: while a video runs on the CPU, the networks use one intra-op thread: the decoder, the encoder and
  FaceMesh keep the other core busy, and PyTorch's OpenMP threads spin-wait and stall whenever a core is taken
  (measured on the 2-core machine under load: 2 eyes in 596 ms with 2 threads, 12 ms with 1). The setting is
  restored afterwards. ONNX Runtime's sessions do not spin (:func:`~maskpurify.purification.onnx_backend.
  session_options`).
- **Readout and summary**: the progress bar shows the frames/s of the last second, the frames with a face and the
  frames dropped. :class:`VideoStats` says in how many frames a face was found and how many eyes were purified;
  a face video (``--masks faces``) in which no face is ever found is refused (nothing written).
- **Steadiness** (:class:`EyeSteadiness`): over every eye purified in two consecutive frames, the mean absolute
  difference between its two crops, of the input and of the output. The purified eyes should change from frame
  to frame no more than the input eyes do (a flickering purifier or jittering masks would show here).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maskpurify.errors import UserError
from maskpurify.fileio import MAX_IMAGE_PIXELS, check_outputs
from maskpurify.masks import colourise
from maskpurify.purification.drivers import NotPurified, output_file, report_passed_through
from maskpurify.purification import faces
from maskpurify.purification.engine import on_cpu, palette_for
from maskpurify.purification.inputs import VIDEO_SUFFIXES, MaskSource
from maskpurify.purification.pipeline import Pipeline, Result

__all__ = ["VideoStats", "EyeSteadiness", "LiveFrames", "purify_video", "LPWStats", "purify_lpw"]


@contextlib.contextmanager
def _one_torch_thread(backend: str, device: Any) -> Iterator[None]:
    """PyTorch on one intra-op thread inside the block when it runs the networks on the CPU (see the module doc;
    with ONNX Runtime, PyTorch is not even imported)."""
    if backend != "torch":
        yield
        return
    import torch

    before = torch.get_num_threads()
    if on_cpu(device):
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class VideoStats:
    frames: int
    fps: float
    width: int
    height: int
    #: Frames written unchanged because no eye in them was purified.
    not_purified: int = 0
    #: The codec written, in words (H.264 for MP4, MOV and MKV).
    codec: str = ""
    #: Frames in which FaceMesh found a face (face videos), and eyes purified over all frames.
    face_frames: int = 0
    eyes_purified: int = 0
    #: Live sources: frames the source delivered that were dropped because the machine was behind.
    dropped: int = 0
    #: Whether it was purified as a face video (FaceMesh), else as an eye video.
    face_video: bool = False
    #: Wall-clock seconds from the first frame read to the last written.
    seconds: float = 0.0
    #: :class:`EyeSteadiness` of the input and of the output (None: no eye purified in two consecutive frames).
    input_change: float | None = None
    output_change: float | None = None

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class EyeSteadiness:
    """How much the eyes change from one frame to the next, before and after purification: the mean absolute
    difference (0-255) between an eye's working-size crop in two consecutive frames, of the input crops and of the
    purified ones. The crops follow the eye (their boxes come from the tracked, smoothed landmarks), so this is the
    change a viewer sees in the eye itself, not the face's motion across the frame: jittering boxes or masks and a
    flickering purifier raise it. An eye counts when it was purified in both frames (same face, same side)."""

    def __init__(self) -> None:
        self._before: Result | None = None
        self._sums = [0.0, 0.0]
        self._pairs = 0

    def add(self, result: Result, consecutive: bool = True) -> None:
        """The pipeline's result for the next frame (``consecutive``: False after a dropped frame)."""
        if self._before is not None and consecutive and len(self._before.eyes) == len(result.eyes):
            for then, now in zip(self._before.eyes, result.eyes):
                if not (then.purified and now.purified and then.side == now.side
                        and then.crop.shape == now.crop.shape):
                    continue
                for k, (a, b) in enumerate(((then.crop, now.crop), (then.output, now.output))):
                    self._sums[k] += float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())
                self._pairs += 1
        self._before = result

    @property
    def pairs(self) -> int:
        """Eye pairs (the same eye in two consecutive frames) measured."""
        return self._pairs

    @property
    def input_change(self) -> float | None:
        return self._sums[0] / self._pairs if self._pairs else None

    @property
    def output_change(self) -> float | None:
        return self._sums[1] / self._pairs if self._pairs else None


_END = object()


class LiveFrames:
    """The newest frame of a live source: a thread reads ``frames`` as fast as the source delivers them (or, with
    ``pace`` seconds per frame, releases a file's frames at that rate, as a camera would) and keeps only the last
    one. A frame not taken before the next one arrives is dropped (counted in :attr:`dropped`), so a slow consumer
    always gets the current frame and memory never holds more than one waiting frame."""

    def __init__(self, frames: Iterable[np.ndarray], pace: float | None = None) -> None:
        self.dropped = 0
        self.delivered = 0
        #: The source's index of each frame handed out and not yet claimed by :meth:`claim_index`, in order: the
        #: output puts each frame at its own time and holds it over the dropped ones after it.
        self._indices: collections.deque[int] = collections.deque()
        self._frames = frames
        self._pace = pace
        self._waiting: tuple[int, np.ndarray] | None = None
        self._ended = False
        self._error: BaseException | None = None
        self._ready = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="live-frames", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        start = time.perf_counter()
        try:
            for index, frame in enumerate(self._frames):
                if self._stop.is_set():
                    return
                if self._pace is not None:
                    time.sleep(max(0.0, start + index * self._pace - time.perf_counter()))
                with self._ready:
                    self.dropped += self._waiting is not None
                    self._waiting = (index, frame)
                    self.delivered += 1
                    self._ready.notify()
        except BaseException as exc:  # a truncated file, a camera error: raised in the consumer
            self._error = exc
        finally:
            with self._ready:
                self._ended = True
                self._ready.notify()

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            with self._ready:
                while self._waiting is None and not self._ended:
                    self._ready.wait()
                waiting, self._waiting = self._waiting, None
            if waiting is None:  # ended, nothing waiting
                if self._error is not None:
                    raise self._error
                return
            self._indices.append(waiting[0])
            yield waiting[1]

    def claim_index(self) -> int:
        """The source index of the oldest frame handed out and not yet claimed (frames are claimed in order)."""
        return self._indices.popleft()

    def close(self) -> None:
        """Stop reading (the thread stops at the source's next frame)."""
        self._stop.set()


def _prefetch(frames: Iterable[np.ndarray], depth: int) -> Iterator[np.ndarray]:
    """``frames`` decoded by a thread up to ``depth`` ahead of the consumer (a file: nothing is dropped)."""
    slots: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    failure: list[BaseException] = []

    def put(item: Any) -> bool:
        """Hand ``item`` over, waiting while the queue is full; False once the consumer has stopped."""
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for frame in frames:
                if not put(frame):
                    return
        except BaseException as exc:
            failure.append(exc)
        finally:
            put(_END)

    thread = threading.Thread(target=read, name="video-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is _END:
                if failure:
                    raise failure[0]
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


class _Encoder:
    """Writes frames in a thread from a bounded queue; the first error is raised in the caller at its next call."""

    def __init__(self, write: Callable[[np.ndarray, np.ndarray | None, int | None], None], depth: int) -> None:
        self._write = write
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="video-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if self._error is None:
                try:
                    self._write(*item)
                except BaseException as exc:
                    self._error = exc

    def put(self, frame: np.ndarray, mask: np.ndarray | None, index: int | None = None) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((frame, mask, index))

    def finish(self) -> None:
        """Wait until every frame is written; raise the writer's error, if any."""
        self._queue.put(_END)
        self._thread.join()
        if self._error is not None:
            raise self._error


#: Frames a video in ``auto`` mode is looked at to decide face video or eye video (about a third of a second).
PROBE_FRAMES = 8


def purify_video(pipeline: Pipeline, src: Path | int, out: Path, mask_video: Path | None = None,
                 overwrite: bool = False, masks: MaskSource = MaskSource(), progress: bool = True,
                 on_frames: Callable[[int], None] | None = None, eye: str = "auto", live: bool = False,
                 preset: str = "auto") -> VideoStats:
    """Stream a video file (``src`` a path) or a camera (``src`` an index) through the pipeline into ``out``.

    A file keeps its fps, size and frame count; masks are automatic per frame. mask_video: also write the
    colourised masks as a second video. masks faces: FaceMesh finds, tracks and smooths the faces (the pipeline
    made with ``video=True``; frames without a face are written unchanged); auto or default: a face video when FaceMesh
    finds a face in the first :data:`PROBE_FRAMES` frames, otherwise eye frames and the segmenter.
    live: read ``src`` as a live source (a camera always is): frames dropped when the machine falls behind (see the
    module doc). on_frames(n): called after each chunk with the frames done (progress hooks, memory probes). eye:
    which eye an eye video shows. preset: the H.264 encoder's (:data:`maskpurify.formats.video.H264_PRESETS`);
    auto: ``ultrafast`` for a live source, which must keep up, else ``veryfast``.
    """
    from tqdm import tqdm

    from maskpurify.formats.video import VideoWriter, iter_frames, open_camera, video_info

    camera = isinstance(src, int)
    out = output_file(out, "video", VIDEO_SUFFIXES)
    if mask_video is not None:
        mask_video = Path(mask_video)
        if mask_video.suffix.lower() not in VIDEO_SUFFIXES:
            raise UserError(f"--mask-video {mask_video}: needs a video file name ({', '.join(VIDEO_SUFFIXES)})")
    # One check for both outputs, before any writer opens: neither may be the input or the other output.
    check_outputs({"--out": out, "--mask-video": mask_video}, {"--input": None if camera else src},
                  overwrite=overwrite)
    if masks.kind == "path":
        raise UserError(f"--masks {masks}: a video takes automatic masks only (--masks auto or --masks faces)")
    if camera:
        fps, source = open_camera(int(src))
        size, total = None, None
    else:
        info = video_info(src)
        fps = info.fps if info.fps > 0 else 30.0
        size, total = (info.width, info.height), info.frame_count or None
        source = iter_frames(src)
    live = camera or live
    preset = ("ultrafast" if live else "veryfast") if preset == "auto" else preset
    # Memory holds a few chunks: batch_size frames, fewer for large frames (MAX_IMAGE_PIXELS in all); live: one.
    pixels = size[0] * size[1] if size else 1920 * 1080
    per_chunk = 1 if live else max(1, min(pipeline.engine.batch_size, MAX_IMAGE_PIXELS // max(1, pixels)))
    frames: Iterable[np.ndarray] = (LiveFrames(source, pace=None if camera else 1.0 / fps) if live
                                    else _prefetch(source, 2 * per_chunk))
    palette = palette_for(pipeline.engine.labels)
    stats = VideoStats(0, fps, *(size or (0, 0)))
    steadiness = EyeSteadiness()
    notes = NotPurified()
    bar = tqdm(total=total if not live else None, unit="frame", desc="purify", disable=not progress, leave=False)
    start = last_shown = time.perf_counter()
    shown_frames = 0
    faces_hint = ""  # a video large enough for faces taken as an eye video because MediaPipe is missing
    try:
        ordered = iter(frames)
        if pipeline.faces_mode == "auto":  # face video or eye video, decided on the first frames
            head = list(itertools.islice(ordered, PROBE_FRAMES))
            if not pipeline.settle_video_mode(head) and head:
                faces_hint = faces.mediapipe_missing_for(head[0].shape)
            ordered = itertools.chain(head, ordered)
        stats.face_video = faces_wanted = pipeline.faces_mode == "always"
        if not faces_wanted and not pipeline.engine.has_segmenter:
            raise UserError(f"no mask for {src} and no segmenter; give --segmenter (videos use automatic masks)"
                            + (f"; if it shows faces, {faces_hint}" if faces_hint else ""))
        with contextlib.ExitStack() as stack:
            stack.enter_context(_one_torch_thread(pipeline.engine.backend, pipeline.engine.device))
            writer = stack.enter_context(VideoWriter(out, fps, size, preset))
            mwriter = stack.enter_context(VideoWriter(mask_video, fps, size, preset)) if mask_video else None

            def write(image: np.ndarray, mask: np.ndarray | None, index: int | None) -> None:
                writer.write(image, index)
                if mwriter is not None and mask is not None:
                    mwriter.write(colourise(mask, palette), index)

            encoder = _Encoder(write, 2 * per_chunk)
            try:
                dropped_before = 0
                with contextlib.suppress(KeyboardInterrupt) if camera else contextlib.nullcontext():
                    def tagged() -> Iterator[tuple[list[np.ndarray], list[str], tuple[int, int]]]:
                        taken = 0
                        for chunk in _chunks(ordered, per_chunk):
                            dropped = frames.dropped if isinstance(frames, LiveFrames) else 0
                            yield chunk, [f"{src} frame {taken + i}" for i in range(len(chunk))], (len(chunk), dropped)
                            taken += len(chunk)

                    # FaceMesh finds the faces of the next chunk while this chunk's eyes are purified
                    for (count, dropped), results in pipeline.run_stream(tagged(), eye):
                        for result in results:
                            report_passed_through(notes, result, "written unchanged")
                            stats.not_purified += not result.purified
                            stats.face_frames += result.method == "faces" and bool(result.eyes)
                            stats.eyes_purified += sum(e.purified for e in result.eyes)
                            steadiness.add(result, consecutive=dropped == dropped_before)
                            dropped_before = dropped
                            encoder.put(result.image, result.mask if mwriter is not None else None,
                                        frames.claim_index() if isinstance(frames, LiveFrames) else None)
                        stats.frames += count
                        stats.dropped = dropped
                        bar.update(count)
                        now = time.perf_counter()
                        if now - last_shown >= 0.5:
                            bar.set_postfix(fps=f"{(stats.frames - shown_frames) / (now - last_shown):.1f}",
                                            faces=stats.face_frames, dropped=stats.dropped, refresh=False)
                            last_shown, shown_frames = now, stats.frames
                        del results
                        if on_frames is not None:
                            on_frames(stats.frames)
            finally:
                encoder.finish()
            if isinstance(frames, LiveFrames):
                stats.dropped = frames.dropped
            if faces_wanted and stats.frames and not stats.face_frames:
                raise UserError(f"{'camera ' if camera else ''}{src}: no face found in any of its {stats.frames} "
                                "frames; nothing written (--masks faces is for face videos)")
            stats.seconds = time.perf_counter() - start
            stats.width, stats.height = writer.size or (0, 0)
            stats.codec = writer.codec_name
    finally:
        bar.close()
        if isinstance(frames, LiveFrames):
            frames.close()
    stats.input_change, stats.output_change = steadiness.input_change, steadiness.output_change
    if faces_hint:  # said once the run succeeded, so that an error stays one line
        print(f"{src}: taken as an eye video; if it shows faces, {faces_hint}", file=sys.stderr)
    return stats


def _chunks(frames: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    chunk: list[np.ndarray] = []
    for frame in frames:
        chunk.append(frame)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass
class LPWStats:
    videos: int
    frames: int
    fps: float
    #: Frames written unchanged because no eye in them was purified.
    not_purified: int = 0


def purify_lpw(pipeline: Pipeline, src: Path, out: Path, overwrite: bool = False, progress: bool = True,
               eye: str = "auto") -> LPWStats:
    """Purify every ``K.avi`` of an LPW-layout folder into the same layout under ``out``: each video through
    :func:`purify_video` (same frame count, size and frame rate), its ``K.txt`` copied byte for byte, so that frame
    k keeps label k. A video that comes out with another frame count than its labels is an error."""
    from maskpurify.fileio import atomic_write_bytes
    from maskpurify.formats.lpw import lpw_videos, read_annotations
    from maskpurify.formats.video import video_info

    src, out = Path(src), Path(out)
    videos = [v for v in lpw_videos(src) if v.with_suffix(".txt").is_file()]
    if not videos:
        raise UserError(f"--input {src}: no LPW videos (K.avi + K.txt) found")
    stats = LPWStats(0, 0, 0.0)
    for video in videos:
        relative = video.relative_to(src)
        labels_in, labels_out = video.with_suffix(".txt"), (out / relative).with_suffix(".txt")
        check_outputs({"--out": labels_out}, {"--input": labels_in}, overwrite=overwrite)
        labels = read_annotations(labels_in)
        done = purify_video(pipeline, video, out / relative, overwrite=overwrite, progress=progress, eye=eye)
        written = video_info(out / relative).frame_count
        if written != done.frames or done.frames != len(labels):
            raise UserError(f"{video}: {done.frames} frames read, {written} written, {len(labels)} labels; the "
                            "labels would no longer match their frames")
        atomic_write_bytes(labels_out, labels_in.read_bytes())
        stats.videos += 1
        stats.frames += done.frames
        stats.fps = done.fps
        stats.not_purified += done.not_purified
    return stats
