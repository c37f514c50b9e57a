"""The LPW-style experiment on the embedded near-infrared world: does purifying a hard eye-camera frame help a pupil
detector trained on synthetic frames only?

LPW (Labelled Pupils in the Wild) scores a pupil detector by its detection rate: the share of frames whose detected
pupil centre lies within 5 px of the label in its 640x480 frames. The frames here are 48x64 (LPW's at a tenth), so
errors are scaled by 10 into LPW pixels (:mod:`maskpurify.metrics.pupil`): 5 LPW px is half a pixel here.

The ``nir-wild`` test frames stand in for LPW's hard frames, so every mask comes from the near-IR segmenter (the
real-data rule); the renderer's exact masks appear only in the *oracle* row. Rows, each at 5 LPW px and over the
curve 1..15 px; the learned detectors over their seeds (mean, and the spread: max - min):

  synthetic (floor)        the synthetic-trained detector on the clean nir-synthetic twins (same eyes, same pose)
  raw                      the synthetic-trained detector on the nir-wild frames as they are
  purified                 ... on the frames purified with the segmenter's masks (``maskpurify purify``'s path:
                           frames whose mask is no plausible eye pass through unchanged)
  mask alone               the segmenter's pupil centroid (no image, no detector): what the mask carries
  classical                Pupil Labs' 2D detector (:mod:`maskpurify.baselines.pupil`) on raw / purified frames
  domain-randomised        a detector trained under the degradation model, on raw / purified frames
  control: grey            a uniform grey image with the same masks, purified, read by the synthetic detector
  control: clean purified  the nir-synthetic twins purified (must stay within 1 point of the floor)
  oracle: exact mask       the exact mask's pupil centroid

Paired by detector seed (:func:`paired_margins`): each seed's detector reads raw and purified frames alike, so a
seed that reads every nir-wild frame worse moves both rows; the margin purified - raw is taken per seed, with its own
spread, beside the purified - grey control and clean purified - floor margins.

Then raw, purified, mask alone and domain-randomised again under conditions outside the nir-wild preset, and a
short LPW-layout video (``K.avi`` + ``K.txt``) purified with the LPW driver and read back with its labels.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from maskpurify.baselines.pupil import classical_available, detect_pupils_classical
from maskpurify.checkpoints import WEIGHTS_DIR
from maskpurify.config import parse_size
from maskpurify.errors import UserError
from maskpurify.fileio import atomic_write_bytes, encode_image
from maskpurify.formats.lpw import LPWReader, write_lpw_video
from maskpurify.masks import PUPIL, colourise, region_centroid
from maskpurify.metrics.pupil import LPW_CURVE, LPW_THRESHOLD, detection_curve, detection_rate, pupil_errors
from maskpurify.nets.gaze import load_gaze_net
from maskpurify.nets.pupil import predict_pupil
from maskpurify.nets.segmenter import load_segmenter
from maskpurify.nets.purifier import load_purifier
from maskpurify.purification.video import purify_lpw
from maskpurify.purification.engine import Purification
from maskpurify.purification.pipeline import Pipeline
from maskpurify.world.domains import DomainPreset, nir_wild_preset
from maskpurify.world.renderer import LPW_FPS, render_samples, render_sequence

#: The near-IR world's shipped networks (``scripts/make_nir_weights.sh``).
NIR_WEIGHTS = WEIGHTS_DIR / "nir"


@dataclass
class LPWConfig:
    """The LPW-style experiment: test frames, the shipped near-IR weights, the conditions and the video."""

    n: int = 1000
    #: nir-wild test frames and their nir-synthetic twins share this seed (never used in training)
    seed: int = 9401
    size: str = "48x64"
    weights: str = str(NIR_WEIGHTS)
    #: the learned detectors' training seeds (``pupil_s{seed}``, ``pupil_randomised_s{seed}``)
    #: (seed 3 is the purifier's pupil guide, ``pupil_guide``: never a scored detector)
    detector_seeds: tuple[int, ...] = (0, 1, 2, 4, 5)
    conditions: bool = True
    conditions_n: int = 500
    conditions_seed: int = 7411
    #: the purified LPW-layout video: frames (2 s at LPW's 95 fps), frame size, seed
    video_frames: int = 190
    video_size: str = "120x160"
    video_seed: int = 9501
    batch_size: int = 256


def _conditions() -> dict[str, DomainPreset]:
    """Near-IR conditions outside the nir-wild preset (each a nir-wild preset pushed past its ranges)."""
    base = nir_wild_preset()
    return {
        "sensor noise x2": dataclasses.replace(base, name="nir-noise", noise_sigma=(0.08, 0.12)),
        "strong defocus": dataclasses.replace(base, name="nir-defocus", blur_prob=1.0, blur_sigma=(1.5, 2.2)),
        "under-exposed": dataclasses.replace(base, name="nir-dark", exposure_ev=(-2.2, -1.6)),
        "very low contrast": dataclasses.replace(base, name="nir-flat", contrast=(0.2, 0.35)),
        "glasses on every frame": dataclasses.replace(base, name="nir-glasses", glare_prob=1.0,
                                                      glare_strength=(0.5, 0.8)),
    }


class _Nets:
    """The shipped near-IR networks, loaded once."""

    def __init__(self, config: LPWConfig) -> None:
        weights = Path(config.weights)
        needed = ["purifier", "segmenter"] + [f"pupil_s{s}" for s in config.detector_seeds]
        missing = [name for name in needed if not (weights / f"{name}.safetensors").is_file()]
        if missing:
            raise UserError(f"{weights}: the near-IR weights {', '.join(missing)} are missing "
                            "(scripts/make_nir_weights.sh makes them)")
        self.engine = Purification(load_purifier(weights / "purifier"), load_segmenter(weights / "segmenter"),
                                   batch_size=config.batch_size)
        self.synthetic = [load_gaze_net(weights / f"pupil_s{s}") for s in config.detector_seeds]
        self.randomised = [load_gaze_net(weights / f"pupil_randomised_s{s}") for s in config.detector_seeds
                           if (weights / f"pupil_randomised_s{s}.safetensors").is_file()]


def _score(preds: list[np.ndarray], truth: np.ndarray, width: int) -> dict[str, Any]:
    """Detection rate at 5 LPW px (mean over the predictions' seeds, each seed's, and the spread) and the mean
    curve."""
    errors = [pupil_errors(p, truth, width) for p in preds]
    rates = [detection_rate(e) for e in errors]
    curves = np.mean([detection_curve(e) for e in errors], axis=0)
    finite = np.concatenate([e[np.isfinite(e)] for e in errors])
    return {"rate": float(np.mean(rates)), "rates": rates, "spread": float(max(rates) - min(rates)),
            "curve": [float(c) for c in curves], "median_err_lpw_px": float(np.median(finite)) if finite.size
            else float("nan"), "missed": float(np.mean([np.isinf(e).mean() for e in errors]))}


def _learned(models: list[torch.nn.Module], images: np.ndarray) -> list[np.ndarray]:
    return [predict_pupil(m, torch.from_numpy(np.ascontiguousarray(images))).numpy() for m in models]


def mask_pupil_centres(masks: np.ndarray) -> np.ndarray:
    """(N, 2) pupil centroids (x, y) of label maps; NaN where a mask has no pupil pixels."""
    out = np.full((len(masks), 2), np.nan)
    for i, mask in enumerate(masks):
        centre = region_centroid(mask, PUPIL)
        if centre is not None:
            out[i] = centre
    return out


def _purified(engine: Purification, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Purified frames, the masks used and how many frames passed through (``maskpurify purify``'s rule)."""
    result = engine.purify_batch(images, None, [f"frame {i}" for i in range(len(images))])
    return result.images, result.masks, sum(p is not None for p in result.problems)


