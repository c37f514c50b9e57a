"""Inference speed of the shipped purifiers, of the segmenter (automatic masks) and of the whole `purify` path with
automatic masks (uint8 eyes in, uint8 eyes out, through the same engine `maskpurify purify` uses), plus the loss
encoder, with FLOP/s against a plain matmul.

Images/s at 36x60 (batch 64, purify's default, and 256) and 480x640 (batch 4), torch.inference_mode, fp32, default thread count.
FLOPs are counted with torch.utils.flop_counter (convolutions and matmuls only; norms and elementwise
ops are not counted), and the achieved FLOP/s is compared with a 2048x2048 fp32 matmul timed in the
same run, on the same machine, right before each measurement (so a busy machine slows both alike; the
load average is recorded too).
Run: [MASKPURIFY_WEIGHTS=DIR] .venv/bin/python benchmarks/purify_speed.py [--device cpu|cuda] [--out PATH] [--compile]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from maskpurify.nets.encoders import build_encoder
from maskpurify.checkpoints import WEIGHTS_DIR
from maskpurify.nets.purifier import load_purifier
from maskpurify.nets.segmenter import load_segmenter
from maskpurify.purification import Purification
from maskpurify.world.renderer import render_samples


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(fn: Callable[[], object], device: torch.device, min_time: float = 2.0) -> float:
    """Median seconds per call after a warm-up, repeating until ``min_time`` has passed (at least 3 calls)."""
    for _ in range(2):
        fn()
    _sync(device)
    times: list[float] = []
    while len(times) < 3 or sum(times) < min_time:
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def count_flops(fn: Callable[[], object]) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def compiled_rates(device: torch.device) -> dict[str, float]:
    """Images/s of the shipped segmenter and purifier under torch.compile (inductor), alone and chained (masks by
    argmax, no eye check), at one fixed batch so nothing recompiles; with the compile time, which a run pays once."""
    segmenter = torch.compile(load_segmenter(WEIGHTS_DIR / "segmenter", device))
    purifier = torch.compile(load_purifier(WEIGHTS_DIR / "purifier", device))
    image = torch.rand(256, 3, 36, 60, device=device)
    image_last = image.contiguous(memory_format=torch.channels_last)  # each network's faster layout, as they run
    rates: dict[str, float] = {}
    with torch.inference_mode():
        start = time.perf_counter()  # the first calls compile
        mask = segmenter(image_last).argmax(1)
        purifier(image, mask)
        rates["compile_seconds"] = round(time.perf_counter() - start, 1)
        for name, fn in (("segmenter", lambda: segmenter(image_last)), ("purifier", lambda: purifier(image, mask)),
                         ("segmenter_then_purifier", lambda: purifier(image, segmenter(image_last).argmax(1)))):
            rates[f"{name}_images_per_s"] = round(256 / seconds_per_call(fn, device), 1)
            print(f"compiled {name}, 36x60, batch 256: {rates[f'{name}_images_per_s']} images/s")
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="benchmarks/results/purify_speed.json")
    parser.add_argument("--compile", action="store_true",
                        help="also time torch.compile'd segmenter and purifier (batch 256) and the two chained")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    results: dict[str, object] = {
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "weights": str(WEIGHTS_DIR),  # $MASKPURIFY_WEIGHTS when set
        "device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
    }
    with torch.inference_mode():
        a, b = torch.randn(2048, 2048, device=device), torch.randn(2048, 2048, device=device)

        def matmul_rate() -> float:
            return 2 * 2048 ** 3 / seconds_per_call(lambda: a @ b, device, min_time=1.0)

        for use_mask, name in ((True, "purifier"), (False, "purifier_nomask")):
            net = load_purifier(WEIGHTS_DIR / name, device)  # the shipped networks, as `maskpurify purify` runs them
            config = net.config
            rows = {}
            # batch 64 is `maskpurify purify`'s default; 256 shows the cache cost of larger batches at 36x60
            for (h, w), batch in (((36, 60), 64), ((36, 60), 256), ((480, 640), 4)):
                image = torch.rand(batch, 3, h, w, device=device)
                mask = torch.randint(0, config.num_labels, (batch, h, w), device=device)
                flops = count_flops(lambda: net(image, mask))
                reference = matmul_rate()
                sec = seconds_per_call(lambda: net(image, mask), device)
                key = f"{h}x{w}_batch{batch}"
                rows[key] = {"batch": batch, "images_per_s": round(batch / sec, 1),
                             "mflop_per_image": round(flops / batch / 1e6, 2),
                             "achieved_gflops": round(flops / sec / 1e9, 2),
                             "matmul_2048_gflops": round(reference / 1e9, 2),
                             "fraction_of_matmul_flops": round(flops / sec / reference, 3)}
                print(f"purifier use_mask={use_mask} {h}x{w} batch {batch}: {rows[key]}")
            results[f"purifier_use_mask_{str(use_mask).lower()}"] = {
                "config": net.config_dict(), "parameters": sum(p.numel() for p in net.parameters()), **rows}
        segmenter = load_segmenter(WEIGHTS_DIR / "segmenter", device)
        # channels-last, as predict_masks feeds it (about 1.8x faster than (N,C,H,W) on this CPU)
        image = torch.rand(64, 3, 36, 60, device=device).contiguous(memory_format=torch.channels_last)
        flops = count_flops(lambda: segmenter(image))
        sec = seconds_per_call(lambda: segmenter(image), device)
        results["segmenter_36x60_batch64"] = {"config": asdict(segmenter.config),
                                              "images_per_s": round(64 / sec, 1),
                                              "mflop_per_image": round(flops / 64 / 1e6, 2)}
        print(f"segmenter 36x60 batch 64: {results['segmenter_36x60_batch64']}")
    engine = Purification.load(None, None, str(device), batch_size=64)
    eyes = render_samples("wild", 1024, (36, 60), seed=77).images
    sec = seconds_per_call(lambda: engine.purify_arrays(eyes), device)
    results["purify_auto_masks_36x60_batch64_images_per_s"] = round(len(eyes) / sec, 1)
    print(f"purify with automatic masks, 36x60, batch 64: {results['purify_auto_masks_36x60_batch64_images_per_s']} "
          "images/s")
    with torch.inference_mode():
        for upsample in (2, 1):
            encoder = build_encoder("efficientnet-lite0", upsample=upsample).to(device)
            rate = round(64 / seconds_per_call(lambda: encoder(image), device), 1)
            results[f"encoder_efficientnet_lite0_upsample{upsample}_36x60_batch64_images_per_s"] = rate
            print(f"encoder efficientnet-lite0 (upsample {upsample}) 36x60 batch 64: {rate} images/s")
    if args.compile:
        results["compiled_36x60_batch256"] = compiled_rates(device)
    results["load_average_1_5_15_min"] = [round(x, 2) for x in os.getloadavg()]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
