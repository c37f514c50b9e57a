"""Seed spread of the purifier recipe: the same training run at several seeds, each scored on one wild tuning set.

Tells which differences between purifiers (e.g. the ablation rows of ``make demo``) are larger than what the seed
alone moves. Every run trains the shipped recipe (``--set`` overrides it, e.g. the shared training sets of
scripts/make_weights.sh); ``--ablate TERM`` sets that loss weight to 0. Each purifier is scored with the shipped
gaze estimator on a wild set that is neither the training set nor the demo's test set (seed 2002), purified as
``maskpurify purify --masks auto`` would: masks inferred by the segmenter, eyes without a plausible mask passed
through. Beside it stands the control a shortcut would pass: the gaze read off the same inferred masks alone.
Runs resume after a kill, finished ones are reused.
Run: .venv/bin/python benchmarks/seed_spread.py --seeds 0 1 2 [--ablate TERM] [--threads 1] [--segmenter CKPT]
[--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from maskpurify.checkpoints import WEIGHTS_DIR
from maskpurify.config import load_config, parse_size
from maskpurify.fileio import atomic_write_json
from maskpurify.losses import TERMS
from maskpurify.metrics.gaze import mean_error_deg
from maskpurify.nets.gaze import load_gaze_net
from maskpurify.nets.purifier import load_purifier
from maskpurify.nets.segmenter import load_segmenter, predict_masks
from maskpurify.masks import label_image
from maskpurify.purification import Purification
from maskpurify.world.dataset import load_arrays_checked, render_once
from maskpurify.training.purifier import PurifierTrainConfig, train_purifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ablate", choices=TERMS, help="train with this loss term removed")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of the training config (repeatable)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--test-n", type=int, default=1000)
    parser.add_argument("--test-seed", type=int, default=2002)
    parser.add_argument("--work", default="runs/seed_spread")
    parser.add_argument("--segmenter", default=str(WEIGHTS_DIR / "segmenter"),
                        help="the mask provider at test time (and the trainer's, unless --set segmenter=...)")
    parser.add_argument("--out", help="JSON path (default benchmarks/results/seed_spread_<variant>.json)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    variant = f"no_{args.ablate}" if args.ablate else "full"
    overrides = list(args.overrides) + ([f"loss.{args.ablate}=0"] if args.ablate else [])
    work = Path(args.work)
    size = parse_size(PurifierTrainConfig().data.size)
    test = load_arrays_checked(render_once(work / "data" / f"wild_n{args.test_n}_seed{args.test_seed}", "wild",
                                           args.test_n, size, args.test_seed))
    gaze_net = load_gaze_net(WEIGHTS_DIR / "gaze")
    truth = test.gaze.astype(np.float64)
    segmenter = load_segmenter(args.segmenter)

    names = [str(i) for i in range(len(test.images))]
    errors: dict[int, float] = {}
    for seed in args.seeds:
        config = load_config(PurifierTrainConfig, overrides=[f"segmenter={args.segmenter}", *overrides, f"seed={seed}",
                                                             f"num_threads={args.threads}"])
        run = work / f"{variant}_seed{seed}"
        if not (run / "purifier.safetensors").is_file():
            train_purifier(config, run, progress=False)
        engine = Purification(load_purifier(run / "purifier"), segmenter, batch_size=256)
        errors[seed] = mean_error_deg(gaze_net, engine.purify_batch(test.images, None, names).images, truth)
        print(f"{variant} seed {seed}: {errors[seed]:.3f} deg", flush=True)
    masks = predict_masks(segmenter, test.images)
    mask_alone = mean_error_deg(load_gaze_net(WEIGHTS_DIR / "gaze_from_labels"), label_image(masks), truth)
    values = np.array(list(errors.values()))
    result = {
        "command": shlex.join([sys.executable.split(os.sep)[-1], *sys.argv]),
        "variant": variant, "overrides": overrides,
        "test_set": {"domain": "wild", "n": args.test_n, "seed": args.test_seed, "masks": "inferred"},
        "segmenter": args.segmenter,
        "gaze_estimator": "weights/gaze",
        "raw_deg": mean_error_deg(gaze_net, test.images, truth),
        "mask_alone_deg": mask_alone,
        "mean_error_deg_by_seed": errors,
        "mean_deg": float(values.mean()),
        "std_deg": float(values.std(ddof=1)) if len(values) > 1 else None,
    }
    out = Path(args.out or f"benchmarks/results/seed_spread_{variant}.json")
    atomic_write_json(out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
