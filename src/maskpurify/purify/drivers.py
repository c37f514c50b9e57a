"""The streaming drivers behind ``maskpurify purify``: folders, single images, rendered datasets and videos, all
through the one engine (:class:`~maskpurify.purify.engine.Purification`), plus the shard loop SimGAN's refiner
shares.

Every file read is checked (masks by :func:`maskpurify.masks.load_mask` against the purifier's label set, once),
every output is claimed before it is written and written atomically, and folders and datasets resume. An
automatic mask that is no plausible eye is never used (the engine's eye check): the image passes through
unchanged (folders skip it), with one line on stderr naming it and the reason.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from maskpurify.config import command_line
from maskpurify.errors import UserError
from maskpurify.fileio import IMAGE_SUFFIXES, OutputGuard, atomic_write_json, check_outputs, input_fingerprint, \
    read_image, save_image
from maskpurify.masks import CANONICAL_EYE, EYE_LABELS, LabelSet, colourise, load_mask, overlay
from maskpurify.purify import faces
from maskpurify.purify.engine import Purification, palette_for, resolve_device
from maskpurify.purify.output import OutputDir

MASK_SUFFIX = "_mask.png"
VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv")


@dataclass(frozen=True)
class MaskSource:
    """Where masks come from, parsed once from ``--masks``: ``default`` (``NAME_mask.png`` beside each image, else
    automatic; a rendered dataset's stored masks), ``auto`` (the segmenter, or FaceMesh for face photos), ``faces``
    (FaceMesh only) or ``path`` (a folder of ``NAME_mask.png``, or for one image a mask file)."""

    kind: Literal["default", "auto", "faces", "path"] = "default"
    path: Path | None = None

    @classmethod
    def parse(cls, text: str | None) -> MaskSource:
        """The value of ``--masks`` (None when not given)."""
        if text is None:
            return cls()
        if text in ("auto", "faces"):
            return cls(text)  # type: ignore[arg-type]
        return cls("path", Path(text))

    @property
    def automatic(self) -> bool:
        """Whether every mask is made here (no mask files are looked for)."""
        return self.kind in ("auto", "faces")

    def __str__(self) -> str:
        return str(self.path) if self.kind == "path" else self.kind


# ----------------------------------------------------------------------------------------------------------
# Folders of images.
# ----------------------------------------------------------------------------------------------------------

@dataclass
class NotPurified:
    """Images (or eyes of a face photo) left as they were because their automatic mask shows no plausible eye.

    Each gets one line on stderr naming it and the reason (the first ``limit``; after that only the count, which
    the summary reports), so a closed eye or a blank frame is said, not silently painted over.
    """

    limit: int = 20
    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, reason: str, action: str) -> None:
        self.items.append((name, reason))
        if len(self.items) <= self.limit:
            print(f"{name}: not purified, no plausible eye in the automatic mask: {reason}; {action}",
                  file=sys.stderr)
        elif len(self.items) == self.limit + 1:
            print(f"... more images not purified; only the count follows (in the summary)", file=sys.stderr)

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class FolderStats:
    purified: int = 0
    skipped: int = 0
    faces: int = 0
    automatic: int = 0
    #: Images not written because their automatic mask is no plausible eye (a face photo: none of its eyes).
    not_purified: int = 0


def list_images(root: Path, recursive: bool) -> list[Path]:
    candidates = root.rglob("*") if recursive else root.glob("*")
    files = sorted(p for p in candidates if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not p.name.endswith(MASK_SUFFIX) and not p.name.startswith(".")
                   and not any(part.startswith(".") for part in p.relative_to(root).parts[:-1]))
    if not files:
        raise UserError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    return files


def _mask_file(candidate: Path) -> Path | None:
    """``candidate`` when it is a mask file, None when nothing is there; a folder (or anything else that is not a
    file) under a mask's name is refused rather than silently replaced by an automatic mask."""
    if candidate.is_file():
        return candidate
    if os.path.lexists(candidate):
        what = "a folder" if candidate.is_dir() else "not a regular file (a broken link?)"
        raise UserError(f"{candidate}: is {what}, not a mask file; remove or rename it, or give --masks")
    return None


def find_mask(image_path: Path, rel: Path, masks_dir: Path | None) -> Path | None:
    """``NAME_mask.png`` under ``masks_dir`` (same relative path) or beside the image; None when there is none.
    A folder under that name is a UserError."""
    if masks_dir is not None:
        return _mask_file(masks_dir / rel.with_name(rel.stem + MASK_SUFFIX))
    return _mask_file(image_path.with_name(image_path.stem + MASK_SUFFIX))


def _fingerprint(image_path: Path, mask_path: Path | None) -> dict[str, Any]:
    """What a folder output is made from: the image's and its mask file's size and sha256."""
    return {"image": input_fingerprint(image_path),
            "mask": input_fingerprint(mask_path) if mask_path is not None else None}


def purify_folder(engine: Purification, src: Path, out: Path, masks: MaskSource = MaskSource(), recursive: bool = False,
                  overwrite: bool = False, resume: bool = True, save_masks: bool = False,
                  face_crop_size: tuple[int, int] | None = None, progress: bool = True,
                  settings: dict[str, Any] | None = None, eye: str = CANONICAL_EYE) -> FolderStats:
    """Purify every image under ``src`` into ``out`` (same relative paths and names).

    masks: default -> ``NAME_mask.png`` beside each image when present, else automatic; a folder -> masks from
    there (same relative path), else automatic; auto -> always automatic; faces -> always the face path.
    Automatic masks: FaceMesh when mediapipe is installed and finds a face, else the segmenter. eye: which eye
    the crops show (``right`` crops are mirrored for the networks and back); face photos find each eye's side.

    Every output (and saved mask) is claimed through one :class:`~maskpurify.fileio.OutputGuard` before anything
    is written: never an input, never two outputs on one file, never outside ``out``. A resumed run redoes an
    image whose content (or mask file) changed since it was purified.
    """
    from tqdm import tqdm

    src, out = Path(src), Path(out)
    if out.resolve() == src.resolve() or (recursive and src.resolve() in out.resolve().parents):
        raise UserError(f"--out {out}: must not be the input folder{' or inside it' if recursive else ''}")
    masks_dir = masks.path
    if masks_dir is not None:
        if not masks_dir.is_dir():
            raise UserError(f"--masks {masks}: not a folder (use --masks auto or a folder of NAME_mask.png)")
    files = list_images(src, recursive)
    guard = OutputGuard(out, inputs=[src] + ([masks_dir] if masks_dir is not None else []), overwrite=True)
    guard.claim(out, "--out", folder=True)
    plan: list[tuple[Path, Path, Path, Path | None]] = []
    for path in files:
        rel = path.relative_to(src)
        dest = out / rel
        mask_path = None if masks.automatic else find_mask(path, rel, masks_dir)
        guard.claim(dest, "output", inputs=(path, mask_path))
        if save_masks:
            guard.claim(dest.with_name(dest.stem + MASK_SUFFIX), "saved mask", inputs=(path, mask_path))
        plan.append((path, rel, dest, mask_path))
    run_settings = dict(settings or {})
    masks_setting = str(masks_dir.resolve()) if masks_dir else (None if masks.kind == "default" else masks.kind)
    run_settings.update({"input": str(src.resolve()), "masks": masks_setting,
                         "recursive": recursive})
    target = OutputDir(out, run_settings, overwrite=overwrite, resume=resume)
    stats = FolderStats()
    notes = NotPurified()
    batch: list[tuple[str, Path, np.ndarray, np.ndarray | None, dict[str, Any]]] = []

    def write(dest: Path, image: np.ndarray, mask: np.ndarray, overlay_image: np.ndarray | None,
              inputs: tuple[Path, ...] = ()) -> None:
        target.begin()
        target.clean(dest.parent)
        if overlay_image is not None:
            guard.claim(dest.with_name(dest.stem + "_overlay.png"), "overlay", inputs=inputs)
        _write_result(dest, image, mask, save_masks, engine.labels, overlay_image)

    def flush() -> None:
        if not batch:
            return
        names = [b[0] for b in batch]
        have = [b[3] for b in batch]
        done = engine.purify_batch(np.stack([b[2] for b in batch]), have, names, eye)
        stats.automatic += sum(m is None for m in have)
        keep = []
        for i, problem in enumerate(done.problems):
            if problem is None:
                keep.append(i)
            else:
                notes.add(names[i], problem, "skipped")
        stats.not_purified += len(batch) - len(keep)
        if keep:
            for i in keep:
                key, dest, source = batch[i][0], batch[i][1], batch[i][4]
                write(dest, done.images[i], done.masks[i], None)
                target.mark(key, dest, source)
            target.save()
        stats.purified += len(keep)
        batch.clear()

    finder = None
    bar = tqdm(plan, unit="img", desc="purify", disable=not progress, leave=False)
    for path, rel, dest, mask_path in bar:
        key = rel.as_posix()
        source = _fingerprint(path, mask_path)
        if not overwrite and target.is_done(key, dest, source):
            stats.skipped += 1
            continue
        image = read_image(path)
        mask = load_mask(mask_path, image.shape, engine.labels) if mask_path is not None else None
        if mask is None and _use_faces(image, masks, engine):
            if finder is None:
                finder = faces.FaceFinder(static=True)
            result = faces.purify_face_photo(engine, image, crop_size=face_crop_size, name=key,
                                             required=masks.kind == "faces", finder=finder)
            if result is not None and len(result.skipped) == len(result.eyes):
                for eye_name, problem in result.skipped:
                    notes.add(eye_name, problem, "skipped")
                stats.not_purified += 1
                continue
            if result is not None:
                for eye_name, problem in result.skipped:
                    notes.add(eye_name, problem, "left as it was")
                flush()
                write(dest, result.image, result.mask, result.overlay() if save_masks else None, (path,))
                target.mark(key, dest, source)
                target.save()
                stats.purified += 1
                stats.faces += 1
                continue
        if batch and (batch[0][2].shape != image.shape or len(batch) >= engine.batch_size):
            flush()
        batch.append((key, dest, image, mask, source))
    flush()
    bar.close()
    if finder is not None:
        finder.close()
    target.save(complete=True)
    return stats


def _use_faces(image: np.ndarray, masks: MaskSource, engine: Purification) -> bool:
    """Whether to try the FaceMesh path for an image without a mask file."""
    if masks.kind == "faces":
        return True
    if not faces.mediapipe_available():
        return False
    if engine.labels is not EYE_LABELS:
        return False
    # FaceMesh cannot find a face in a close-up eye crop; do not spend time on tiny images.
    return min(image.shape[:2]) >= faces.MIN_FACE_IMAGE_SIDE


def _write_result(dest: Path, purified: np.ndarray, mask: np.ndarray, save_masks: bool, labels: LabelSet,
                  overlay_image: np.ndarray | None) -> None:
    save_image(dest, purified)
    if save_masks:
        save_image(dest.with_name(dest.stem + MASK_SUFFIX), mask)
        if overlay_image is not None:
            save_image(dest.with_name(dest.stem + "_overlay.png"), overlay_image)


# ----------------------------------------------------------------------------------------------------------
# Single images.
# ----------------------------------------------------------------------------------------------------------

@dataclass
class ImageResult:
    image: np.ndarray
    mask: np.ndarray
    method: str  # "mask file", "segmenter" or "faces"
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    #: (image or eye name, reason) for what was left unpurified: its automatic mask is no plausible eye.
    not_purified: list[tuple[str, str]] = field(default_factory=list)

    @property
    def purified(self) -> bool:
        """Whether anything was purified (False: the output is the input, unchanged)."""
        return not self.not_purified or (self.method == "faces" and len(self.not_purified) < len(self.boxes))


def _output_file(out: str | Path, kind: str, suffixes: Sequence[str]) -> Path:
    """Check that ``--out`` for a single-file input has the right kind of name (the rest of the output checks are
    :class:`~maskpurify.fileio.OutputGuard`'s)."""
    out = Path(out)
    article = "an" if kind[0] in "aeiou" else "a"
    if out.suffix.lower() not in suffixes:
        raise UserError(f"--out {out}: {article} {kind} input needs {article} {kind} file name ({', '.join(suffixes)})")
    return out


def _image_mask_path(src: Path, masks: MaskSource) -> Path | None:
    """The mask file for one image: ``--masks FILE``, ``--masks DIR/NAME_mask.png`` or ``NAME_mask.png`` beside
    the image; None for an automatic mask. A folder under the mask's name is a UserError, never a silent
    fallback to an automatic mask."""
    if masks.automatic:
        return None
    if masks.path is None:
        return _mask_file(src.with_name(src.stem + MASK_SUFFIX))
    candidate = masks.path
    if candidate.is_dir():
        return _mask_file(candidate / (src.stem + MASK_SUFFIX))
    if candidate.is_file():
        return candidate
    raise UserError(f"--masks {masks}: no such mask file or folder")


def purify_image_file(engine: Purification, src: Path, out: Path, masks: MaskSource = MaskSource(),
                      overwrite: bool = False,
                      save_masks: bool = False, face_crop_size: tuple[int, int] | None = None,
                      eye: str = CANONICAL_EYE) -> ImageResult:
    """Purify one image file into ``out`` (a file; its suffix picks the format). eye: which eye an eye crop
    shows (``right`` is mirrored for the networks and back); a face photo finds each eye's side itself.

    Every output (the image, and with ``save_masks`` the mask and overlay) is claimed through one
    :class:`~maskpurify.fileio.OutputGuard` before anything is read or written: never the input image or its
    mask, never two outputs on one file, never an existing file without ``overwrite``.

    An automatic mask that is no plausible eye (``engine.mask_problems``) is not used: the image (or that eye of
    a face photo) is written unchanged, one line on stderr says why, and ``result.not_purified`` lists it."""
    src, out = Path(src), _output_file(out, "image", IMAGE_SUFFIXES)
    mask_out = out.with_name(out.stem + MASK_SUFFIX)
    overlay_out = out.with_name(out.stem + "_overlay.png")
    mask_path = _image_mask_path(src, masks)
    guard = OutputGuard(inputs=[src, *([masks.path] if masks.path is not None else []),
                                *([mask_path] if mask_path is not None else [])], overwrite=overwrite)
    guard.claim(out, "--out")
    if save_masks:
        guard.claim(mask_out, "saved mask")
        guard.claim(overlay_out, "overlay")
    image = read_image(src)
    result: ImageResult | None = None
    if mask_path is not None:
        mask = load_mask(mask_path, image.shape, engine.labels)
        done = engine.purify_batch(image[None], [mask], [str(src)], eye)
        result = ImageResult(done.images[0], mask, "mask file")
    elif _use_faces(image, masks, engine):
        face = faces.purify_face_photo(engine, image, crop_size=face_crop_size, name=str(src),
                                       required=masks.kind == "faces")
        if face is not None:
            result = ImageResult(face.image, face.mask, "faces", [e.box for e in face.eyes], list(face.skipped))
            if save_masks:
                save_image(overlay_out, face.overlay())
    if result is None:
        done = engine.purify_batch(image[None], None, [str(src)], eye)
        problem = done.problems[0]
        result = ImageResult(done.images[0], done.masks[0], "segmenter",
                             not_purified=[] if problem is None else [(str(src), problem)])
    notes = NotPurified()
    unchanged = "written unchanged" if not result.purified else "left as it was"
    for name, problem in result.not_purified:
        notes.add(name, problem, unchanged)
    save_image(out, result.image)
    if save_masks:
        save_image(mask_out, result.mask)
        if result.method != "faces":
            save_image(overlay_out, overlay(image, result.mask, palette=palette_for(engine.labels)))
    return result


# ----------------------------------------------------------------------------------------------------------
# Rendered datasets (meta.json + shard-*.npz).
# ----------------------------------------------------------------------------------------------------------

def is_dataset(path: Path) -> bool:
    return (path / "meta.json").is_file() and any(path.glob("shard-*.npz"))


@dataclass
class DatasetStats:
    #: Samples processed in this call (resumed shards are not counted).
    samples: int = 0
    #: Of those, the samples kept unchanged because their automatic mask is no plausible eye (the whole output's
    #: count is in meta.json, ``purified.not_purified``).
    not_purified: int = 0


def map_shards(src: Path, out: Path, settings: dict[str, Any], transform: Callable[[str, dict[str, np.ndarray]],
               dict[str, np.ndarray]], out_meta: Callable[[], dict[str, Any]], overwrite: bool = False,
               resume: bool = True, progress: bool = True) -> int:
    """The one shard-by-shard loop over a rendered dataset: each shard of ``src`` through ``transform(name,
    arrays)`` into ``out`` in the same format (readable by EyeDataset); returns the samples done in this call.

    Every shard is checked by :func:`maskpurify.world.dataset.shard_batch` (and against the first shard's
    types and shapes) before anything is written, so a bad input is one line and leaves no output. Memory holds
    one shard at a time. ``out`` is an :class:`~maskpurify.purify.output.OutputDir` for ``settings`` (which name
    the input): an
    interrupted run resumes at the first missing shard (a shard whose input changed since is done again);
    meta.json (``out_meta()`` plus ``complete`` and the command) is written only at the end.
    """
    from tqdm import tqdm

    from maskpurify.world.dataset import SHARD_KEYS, load_shard_checked, read_meta, save_npz_deterministic, \
        shard_name

    if out.resolve() == src.resolve():
        raise UserError(f"--out {out}: must differ from the input dataset")
    OutputGuard(inputs=[src]).claim(out, "--out", folder=True)
    meta = read_meta(src)
    num_shards = int(meta["num_shards"])

    def load(index: int) -> dict[str, np.ndarray]:
        if not (src / shard_name(index)).is_file():
            raise UserError(f"{src / shard_name(index)}: missing shard")
        return load_shard_checked(src, index)

    first: dict[str, tuple[Any, ...]] = {}
    for index in range(num_shards):  # check them all first; one shard in memory at a time
        arrays = load(index)
        kinds = {key: (arrays[key].dtype, arrays[key].shape[1:]) for key in SHARD_KEYS}
        if index and kinds != first:
            raise UserError(f"{src / shard_name(index)}: arrays differ in type or shape from {shard_name(0)}")
        first = first or kinds
        del arrays
    target = OutputDir(out, settings, overwrite=overwrite, resume=resume)
    count = 0
    bar = tqdm(total=int(meta["n"]), unit="img", desc="purify", disable=not progress, leave=False)
    for index in range(num_shards):
        name = shard_name(index)
        dest = out / name
        source = input_fingerprint(src / name)
        if not overwrite and target.is_done(name, dest, source):
            bar.update(min(int(meta["shard_size"]), int(meta["n"]) - index * int(meta["shard_size"])))
            continue
        shard = transform(name, load(index))
        target.begin()
        save_npz_deterministic(dest, shard)
        target.mark(name, dest, source)
        target.save()
        count += len(shard["images"])
        bar.update(len(shard["images"]))
        del shard
    bar.close()
    atomic_write_json(out / "meta.json", {**out_meta(), "complete": True, "command": command_line()})
    target.save(complete=True)
    return count


def purify_dataset(engine: Purification, src: Path, out: Path, overwrite: bool = False, resume: bool = True,
                   progress: bool = True, settings: dict[str, Any] | None = None, masks: MaskSource = MaskSource(),
                   eye: str = CANONICAL_EYE) -> DatasetStats:
    """Purify a rendered dataset shard by shard (:func:`map_shards`) into ``out`` in the same format.

    masks: default -> the dataset's stored masks (the renderer's exact masks: an oracle); auto -> the
    segmenter's masks, as a user with real images would have (the stored masks are ignored for purification
    and copied unchanged as labels; the masks used are stored under ``auto_masks``, and ``not_purified`` marks
    the samples whose automatic mask is no plausible eye: those keep their input image, one line each on stderr).
    Every key but ``images`` is copied unchanged; meta.json records the source.
    """
    from maskpurify.world.dataset import read_meta

    src, out = Path(src), Path(out)
    if masks.kind not in ("default", "auto"):
        raise UserError(f"--masks {masks}: a rendered dataset carries its own masks; omit --masks to use them or "
                        "give --masks auto for the segmenter's")
    auto = masks.kind == "auto"
    if auto and engine.segmenter is None:
        raise UserError(f"--masks auto: no segmenter for {src}; give --segmenter CKPT")
    run_settings = dict(settings or {})
    run_settings.update({"input": str(src.resolve()), "kind": "dataset"})
    if auto:  # only when not the default, so runs started before --masks auto existed still resume
        run_settings["masks"] = "auto"
    notes = NotPurified()

    def purify_shard(name: str, shard: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        images = shard["images"]
        purified = np.empty_like(images)
        used = np.empty(images.shape[:3], np.uint8)
        left = np.zeros(len(images), bool)
        for start in range(0, len(images), engine.batch_size):
            stop = min(len(images), start + engine.batch_size)
            names = [f"{name}[{i}]" for i in range(start, stop)]
            given = None if auto else [engine.check_mask(shard["masks"][i], images.shape[1:3], f"mask of {names[j]}")
                                       for j, i in enumerate(range(start, stop))]
            done = engine.purify_batch(images[start:stop], given, names, eye)
            for j, problem in enumerate(done.problems):
                if problem is not None:
                    notes.add(names[j], problem, "kept unchanged")
                    left[start + j] = True
            purified[start:stop] = done.images
            used[start:stop] = done.masks
        shard["images"] = purified
        if auto:
            shard["auto_masks"] = used
            shard["not_purified"] = left
        return shard

    def out_meta() -> dict[str, Any]:
        meta = read_meta(src)
        result = {k: v for k, v in meta.items() if k not in ("complete", "command")}
        result.update({"unityeyes": False, "purified": {
            "source": str(src.resolve()), "source_domain": meta.get("domain"),
            "masks": "auto" if auto else "stored", "eye": eye, **(settings or {}),
            "not_purified": _count_not_purified(out, int(meta["num_shards"])) if auto else 0}})
        return result

    count = map_shards(src, out, run_settings, purify_shard, out_meta, overwrite, resume, progress)
    return DatasetStats(count, len(notes))


def _count_not_purified(out: Path, num_shards: int) -> int:
    """Samples of a purified dataset kept unchanged, over all its shards (resumed ones included)."""
    from maskpurify.world.dataset import shard_name

    total = 0
    for index in range(num_shards):
        with np.load(out / shard_name(index), allow_pickle=False) as shard:
            if "not_purified" in shard.files:
                total += int(shard["not_purified"].sum())
    return total


def refine_dataset(refiner: str | Path, src: Path, out: Path, batch_size: int = 256, device: str | None = None,
                   overwrite: bool = False, resume: bool = True, progress: bool = False) -> Path:
    """Write a copy of the eye dataset ``src`` into ``out`` with every image refined by the mask-free SimGAN
    refiner checkpoint ``refiner`` (labels, masks and landmarks unchanged; ``meta.json`` gains ``refined_by``),
    through :func:`map_shards` (so it resumes), so ``maskpurify evaluate-gaze`` reads it like any dataset."""
    from maskpurify.checkpoints import checkpoint_paths
    from maskpurify.fileio import read_json
    from maskpurify.nets.purifier import load_purifier
    from maskpurify.world.dataset import read_meta

    src, out = Path(src), Path(out)
    read_meta(src)  # a bad dataset is refused before the refiner is loaded
    dev = resolve_device(device or "auto")
    engine = Purification(load_purifier(refiner, dev), None, dev, batch_size, check_eyes=False)
    sidecar = checkpoint_paths(refiner)[1]
    direction = (read_json(sidecar) if sidecar.is_file() else {}).get("direction")

    def refine_shard(name: str, shard: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        shard["images"] = engine.purify_arrays(shard["images"])
        return shard

    def out_meta() -> dict[str, Any]:
        meta = {k: v for k, v in read_meta(src).items() if k not in ("complete", "command")}
        return {**meta, "unityeyes": False, "refined_by": {"refiner": str(refiner), "direction": direction,
                                                           "source": str(src)}}

    settings = {"input": str(src.resolve()), "kind": "refined dataset", "refiner": str(Path(refiner).resolve())}
    map_shards(src, out, settings, refine_shard, out_meta, overwrite, resume, progress)
    return out


# ----------------------------------------------------------------------------------------------------------
# Videos.
# ----------------------------------------------------------------------------------------------------------

@dataclass
class VideoStats:
    frames: int
    fps: float
    width: int
    height: int
    #: Frames written unchanged because their automatic mask is no plausible eye (face videos: no eye purified).
    not_purified: int = 0


def _chunks(frames: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    chunk: list[np.ndarray] = []
    for frame in frames:
        chunk.append(frame)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def purify_video(engine: Purification, src: Path, out: Path, mask_video: Path | None = None,
                 overwrite: bool = False, masks: MaskSource = MaskSource(),
                 face_crop_size: tuple[int, int] | None = None, progress: bool = True,
                 on_frames: Callable[[int], None] | None = None, eye: str = CANONICAL_EYE) -> VideoStats:
    """Stream a video through the purifier: same fps, size and frame count; masks automatic per frame.

    Frames are read, purified and written ``engine.batch_size`` at a time, so memory does not grow with the
    video's length. mask_video: also write the colourised masks as a second video. masks faces: per-frame
    FaceMesh (face videos); otherwise the segmenter. on_frames(n): called after each batch with the number
    of frames done (progress hooks, memory probes). eye: which eye an eye video shows (``right`` frames are
    mirrored for the networks and back).
    """
    from tqdm import tqdm

    from maskpurify.formats.video import VideoWriter, iter_frames, video_info

    src, out = Path(src), _output_file(out, "video", VIDEO_SUFFIXES)
    if mask_video is not None:
        mask_video = Path(mask_video)
        if mask_video.suffix.lower() not in VIDEO_SUFFIXES:
            raise UserError(f"--mask-video {mask_video}: needs a video file name ({', '.join(VIDEO_SUFFIXES)})")
    # One check for both outputs, before any writer opens: neither may be the input or the other output.
    check_outputs({"--out": out, "--mask-video": mask_video}, {"--input": src}, overwrite=overwrite)
    if masks.kind == "path":
        raise UserError(f"--masks {masks}: a video takes automatic masks only (--masks auto or --masks faces)")
    if masks.kind != "faces" and engine.segmenter is None:
        raise UserError(f"no mask for {src} and no segmenter; give --segmenter (videos use automatic masks)")
    info = video_info(src)
    fps = info.fps if info.fps > 0 else 30.0
    palette = palette_for(engine.labels)
    frames_done = 0
    notes = NotPurified()
    left_frames = 0
    bar = tqdm(total=info.frame_count or None, unit="frame", desc="purify", disable=not progress, leave=False)
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(VideoWriter(out, fps, (info.width, info.height)))
        mwriter = stack.enter_context(VideoWriter(mask_video, fps, (info.width, info.height))) if mask_video else None
        finder = None
        for chunk in _chunks(iter_frames(src), engine.batch_size):
            frames = np.stack(chunk)
            del chunk
            if masks.kind == "faces":
                if finder is None:
                    finder = stack.enter_context(faces.FaceFinder(static=False))
                results = [faces.purify_face_photo(engine, f, crop_size=face_crop_size,
                                                   name=f"{src} frame {frames_done + i}", finder=finder)
                           for i, f in enumerate(frames)]
                for r in results:
                    if r is not None and r.skipped:
                        for eye_name, problem in r.skipped:
                            notes.add(eye_name, problem, "left as it was")
                        left_frames += len(r.skipped) == len(r.eyes)
                purified = [r.image if r is not None else f for r, f in zip(results, frames)]
                mask_arr = [r.mask if r is not None else np.zeros(f.shape[:2], np.uint8)
                            for r, f in zip(results, frames)]
            else:
                names = [f"{src} frame {frames_done + i}" for i in range(len(frames))]
                done = engine.purify_batch(frames, None, names, eye)
                purified, mask_arr = done.images, done.masks
                for i, problem in enumerate(done.problems):
                    if problem is not None:
                        notes.add(names[i], problem, "written unchanged")
                        left_frames += 1
            for i in range(len(frames)):
                writer.write(purified[i])
                if mwriter is not None:
                    mwriter.write(colourise(mask_arr[i], palette))
            frames_done += len(frames)
            bar.update(len(frames))
            if on_frames is not None:
                on_frames(frames_done)
    bar.close()
    return VideoStats(frames_done, fps, info.width, info.height, left_frames)
