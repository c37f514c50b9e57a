"""Eyes/s of the shipped segmenter, purifier and the two chained, PyTorch eager against ONNX Runtime, in the same run.

36x60, batch 256, fp32, CPU, ``--threads`` intra-op threads for both (torch.set_num_threads and the sessions'
intra_op_num_threads; default 2). Measured in interleaved rounds (torch, onnx, torch, onnx, ...), each the median
seconds per call over at least ``--min-time`` s; reported: the median rate over rounds and the onnx/torch ratio of
each round (median, min, max), so a machine that gets busier between rounds shifts both rates of a ratio alike; a 2048x2048 fp32 matmul timed at the start of each round is the reference for how
busy the machine was. Rows:

- segmenter: logits of float (N,3,H,W) images (torch: channels-last, as predict_masks feeds it)
- purifier: float images + int64 label maps -> float images (torch: contiguous NCHW, as the engine feeds it)
- chain: segmenter -> argmax -> purifier on float images (the networks alone)
- engine: ``Purification.purify_arrays`` uint8 (N,H,W,3) in, uint8 out, automatic masks, backend torch vs onnx
  (everything ``maskpurify purify`` does per batch except reading and writing files and the eye check)

Run: .venv/bin/python benchmarks/onnx_speed.py [--threads 2] [--rounds 3] [--out benchmarks/results/onnx_speed.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from maskpurify.purification import Purification
from maskpurify.world.renderer import render_samples

BATCH = 256
SIZE = (36, 60)


def seconds_per_call(fn: Callable[[], object], min_time: float) -> float:
    """Median seconds per call after one warm-up call, repeating until ``min_time`` has passed (at least 3)."""
    fn()
    times: list[float] = []
    while len(times) < 3 or sum(times) < min_time:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=1.5)
    parser.add_argument("--out", default="benchmarks/results/onnx_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        engines = {"torch": Purification.load(batch_size=BATCH, check_eyes=False, backend="torch"),
                   "onnx": Purification.load(batch_size=BATCH, check_eyes=False, backend="onnx", onnx_dir=folder)}
        onnx_nets = engines["onnx"]._onnx
        onnx_nets.warm_up(SIZE)
        segmenter, purifier = engines["torch"].segmenter, engines["torch"].purifier
        seg_session = onnx_nets.segmenter.session(SIZE)
        pur_session = onnx_nets.purifier.session(SIZE)
        eyes = np.ascontiguousarray(render_samples("wild", BATCH, SIZE, seed=77).images)
        x_np = np.ascontiguousarray(eyes.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)
        x = torch.from_numpy(x_np)
        x_last = x.contiguous(memory_format=torch.channels_last)
        mask_np = engines["torch"].auto_masks(eyes).astype(np.int64)
        mask = torch.from_numpy(mask_np)
        a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)

        def torch_chain() -> object:
            return purifier(x, segmenter(x_last).argmax(1))

        def onnx_chain() -> object:
            labels = seg_session.run(["logits"], {"image": x_np})[0].argmax(1)
            return pur_session.run(["purified"], {"image": x_np, "mask": labels})[0]

        cases: dict[str, dict[str, Callable[[], object]]] = {
            "segmenter": {"torch": lambda: segmenter(x_last),
                          "onnx": lambda: seg_session.run(["logits"], {"image": x_np})},
            "purifier": {"torch": lambda: purifier(x, mask),
                         "onnx": lambda: pur_session.run(["purified"], {"image": x_np, "mask": mask_np})},
            "chain": {"torch": torch_chain, "onnx": onnx_chain},
            "engine": {name: (lambda e=engine: e.purify_arrays(eyes)) for name, engine in engines.items()},
        }
        rounds: list[dict[str, float]] = []
        with torch.inference_mode():
            for index in range(args.rounds):
                row = {"matmul_2048_gflops": 2 * 2048 ** 3 / seconds_per_call(lambda: a @ b, 1.0) / 1e9}
                for case, fns in cases.items():
                    for backend, fn in fns.items():
                        row[f"{case}_{backend}"] = BATCH / seconds_per_call(fn, args.min_time)
                rounds.append(row)
                print(f"round {index + 1}: " + ", ".join(f"{k} {v:.0f}" for k, v in row.items()), flush=True)
    median = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    ratios = {case: [r[f"{case}_onnx"] / r[f"{case}_torch"] for r in rounds] for case in cases}
    results: dict[str, object] = {
        "command": " ".join(shlex.quote(v) for v in [sys.executable, *sys.argv]),
        "what": "eyes/s at 36x60, batch 256, fp32 CPU; PyTorch eager vs ONNX Runtime (CPUExecutionProvider) in the "
                "same run, interleaved rounds, median over rounds; matmul_2048_gflops: the same-run reference",
        "size": list(SIZE), "batch": BATCH, "threads": args.threads, "rounds": args.rounds,
        "torch": torch.__version__, "onnxruntime": ort.__version__, "opset": 17,
        "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        # the ratio is taken per round (both measured back to back) and its median, min and max over rounds given:
        # a machine whose load changes between rounds shifts both rates of a round alike
        "eyes_per_s": {case: {"torch": round(median[f"{case}_torch"], 1), "onnx": round(median[f"{case}_onnx"], 1),
                              "onnx_over_torch_median": round(statistics.median(ratios[case]), 2),
                              "onnx_over_torch_min": round(min(ratios[case]), 2),
                              "onnx_over_torch_max": round(max(ratios[case]), 2)}
                       for case in cases},
        "matmul_2048_gflops": round(median["matmul_2048_gflops"], 1),
        "rounds_raw": [{k: round(v, 1) for k, v in r.items()} for r in rounds],
        "load_average_1_5_15_min": [round(v, 2) for v in os.getloadavg()],
    }
    print(json.dumps(results["eyes_per_s"], indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