def run_lpw_experiment(config: LPWConfig, out: Path) -> dict[str, Any]:
    """Every row of the module docstring into a results dict; writes the example frames and the video under
    ``out``."""
    start = time.time()
    size = parse_size(config.size)
    nets = _Nets(config)
    engine = nets.engine
    wild = render_samples("nir-wild", config.n, size, config.seed)
    clean = render_samples("nir-synthetic", config.n, size, config.seed)
    truth, width = wild.pupil_center, size[1]
    purified, masks, passed = _purified(engine, wild.images)
    clean_purified, _, clean_passed = _purified(engine, clean.images)
    grey = engine.purify_arrays(np.full_like(wild.images, 128), masks)
    notes: list[str] = []
    rows: list[dict[str, Any]] = []

    def row(name: str, group: str, preds: list[np.ndarray], target: np.ndarray = truth) -> None:
        rows.append({"name": name, "group": group, "seeds": len(preds), **_score(preds, target, width)})

    row("synthetic (floor)", "reference", _learned(nets.synthetic, clean.images), clean.pupil_center)
    row("raw", "raw", _learned(nets.synthetic, wild.images))
    row("purified", "ours", _learned(nets.synthetic, purified))
    row("mask alone", "mask only", [mask_pupil_centres(masks)])
    if classical_available():
        row("classical (Pupil Labs 2D), raw", "baseline", [detect_pupils_classical(wild.images)])
        row("classical (Pupil Labs 2D), purified", "baseline", [detect_pupils_classical(purified)])
    else:
        notes.append("classical rows skipped: pupil-detectors is not installed (make setup installs it)")
    if nets.randomised:
        row("domain-randomised, raw", "baseline", _learned(nets.randomised, wild.images))
        row("domain-randomised, purified", "baseline", _learned(nets.randomised, purified))
    else:
        notes.append("domain-randomised rows skipped: no pupil_randomised_s* weights")
    row("control: grey image, same masks, purified", "control", _learned(nets.synthetic, grey))
    row("control: clean nir-synthetic purified", "control", _learned(nets.synthetic, clean_purified),
        clean.pupil_center)
    row("oracle: exact mask's pupil centroid", "oracle", [mask_pupil_centres(wild.masks)])
    results: dict[str, Any] = {
        "rows": rows, "margins": paired_margins(rows), "n": config.n, "size": list(size),
        "threshold_lpw_px": LPW_THRESHOLD, "curve_lpw_px": list(LPW_CURVE), "lpw_px_per_px": 640 / width,
        "passed_through": passed,
        "clean_passed_through": clean_passed, "notes": notes,
        "segmenter_pupil_found": float(np.isfinite(mask_pupil_centres(masks)[:, 0]).mean())}
    if config.conditions:
        results["conditions"] = _conditions_rows(config, nets, size)
    out.mkdir(parents=True, exist_ok=True)
    _examples(out / "examples.png", wild.images, masks, purified, clean.images, truth,
              _learned(nets.synthetic[:1], wild.images)[0], _learned(nets.synthetic[:1], purified)[0])
    results["video"] = _video(config, nets, out)
    results["seconds"] = round(time.time() - start, 1)
    return results


