"""The purification engine: a loaded purifier (and optionally a segmenter for automatic masks) applied to
batches of uint8 images, plus the streaming drivers behind ``maskpurify purify`` (folders, rendered datasets,
videos).

Everything here trusts nothing it reads: masks go through :func:`maskpurify.masks.validate_mask` against the
label set the purifier was trained with (eye labels for the default purifier, background/attention for a
``num_labels=2`` purifier), and every file is written atomically.

Two rules hold in every driver. The networks know one eye, the canonical side the renderer draws
(:data:`maskpurify.masks.CANONICAL_EYE`); a crop of the other eye (``eye="right"``) is mirrored before the
segmenter and the purifier and mirrored back after. An automatic mask that is no plausible eye
(:func:`maskpurify.masks.eye_problem`) is never used: the image passes through unchanged (folders skip it),
with one line on stderr naming it and the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maskpurify.checkpoints import WEIGHTS_DIR, checkpoint_paths
from maskpurify.config import command_line
from maskpurify.errors import UserError
from maskpurify.fileio import (IMAGE_SUFFIXES, OutputGuard, atomic_write_json, check_outputs, clean_stale_temps,
                               input_fingerprint, is_temp_name, read_image, save_image)
from maskpurify.masks import (BINARY_LABELS, CANONICAL_EYE, EYE_LABELS, EYE_PALETTE, LabelSet, colourise,
                              eye_problems, load_mask, mirror_eyes, mirror_flags, validate_mask)
from maskpurify.nets.purifier import Purifier, load_purifier
from maskpurify.nets.segmenter import Segmenter, load_segmenter, predict_masks

#: Shipped checkpoints live in ``weights/`` at the repository root.
DEFAULT_PURIFIER = WEIGHTS_DIR / "purifier"
DEFAULT_SEGMENTER = WEIGHTS_DIR / "segmenter"
#: The working size the shipped purifier was trained at (height, width); the network itself takes any size.
WORKING_SIZE = (36, 60)
PROGRESS_FILE = ".maskpurify-progress.json"
MASK_SUFFIX = "_mask.png"
VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv")
#: Palette for colourising masks of an arbitrary label set (eye palette first).
_PALETTE = EYE_PALETTE + ((240, 200, 40), (60, 200, 90), (170, 80, 200), (250, 130, 30))


def checkpoint_exists(path: str | Path) -> bool:
    """Whether the weights file is there (a missing sidecar is then reported by the loader, naming it)."""
    return checkpoint_paths(path)[0].is_file()


def label_set_for(num_labels: int, attention: Sequence[int]) -> LabelSet:
    """The label set a purifier with this config was trained on (eye labels, binary, or generic)."""
    attention = tuple(int(a) for a in attention)
    if num_labels == EYE_LABELS.num_labels and attention == EYE_LABELS.attention:
        return EYE_LABELS
    if num_labels == BINARY_LABELS.num_labels and attention == BINARY_LABELS.attention:
        return BINARY_LABELS
    return LabelSet(names=tuple(f"label{i}" for i in range(num_labels)), attention=attention)


def palette_for(labels: LabelSet) -> tuple[tuple[int, int, int], ...]:
    if labels.palette is not None:
        return labels.palette
    if labels is BINARY_LABELS or labels.names == BINARY_LABELS.names:
        return ((0, 0, 0), (255, 255, 255))
    return tuple(_PALETTE[i % len(_PALETTE)] for i in range(labels.num_labels))


class Purification:
    """A purifier (+ optional segmenter) ready to purify uint8 images in batches.

    purifier: the network (moved to ``device`` and put in eval mode). segmenter: the automatic masker, or None.
    batch_size: images per forward pass. The label set masks are validated against follows the purifier's
    config (``num_labels``, ``attention_labels``). check_eyes: the drivers leave an image unpurified when its
    automatic mask is no plausible eye (:meth:`mask_problems`); masks a user gives are trusted.
    """

    def __init__(self, purifier: Purifier, segmenter: Segmenter | None = None, device: str | torch.device = "cpu",
                 batch_size: int = 64, check_eyes: bool = True) -> None:
        if batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {batch_size}")
        self.device = torch.device(device)
        self.purifier = purifier.to(self.device).eval()
        self.segmenter = segmenter.to(self.device).eval() if segmenter is not None else None
        self.batch_size = batch_size
        config = purifier.config
        self.labels = label_set_for(config.num_labels, config.attention_labels)
        if self.segmenter is not None and self.segmenter.config.num_classes != config.num_labels:
            raise UserError(f"the segmenter predicts {self.segmenter.config.num_classes} labels but the purifier "
                            f"expects {config.num_labels}; use a matching segmenter or give masks")
        #: Number of purifier forward passes so far (for progress reporting and tests).
        self.forward_passes = 0
        self.check_eyes = check_eyes

    @classmethod
    def load(cls, checkpoint: str | Path | None = None, segmenter: str | Path | None | bool = None,
             device: str = "cpu", batch_size: int = 64, check_eyes: bool = True) -> Purification:
        """Load checkpoints. checkpoint None: the shipped ``weights/purifier``. segmenter None: the shipped
        ``weights/segmenter`` when present (else no segmenter); False: none; a path: that checkpoint."""
        device = resolve_device(device)
        if checkpoint is None:
            if not checkpoint_exists(DEFAULT_PURIFIER):
                raise UserError(f"no purifier checkpoint given and none shipped at {DEFAULT_PURIFIER}.safetensors; "
                                "give --checkpoint CKPT")
            checkpoint = DEFAULT_PURIFIER
        purifier = load_purifier(checkpoint, device)
        seg: Segmenter | None = None
        if segmenter is None:
            if checkpoint_exists(DEFAULT_SEGMENTER):
                candidate = load_segmenter(DEFAULT_SEGMENTER, device)
                # The shipped eye segmenter only serves purifiers with the same label count.
                if candidate.config.num_classes == purifier.config.num_labels:
                    seg = candidate
        elif segmenter is not False:
            seg = load_segmenter(segmenter, device)  # type: ignore[arg-type]
        return cls(purifier, seg, device, batch_size, check_eyes)

    # -- masks ---------------------------------------------------------------------------------------------
    def auto_masks(self, images: np.ndarray, names: Sequence[str] | None = None,
                   eye: str | Sequence[str] = CANONICAL_EYE) -> np.ndarray:
        """Label maps (N,H,W) uint8 from the segmenter, in the images' own orientation; UserError without one.

        eye: which eye each image shows (``left``/``right``, see :data:`maskpurify.masks.CANONICAL_EYE`); crops
        of the other eye are segmented mirrored (the segmenter only knows the canonical side) and the masks
        mirrored back."""
        if self.segmenter is None:
            what = names[0] if names else "the input"
            raise UserError(f"no mask for {what} and no segmenter; give --masks DIR or --segmenter")
        flags = mirror_flags(eye, len(images))
        images = mirror_eyes(images, flags, channels=True) if flags.any() else np.ascontiguousarray(images)
        if not images.flags.writeable:
            images = images.copy()
        masks = predict_masks(self.segmenter, images, batch_size=self.batch_size)
        return mirror_eyes(masks, flags) if flags.any() else masks

    def mask_problems(self, masks: np.ndarray | Sequence[np.ndarray]) -> list[str | None]:
        """Per automatic mask, why it is no plausible eye (:func:`maskpurify.masks.eye_problem`) or None. All None
        when ``check_eyes`` is off or the purifier does not take eye labels (the check knows only eyes)."""
        if not self.check_eyes or self.labels is not EYE_LABELS:
            return [None] * len(masks)
        return eye_problems(np.asarray(masks)) if len(masks) else []

    def check_mask(self, mask: np.ndarray, image_shape: Sequence[int], source: str) -> np.ndarray:
        """Validate one mask against the purifier's label set (an empty attention region is allowed)."""
        return validate_mask(mask, image_shape, self.labels, source=source, require_attention=False)

    # -- purification --------------------------------------------------------------------------------------
    def purify_arrays(self, images: np.ndarray, masks: np.ndarray | None = None,
                      names: Sequence[str] | None = None, eye: str | Sequence[str] = CANONICAL_EYE) -> np.ndarray:
        """Purify uint8 images (N,H,W,3) (or (N,H,W,1) / (N,H,W) grey) with label maps (N,H,W) -> same shape.

        masks None: automatic masks from the segmenter (UserError without one). Images of any size are
        purified at their own size. eye: ``left`` (the canonical side, default) or ``right``, for all images or
        one per image; images and masks (given in the images' own orientation) of the other eye are mirrored
        before the networks and the outputs mirrored back.
        """
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise UserError(f"images must be uint8, got {images.dtype}")
        grey = images.ndim == 3 or (images.ndim == 4 and images.shape[-1] == 1)
        rgb = images.reshape(*images.shape[:3], 1) if images.ndim == 3 else images
        if rgb.ndim != 4 or rgb.shape[-1] not in (1, 3):
            raise UserError(f"images must be (N,H,W,3) RGB or (N,H,W) grey, got shape {tuple(images.shape)}")
        if grey:
            rgb = np.repeat(rgb, 3, axis=-1)
        if not rgb.flags.writeable:
            rgb = rgb.copy()
        n, h, w = rgb.shape[:3]
        flags = mirror_flags(eye, n)

        def label(i: int) -> str:
            return names[i] if names is not None else f"image {i}"

        if masks is None:
            masks = self.auto_masks(rgb, names, eye)
            masks = np.stack([self.check_mask(m, (h, w), f"segmenter output for {label(i)}")
                              for i, m in enumerate(masks)]) if n else np.zeros((0, h, w), np.uint8)
        else:
            masks = np.asarray(masks)
            if masks.ndim == 4 and masks.shape[-1] == 3:
                raise UserError(f"{label(0)}: mask must be a single-channel label map, got shape "
                                f"{tuple(masks.shape[1:])} (a 3-channel mask needs a palette)")
            if len(masks) != n:
                raise UserError(f"got {len(masks)} masks for {n} images")
            masks = np.stack([self.check_mask(m, (h, w), f"mask of {label(i)}")
                              for i, m in enumerate(masks)]) if n else np.zeros((0, h, w), np.uint8)
        if flags.any():
            rgb, masks = mirror_eyes(rgb, flags, channels=True), mirror_eyes(masks, flags)
        out = np.empty_like(rgb)
        with torch.inference_mode():
            for start in range(0, n, self.batch_size):
                stop = min(n, start + self.batch_size)
                x = torch.from_numpy(rgb[start:stop]).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
                m = torch.from_numpy(masks[start:stop].astype(np.int64)).to(self.device)
                y = self.purifier(x, m)
                self.forward_passes += 1
                out[start:stop] = (y.clamp_(0, 1).mul_(255.0).round_().to(torch.uint8)
                                   .permute(0, 2, 3, 1).cpu().numpy())
        if flags.any():
            out = mirror_eyes(out, flags, channels=True)
        if grey:
            grey_out = np.round(out.astype(np.float32).mean(-1)).astype(np.uint8)
            return grey_out if images.ndim == 3 else grey_out[..., None]
        return out

    def purify_image(self, image: np.ndarray, mask: np.ndarray | None = None, name: str = "image",
                     eye: str = CANONICAL_EYE) -> np.ndarray:
        """One HxWx3 image (and optional HxW mask) of the ``eye`` side -> HxWx3 purified."""
        masks = None if mask is None else np.asarray(mask)[None]
        return self.purify_arrays(np.asarray(image)[None], masks, [name], eye)[0]

    def masks_for(self, images: np.ndarray, names: Sequence[str] | None = None,
                  eye: str | Sequence[str] = CANONICAL_EYE) -> np.ndarray:
        """Automatic masks, validated (used when the caller also wants to save them)."""
        masks = self.auto_masks(images, names, eye)
        return np.stack([self.check_mask(m, images.shape[1:3], f"segmenter output for "
                                         f"{names[i] if names else i}") for i, m in enumerate(masks)])


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: CUDA is not available on this machine")
    try:
        torch.device(device)
    except RuntimeError:
        raise UserError(f"--device {device}: not a torch device (use cpu, cuda, cuda:1, auto)") from None
    return device


