"""Conditions no network was tuned on: the shipped pipeline on eyes degraded outside the wild preset.

Every number of the demo comes from the wild preset, which the purifier trains on (as unlabelled images) and every
recipe was tuned on. A purifier that fits the preset rather than real eyes would fall apart here. The same 1000
eyes (fresh seed 7311, one geometry for all) are rendered under conditions the preset never produces, and each is
scored as the demo scores the wild set: the shipped gaze estimator on the raw eyes, on ours (`purify --masks auto`:
masks inferred by the shipped segmenter, eyes without a plausible mask passed through) and on the controls a
shortcut would pass (the gaze read off the inferred masks alone; a uniform grey image purified with them), beside
the baseline a user would pick instead (the domain-randomised estimator on the raw eyes) and the segmenter's IoU
against the renderer's masks (test labels only). The floor is the same eyes rendered synthetic.
Run: .venv/bin/python benchmarks/unseen_conditions.py [--threads 1] [--n 1000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from maskpurify.checkpoints import WEIGHTS_DIR
from maskpurify.fileio import atomic_write_json
from maskpurify.masks import label_image
from maskpurify.metrics.gaze import mean_error_deg
from maskpurify.metrics.segmentation import segmentation_summary
from maskpurify.nets.gaze import load_gaze_net
from maskpurify.nets.segmenter import load_segmenter, predict_masks
from maskpurify.purify import Purification
from maskpurify.world.domains import DomainPreset, synthetic_preset, wild_preset
from maskpurify.world.renderer import render_samples

SIZE = (36, 60)
SEED = 7311


def _indoor() -> DomainPreset:
    """Milder than wild: an office camera (soft key light, slight casts, light noise and JPEG, no glare)."""
    return dataclasses.replace(
        synthetic_preset(), name="wild", ambient=(0.3, 0.5), key_intensity=(0.5, 1.0), key_angle=(10.0, 40.0),
        fill_prob=0.5, light_colour_jitter=0.1, auto_exposure=True, exposure_ev=(-0.5, 0.5), white_balance=0.08,
        noise_sigma=(0.005, 0.02), blur_prob=0.3, blur_sigma=(0.4, 0.8), jpeg_prob=0.5, jpeg_quality=(60.0, 90.0))


def _harsh() -> DomainPreset:
    """Past the wild ranges: more noise, stronger blur, harder JPEG, flatter contrast."""
    return dataclasses.replace(wild_preset(), noise_sigma=(0.06, 0.12), blur_prob=0.9, blur_sigma=(1.3, 2.0),
                               jpeg_quality=(5.0, 20.0), contrast=(0.4, 0.6))


def _dark() -> DomainPreset:
    """Under-exposed beyond the wild range, with the noise a dark sensor adds."""
    return dataclasses.replace(wild_preset(), exposure_ev=(-2.2, -1.2), noise_sigma=(0.04, 0.1))


def _glare() -> DomainPreset:
    """Glasses reflections on every eye, stronger than the wild preset's."""
    return dataclasses.replace(wild_preset(), glare_prob=1.0, glare_strength=(0.7, 1.0))


def _low_resolution(images: np.ndarray) -> np.ndarray:
    """Wild eyes seen at half resolution (18x30), scaled back up as a face tracker's crop would be."""
    h, w = images.shape[1:3]
    return np.stack([cv2.resize(cv2.resize(im, (w // 2, h // 2), interpolation=cv2.INTER_AREA), (w, h),
                                interpolation=cv2.INTER_LINEAR) for im in images])


def conditions(n: int) -> dict[str, tuple[str, Callable[[], np.ndarray]]]:
    """name -> (what it is, a function rendering its n eyes as uint8 (n,H,W,3))."""
    def render(preset: DomainPreset, grey: bool = False) -> np.ndarray:
        images = render_samples(preset, n, SIZE, SEED, grey=grey).images
        return np.repeat(images, 3, axis=-1) if grey else images

    return {
        "wild": ("the wild preset itself (reference row)", lambda: render(wild_preset())),
        "indoor": ("milder than wild: soft light, slight casts, light noise and JPEG, no glare or shadow",
                   lambda: render(_indoor())),
        "harsh": ("wild past its ranges: noise sigma 0.06-0.12, blur sigma 1.3-2.0 on 90%, JPEG quality 5-20, "
                  "contrast 0.4-0.6", lambda: render(_harsh())),
        "dark": ("wild under-exposed by 1.2-2.2 EV with noise sigma 0.04-0.1", lambda: render(_dark())),
        "glare": ("a glasses reflection on every eye, strength 0.7-1.0 (wild: half the eyes, 0.25-0.7)",
                  lambda: render(_glare())),
        "monochrome": ("wild rendered grey (a monochrome camera), fed as RGB; the estimator reads grey, "
                       "so only the segmenter and the purifier see a change", lambda: render(wild_preset(), True)),
        "low_resolution": ("wild at 18x30, scaled back up to 36x60", lambda: _low_resolution(render(wild_preset()))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", default="benchmarks/results/unseen_conditions.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    truth_eyes = render_samples(wild_preset(), args.n, SIZE, SEED)
    truth, exact = truth_eyes.gaze, truth_eyes.masks  # one geometry for every condition
    gaze, randomised = load_gaze_net(WEIGHTS_DIR / "gaze"), load_gaze_net(WEIGHTS_DIR / "gaze_randomised")
    from_labels = load_gaze_net(WEIGHTS_DIR / "gaze_from_labels")
    segmenter = load_segmenter(WEIGHTS_DIR / "segmenter")
    engine = Purification.load(None, None, "cpu", batch_size=256)
    floor = mean_error_deg(gaze, render_samples(synthetic_preset(), args.n, SIZE, SEED).images, truth)
    names = [str(i) for i in range(args.n)]
    result: dict[str, object] = {
        "command": shlex.join([sys.executable.split(os.sep)[-1], *sys.argv]),
        "eyes": {"n": args.n, "seed": SEED, "size": list(SIZE)}, "floor_deg": floor, "conditions": {}}
    print(f"floor {floor:.2f} deg", flush=True)
    for name, (what, make) in conditions(args.n).items():
        images = make()
        masks = predict_masks(segmenter, images)
        purified = engine.purify_batch(images, None, names)
        raw = mean_error_deg(gaze, images, truth)
        ours = mean_error_deg(gaze, purified.images, truth)
        row = {
            "what": what,
            "raw_deg": raw,
            "randomised_estimator_raw_deg": mean_error_deg(randomised, images, truth),
            "mask_alone_deg": mean_error_deg(from_labels, label_image(masks), truth),
            "ours_deg": ours,
            "grey_control_deg": mean_error_deg(gaze, engine.purify_arrays(np.full_like(images, 128), masks), truth),
            "gap_closed": (raw - ours) / (raw - floor),
            "passed_through": sum(p is not None for p in purified.problems),
            "segmenter_miou": segmentation_summary(masks, exact)["miou"],
        }
        result["conditions"][name] = row  # type: ignore[index]
        print(name, {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items() if k != "what"},
              flush=True)
    atomic_write_json(Path(args.out), result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
