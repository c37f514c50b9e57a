"""Seed spread of the baselines a user would pick instead of purifying: a domain-randomised gaze estimator and SimGAN.

Every run trains a shipped recipe at several seeds through the CLI (so the commands are the ones a user types) and
scores it on the demo's test eyes (wild and synthetic twins at seed 9001, synthetic reference eyes at seed 9101),
under the real-data rule (wild images are unlabelled in training; ours reads masks inferred by the shipped segmenter):

- ``randomised``: ``train-gaze --set degradation.strength=1.0`` (the shipped estimator's recipe, every batch through
  the project's randomised degradation model), read on raw wild eyes and on our purified eyes;
- ``simgan`` (syn2real, the original): the refiner's KID to the wild set before and after refining synthetic eyes,
  its failure-mode checks (change kept, discriminator accuracy, checkerboard share), and the gaze estimator trained
  on refined synthetic eyes (the shipped estimator's recipe, same seed), read on raw wild eyes;
- ``simgan-reverse`` (real2syn): the refiner run wild -> synthetic, KID to the synthetic set before and after, and
  the shipped estimator's error on the refined wild eyes.

Seed 0 of ``randomised`` is the shipped ``weights/gaze_randomised`` (trained by the same command). Runs resume after
a kill and finished ones are reused, so seeds can train in parallel processes and a last call scores them all.
Run: .venv/bin/python benchmarks/baseline_spread.py --seeds 0 1 2 [--only randomised simgan simgan-reverse]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maskpurify.batch import EyeBatch
from maskpurify.checkpoints import WEIGHTS_DIR
from maskpurify.metrics.image import kernel_inception_distance, pooled_features
from maskpurify.fileio import atomic_write_json, atomic_write_text
from maskpurify.geometry import angular_error_deg
from maskpurify.nets.encoders import build_encoder
from maskpurify.nets.gaze import load_gaze_net, predict_gaze
from maskpurify.nets.purifier import load_purifier
from maskpurify.purification import Purification
from maskpurify.world.dataset import load_arrays_checked, render_once

BASELINES = ("randomised", "simgan", "simgan-reverse")
SIZE = (36, 60)


def _maskpurify(*args: str) -> None:
    """One CLI command, as a user would type it; a failure stops the benchmark."""
    subprocess.run([sys.executable, "-m", "maskpurify", *args], check=True)


def _finished(path: Path) -> bool:
    return path.with_suffix(".safetensors").is_file()


def _log_rows(path: Path) -> list[dict[str, str]]:
    """A training log (``log.csv``) as one dict per logged step."""
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _same_training(log: Path, shipped_log: Path) -> bool:
    """Two training logs agree in every logged number but the timing: the same run, step for step."""
    def numbers(path: Path) -> list[dict[str, str]]:
        return [{k: v for k, v in row.items() if k != "sec_per_step"} for row in _log_rows(path)]
    return log.is_file() and shipped_log.is_file() and numbers(log) == numbers(shipped_log)


def checkerboard_share(before: np.ndarray, after: np.ndarray) -> float:
    """Share of the change's energy at the two-pixel period (1 - energy left after a 2x2 box filter): near 1 for
    the checkerboards a sub-pixel refiner fools its discriminator with, near 0 for smooth changes of light and
    colour."""
    change = torch.from_numpy(after.astype(np.float32) - before.astype(np.float32)).permute(0, 3, 1, 2)
    smooth = torch.nn.functional.avg_pool2d(change, 2, stride=1)
    total = float(change[..., :-1, :-1].pow(2).sum())
    return float(1 - smooth.pow(2).sum() / total) if total > 0 else 0.0


def refiner_checks(run: Path, before: np.ndarray, after: np.ndarray) -> dict[str, Any]:
    """The failure modes SimGAN users report: output equal to input, discriminator winning, checkerboards."""
    last = _log_rows(run / "log.csv")[-1]
    return {"mean_abs_change_u8": float(np.abs(after.astype(np.int16) - before.astype(np.int16)).mean()),
            "unchanged_pixel_share": float((after == before).all(-1).mean()),
            "final_d_acc_real": float(last["d_acc_real"]), "final_d_acc_fake": float(last["d_acc_fake"]),
            "checkerboard_share": checkerboard_share(before, after)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", choices=BASELINES, default=list(BASELINES))
    parser.add_argument("--threads", type=int, default=1, help="torch threads of every training run and of scoring")
    parser.add_argument("--train-data", default="runs/task/synthetic_train",
                        help="the shipped estimators' synthetic training set (120k eyes, seed 1001; rendered "
                        "by scripts/make_task_weights.sh)")
    parser.add_argument("--work", default="runs/baseline_spread")
    parser.add_argument("--out", default="benchmarks/results/baseline_spread.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    train = ["--quiet", "--set", f"num_threads={args.threads}"]

    def data(domain: str, n: int, seed: int) -> EyeBatch:
        return load_arrays_checked(render_once(work / "data" / f"{domain}_n{n}_seed{seed}", domain, n, SIZE, seed))

    wild, twins, reference = data("wild", 1000, 9001), data("synthetic", 1000, 9001), data("synthetic", 2000, 9101)
    truth = wild.gaze.astype(np.float64)
    encoder = build_encoder("efficientnet-lite0")
    features = {"wild": pooled_features(encoder, wild.images),
                "synthetic": pooled_features(encoder, reference.images)}

    def kid(images: np.ndarray, to: str) -> float:
        return kernel_inception_distance(pooled_features(encoder, images), features[to])[0]

    def error(model: Path, images: np.ndarray) -> float:
        pred = predict_gaze(load_gaze_net(model), torch.from_numpy(images)).numpy().astype(np.float64)
        return float(angular_error_deg(pred, truth).mean())

    # ours as `purify --masks auto` runs it: masks from the shipped segmenter, implausible eyes passed through
    engine = Purification.load(WEIGHTS_DIR / "purifier", WEIGHTS_DIR / "segmenter", batch_size=256)
    ours = engine.purify_batch(wild.images, None, [str(i) for i in range(len(wild.images))]).images

    results: dict[str, dict[int, dict[str, Any]]] = {name: {} for name in args.only}
    for seed in args.seeds:
        if "randomised" in args.only:
            model = WEIGHTS_DIR / "gaze_randomised" if seed == 0 else work / f"randomised_seed{seed}" / "gaze"
            if not _finished(model):
                _maskpurify("train-gaze", "--data", args.train_data, "--out", str(model.parent), *train,
                            "--set", "degradation.strength=1.0", "--set", f"seed={seed}")
            results["randomised"][seed] = {"weights": os.path.relpath(model), "raw_deg": error(model, wild.images),
                                           "on_ours_deg": error(model, ours)}
        if "simgan" in args.only:
            run = work / f"simgan_seed{seed}"
            gaze_yaml = work / f"simgan_gaze_seed{seed}.yaml"
            # the shipped estimator's recipe (the GazeTrainConfig defaults) on its training set, at this seed
            atomic_write_text(gaze_yaml,
                              f"data:\n  path: {args.train_data}\nseed: {seed}\nnum_threads: {args.threads}\n")
            gaze = run / "gaze" / "gaze"
            if seed == 0 and not _finished(gaze):
                # the shipped SimGAN estimator was trained on this recipe's seed-0 refiner: reuse it when the
                # refiner trained here repeats the shipped refiner's log step for step
                if not _finished(run / "refiner"):
                    _maskpurify("train-simgan", "--direction", "syn2real", "--out", str(run), *train,
                                "--set", "seed=0")
                if _same_training(run / "log.csv", WEIGHTS_DIR / "logs" / "simgan_syn2real_refiner.csv"):
                    gaze = WEIGHTS_DIR / "simgan_gaze"
            if not _finished(gaze):
                _maskpurify("train-simgan", "--direction", "syn2real", "--out", str(run), *train,
                            "--set", f"seed={seed}", "--train-gaze", "--gaze-config", str(gaze_yaml))
            refined = Purification(load_purifier(run / "refiner"), batch_size=256).purify_arrays(twins.images)
            results["simgan"][seed] = {
                "kid_to_wild_before": kid(twins.images, "wild"), "kid_to_wild_after": kid(refined, "wild"),
                **refiner_checks(run, twins.images, refined), "gaze_weights": os.path.relpath(gaze),
                "raw_deg": error(gaze, wild.images)}
        if "simgan-reverse" in args.only:
            run = work / f"simgan_reverse_seed{seed}"
            if not _finished(run / "refiner"):
                _maskpurify("train-simgan", "--direction", "real2syn", "--out", str(run), *train,
                            "--set", f"seed={seed}")
            refined = Purification(load_purifier(run / "refiner"), batch_size=256).purify_arrays(wild.images)
            results["simgan-reverse"][seed] = {
                "kid_to_synthetic_before": kid(wild.images, "synthetic"),
                "kid_to_synthetic_after": kid(refined, "synthetic"),
                **refiner_checks(run, wild.images, refined), "deg": error(WEIGHTS_DIR / "gaze", refined)}
        print(json.dumps({name: by_seed.get(seed) for name, by_seed in results.items()}), flush=True)

    def spread(by_seed: dict[int, dict[str, Any]]) -> dict[str, dict[str, float]]:
        keys = [k for k, v in next(iter(by_seed.values())).items() if isinstance(v, float)]
        values = {k: np.array([run[k] for run in by_seed.values()]) for k in keys}
        return {k: {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else float("nan")}
                for k, v in values.items()}

    result = {
        "command": shlex.join([sys.executable.split(os.sep)[-1], *sys.argv]),
        "test_set": {"domain": "wild", "n": 1000, "seed": 9001, "kid_reference": "synthetic n=2000 seed=9101",
                     "ours_masks": "inferred by weights/segmenter, eye check on"},
        "seeds": args.seeds,
        "by_seed": results,
        "spread": {name: spread(by_seed) for name, by_seed in results.items() if by_seed},
    }
    atomic_write_json(Path(args.out), result)
    print(json.dumps(result["spread"], indent=2))


if __name__ == "__main__":
    main()
