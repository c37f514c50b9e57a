"""Render throughput benchmark: images/s for both domains at 36x60 and 144x240; writes benchmarks/results/render.json.

Run: .venv/bin/python benchmarks/render.py [--n 4096] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from maskpurify.fileio import atomic_write_json
from maskpurify.world.renderer import render_samples

TARGET = 1000.0  # images/s at 36x60, both domains


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=4096, help="images per run at 36x60 (1/16 of it at 144x240)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting; the best is reported")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "render.json"))
    args = parser.parse_args()
    results = []
    for size, n in (((36, 60), args.n), ((144, 240), max(64, args.n // 16))):
        for domain in ("synthetic", "wild"):
            render_samples(domain, 64, size, seed=123)  # warm-up
            times = []
            for r in range(args.repeats):
                start = time.perf_counter()
                render_samples(domain, n, size, seed=r)
                times.append(time.perf_counter() - start)
            best = min(times)
            row = {"domain": domain, "size": f"{size[0]}x{size[1]}", "n": n, "best_s": round(best, 4),
                   "images_per_s": round(n / best, 1), "median_images_per_s": round(n / float(np.median(times)), 1)}
            results.append(row)
            print(f"{domain:9s} {row['size']:8s} {row['images_per_s']:9.1f} img/s (median {row['median_images_per_s']})",
                  flush=True)
    small = [r["images_per_s"] for r in results if r["size"] == "36x60"]
    record = {
        "command": shlex.join([sys.executable.replace(os.getcwd() + "/", ""), *sys.argv]),
        "target_images_per_s_36x60": TARGET, "meets_target": bool(min(small) >= TARGET),
        "cpu_count": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
        "numpy": np.__version__, "load_average": list(os.getloadavg()), "results": results,
    }
    atomic_write_json(args.out, record)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
