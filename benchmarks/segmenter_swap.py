"""What another segmenter's masks do to the purification: the shipped purifier's gaze rows with masks from each
segmenter given, on wild eyes of the tuning set (seed 2002, never the demo's test eyes).

Per segmenter: ours (an eye whose mask fails the eye check is passed through, as ``purify --masks auto`` does), the
grey-image control with the same masks, clean synthetic eyes purified with their own inferred masks, and how many
eyes failed the eye check; each scored by the shipped gaze estimator (trained on synthetic eyes only). Compare the
differences with the purifier's seed spread (docs/results.md, ± 0.14° on this set).

Run: .venv/bin/python benchmarks/segmenter_swap.py SEGMENTER [SEGMENTER ...] [--out PATH]
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

import numpy as np

from maskpurify.checkpoints import WEIGHTS_DIR
from maskpurify.fileio import atomic_write_json
from maskpurify.metrics.gaze import mean_error_deg
from maskpurify.nets.gaze import load_gaze_net
from maskpurify.purification.engine import Purification, eye_check
from maskpurify.world.renderer import render_samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("segmenters", nargs="+", help="segmenter checkpoints (weights/segmenter is the shipped one)")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=2002)
    parser.add_argument("--out", default="benchmarks/results/segmenter_swap.json")
    args = parser.parse_args()
    wild = render_samples("wild", args.n, (36, 60), seed=args.seed)
    synthetic = render_samples("synthetic", args.n, (36, 60), seed=args.seed)
    gaze_net = load_gaze_net(WEIGHTS_DIR / "gaze")

    def error(images: np.ndarray) -> float:
        return round(mean_error_deg(gaze_net, images, wild.gaze), 3)

    rows = {}
    for segmenter in args.segmenters:
        engine = Purification.load(backend="torch", segmenter=segmenter)
        masks = engine.auto_masks(wild.images)
        failed = np.array([p is not None for p in eye_check(masks)], bool)
        purified = np.where(failed[:, None, None, None], wild.images, engine.purify_arrays(wild.images, masks))
        rows[segmenter] = {
            "ours": error(purified), "control: grey image": error(np.asarray(
                engine.purify_arrays(np.full_like(wild.images, 128), masks))),
            "control: clean synthetic eyes purified": error(
                engine.purify_arrays(synthetic.images, engine.auto_masks(synthetic.images))),
            "failed_eye_check": int(failed.sum())}
        print(segmenter, rows[segmenter], flush=True)
    atomic_write_json(args.out, {"command": shlex.join([os.path.relpath(sys.executable), *sys.argv]), "n": args.n,
                                 "seed": args.seed, "raw": error(wild.images), "mean_error_deg": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
