"""The thin drivers behind ``maskpurify purify``: folders, single images and rendered datasets (videos and cameras:
:mod:`maskpurify.purification.video`). Each reads
its input, hands images to the one pipeline (:class:`~maskpurify.purification.pipeline.Pipeline`) and writes what comes
back; the shard loop is shared with SimGAN's refiner.

Every file read is checked (masks by :func:`maskpurify.masks.load_mask` against the purifier's label set, once),
every output is claimed before it is written and written atomically, and folders and datasets resume. An eye
whose automatic mask is no plausible eye is never purified (the pipeline's eye check): the image passes through
unchanged (folders skip it), with one line on stderr naming it and the reason.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maskpurify.config import command_line
from maskpurify.errors import UserError
from maskpurify.fileio import IMAGE_SUFFIXES, MAX_IMAGE_PIXELS, OutputGuard, atomic_write_json, \
    copy_file_atomic, image_format, input_fingerprint, read_image, save_image, suffix_format
from maskpurify.formats.folder import mask_file_for
from maskpurify.masks import load_mask, overlay
from maskpurify.purification.engine import Purification, palette_for, resolve_device
from maskpurify.purification.inputs import MASK_SUFFIX, MaskSource, list_images, single_image_mask
from maskpurify.purification.output import OutputDir
from maskpurify.purification.pipeline import Pipeline, Result

__all__ = ["MaskSource", "NotPurified", "FolderStats", "purify_folder", "purify_image_file", "map_shards",
           "purify_dataset", "refine_dataset", "report_passed_through", "output_file"]


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
    #: Images not written because no eye in them was purified (an automatic mask that is no plausible eye).
    not_purified: int = 0


def report_passed_through(notes: NotPurified, result: Result, whole: str, part: str = "left as it was") -> None:
    """One line per eye left as it was: ``whole`` when nothing of the image was purified, else ``part``."""
    action = part if result.purified else whole
    for name, reason in result.passed_through:
        notes.add(name, reason, action)


def _fingerprint(image_path: Path, mask_path: Path | None) -> dict[str, Any]:
    """What a folder output is made from: the image's and its mask file's size and sha256."""
    return {"image": input_fingerprint(image_path),
            "mask": input_fingerprint(mask_path) if mask_path is not None else None}


def purify_folder(pipeline: Pipeline, src: Path, out: Path, masks: MaskSource = MaskSource(), recursive: bool = False,
                  overwrite: bool = False, resume: bool = True, save_masks: bool = False, progress: bool = True,
                  settings: dict[str, Any] | None = None, eye: str = "auto") -> FolderStats:
    """Purify every image under ``src`` into ``out`` (same relative paths and names).

    masks: default -> ``NAME_mask.png`` beside each image when present, else automatic; a folder -> masks from
    there (same relative path), else automatic; auto -> always automatic; faces -> always the face path.
    Images without a mask file go through the pipeline's automatic masks (FaceMesh for face photos, else the
    segmenter). eye: which eye the crops show (``right`` crops are mirrored for the networks and back).

    Every output (and saved mask) is claimed through one :class:`~maskpurify.fileio.OutputGuard` before anything
    is written: never an input, never two outputs on one file, never outside ``out``. A resumed run redoes an
    image whose content (or mask file) changed since it was purified. With ``recursive``, an output folder inside
    the input is never read as input.
    """
    from tqdm import tqdm

    src, out = Path(src), Path(out)
    if out.resolve() == src.resolve():
        raise UserError(f"--out {out}: must not be the input folder")
    masks_dir = masks.path
    if masks_dir is not None and not masks_dir.is_dir():
        raise UserError(f"--masks {masks}: not a folder (use --masks auto or a folder of NAME_mask.png)")
    files = list_images(src, recursive, skip=out)
    guard = OutputGuard(out, inputs=[src] + ([masks_dir] if masks_dir is not None else []), overwrite=True)
    guard.claim(out, "--out", folder=True)
    plan: list[tuple[Path, Path, Path, Path | None]] = []
    for path in files:
        rel = path.relative_to(src)
        dest = out / rel
        mask_path = None if masks.automatic else mask_file_for(path, rel, masks_dir)
        guard.claim(dest, "output", inputs=(path, mask_path))
        if save_masks:
            guard.claim(dest.with_name(dest.stem + MASK_SUFFIX), "saved mask", inputs=(path, mask_path))
            guard.claim(dest.with_name(dest.stem + "_overlay.png"), "overlay", inputs=(path, mask_path))
        plan.append((path, rel, dest, mask_path))
    run_settings = dict(settings or {})
    masks_setting = str(masks_dir.resolve()) if masks_dir else (None if masks.kind == "default" else masks.kind)
    run_settings.update({"input": str(src.resolve()), "masks": masks_setting, "recursive": recursive})
    target = OutputDir(out, run_settings, overwrite=overwrite, resume=resume)
    stats = FolderStats()
    notes = NotPurified()
    batch: list[tuple[str, Path, np.ndarray, np.ndarray | None, dict[str, Any]]] = []
    labels = pipeline.engine.labels

    def flush() -> None:
        if not batch:
            return
        results = pipeline.run([b[2] for b in batch], [b[3] for b in batch], [b[0] for b in batch], eye)
        wrote = False
        for (key, dest, image, given, source), result in zip(batch, results):
            stats.automatic += given is None and result.method != "faces"
            report_passed_through(notes, result, "skipped")
            if not result.purified:
                stats.not_purified += 1
                continue
            target.begin()
            target.clean(dest.parent)
            save_image(dest, result.image)
            if save_masks:
                save_image(dest.with_name(dest.stem + MASK_SUFFIX), result.mask)
                save_image(dest.with_name(dest.stem + "_overlay.png"), _overlay(image, result, labels))
            target.mark(key, dest, source)
            wrote = True
            stats.purified += 1
            stats.faces += result.method == "faces"
        if wrote:
            target.save()
        batch.clear()

    bar = tqdm(plan, unit="img", desc="purify", disable=not progress, leave=False)
    try:
        for path, rel, dest, mask_path in bar:
            key = rel.as_posix()
            source = _fingerprint(path, mask_path)
            if not overwrite and target.is_done(key, dest, source):
                stats.skipped += 1
                continue
            image = read_image(path)
            mask = load_mask(mask_path, image.shape, labels) if mask_path is not None else None
            batch.append((key, dest, image, mask, source))
            # Memory holds one batch: at most batch_size images and, for large ones, MAX_IMAGE_PIXELS in all.
            if len(batch) >= pipeline.engine.batch_size or \
                    sum(b[2].shape[0] * b[2].shape[1] for b in batch) >= MAX_IMAGE_PIXELS:
                flush()
        flush()
        target.save(complete=True)
    finally:
        bar.close()
        target.close()  # a failed run lets go of the folder too (a library caller may try again)
    return stats


def _overlay(image: np.ndarray, result: Result, labels: Any) -> np.ndarray:
    """The input with the mask used blended in and, for a face photo, the eye boxes outlined."""
    import cv2

    picture = overlay(image, result.mask, palette=palette_for(labels)).copy()
    if result.method == "faces":
        for eye in result.eyes:
            x0, y0, w, h = eye.box
            cv2.rectangle(picture, (x0, y0), (x0 + w - 1, y0 + h - 1), (255, 220, 0), 1)
    return picture


# ----------------------------------------------------------------------------------------------------------
# Single images.
# ----------------------------------------------------------------------------------------------------------

def output_file(out: str | Path, kind: str, suffixes: Sequence[str]) -> Path:
    """Check that ``--out`` for a single-file input has the right kind of name (the rest of the output checks are
    :class:`~maskpurify.fileio.OutputGuard`'s)."""
    out = Path(out)
    article = "an" if kind[0] in "aeiou" else "a"
    if out.suffix.lower() not in suffixes:
        raise UserError(f"--out {out}: {article} {kind} input needs {article} {kind} file name ({', '.join(suffixes)})")
    return out


def purify_image_file(pipeline: Pipeline, src: Path, out: Path, masks: MaskSource = MaskSource(),
                      overwrite: bool = False, save_masks: bool = False, eye: str = "auto") -> Result:
    """Purify one image file into ``out`` (a file; its suffix picks the format).

    Every output (the image, and with ``save_masks`` the mask and overlay) is claimed through one
    :class:`~maskpurify.fileio.OutputGuard` before anything is read or written: never the input image or its
    mask, never two outputs on one file, never an existing file without ``overwrite``. An eye whose automatic
    mask is no plausible eye is left as it was, with one line on stderr saying why: when nothing was purified and
    ``out`` names the input's own format (the format PIL finds in the file, not its suffix), ``out`` is a byte-
    identical copy of the input (its EXIF included); otherwise the line says it was re-encoded.

    Outputs are written upright (an EXIF orientation of the input is applied when reading) and without EXIF."""
    src, out = Path(src), output_file(out, "image", IMAGE_SUFFIXES)
    mask_out = out.with_name(out.stem + MASK_SUFFIX)
    overlay_out = out.with_name(out.stem + "_overlay.png")
    mask_path = single_image_mask(src, masks)
    guard = OutputGuard(inputs=[src, *([masks.path] if masks.path is not None else []),
                                *([mask_path] if mask_path is not None else [])], overwrite=overwrite)
    guard.claim(out, "--out")
    if save_masks:
        guard.claim(mask_out, "saved mask")
        guard.claim(overlay_out, "overlay")
    image = read_image(src)
    mask = load_mask(mask_path, image.shape, pipeline.engine.labels) if mask_path is not None else None
    result = pipeline.purify(image, mask, eye, name=str(src))
    same_format = image_format(src) == suffix_format(out.suffix)
    report_passed_through(NotPurified(), result, "written unchanged" if same_format else
                          f"written unchanged, re-encoded as {suffix_format(out.suffix)}")
    if not result.purified and same_format:
        copy_file_atomic(src, out)  # byte-identical: no re-encoding of what was not changed
    else:
        save_image(out, result.image)
    if save_masks:
        save_image(mask_out, result.mask)
        save_image(overlay_out, _overlay(image, result, pipeline.engine.labels))
    return result


# ----------------------------------------------------------------------------------------------------------
# Rendered datasets (meta.json + shard-*.npz).
# ----------------------------------------------------------------------------------------------------------

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
    two shards at a time (one transformed while the one before is written). ``out`` is an
    :class:`~maskpurify.purification.output.OutputDir` for ``settings`` (which name the input): an interrupted run
    resumes at the first missing shard (a shard whose input changed since is done again);
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
        return load_shard_checked(src, index, meta)

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
    pending: tuple[Future[None], str, Path, Any, int] | None = None

    def finish() -> None:
        """Wait for the shard being written, then record it as done."""
        nonlocal count, pending
        if pending is not None:
            written, name, dest, source, samples = pending
            pending = None
            written.result()
            target.mark(name, dest, source)
            target.save()
            count += samples
            bar.update(samples)

    try:
        # One shard is compressed and written (zlib and the file system release the GIL) while the next is
        # transformed; it is marked done only once written, so a killed run redoes it.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="shard-writer") as writer:
            for index in range(num_shards):
                name = shard_name(index)
                dest = out / name
                source = input_fingerprint(src / name)
                if not overwrite and target.is_done(name, dest, source):
                    bar.update(min(int(meta["shard_size"]), int(meta["n"]) - index * int(meta["shard_size"])))
                    continue
                shard = transform(name, load(index))
                target.begin()
                finish()
                pending = (writer.submit(save_npz_deterministic, dest, shard), name, dest, source,
                           len(shard["images"]))
                del shard
            finish()
        atomic_write_json(out / "meta.json", {**out_meta(), "complete": True, "command": command_line()})
        target.save(complete=True)
    finally:
        bar.close()
        target.close()  # a failed run lets go of the folder too
    return count


def purify_dataset(pipeline: Pipeline, src: Path, out: Path, overwrite: bool = False, resume: bool = True,
                   progress: bool = True, settings: dict[str, Any] | None = None, masks: MaskSource = MaskSource(),
                   eye: str = "auto") -> DatasetStats:
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
    engine = pipeline.engine
    if auto and not engine.has_segmenter:
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
            given = [None] * (stop - start) if auto else list(shard["masks"][start:stop])
            for j, result in enumerate(pipeline.run(list(images[start:stop]), given, names, eye)):
                report_passed_through(notes, result, "kept unchanged")
                left[start + j] = not result.purified
                purified[start + j] = result.image
                used[start + j] = result.mask
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