# ----------------------------------------------------------------------------------------------------------
# Output directories that can be resumed but never clobber a user's files.
# ----------------------------------------------------------------------------------------------------------

@dataclass
class OutputDir:
    """A results folder owned by one purification run, with its progress in ``PROGRESS_FILE``.

    A new or empty folder is claimed; a folder holding the progress file of the same run (same ``settings``)
    is resumed; anything else (a non-empty folder maskpurify did not create, or one from other settings) is
    refused unless ``overwrite``. With ``overwrite`` every output is written again.

    Each finished output is recorded with its size and the fingerprint (size + sha256) of what it was made from,
    so an input that changed under the same name is purified again. Nothing is written here until
    :meth:`begin`, called just before the first output: a run refused before that leaves no folder and no
    progress file behind. A folder this run owns is cleared of temporary files a killed run left (the temporary
    files alone never make a folder "not empty").
    """

    root: Path
    settings: dict[str, Any]
    overwrite: bool = False
    resume: bool = True
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Whether the progress file is on disk (a resumed run's, or written by :meth:`begin`).
    started: bool = False
    #: Whether this run may remove temporary files in the folder (it is ours, or holds only temporary files).
    owned: bool = False

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"{self.root}: exists and is not a folder")
        progress = self.root / PROGRESS_FILE
        previous: dict[str, Any] | None = None
        if progress.is_file():
            try:
                previous = json.loads(progress.read_text())
            except (OSError, json.JSONDecodeError):
                previous = None
            if not isinstance(previous, dict):
                previous = None
        nonempty = self.root.is_dir() and any(not is_temp_name(p.name) for p in self.root.iterdir())
        if self.overwrite:
            self.done = {}
        elif previous is None:
            if nonempty:
                raise UserError(f"{self.root}: folder is not empty and was not written by maskpurify purify; "
                                "choose an empty --out or pass --overwrite")
        elif previous.get("settings") != self.settings:
            raise UserError(f"{self.root}: holds results of a different purify run (other input or settings); "
                            "choose another --out or pass --overwrite")
        elif not self.resume:
            raise UserError(f"{self.root}: already holds results of this run; resume it (drop --no-resume) or "
                            "pass --overwrite to redo everything")
        else:
            done = previous.get("done", {})
            # Entries without an input fingerprint (older versions recorded sizes only) are done again.
            self.done = {k: v for k, v in done.items() if isinstance(v, dict) and "input" in v} \
                if isinstance(done, dict) else {}
            self.started = True
        self.owned = previous is not None or not nonempty
        self._cleaned: set[Path] = set()
        self.clean(self.root)

    def clean(self, folder: Path) -> None:
        """Remove the temporary files a killed run left in ``folder`` (once per folder; only in our folder)."""
        if self.owned and folder not in self._cleaned:
            self._cleaned.add(folder)
            clean_stale_temps(folder)

    def begin(self) -> None:
        """Call before writing an output: records the run in the folder (creating it) the first time."""
        if not self.started:
            self.save(complete=False)
            self.started = True
            self.owned = True

    def is_done(self, key: str, path: Path, source: Any) -> bool:
        """True when ``key`` was recorded as finished from an input with fingerprint ``source`` and its file is
        still there with the recorded size."""
        entry = self.done.get(key)
        return (entry is not None and entry.get("input") == source and path.is_file()
                and path.stat().st_size == entry.get("size"))

    def mark(self, key: str, path: Path, source: Any) -> None:
        self.done[key] = {"size": path.stat().st_size, "input": source}

    def save(self, complete: bool = False) -> None:
        atomic_write_json(self.root / PROGRESS_FILE, {"settings": self.settings, "complete": complete,
                                                      "done": self.done})


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


