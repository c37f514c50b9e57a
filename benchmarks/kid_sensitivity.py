"""What KID to the synthetic set responds to: one degradation at a time on clean eyes, and denoising on wild ones.

Issue 13 asks for a KID of ours below half of raw's. KID (``maskpurify.metrics.image``) is measured on the loss
encoder's pooled features, as the demo does, against 2000 synthetic reference eyes (the demo's reference seed).
This script scores, on the wild tuning set (seed 2002, n 1000) and its synthetic twins (the same eyes):
- the twins with one degradation each (blur, noise, JPEG, under-exposure, low resolution): which look KID sees;
- raw wild eyes and ours, before and after OpenCV's non-local-means denoiser (``fastNlMeansDenoisingColored``),
  each with the gaze error of the shipped synthetic-trained estimator: what removing the noise does to KID and to
  the gaze the eyes carry.
Run: .venv/bin/python benchmarks/kid_sensitivity.py [--threads 1]
"""

from __future__ import annotations

import argparse
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
from maskpurify.evaluation.experiment import TestSetConfig
from maskpurify.fileio import atomic_write_json
from maskpurify.metrics.gaze import mean_error_deg
from maskpurify.metrics.image import kernel_inception_distance, pooled_features
from maskpurify.nets.encoders import build_encoder
from maskpurify.nets.gaze import load_gaze_net
from maskpurify.nets.purifier import load_purifier
from maskpurify.nets.segmenter import load_segmenter
from maskpurify.purification import Purification
from maskpurify.world.dataset import load_arrays_checked, render_once
from maskpurify.world.renderer import render_samples

Images = np.ndarray


def each(fn: Callable[[Images], Images]) -> Callable[[Images], Images]:
    return lambda images: np.stack([fn(image) for image in images])


def noise(sigma: float, seed: int = 0) -> Callable[[Images], Images]:
    def add(images: Images) -> Images:
        noisy = images + np.random.default_rng(seed).normal(0.0, sigma * 255, images.shape)
        return np.clip(np.round(noisy), 0, 255).astype(np.uint8)
    return add


def jpeg(quality: int) -> Callable[[Images], Images]:
    return each(lambda image: cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], 1))


def low_resolution(factor: int) -> Callable[[Images], Images]:
    def resample(image: Images) -> Images:
        h, w = image.shape[:2]
        small = cv2.resize(image, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return each(resample)


def denoise(h: int) -> Callable[[Images], Images]:
    return each(lambda image: cv2.fastNlMeansDenoisingColored(image, None, h, h, 3, 9))


DEGRADATIONS: dict[str, Callable[[Images], Images]] = {
    "Gaussian blur sigma 1": each(lambda image: cv2.GaussianBlur(image, (0, 0), 1.0)),
    "Gaussian blur sigma 2": each(lambda image: cv2.GaussianBlur(image, (0, 0), 2.0)),
    "noise sigma 0.03": noise(0.03),
    "noise sigma 0.08": noise(0.08),
    "JPEG quality 30": jpeg(30),
    "JPEG quality 10": jpeg(10),
    "exposure x0.6": lambda images: (images * 0.6).astype(np.uint8),
    "low resolution 1/3": low_resolution(3),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--work", default="runs/gaze_ceiling", help="where the test eyes are rendered (shared)")
    parser.add_argument("--out", default="benchmarks/results/kid_sensitivity.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    work, size = Path(args.work), (36, 60)
    wild = load_arrays_checked(render_once(work / "data" / "wild_n1000_seed2002", "wild", 1000, size, 2002))
    twin = load_arrays_checked(render_once(work / "data" / "synthetic_n1000_seed2002", "synthetic", 1000, size, 2002))
    encoder = build_encoder("efficientnet-lite0")
    demo = TestSetConfig()  # the demo's KID reference eyes
    reference = pooled_features(encoder, render_samples("synthetic", demo.reference_n, size,
                                                        seed=demo.reference_seed).images)

    def kid(images: Images) -> int:
        return round(kernel_inception_distance(pooled_features(encoder, images), reference)[0])

    gaze_net = load_gaze_net(WEIGHTS_DIR / "gaze")
    engine = Purification(load_purifier(WEIGHTS_DIR / "purifier"), load_segmenter(WEIGHTS_DIR / "segmenter"),
                          batch_size=256)
    names = [f"eye {i}" for i in range(len(wild.images))]
    result: dict[str, object] = {
        "command": shlex.join([sys.executable.split(os.sep)[-1], *sys.argv]),
        "test_set": {"wild": "n 1000 seed 2002", "twins": "synthetic n 1000 seed 2002 (the same eyes)",
                     "kid_reference": "synthetic n 2000 seed 9101 (the demo's)"},
        "twins_kid": kid(twin.images),
        "twins_with_one_degradation_kid": {},
        "denoised": {},
    }
    for name, degrade in DEGRADATIONS.items():
        result["twins_with_one_degradation_kid"][name] = kid(degrade(twin.images))  # type: ignore[index]
        print(f"twins, {name}: KID {result['twins_with_one_degradation_kid'][name]}")  # type: ignore[index]
    for source, images in (("wild", wild.images), ("twins", twin.images)):
        for h in (0, 6, 12):
            inputs = images if h == 0 else denoise(h)(images)
            ours = engine.purify_batch(inputs, None, names).images
            row = {"input_kid": kid(inputs), "input_error_deg": round(mean_error_deg(gaze_net, inputs, wild.gaze), 3),
                   "ours_kid": kid(ours), "ours_error_deg": round(mean_error_deg(gaze_net, ours, wild.gaze), 3)}
            key = f"{source}, {'as rendered' if h == 0 else f'non-local means h {h}'}"
            result["denoised"][key] = row  # type: ignore[index]
            print(key, row)
    atomic_write_json(Path(args.out), result)


if __name__ == "__main__":
    main()