#: The paired margins: (name, row, reference row), both rows read by the same synthetic-trained detectors.
MARGINS = (("purified - raw", "purified", "raw"),
           ("purified - grey control", "purified", "control: grey image, same masks, purified"),
           ("clean purified - floor", "control: clean nir-synthetic purified", "synthetic (floor)"))


def paired_margins(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per detector seed, the rate of one row minus its reference's (:data:`MARGINS`): the mean margin, each seed's,
    its spread (max - min) and the smallest; a margin larger than its own spread, positive on every seed, is one
    the detector's seed does not explain."""
    by_name = {r["name"]: r for r in rows}
    out = []
    for name, row, reference in MARGINS:
        if row not in by_name or reference not in by_name:
            continue
        per_seed = [a - b for a, b in zip(by_name[row]["rates"], by_name[reference]["rates"], strict=True)]
        out.append({"name": name, "margin": float(np.mean(per_seed)), "per_seed": per_seed,
                    "spread": float(max(per_seed) - min(per_seed)), "smallest": float(min(per_seed))})
    return out


def _conditions_rows(config: LPWConfig, nets: _Nets, size: tuple[int, int]) -> list[dict[str, Any]]:
    rows = []
    for name, preset in _conditions().items():
        frames = render_samples(preset, config.conditions_n, size, config.conditions_seed)
        purified, masks, _ = _purified(nets.engine, frames.images)
        scores = {"raw": _score(_learned(nets.synthetic, frames.images), frames.pupil_center, size[1]),
                  "purified": _score(_learned(nets.synthetic, purified), frames.pupil_center, size[1]),
                  "mask alone": _score([mask_pupil_centres(masks)], frames.pupil_center, size[1])}
        if nets.randomised:
            scores["domain-randomised"] = _score(_learned(nets.randomised, frames.images), frames.pupil_center,
                                                 size[1])
        rows.append({"condition": name, **{k: {"rate": v["rate"], "spread": v["spread"]} for k, v in scores.items()}})
    return rows


def _video(config: LPWConfig, nets: _Nets, out: Path) -> dict[str, Any]:
    """A nir-wild recording in LPW's layout, purified by the LPW driver, read back with its labels."""
    size = parse_size(config.video_size)
    sequence = render_sequence("nir-wild", config.video_frames, size, config.video_seed)
    source, target = out / "video", out / "video_purified"
    write_lpw_video(source, "1", sequence.images, sequence.pupil_center, LPW_FPS)
    with Pipeline(nets.engine, "never", video=True) as pipeline:
        stats = purify_lpw(pipeline, source, target, overwrite=True, progress=False)
    raw_pairs, purified_pairs = list(LPWReader(source)), list(LPWReader(target))
    labels_kept = len(raw_pairs) == len(purified_pairs) and all(
        np.array_equal(a.pupil_center, b.pupil_center) for a, b in zip(raw_pairs, purified_pairs))

    def rate(pairs: list[Any]) -> float:
        frames = np.stack([p.image for p in pairs])
        preds = _learned(nets.synthetic, frames)
        return float(np.mean([detection_rate(pupil_errors(p, np.stack([q.pupil_center for q in pairs]), size[1]))
                              for p in preds]))

    return {"frames": config.video_frames, "fps": LPW_FPS, "size": list(size), "video": str(target / "1.avi"),
            "frames_read_back": len(purified_pairs), "fps_read_back": stats.fps, "labels_kept": labels_kept,
            "raw_rate": rate(raw_pairs), "purified_rate": rate(purified_pairs)}


def _examples(path: Path, wild: np.ndarray, masks: np.ndarray, purified: np.ndarray, clean: np.ndarray,
              truth: np.ndarray, raw_pred: np.ndarray, purified_pred: np.ndarray, rows: int = 6,
              scale: int = 4) -> None:
    """A figure: per frame the nir-wild frame, the segmenter's mask, the purified frame and the clean twin,
    enlarged; the label (green) and the synthetic-trained detector's centre (red) drawn on raw and purified."""
    tiles = []
    for i in range(min(rows, len(wild))):
        cells = [wild[i], colourise(masks[i]), purified[i], clean[i]]
        big = [cv2.resize(np.ascontiguousarray(c), None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
               for c in cells]
        for cell, pred in ((big[0], raw_pred[i]), (big[2], purified_pred[i])):
            for (x, y), colour in ((truth[i], (0, 220, 0)), (pred, (230, 0, 0))):
                cv2.circle(cell, (int(round((x + 0.5) * scale)), int(round((y + 0.5) * scale))), 3, colour, -1)
        gap = np.full((big[0].shape[0], 4, 3), 255, np.uint8)
        tiles.append(np.concatenate([part for c in big for part in (c, gap)][:-1], axis=1))
        tiles.append(np.full((4, tiles[-1].shape[1], 3), 255, np.uint8))
    atomic_write_bytes(path, encode_image(np.concatenate(tiles[:-1]), ".png"))


def lpw_table(results: dict[str, Any]) -> str:
    """The LPW-style table as text: detection rate at 5 LPW px (mean over seeds, spread), median error."""
    lines = [f"{'method (nir-wild frames unless named)':<44} {'rate@5px':>9} {'spread':>7} {'seeds':>5} "
             f"{'median err':>10} {'@10px':>6} {'@15px':>6}"]
    for r in results["rows"]:
        spread = f"{100 * r['spread']:.1f}" if r["seeds"] > 1 else "-"
        lines.append(f"{r['name']:<44} {100 * r['rate']:>8.1f}% {spread:>7} {r['seeds']:>5} "
                     f"{r['median_err_lpw_px']:>8.1f}px {100 * r['curve'][9]:>5.1f}% {100 * r['curve'][14]:>5.1f}%")
    if results.get("margins"):
        lines.append("paired by detector seed (points at 5 px):")
        for m in results["margins"]:
            seeds = " ".join(f"{100 * x:+.1f}" for x in m["per_seed"])
            lines.append(f"  {m['name']:<26} {100 * m['margin']:+6.1f}  spread {100 * m['spread']:4.1f}  "
                         f"smallest {100 * m['smallest']:+5.1f}  per seed {seeds}")
    return "\n".join(lines)


def conditions_table(rows: list[dict[str, Any]]) -> str:
    """Detection rate at 5 LPW px under each condition outside the nir-wild preset."""
    methods = [k for k in rows[0] if k != "condition"]
    lines = [f"{'condition':<24}" + "".join(f"{m:>20}" for m in methods)]
    for r in rows:
        lines.append(f"{r['condition']:<24}" + "".join(
            f"{100 * r[m]['rate']:>12.1f}% ±{100 * r[m]['spread'] / 2:>4.1f}" for m in methods))
    return "\n".join(lines)


__all__ = ["LPWConfig", "conditions_table", "lpw_table", "mask_pupil_centres", "paired_margins",
           "run_lpw_experiment"]
