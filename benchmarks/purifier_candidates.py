"""Score purifier checkpoints side by side on the wild tuning set, with the controls a shortcut would pass.

How the purifier recipe is chosen (README, "Tuning history"): each checkpoint purifies the wild tuning eyes (seed
2002, neither a training set nor the demo's test set) with masks inferred by the segmenter, and is read by the
shipped gaze estimator. Beside it: the gaze read off the same masks alone, a uniform grey image purified with the
same masks, and the clean synthetic twins of the same eyes purified (masks inferred from them). Style: KID of the
purified eyes to synthetic eyes (as a fraction of the raw eyes' KID) and, region by region, the ΔE between their
mean CIELab colour and the synthetic set's (regions from the renderer's masks of the depicted eyes, used only to
measure). Every image is purified (no eye check), as in the demo's rows.
Run: .venv/bin/python benchmarks/purifier_candidates.py CKPT [CKPT ...] [--threads 1] [--out PATH]
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from maskpurify.batch import EyeBatch
from maskpurify.checkpoints import WEIGHTS_DIR
from maskpurify.evaluation.experiment import purifier_transform
from maskpurify.fileio import atomic_write_json
from maskpurify.masks import label_image
from maskpurify.metrics.image import colour_distance, kernel_inception_distance, pooled_features, region_colours
from maskpurify.nets.encoders import build_encoder
from maskpurify.metrics.gaze import mean_error_deg
from maskpurify.nets.gaze import load_gaze_net
from maskpurify.nets.segmenter import load_segmenter, predict_masks
from maskpurify.world.dataset import load_arrays_checked, render_once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", help="purifier checkpoints (path without .safetensors)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--work", default="runs/purifier_candidates", help="where the test sets are rendered")
    parser.add_argument("--segmenter", default=str(WEIGHTS_DIR / "segmenter"))
    parser.add_argument("--out", default="benchmarks/results/purifier_candidates.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.work)

    def render(domain: str, seed: int) -> EyeBatch:
        """2000 eyes: the sets the README's tuning numbers were measured on (the test sets are their first --n)."""
        return load_arrays_checked(render_once(work / f"{domain}_n2000_seed{seed}", domain, 2000, (36, 60), seed))

    wild, twins, reference = render("wild", 2002), render("synthetic", 2002), render("synthetic", 2001)
    n = min(args.n, len(wild))
    wild_images, wild_masks, twin_images = wild.images[:n], wild.masks[:n], twins.images[:n]
    assert wild.gaze is not None and wild_masks is not None
    truth = wild.gaze[:n].astype(np.float64)
    gaze, from_labels = load_gaze_net(WEIGHTS_DIR / "gaze"), load_gaze_net(WEIGHTS_DIR / "gaze_from_labels")
    segmenter = load_segmenter(args.segmenter)
    encoder = build_encoder("efficientnet-lite0", None, 1).eval()
    reference_features = pooled_features(encoder, reference.images)
    reference_colours = region_colours(reference.images, reference.masks)

    def error(images: np.ndarray, net: torch.nn.Module = gaze) -> float:
        return mean_error_deg(net, images, truth)

    def kid(images: np.ndarray) -> float:
        return kernel_inception_distance(pooled_features(encoder, images), reference_features)[0]

    def delta_e(images: np.ndarray) -> dict[str, float]:
        return colour_distance(region_colours(images, wild_masks), reference_colours)

    masks, twin_masks = predict_masks(segmenter, wild_images), predict_masks(segmenter, twin_images)
    raw, floor, raw_kid = error(wild_images), error(twin_images), kid(wild_images)
    result: dict[str, object] = {
        "command": shlex.join([sys.executable.split(os.sep)[-1], *sys.argv]),
        "test_set": {"domain": "wild", "n": n, "seed": 2002, "masks": "inferred"}, "segmenter": args.segmenter,
        "floor_deg": floor, "raw_deg": raw, "mask_alone_deg": error(label_image(masks), from_labels),
        "raw_region_delta_e": delta_e(wild_images), "candidates": {}}
    print(f"floor {floor:.2f}  raw {raw:.2f}  mask alone {result['mask_alone_deg']:.2f} deg", flush=True)
    for path in args.checkpoints:
        purify = purifier_transform(Path(path), "cpu", 256)
        ours = purify(wild_images, masks)
        row = {"ours_deg": error(ours), "grey_control_deg": error(purify(np.full_like(wild_images, 128), masks)),
               "clean_synthetic_deg": error(purify(twin_images, twin_masks)),
               "kid_fraction_of_raw": kid(ours) / raw_kid, "region_delta_e": delta_e(ours)}
        row["gap_closed"] = (raw - row["ours_deg"]) / (raw - floor)
        result["candidates"][path] = row  # type: ignore[index]
        print(path, {k: (round(v, 3) if isinstance(v, float) else {r: round(e, 1) for r, e in v.items()})
                     for k, v in row.items()}, flush=True)
    atomic_write_json(Path(args.out), result)


if __name__ == "__main__":
    main()
