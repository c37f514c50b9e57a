"""LPW (Labelled Pupils in the Wild): near-eye videos ``K.avi`` (about 95 FPS, 640x480) with ``K.txt`` holding
one annotated pupil centre "x y" per frame.

Frames are streamed (a participant's videos are gigabytes). The annotation count must equal the video's
frame count: a mismatch means the wrong .txt or a damaged video, so it is an error by default;
``on_mismatch="truncate"`` instead warns and keeps the first min(frames, annotations) frames.
LPW has no masks; the masker supplies them and :func:`pupil_agreement` checks them against the annotation.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from maskpurify.errors import UserError
from maskpurify.fileio import atomic_write_text, check_within
from maskpurify.formats.base import CropBox, Masker, Reader
from maskpurify.formats.video import VideoWriter, iter_frames, video_info
from maskpurify.masks import PUPIL, region_centroid
from maskpurify.pairs import RGBMaskPair

MISMATCH_POLICIES = ("error", "truncate")
#: Annotated pupil centres beyond this many pixels are malformed (LPW frames are 640x480).
MAX_COORDINATE = 1e5


def read_annotations(path: str | Path) -> np.ndarray:
    """(N, 2) float pupil centres (x, y) from an LPW .txt file; blank lines are ignored."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: missing LPW pupil annotation file")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            if len(parts) != 2:
                raise ValueError
            x, y = float(parts[0]), float(parts[1])
            if not (math.isfinite(x) and math.isfinite(y)) or max(abs(x), abs(y)) > MAX_COORDINATE:
                raise UserError(f"{path}:{number}: pupil centre {line.strip()!r} is not finite or lies beyond "
                                f"{MAX_COORDINATE:g} pixels")
            rows.append((x, y))
        except ValueError:
            raise UserError(f"{path}:{number}: expected a pupil centre 'x y', got {line.strip()!r}") from None
    return np.array(rows, dtype=np.float64).reshape(-1, 2)


def lpw_videos(root: Path) -> list[Path]:
    """The ``K.avi`` videos under ``root`` in LPW's order (folder, then number), each checked to lie, with its
    ``K.txt``, inside ``root`` (a link may not lead a reader or writer outside its dataset)."""
    videos = sorted(root.rglob("*.avi"), key=lambda p: (str(p.parent), int(p.stem) if p.stem.isdigit() else -1,
                                                        p.stem))
    for video in videos:
        check_within(root, video, f"{root}: LPW video", "video")
        check_within(root, video.with_suffix(".txt"), f"{root}: LPW annotation", "annotation file")
    return videos


def is_lpw_folder(path: Path) -> bool:
    """Whether a folder holds LPW's layout: at least one ``K.avi`` beside its ``K.txt``."""
    return path.is_dir() and any(video.with_suffix(".txt").is_file() for video in path.rglob("*.avi"))


def pupil_agreement(mask: np.ndarray, pupil_center: np.ndarray | tuple[float, float]) -> float:
    """Pixel distance between the mask's pupil centroid and the annotated centre (inf without pupil pixels)."""
    centroid = region_centroid(mask, PUPIL)
    if centroid is None:
        return math.inf
    return float(math.hypot(centroid[0] - float(pupil_center[0]), centroid[1] - float(pupil_center[1])))


class LPWReader(Reader):
    """LPW videos under ``root`` (the dataset root or one participant's folder), frame by frame.

    every: keep every k-th frame. output_size: (height, width) of the yielded frames, None for the original.
    crop_width: source-pixel width of a box centred on the annotated pupil (aspect of output_size); None
    resizes the whole frame. The pupil centre is mapped into the output frame.
    """

    def __init__(self, root: str | Path, every: int = 1, output_size: tuple[int, int] | None = None,
                 crop_width: float | None = None, on_mismatch: str = "error",
                 masker: Masker | None = None) -> None:
        super().__init__(masker)
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"{self.root}: not a folder of LPW videos")
        if every < 1:
            raise UserError(f"LPW frame step 'every' must be >= 1, got {every}")
        if on_mismatch not in MISMATCH_POLICIES:
            raise UserError(f"LPW on_mismatch '{on_mismatch}': choose from {', '.join(MISMATCH_POLICIES)}")
        if crop_width is not None and output_size is None:
            raise UserError("LPW crop_width needs an output_size (height, width) to crop to")
        self.videos = lpw_videos(self.root)
        if not self.videos:
            raise UserError(f"{self.root}: no LPW videos (K.avi + K.txt) found")
        self.every, self.output_size, self.crop_width, self.on_mismatch = every, output_size, crop_width, on_mismatch
        self._counts: dict[Path, int] = {}

    def _usable_frames(self, video: Path, annotations: np.ndarray) -> int:
        declared = video_info(video).frame_count
        if declared != len(annotations):
            problem = (f"{video}: {declared} video frames but {len(annotations)} pupil annotations in "
                       f"{video.with_suffix('.txt').name}")
            if self.on_mismatch == "error" or declared == 0:
                raise UserError(problem)
            warnings.warn(f"{problem}; using the first {min(declared, len(annotations))}", stacklevel=3)
        return min(declared, len(annotations))

    def __len__(self) -> int:
        """Frames that will be yielded; reads the annotation files and video headers (cheap)."""
        total = 0
        for video in self.videos:
            if video not in self._counts:
                self._counts[video] = self._usable_frames(video, read_annotations(video.with_suffix(".txt")))
            total += -(-self._counts[video] // self.every)
        return total

    def _box(self, center: np.ndarray, width: int, height: int) -> CropBox | None:
        if self.output_size is None:
            return None
        if self.crop_width is None:
            return CropBox(0, 0, width, height, *self.output_size)
        return CropBox.around((float(center[0]), float(center[1])), self.crop_width, self.output_size)

    def _pairs(self) -> Iterator[RGBMaskPair]:
        for video in self.videos:
            annotations = read_annotations(video.with_suffix(".txt"))
            count = self._usable_frames(video, annotations)
            prefix = str(video.relative_to(self.root).with_suffix(""))
            for position, frame in enumerate(iter_frames(video, every=self.every, limit=count)):
                index = position * self.every
                center = annotations[index]
                box = self._box(center, frame.shape[1], frame.shape[0])
                if box is not None:
                    frame, center = box.apply_image(frame), box.map_points(center)
                yield RGBMaskPair(image=frame, mask=None, name=f"{prefix}/{index:06d}", pupil_center=center,
                                  extra={"video": str(video), "frame": index})


def write_lpw_video(folder: str | Path, name: str, frames: np.ndarray, centres: np.ndarray, fps: float) -> Path:
    """Write ``folder/NAME.avi`` (RGB frames, MPEG-4 as LPW's) and ``folder/NAME.txt`` (one "x y" pupil centre per
    frame, in the frames' pixels), as LPW lays them out; returns the video's path. Both files appear whole or not
    at all (the annotations last, so a reader never finds labels without their video)."""
    if len(frames) != len(centres) or len(frames) == 0:
        raise UserError(f"{name}: {len(frames)} frames and {len(centres)} pupil centres; they must match and be >0")
    folder = Path(folder)
    video = folder / f"{name}.avi"
    with VideoWriter(video, fps) as writer:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame))
    text = "".join(f"{float(x):.2f} {float(y):.2f}\n" for x, y in centres)
    atomic_write_text(video.with_suffix(".txt"), text)
    return video
