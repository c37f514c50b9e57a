"""Video I/O: streamed reading through OpenCV (never a whole video in memory) and atomic writing through PyAV
(FFmpeg), as H.264 that browsers play (MP4, MOV, MKV) or MPEG-4 Part 2 in AVI, the container always the one the
file name says.

OpenCV reports a failed decode and the end of a file the same way (``read()`` returns False), so a truncated
or corrupt video is detected by comparing the decoded frame count with the count the container declares.

FFmpeg's own messages (``[h264 @ 0x...] error while decoding MB``, ``moov atom not found``) are silenced: a
corrupt input is one line from us, not a screenful from the decoder. OpenCV reads ``OPENCV_FFMPEG_LOGLEVEL`` when
it first opens a video, so it is set (unless the user set it) when this module is imported; PyAV (the writer) logs
nothing unless asked (its default since PyAV 13).
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import cv2
import numpy as np

from maskpurify.errors import UserError
from maskpurify.fileio import MAX_IMAGE_PIXELS, apply_umask, fit_name

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")


class VideoInfo(NamedTuple):
    fps: float
    width: int
    height: int
    frame_count: int  # as declared by the container; 0 when it declares none


def _open(path: str | Path) -> cv2.VideoCapture:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such video file")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise UserError(f"{path}: unreadable video (OpenCV cannot open it; corrupt file or unsupported codec)")
    return capture


def video_info(path: str | Path) -> VideoInfo:
    """(fps, width, height, frame_count) of a video, without decoding it."""
    capture = _open(path)
    try:
        info = VideoInfo(float(capture.get(cv2.CAP_PROP_FPS)), int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                         int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                         max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))))
    finally:
        capture.release()
    if info.width <= 0 or info.height <= 0:
        raise UserError(f"{path}: unreadable video (no frame size in the file header)")
    _check_frame_pixels(path, info.width, info.height)
    return info


def _check_frame_pixels(path: str | Path, width: int, height: int) -> None:
    """The image pixel limit, applied to a video's frames from its header, before any frame is decoded."""
    if width * height > MAX_IMAGE_PIXELS:
        raise UserError(f"{path}: video frames too large ({width}x{height} pixels; limit {MAX_IMAGE_PIXELS} "
                        "pixels)")


def iter_frames(path: str | Path, every: int = 1, limit: int | None = None) -> Iterator[np.ndarray]:
    """Stream the frames of a video as HxWx3 uint8 RGB arrays, one at a time.

    every: yield frames 0, every, 2*every, ... (skipped frames are grabbed, not decoded). limit: stop after
    this many *source* frames. Raises UserError when the file cannot be opened or ends before the frame count
    its container declares (a truncated or corrupt video).
    """
    if every < 1:
        raise UserError(f"{path}: frame step must be >= 1, got {every}")
    capture = _open(path)
    try:
        _check_frame_pixels(path, int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                            int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        declared = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
        expected = declared if limit is None else min(declared, limit)  # 0: the container declares no count
        index = 0
        while limit is None or index < limit:
            if index % every == 0:
                ok, frame = capture.read()
            else:
                ok, frame = capture.grab(), None
            if not ok:
                break
            if frame is not None:
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        capture.release()
    if expected and index < expected:
        raise UserError(f"{path}: truncated or corrupt video: decoded {index} of {expected} frames")


def open_camera(index: int) -> tuple[float, Iterator[np.ndarray]]:
    """A camera (``cv2.VideoCapture(index)``, 0 the first webcam): its frame rate (30 when it reports none) and
    its frames as HxWx3 uint8 RGB arrays, as they come, until it stops delivering them."""
    quiet = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # its "can't open camera" warnings
    try:
        capture = cv2.VideoCapture(index)
    finally:
        cv2.utils.logging.setLogLevel(quiet)
    if not capture.isOpened():
        capture.release()
        raise UserError(f"--input {index}: no camera {index} (OpenCV cannot open it)")
    fps = float(capture.get(cv2.CAP_PROP_FPS))

    def frames() -> Iterator[np.ndarray]:
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        finally:
            capture.release()

    return (fps if fps > 0 else 30.0), frames()


#: The codec written for each container (H.264 in yuv420p is what every browser plays; AVI keeps MPEG-4 Part 2).
CODECS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".avi": "mpeg4"}
#: x264's presets, fastest first. ``veryfast`` (the default) writes 1280x720 at about 19 ms of one core per frame;
#: ``ultrafast`` at about 6 ms, in files about 6x as large (both at CRF 18).
H264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
CODEC_NAMES = {"libx264": "H.264", "mpeg4": "MPEG-4 Part 2"}


