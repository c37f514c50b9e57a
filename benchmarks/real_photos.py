"""Purifier checkpoints on real eyes: the real-photo check set through the one pipeline, with every measure the
real-photo work is judged by.

Two ways in, as a user meets them:
- ``crops``: each eye as an eye crop (the purifier's framing) through ``Pipeline.run`` — the shipped segmenter's
  mask and the pipeline's eye check, exactly what ``maskpurify purify --input eye.png`` does;
- ``faces``: each eye with the FaceMesh reference mask, as the face path purifies face photos (FaceMesh's mask,
  the same eye check, and the face path's closed-eye rule on the eyelid opening).

Per checkpoint and way in: open eyes passed through, closed eyes purified (and 20 blank, 20 noise crops), the
artefact measures (a) new dark outside the iris, (b) extra dark blobs in the iris, (c) corner colour ratio
(:mod:`maskpurify.evaluation.real_photos`), the binocular check (mean |yaw_left - yaw_right| with the shipped
synthetic-trained estimator, before and after), and for ``crops`` the automatic masks' IoU against FaceMesh
(iris = iris+pupil, sclera) and the any-size check (the same crop at 27x45, 36x60, 48x80, 72x120: same verdict,
mask IoU after resizing). Tune on ``--half tune``; report on ``--half report`` only.

Run: .venv/bin/python benchmarks/real_photos.py [--half tune] [--checkpoint CKPT ...] [--face-masks M] [--segmenter CKPT]
     [--out PATH]
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from maskpurify.checkpoints import WEIGHTS_DIR
from maskpurify.evaluation.real_photos import WORKING_SIZE, binocular_yaw_gap, load_real_photos, score_purifier, \
    working_crops, working_masks
from maskpurify.fileio import atomic_write_json
from maskpurify.masks import IRIS, SCLERA, label_image
from maskpurify.nets.gaze import load_gaze_net, predict_gaze
from maskpurify.purification import faces
from maskpurify.purification.pipeline import Pipeline

SIZES = ((27, 45), (36, 60), (48, 80), (72, 120))


def opening_from_mask(mask: np.ndarray, eye_width_px: float) -> float:
    """The face path's eyelid opening (:attr:`maskpurify.purification.faces.Eye.opening`) from a FaceMesh label
    map: the eye region's area over the squared corner distance."""
    return float((mask > 0).sum()) / max(eye_width_px, 1e-6) ** 2


def gaze_fn(name: str = "gaze") -> Any:
    """The shipped estimator (``gaze``: images; ``gaze_from_labels``: label images) as degrees."""
    net = load_gaze_net(WEIGHTS_DIR / name)
    return lambda crops: np.degrees(predict_gaze(net, torch.from_numpy(np.ascontiguousarray(crops))).numpy())


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else float("nan")


def iris_moved_to(facemesh: np.ndarray, segmenter: np.ndarray) -> np.ndarray:
    """FaceMesh's label map with its iris and pupil moved (whole pixels) so that their centroid is the segmenter's
    iris centroid, cut by FaceMesh's lids: FaceMesh's eye shape, the segmenter's iris position."""
    from scipy import ndimage

    disc_f, disc_s = facemesh >= IRIS, segmenter >= IRIS
    if disc_f.sum() < 5 or disc_s.sum() < 5:
        return facemesh
    (fy, fx), (sy, sx) = ndimage.center_of_mass(disc_f), ndimage.center_of_mass(disc_s)
    eye = facemesh > 0
    disc = np.roll(facemesh, (int(round(sy - fy)), int(round(sx - fx))), (0, 1))
    out = np.where(eye, SCLERA, 0).astype(np.uint8)
    out[(disc >= IRIS) & eye] = disc[(disc >= IRIS) & eye]
    return out


