"""The demo's purification rows run on PyTorch and on ONNX Runtime: do the numbers of ``make demo`` hold when the
default backend (``auto``) runs the shipped exports?

The demo's test eyes (1000 wild eyes, seed 9001, and their synthetic twins), the shipped segmenter and purifier,
the demo's eye check (an eye whose automatic mask fails it is passed through) and its scorer (the shipped gaze
estimator, trained on synthetic eyes only). Per backend: ours with inferred masks, the grey-image control, the
clean synthetic twins purified, and ours with the exact masks (oracle); plus the share of inferred mask pixels and
eye-check verdicts on which the backends agree and the largest pixel difference of ours.
Run: .venv/bin/python benchmarks/onnx_demo_parity.py [--out benchmarks/results/onnx_demo_parity.json]
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from maskpurify.checkpoints import WEIGHTS_DIR
from maskpurify.fileio import atomic_write_json
from maskpurify.metrics.gaze import angular_error_deg
from maskpurify.nets.gaze import load_gaze_net, predict_gaze
from maskpurify.purification.engine import Purification, eye_check
from maskpurify.world.renderer import render_samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=9001)
    parser.add_argument("--out", default="benchmarks/results/onnx_demo_parity.json")
    args = parser.parse_args()
    wild = render_samples("wild", args.n, (36, 60), seed=args.seed)
    synthetic = render_samples("synthetic", args.n, (36, 60), seed=args.seed)
    gaze_net = load_gaze_net(WEIGHTS_DIR / "gaze")

    def error(images: np.ndarray) -> float:
        pred = predict_gaze(gaze_net, torch.from_numpy(images)).numpy().astype(np.float64)
        return round(float(angular_error_deg(pred, wild.gaze.astype(np.float64)).mean()), 3)

    rows, ours, masks_by, verdicts_by = {}, {}, {}, {}
    for backend in ("torch", "onnx"):
        engine = Purification.load(backend=backend)
        masks = engine.auto_masks(wild.images)
        not_an_eye = np.array([p is not None for p in eye_check(masks)], bool)[:, None, None, None]
        purified = np.where(not_an_eye, wild.images, engine.purify_arrays(wild.images, masks))
        grey = engine.purify_arrays(np.full_like(wild.images, 128), masks)
        clean = engine.purify_arrays(synthetic.images, engine.auto_masks(synthetic.images))
        exact = engine.purify_arrays(wild.images, wild.masks)
        rows[backend] = {"ours": error(purified), "control: grey image": error(grey),
                         "control: clean synthetic eyes purified": error(clean),
                         "oracle: ours with exact masks": error(exact)}
        ours[backend], masks_by[backend], verdicts_by[backend] = purified, masks, not_an_eye.ravel()
    result = {
        "command": shlex.join([os.path.relpath(sys.executable), *sys.argv]), "n": args.n, "seed": args.seed,
        "mean_error_deg": rows,
        "mask_pixels_agree": round(float((masks_by["torch"] == masks_by["onnx"]).mean()), 6),
        "eye_check_verdicts_agree": round(float((verdicts_by["torch"] == verdicts_by["onnx"]).mean()), 6),
        "ours_max_abs_grey_levels": int(np.abs(ours["torch"].astype(int) - ours["onnx"].astype(int)).max()),
        "ours_mean_abs_grey_levels": round(float(np.abs(ours["torch"].astype(int) - ours["onnx"].astype(int)).mean()),
                                           4),
    }
    atomic_write_json(Path(args.out), result)
    for name in rows["torch"]:
        print(f"{name:<42} torch {rows['torch'][name]:6.3f}°   onnx {rows['onnx'][name]:6.3f}°")
    print(f"mask pixels agree {result['mask_pixels_agree']:.4%}, eye-check verdicts agree "
          f"{result['eye_check_verdicts_agree']:.2%}, ours differs by at most {result['ours_max_abs_grey_levels']} "
          f"grey levels (mean {result['ours_mean_abs_grey_levels']})")


if __name__ == "__main__":
    main()