class VideoWriter:
    """Write RGB frames to a video that appears under its final name only when complete.

    The container follows the file's extension (:data:`CODECS`); frames go to a temporary file of the same
    extension beside ``path``; leaving the ``with`` block normally renames it over ``path``, an exception deletes
    it. ``size`` is (width, height); when None the first frame sets it. H.264 in yuv420p needs even sides: an
    odd-sized frame gets its last row or column repeated once (the video is then one pixel larger).
    """

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int] | None = None,
                 preset: str = "veryfast") -> None:
        if fps <= 0:
            raise UserError(f"{path}: video frame rate must be positive, got {fps}")
        self.path = Path(path)
        if self.path.suffix.lower() not in CODECS:
            raise UserError(f"{self.path}: a video file name must end in {', '.join(CODECS)}")
        if preset not in H264_PRESETS:
            raise UserError(f"{self.path}: unknown H.264 preset {preset!r} (choose from {', '.join(H264_PRESETS)})")
        self.fps = fps
        self.size = size
        self.preset = preset
        self.codec = CODECS[self.path.suffix.lower()]
        self._tmp: Path | None = None
        self._container: Any = None
        self._stream: Any = None
        self.frames_written = 0  # write() calls; the video may hold more frames (gaps filled)
        self._next_pts = 0
        self._time_base: Any = None

    @property
    def codec_name(self) -> str:
        """The codec in words (for the summary line)."""
        return CODEC_NAMES[self.codec]

    def __enter__(self) -> VideoWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        stem = fit_name(self.path.stem, 100)  # bytes, so the temporary name fits any file system's limit
        for stale in self.path.parent.glob(f".{glob.escape(stem)}.*.tmp{self.path.suffix.lower()}"):
            stale.unlink(missing_ok=True)  # left by a killed run into the same file
        fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".tmp{self.path.suffix.lower()}",
                                   dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        return self

    def _start(self, width: int, height: int) -> None:
        import av  # noqa: PLC0415

        from fractions import Fraction  # noqa: PLC0415

        assert self._tmp is not None, "VideoWriter must be used as a context manager"
        try:
            self._container = av.open(str(self._tmp), "w")
            rate = Fraction(self.fps).limit_denominator(1001)
            self._stream = self._container.add_stream(self.codec, rate=rate)
            self._time_base = 1 / rate  # frame numbers are the timestamps
        except (av.FFmpegError, ValueError) as exc:
            raise UserError(f"{self.path}: cannot write a {self.codec_name} video here ({exc})") from None
        self._stream.width, self._stream.height = width + width % 2, height + height % 2
        self._stream.pix_fmt = "yuv420p"
        if self.codec == "libx264":
            self._stream.options = {"crf": "18", "preset": self.preset}

    def write(self, frame: np.ndarray, index: int | None = None) -> None:
        """Append one HxWx3 uint8 RGB frame of the writer's size; ``index``: its frame number at the writer's fps,
        else the next one. Frame numbers skipped (a live recording's dropped frames) repeat this frame, so the video
        keeps the source's duration."""
        import av  # noqa: PLC0415

        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"video frames must be HxWx3 uint8 RGB, got {frame.shape} {frame.dtype}")
        height, width = frame.shape[:2]
        if self.size is None:
            self.size = (width, height)
        if (width, height) != tuple(self.size):
            raise ValueError(f"frame size {width}x{height} differs from the video size {self.size[0]}x{self.size[1]}")
        if self._stream is None:
            self._start(width, height)
        if width % 2 or height % 2:
            frame = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        # OpenCV's RGB -> YUV 4:2:0 (BT.601, limited range, as FFmpeg's default) is ~6x faster than FFmpeg's
        # swscale converting rgb24 inside the encoder, which cost HD video a third of its encoding time.
        yuv = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2YUV_I420)
        at = self._next_pts if index is None else max(index, self._next_pts)
        # A gap is filled by repeating the frame: a constant frame rate every reader (and frame count) agrees on
        for pts in range(self._next_pts, at + 1):
            picture = av.VideoFrame.from_numpy_buffer(yuv, format="yuv420p")  # no copy: the encoder copies
            picture.pts, picture.time_base = pts, self._time_base
            for packet in self._stream.encode(picture):
                self._container.mux(packet)
        self._next_pts = at + 1
        self.frames_written += 1

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._container is not None:
            try:
                if exc_type is None:
                    for packet in self._stream.encode():
                        self._container.mux(packet)
            finally:
                self._container.close()
        assert self._tmp is not None
        if exc_type is None and self.frames_written > 0:
            apply_umask(self._tmp)  # mkstemp made it 0600
            os.replace(self._tmp, self.path)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)
            if exc_type is None:
                raise UserError(f"{self.path}: no frames were written; refusing to create an empty video")