def purify_folder(engine: Purification, src: Path, out: Path, masks: str | None = None, recursive: bool = False,
                  overwrite: bool = False, resume: bool = True, save_masks: bool = False,
                  face_crop_size: tuple[int, int] = WORKING_SIZE, progress: bool = True,
                  settings: dict[str, Any] | None = None, eye: str = CANONICAL_EYE) -> FolderStats:
    """Purify every image under ``src`` into ``out`` (same relative paths and names).

    masks: None -> ``NAME_mask.png`` beside each image when present, else automatic; a folder -> masks from
    there (same relative path), else automatic; "auto" -> always automatic; "faces" -> always the face path.
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
    masks_dir = None
    if masks not in (None, "auto", "faces"):
        masks_dir = Path(masks)  # type: ignore[arg-type]
        if not masks_dir.is_dir():
            raise UserError(f"--masks {masks}: not a folder (use --masks auto or a folder of NAME_mask.png)")
    files = list_images(src, recursive)
    guard = OutputGuard(out, inputs=[src] + ([masks_dir] if masks_dir is not None else []), overwrite=True)
    guard.claim(out, "--out", folder=True)
    plan: list[tuple[Path, Path, Path, Path | None]] = []
    for path in files:
        rel = path.relative_to(src)
        dest = out / rel
        mask_path = find_mask(path, rel, masks_dir) if masks not in ("auto", "faces") else None
        guard.claim(dest, "output", inputs=(path, mask_path))
        if save_masks:
            guard.claim(dest.with_name(dest.stem + MASK_SUFFIX), "saved mask", inputs=(path, mask_path))
        plan.append((path, rel, dest, mask_path))
    run_settings = dict(settings or {})
    run_settings.update({"input": str(src.resolve()), "masks": str(masks_dir.resolve()) if masks_dir else masks,
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
        images = np.stack([b[2] for b in batch])
        names = [b[0] for b in batch]
        have = [b[3] for b in batch]
        keep = list(range(len(batch)))
        if all(m is not None for m in have):
            mask_arr = np.stack(have)  # type: ignore[arg-type]
        else:
            auto_idx = [i for i, m in enumerate(have) if m is None]
            auto = engine.masks_for(images[auto_idx], [names[i] for i in auto_idx], eye)
            stats.automatic += len(auto_idx)
            filled = list(have)
            for j, i in enumerate(auto_idx):
                filled[i] = auto[j]
            mask_arr = np.stack(filled)  # type: ignore[arg-type]
            for i, problem in zip(auto_idx, engine.mask_problems(auto)):
                if problem is not None:
                    notes.add(names[i], problem, "skipped")
                    keep.remove(i)
            stats.not_purified += len(batch) - len(keep)
        if keep:
            result = engine.purify_arrays(images[keep], mask_arr[keep], [names[i] for i in keep], eye)
            for i, purified in zip(keep, result):
                key, dest, source = batch[i][0], batch[i][1], batch[i][4]
                write(dest, purified, mask_arr[i], None)
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
            from maskpurify import faces

            if finder is None:
                finder = faces.FaceFinder(static=True)
            result = faces.purify_face_photo(engine, image, crop_size=face_crop_size, name=key,
                                             required=masks == "faces", finder=finder)
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


def _use_faces(image: np.ndarray, masks: str | None, engine: Purification) -> bool:
    """Whether to try the FaceMesh path for an image without a mask file."""
    if masks == "faces":
        return True
    from maskpurify import faces

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


def _image_mask_path(src: Path, masks: str | None) -> Path | None:
    """The mask file for one image: ``--masks FILE``, ``--masks DIR/NAME_mask.png`` or ``NAME_mask.png`` beside
    the image; None for an automatic mask. A folder under the mask's name is a UserError, never a silent
    fallback to an automatic mask."""
    if masks in ("auto", "faces"):
        return None
    if masks is None:
        return _mask_file(src.with_name(src.stem + MASK_SUFFIX))
    candidate = Path(masks)
    if candidate.is_dir():
        return _mask_file(candidate / (src.stem + MASK_SUFFIX))
    if candidate.is_file():
        return candidate
    raise UserError(f"--masks {masks}: no such mask file or folder")


def purify_image_file(engine: Purification, src: Path, out: Path, masks: str | None = None, overwrite: bool = False,
                      save_masks: bool = False, face_crop_size: tuple[int, int] = WORKING_SIZE,
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
    guard = OutputGuard(inputs=[src, *([masks] if masks not in (None, "auto", "faces") else []),
                                *([mask_path] if mask_path is not None else [])], overwrite=overwrite)
    guard.claim(out, "--out")
    if save_masks:
        guard.claim(mask_out, "saved mask")
        guard.claim(overlay_out, "overlay")
    image = read_image(src)
    result: ImageResult | None = None
    if mask_path is not None:
        mask = load_mask(mask_path, image.shape, engine.labels)
        result = ImageResult(engine.purify_image(image, mask, str(src), eye), mask, "mask file")
    elif _use_faces(image, masks, engine):
        from maskpurify import faces

        face = faces.purify_face_photo(engine, image, crop_size=face_crop_size, name=str(src),
                                       required=masks == "faces")
        if face is not None:
            result = ImageResult(face.image, face.mask, "faces", [e.box for e in face.eyes], list(face.skipped))
            if save_masks:
                save_image(overlay_out, face.overlay())
    if result is None:
        mask = engine.masks_for(image[None], [str(src)], eye)[0]
        problem = engine.mask_problems(mask[None])[0]
        if problem is None:
            result = ImageResult(engine.purify_image(image, mask, str(src), eye), mask, "segmenter")
        else:
            result = ImageResult(image, mask, "segmenter", not_purified=[(str(src), problem)])
    notes = NotPurified()
    unchanged = "written unchanged" if not result.purified else "left as it was"
    for name, problem in result.not_purified:
        notes.add(name, problem, unchanged)
    save_image(out, result.image)
    if save_masks:
        save_image(mask_out, result.mask)
        if result.method != "faces":
            from maskpurify.masks import overlay

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


def purify_dataset(engine: Purification, src: Path, out: Path, overwrite: bool = False, resume: bool = True,
                   progress: bool = True, settings: dict[str, Any] | None = None, masks: str | None = None,
                   eye: str = CANONICAL_EYE) -> DatasetStats:
    """Purify a rendered dataset shard by shard into ``out`` in the same format (readable by EyeDataset).

    masks: None -> the dataset's stored masks (the renderer's exact masks: an oracle); "auto" -> the
    segmenter's masks, as a user with real images would have (the stored masks are ignored for purification
    and copied unchanged as labels; the masks used are stored under ``auto_masks``, and ``not_purified`` marks
    the samples whose automatic mask is no plausible eye: those keep their input image, one line each on stderr).
    Memory holds one shard at a time; each is checked by :func:`maskpurify.training.common.validate_arrays`
    before use. Every key but ``images`` is copied unchanged; meta.json records the source and is marked complete
    only at the end, so an interrupted run resumes at the first missing shard (a shard whose input changed since
    is purified again).
    """
    from tqdm import tqdm

    from maskpurify.training.common import validate_arrays
    from maskpurify.world.dataset import SHARD_KEYS, _load_shard, read_meta, save_npz_deterministic, shard_name

    src, out = Path(src), Path(out)
    if out.resolve() == src.resolve():
        raise UserError(f"--out {out}: must differ from the input dataset")
    OutputGuard(inputs=[src]).claim(out, "--out", folder=True)
    if masks not in (None, "auto"):
        raise UserError(f"--masks {masks}: a rendered dataset takes its stored masks (omit --masks) or --masks auto")
    if masks == "auto" and engine.segmenter is None:
        raise UserError(f"--masks auto: no segmenter for {src}; give --segmenter CKPT")
    meta = read_meta(src)
    run_settings = dict(settings or {})
    run_settings.update({"input": str(src.resolve()), "kind": "dataset"})
    if masks is not None:  # only when not the default, so runs started before --masks auto existed still resume
        run_settings["masks"] = masks
    target = OutputDir(out, run_settings, overwrite=overwrite, resume=resume)
    out_meta = {k: v for k, v in meta.items() if k not in ("complete", "command")}
    out_meta.update({"unityeyes": False, "purified": {"source": str(src.resolve()), "source_domain": meta.get("domain"),
                                                      "masks": masks or "stored", "eye": eye, **(settings or {})}})
    num_shards = int(meta["num_shards"])
    count = 0
    notes = NotPurified()
    bar = tqdm(total=int(meta["n"]), unit="img", desc="purify", disable=not progress, leave=False)
    for index in range(num_shards):
        name = shard_name(index)
        dest = out / name
        if not (src / name).is_file():
            raise UserError(f"{src / name}: missing shard")
        source = input_fingerprint(src / name)
        if not overwrite and target.is_done(name, dest, source):
            bar.update(min(int(meta["shard_size"]), int(meta["n"]) - index * int(meta["shard_size"])))
            continue
        shard = validate_arrays(_load_shard(src, index), str(src / name), require=SHARD_KEYS, num_labels=None,
                                finite=())
        images = shard["images"]
        purified = images.copy()
        used = np.empty(images.shape[:3], np.uint8)
        left = np.zeros(len(images), bool)
        for start in range(0, len(images), engine.batch_size):
            stop = min(len(images), start + engine.batch_size)
            names = [f"{name}[{i}]" for i in range(start, stop)]
            batch_images = images[start:stop]
            if masks == "auto":
                rgb = np.repeat(batch_images, 3, axis=-1) if batch_images.shape[-1] == 1 else batch_images
                batch_masks = engine.masks_for(rgb, names, eye)  # grey renders: the segmenter takes RGB
                for j, problem in enumerate(engine.mask_problems(batch_masks)):
                    if problem is not None:
                        notes.add(names[j], problem, "kept unchanged")
                        left[start + j] = True
            else:
                batch_masks = shard["masks"][start:stop]
            used[start:stop] = batch_masks
            keep = np.flatnonzero(~left[start:stop])
            if len(keep):
                purified[start + keep] = engine.purify_arrays(batch_images[keep], batch_masks[keep],
                                                              [names[j] for j in keep], eye)
            bar.update(stop - start)
        shard["images"] = purified
        if masks == "auto":
            shard["auto_masks"] = used
            shard["not_purified"] = left
        target.begin()
        save_npz_deterministic(dest, shard)
        target.mark(name, dest, source)
        target.save()
        count += len(images)
        del shard, images, purified, used
    bar.close()
    left_total = _count_not_purified(out, num_shards) if masks == "auto" else 0
    out_meta["purified"]["not_purified"] = left_total
    atomic_write_json(out / "meta.json", {**out_meta, "complete": True, "command": command_line()})
    target.save(complete=True)
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
                 overwrite: bool = False, masks: str | None = None,
                 face_crop_size: tuple[int, int] = WORKING_SIZE, progress: bool = True,
                 on_frames: Callable[[int], None] | None = None, eye: str = CANONICAL_EYE) -> VideoStats:
    """Stream a video through the purifier: same fps, size and frame count; masks automatic per frame.

    Frames are read, purified and written ``engine.batch_size`` at a time, so memory does not grow with the
    video's length. mask_video: also write the colourised masks as a second video. masks "faces": per-frame
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
    if masks not in (None, "auto", "faces"):
        raise UserError(f"--masks {masks}: a video takes automatic masks only (--masks auto or --masks faces)")
    if masks != "faces" and engine.segmenter is None:
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
            if masks == "faces":
                from maskpurify import faces

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
                mask_arr = engine.masks_for(frames, names, eye)
                purified = frames.copy()
                keep = []
                for i, problem in enumerate(engine.mask_problems(mask_arr)):
                    if problem is None:
                        keep.append(i)
                    else:
                        notes.add(names[i], problem, "written unchanged")
                left_frames += len(frames) - len(keep)
                if keep:
                    purified[keep] = engine.purify_arrays(frames[keep], mask_arr[keep], [names[i] for i in keep],
                                                          eye)
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


def current_rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{os.getpid()}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
