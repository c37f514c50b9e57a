"""The real-eye check set: eye crops cut from photos that ship inside packages, with MediaPipe FaceMesh masks as the
reference (``src/maskpurify/data/real_eyes.npz``, built by ``scripts/make_real_eyes.py``; sources in the README
beside it).

The wild renders stand in for a user's real images; this set checks, on a handful of real eyes, what a mask
provider does there. It is a CHECK set only, never training data. Every crop is at the purifier's working size
(36x60) and on the canonical side (the other eye already mirrored), cut exactly as ``maskpurify purify`` cuts the
eyes of a face photo. The reference is FaceMesh's eyelid contour (sclera), iris circle (iris) and a concentric
pupil circle (``faces.PUPIL_RATIO``), so it is itself approximate, a few pixels at the borders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from maskpurify.errors import UserError
from maskpurify.metrics.segmentation import confusion_matrix, iou_from_confusion
from maskpurify.masks import IRIS, PUPIL, eye_problems, overlay, region_centroid

REAL_EYES = Path(__file__).resolve().parents[1] / "data" / "real_eyes.npz"
#: Upscaling of the contact sheet, for visibility.
SHEET_SCALE = 3
_KEYS = ("images", "masks", "source", "eye", "mirrored", "iris_center")


@dataclass
class RealEyes:
    """N real eye crops on the canonical side. images (N,36,60,3) uint8, masks (N,36,60) uint8 FaceMesh reference
    labels; source: photo name; eye: the subject's side FaceMesh gave; mirrored: whether the crop was mirrored to
    the canonical side; iris_center: (N,2) FaceMesh iris centre in crop pixels (x, y)."""

    images: np.ndarray
    masks: np.ndarray
    source: np.ndarray
    eye: np.ndarray
    mirrored: np.ndarray
    iris_center: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def names(self) -> list[str]:
        """``source/eye`` names, numbered within each photo (``t1/left#3``)."""
        return [f"{s}/{e}#{i}" for i, (s, e) in enumerate(zip(self.source, self.eye))]


def load_real_eyes(path: str | Path = REAL_EYES) -> RealEyes:
    """Read the check set; a missing or malformed file is a one-line UserError naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no real-eye check set here (build it with scripts/make_real_eyes.py)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in _KEYS}
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(f"{path}: not a real-eye check set ({exc})") from None
    n = len(arrays["images"])
    if arrays["images"].ndim != 4 or arrays["images"].shape[-1] != 3 or arrays["masks"].shape != arrays["images"].shape[:3]:
        raise UserError(f"{path}: images must be (N,H,W,3) with (N,H,W) masks, got {arrays['images'].shape} and "
                        f"{arrays['masks'].shape}")
    if any(len(arrays[key]) != n for key in _KEYS):
        raise UserError(f"{path}: arrays of different lengths ({', '.join(f'{k} {len(arrays[k])}' for k in _KEYS)})")
    return RealEyes(**arrays)


def iris_centre(mask: np.ndarray) -> tuple[float, float] | None:
    """(x, y) centroid of iris + pupil: the visible iris, as both the reference and a prediction show it."""
    return region_centroid(mask, (IRIS, PUPIL))


def evaluate_masks(pred: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """Per-label IoU over the whole set (summed intersections / unions), mean IoU over sclera, iris and pupil, and
    the iris-centre error (centroid of iris + pupil, predicted vs reference) in pixels."""
    iou = iou_from_confusion(confusion_matrix(pred, reference, 4))
    errors = np.full(len(pred), np.nan)
    for i, (p, r) in enumerate(zip(pred, reference)):
        cp, cr = iris_centre(p), iris_centre(r)
        if cp is not None and cr is not None:
            errors[i] = float(np.hypot(cp[0] - cr[0], cp[1] - cr[1]))
    found = errors[~np.isnan(errors)]
    return {
        "n": int(len(pred)),
        "iou_sclera": float(iou[1]), "iou_iris": float(iou[2]), "iou_pupil": float(iou[3]),
        "mean_iou": float(np.nanmean(iou[1:])),
        "iris_centre_error_px": float(found.mean()) if len(found) else float("nan"),
        "iris_centre_error_median_px": float(np.median(found)) if len(found) else float("nan"),
        "iris_missing": int(np.isnan(errors).sum()),
        "per_crop_iris_centre_error_px": [None if np.isnan(e) else round(float(e), 3) for e in errors],
    }


def evaluate_real_eyes(segmenter: Any, out_dir: Path | None = None, path: str | Path = REAL_EYES) -> dict[str, Any]:
    """Score ``segmenter`` (a Segmenter or a checkpoint path) on the real-eye check set.

    Returns {n, iou_sclera, iou_iris, iou_pupil, mean_iou, iris_centre_error_px, iris_centre_error_median_px,
    iris_missing, per_crop_iris_centre_error_px, flagged, flagged_reasons, reference_flagged, sources,
    contact_sheet}: ``flagged`` counts the predicted masks :func:`maskpurify.masks.eye_problem` rejects
    (``flagged_reasons``: name -> reason), ``reference_flagged`` the reference masks it rejects (the closed eyes),
    ``contact_sheet`` is the PNG written into ``out_dir`` (None without it).
    """
    from maskpurify.nets.segmenter import Segmenter, load_segmenter, predict_masks

    model = segmenter if isinstance(segmenter, Segmenter) else load_segmenter(segmenter)
    eyes = load_real_eyes(path)
    pred = predict_masks(model, np.ascontiguousarray(eyes.images))
    result = evaluate_masks(pred, eyes.masks)
    names = eyes.names()
    problems = {name: problem for name, problem in zip(names, eye_problems(pred)) if problem is not None}
    result.update({
        "flagged": len(problems), "flagged_reasons": problems,
        "reference_flagged": sum(problem is not None for problem in eye_problems(eyes.masks)),
        "sources": {str(s): int((eyes.source == s).sum()) for s in sorted(set(eyes.source.tolist()))},
        "contact_sheet": None,
    })
    if out_dir is not None:
        sheet = Path(out_dir) / "real_eyes_contact_sheet.png"
        write_contact_sheet(sheet, eyes, pred, names, result["per_crop_iris_centre_error_px"], problems)
        result["contact_sheet"] = str(sheet)
    return result


def _text(canvas: np.ndarray, text: str, x: int, y: int, colour: tuple[int, int, int] = (20, 20, 20)) -> None:
    cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)


def contact_sheet(eyes: RealEyes, pred: np.ndarray, names: list[str] | None = None,
                  errors: list[float | None] | None = None, problems: dict[str, str] | None = None) -> np.ndarray:
    """One row per crop: the crop, the reference mask over it, the inferred mask over it (x3), and a caption
    (name, per-crop IoU of iris+pupil, iris-centre error, eye_problem's verdict)."""
    names = names or eyes.names()
    problems = problems or {}
    s = SHEET_SCALE
    h, w = eyes.images.shape[1:3]
    caption_w, header = 230, 18
    rows = [np.full((header, 3 * w * s + caption_w, 3), 255, np.uint8)]
    for col, title in enumerate(("crop", "reference (FaceMesh)", "inferred")):
        _text(rows[0], title, col * w * s + 4, 13)
    for i in range(len(eyes)):
        tiles = [eyes.images[i], overlay(eyes.images[i], eyes.masks[i]), overlay(eyes.images[i], pred[i])]
        big = [cv2.resize(t, (w * s, h * s), interpolation=cv2.INTER_NEAREST) for t in tiles]
        caption = np.full((h * s, caption_w, 3), 255, np.uint8)
        ref_disc, pred_disc = eyes.masks[i] >= IRIS, pred[i] >= IRIS
        union = (ref_disc | pred_disc).sum()
        iou = (ref_disc & pred_disc).sum() / union if union else float("nan")
        error = errors[i] if errors is not None else None
        _text(caption, names[i] + (" (mirrored)" if eyes.mirrored[i] else ""), 6, 18)
        _text(caption, f"iris IoU {iou:.2f}", 6, 40)
        _text(caption, "centre error " + ("-" if error is None else f"{error:.1f} px"), 6, 60)
        problem = problems.get(names[i])
        if problem:
            words, lines = ("flagged: " + problem).split(), [""]
            for word in words:  # wrap at about 32 characters
                lines[-1:] = [lines[-1] + " " + word] if len(lines[-1]) + len(word) < 32 else [lines[-1], word]
            for k, line in enumerate(lines[:2]):
                _text(caption, line.strip(), 6, 82 + 18 * k, (200, 30, 30))
        row = np.concatenate([*big, caption], axis=1)
        row[-1] = 200  # a thin rule between rows
        rows.append(row)
    return np.concatenate(rows, axis=0)


def write_contact_sheet(path: Path, eyes: RealEyes, pred: np.ndarray, names: list[str] | None = None,
                        errors: list[float | None] | None = None, problems: dict[str, str] | None = None) -> Path:
    """Write :func:`contact_sheet` as a PNG, atomically (the folder is made)."""
    from maskpurify.fileio import save_image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(path, contact_sheet(eyes, pred, names, errors, problems))
    return path


def eye_check_rates(segmenter: Any, n: int = 1000, seeds: tuple[int, int] = (1234567, 7654321)) -> dict[str, Any]:
    """How often :func:`maskpurify.masks.eye_problem` fires on rendered eyes: exact masks and the segmenter's
    predictions, wild (seed ``seeds[0]``) and synthetic (``seeds[1]``), plus blank and noise images (which it must
    flag). Real eyes should essentially never be flagged on exact masks; a flagged prediction is a bad mask.
    Returns {"<domain>_exact": rate, "<domain>_pred": rate, "<domain>_pred_mean_iou_flagged": ...,
    "<domain>_pred_mean_iou_kept": ..., "blank_noise_flagged": rate, "reasons": {...}}."""
    from maskpurify.nets.segmenter import Segmenter, load_segmenter, predict_masks
    from maskpurify.world.renderer import render_samples

    model = segmenter if isinstance(segmenter, Segmenter) else load_segmenter(segmenter)
    out: dict[str, Any] = {"n": n, "reasons": {}}
    for domain, seed in zip(("wild", "synthetic"), seeds):
        batch = render_samples(domain, n, seed=seed)
        pred = predict_masks(model, batch.images)
        exact_flags = eye_problems(batch.masks)
        pred_flags = eye_problems(pred)
        flagged = np.array([f is not None for f in pred_flags])
        out[f"{domain}_exact"] = float(np.mean([f is not None for f in exact_flags]))
        out[f"{domain}_pred"] = float(flagged.mean())
        for key, keep in (("flagged", flagged), ("kept", ~flagged)):
            iou = iou_from_confusion(confusion_matrix(pred[keep], batch.masks[keep], 4)) if keep.any() else None
            out[f"{domain}_pred_mean_iou_{key}"] = float(np.nanmean(iou[1:])) if iou is not None else None
        reasons: dict[str, int] = {}
        for f in pred_flags:
            if f is not None:
                key = re.sub(r"\d+", "N", f.split(" (")[0])
                reasons[key] = reasons.get(key, 0) + 1
        out["reasons"][f"{domain}_pred"] = reasons
    rng = np.random.default_rng(0)
    blank = [np.full((36, 60, 3), v, np.uint8) for v in (0, 128, 255)]
    noise = [rng.integers(0, 256, (36, 60, 3), dtype=np.uint8) for _ in range(20)]
    smooth = [cv2.GaussianBlur(rng.integers(0, 256, (36, 60, 3), dtype=np.uint8), (0, 0), sigma)
              for sigma in (1.0, 2.0) for _ in range(10)]
    images = np.stack(blank + noise + smooth)
    out["blank_noise_flagged"] = float(np.mean([p is not None for p in eye_problems(predict_masks(model, images))]))
    out["blank_noise_n"] = len(images)
    return out