def score(checkpoint: str | None, half: str, way: str, face_masks: str = "facemesh",
          segmenter: str | None = None) -> dict[str, Any]:
    pipeline = Pipeline.load(checkpoint, segmenter, device="cpu", faces_mode="never")
    data = load_real_photos(half)
    crops, masks = working_crops(data.images), working_masks(data.masks)
    sides = ["right" if f else "left" for f in data.canonical_flip]
    extra: dict[str, Any] = {}
    if way == "faces":
        # the working framing is BOX_SCALE x the corner distance wide, so the corners span 60 / BOX_SCALE px
        openings = np.array([opening_from_mask(m, WORKING_SIZE[1] / faces.BOX_SCALE) for m in masks])
        extra["opening"] = {"min_open": float(openings[data.open].min()), "max_closed":
                            float(openings[~data.open].max()) if (~data.open).any() else None,
                            "threshold": faces.MIN_OPENING}
        used = masks
        if face_masks != "facemesh":  # the face path's geometry and closed-eye rule, another mask to purify with
            auto = np.stack([r.mask for r in pipeline.run(list(crops), None, None, sides)])
            used = auto if face_masks == "segmenter" else np.stack([iris_moved_to(f, a) for f, a in zip(masks, auto)])
            extra["face_masks"] = face_masks

        def purify_fn(c: np.ndarray, flips: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            done = pipeline.engine.purify_batch(c, list(used), [f"eye{i}" for i in range(len(c))], sides,
                                                automatic=True)
            ok = np.array([p is None for p in done.problems]) & (openings >= faces.MIN_OPENING)
            return np.where(ok[:, None, None, None], done.images, c), ok
    else:
        results = pipeline.run(list(crops), None, None, sides)  # once: the scores, the IoU and the control read it
        used = auto = np.stack([r.mask for r in results])

        def purify_fn(c: np.ndarray, flips: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            assert np.array_equal(c, crops), "score_purifier cuts the same crops"
            return np.stack([r.image for r in results]), np.array([r.purified for r in results])

        disc, ref_disc = auto >= IRIS, masks >= IRIS
        extra["mask_iou_vs_facemesh"] = {"iris": iou(disc, ref_disc), "sclera": iou(auto == SCLERA, masks == SCLERA),
                                         "iris_per_eye_mean": float(np.nanmean([iou(a, b) for a, b in
                                                                                zip(disc, ref_disc)])),
                                         "sclera_per_eye_mean": float(np.nanmean([
                                             iou(a == SCLERA, b == SCLERA) for a, b in zip(auto, masks)]))}
        by_size = {}
        for size in SIZES:
            resized = [cv2.resize(c, (size[1], size[0]), interpolation=cv2.INTER_AREA) for c in
                       working_crops(data.images, (72, 120))]
            rows = pipeline.run(resized, None, None, sides)
            by_size[size] = ([r.purified for r in rows], [r.eyes[0].mask for r in rows])
        base_verdict, base_masks = by_size[(36, 60)]
        extra["any_size"] = {
            f"{h}x{w}": {"same_verdict": float(np.mean([a == b for a, b in zip(v, base_verdict)])),
                         "mask_iou_min": float(np.nanmin([np.nanmean([iou(a == k, b == k) for k in (1, 2, 3)])
                                                          for a, b in zip(m, base_masks)])),
                         "mask_iou_mean": float(np.nanmean([np.nanmean([iou(a == k, b == k) for k in (1, 2, 3)])
                                                            for a, b in zip(m, base_masks)]))}
            for (h, w), (v, m) in by_size.items() if (h, w) != (36, 60)}
    result = score_purifier(purify_fn, half, WORKING_SIZE, gaze_fn(), pass_masks=True, data=data)
    # the control: the same binocular check on gaze read from the mask alone (the mask this way in purifies with)
    result["binocular_yaw_gap_mask_alone"] = binocular_yaw_gap(label_image(used), data, gaze_fn("gaze_from_labels"))[0]
    rng = np.random.default_rng(0)
    negatives = [np.full((36, 60, 3), v, np.uint8) for v in np.linspace(0, 255, 20).astype(np.uint8)]
    negatives += [rng.integers(0, 256, (36, 60, 3), dtype=np.uint8) for _ in range(20)]
    result["blank_noise_purified"] = float(np.mean([r.purified for r in pipeline.run(negatives)]))
    result["damaged_names"] = [r["name"] for r in result["per_eye"]
                               if r["purified"] and (r["damaged_a"] or r["damaged_b"])]
    result.pop("per_eye")
    return {**result, **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", nargs="*", default=[None], help="purifier checkpoints (default: shipped)")
    parser.add_argument("--half", choices=("tune", "report"), default="tune")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--segmenter", default=None, help="segmenter checkpoint (default: shipped)")
    parser.add_argument("--face-masks", choices=("facemesh", "segmenter", "iris-moved"), default="facemesh",
                        help="the mask the face way purifies with: FaceMesh's (the face path's), the segmenter's, "
                             "or FaceMesh's with its iris moved to the segmenter's iris centroid")
    parser.add_argument("--out", default="benchmarks/results/real_photos.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = {}
    for checkpoint in args.checkpoint:
        name = checkpoint or "shipped"
        rows[name] = {way: score(checkpoint, args.half, way, args.face_masks, args.segmenter)
                      for way in ("crops", "faces")}
        for way, r in rows[name].items():
            print(f"{name} [{way}] open passed through {1 - r['open_passed']:.3f}, closed purified "
                  f"{r['not_open_passed']:.3f}, blank/noise purified {r['blank_noise_purified']:.3f}; damaged (a) "
                  f"{r['damaged_a']:.3f} (b) {r['damaged_b']:.3f} (at the iris edge {r['damaged_b_edge']:.3f}, at its "
                  f"centre {r['damaged_b_centre']:.3f}); corner ratio {r['corner_ratio_mean']:.2f}; "
                  f"binocular yaw gap {r['binocular_yaw_gap_before']:.2f} -> {r['binocular_yaw_gap_after']:.2f} "
                  f"(mask alone {r['binocular_yaw_gap_mask_alone']:.2f})"
                  + (f"; IoU iris {r['mask_iou_vs_facemesh']['iris']:.3f} sclera "
                     f"{r['mask_iou_vs_facemesh']['sclera']:.3f}" if "mask_iou_vs_facemesh" in r else ""))
    command = shlex.join([os.path.relpath(sys.executable), *sys.argv])
    atomic_write_json(args.out, {"command": command, "half": args.half, "results": rows})


if __name__ == "__main__":
    main()
