"""What a cheaper segmenter would buy: the shipped segmenter against the same U-Net at half resolution (``stem=2``,
the cheaper architecture of docs/results.md "Masks from the image"; untrained weights: its speed only), beside the
shipped purifier, each alone in ONNX Runtime at batch 64 (the engine's batch; 2 intra-op threads, no spinning, as
the engine runs them; the median call, ``onnx_speed.seconds_per_call``), interleaved rounds, a 2048² matmul timed
in each round as the same-run reference.

Run: .venv/bin/python benchmarks/half_res_segmenter_speed.py [--rounds 3] [--out PATH]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys

import numpy as np

from maskpurify.fileio import atomic_write_json
from maskpurify.nets.segmenter import Segmenter, SegmenterConfig, load_segmenter
from maskpurify.purification.onnx_backend import SHIPPED_DIR, onnx_bytes, session_options
from onnx_speed import seconds_per_call
from reference import matmul_gflops


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--min-time", type=float, default=2.0)
    parser.add_argument("--out", default="benchmarks/results/half_res_segmenter_speed.json")
    args = parser.parse_args()
    import onnxruntime as ort

    shipped = load_segmenter(SHIPPED_DIR.parent / "segmenter")
    half = Segmenter(SegmenterConfig(**{**vars(shipped.config), "stem": 2})).eval()
    half.spec = shipped.spec
    options = session_options(2)
    sessions = {
        "segmenter": ort.InferenceSession(str(SHIPPED_DIR / "segmenter.onnx"), options,
                                          providers=["CPUExecutionProvider"]),
        "segmenter_half_res": ort.InferenceSession(onnx_bytes(half, (36, 60))[0], options,
                                                   providers=["CPUExecutionProvider"]),
        "purifier": ort.InferenceSession(str(SHIPPED_DIR / "purifier.onnx"), options,
                                         providers=["CPUExecutionProvider"]),
    }
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 3, 36, 60), dtype=np.float32)
    masks = rng.integers(0, 4, (args.batch, 36, 60)).astype(np.int64)
    feeds = {"segmenter": {"image": x}, "segmenter_half_res": {"image": x}, "purifier": {"image": x, "mask": masks}}
    rounds = []
    for r in range(args.rounds):
        row = {"matmul_2048_gflops": matmul_gflops(2048)}
        for name, session in sessions.items():
            row[name] = round(args.batch / seconds_per_call(lambda s=session, f=feeds[name]: s.run(None, f),
                                                            args.min_time), 1)
        for seg in ("segmenter", "segmenter_half_res"):  # the two networks alone, one after the other
            row[f"chain_{seg}"] = round(1.0 / (1.0 / row[seg] + 1.0 / row["purifier"]), 1)
        rounds.append(row)
        print(f"round {r}: " + ", ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    median = {k: float(np.median([row[k] for row in rounds])) for k in rounds[0]}
    record = {"command": shlex.join([os.path.relpath(sys.executable), *sys.argv]),
              "what": "eyes/s at 36x60 in ONNX Runtime, batch 64, 2 threads: the shipped segmenter, the same U-Net "
                      "at half resolution (stem 2, untrained: speed only) and the shipped purifier; chain_*: the "
                      "segmenter then the purifier (harmonic sum of the two rates)",
              "batch": args.batch, "median": median, "rounds": rounds, "cpu_count": os.cpu_count(),
              "machine": platform.machine(), "load_average": list(os.getloadavg())}
    atomic_write_json(args.out, record)
    print(f"median: {median}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
