"""``maskpurify purify --masks auto`` end to end through the CLI on a rendered dataset, per backend.

What a user waits for: reading the shards, the segmenter, the eye check, the purifier and writing the purified
dataset, for 30,000 wild eyes at 36x60 (rendered once under ``--work``), timed as a subprocess from start to exit.
Backends run in interleaved rounds (torch, auto, torch, auto, ...), each round preceded by a 2048² fp32 matmul
timed in the same process as the same-run reference, because this machine's speed drifts; the load average is
recorded. ``auto`` is the default: ONNX Runtime on the shipped exports when it is installed.

Each round also times, in this process on the first 4,096 eyes, the two networks alone (segmenter, then purifier
on its masks, batch 64, float input ready, nothing else): in ONNX Runtime (``networks_onnx``: the ceiling of
``auto``, what it would reach if reading, the eye check, pasting and writing cost nothing) and in PyTorch eager
(``networks_torch_eager``: the same run's PyTorch eager chain).
Run: .venv/bin/python benchmarks/purify_cli_speed.py [--n 30000] [--rounds 3] [--out PATH]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from maskpurify.fileio import atomic_write_json
from maskpurify.world.dataset import render_once
from reference import matmul_gflops

BACKENDS = ("torch", "auto")

def networks_alone(data: Path, n: int = 4096, batch: int = 64, min_time: float = 3.0) -> dict[str, float]:
    """Eyes/s of the segmenter and the purifier alone, in ONNX Runtime and in PyTorch eager (see the docstring)."""
    import torch

    from maskpurify.purification import Purification
    from maskpurify.world.dataset import load_shard

    images = load_shard(data, 0)["images"][:n]
    x = np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)
    onnx = Purification.load(backend="onnx")._onnx
    eager = Purification.load(backend="torch")

    def run_onnx(lo: int) -> None:
        chunk = x[lo:lo + batch]
        onnx.purify(chunk, onnx.segment(chunk).astype(np.int64))

    def run_eager(lo: int) -> None:
        with torch.inference_mode():
            chunk = torch.from_numpy(x[lo:lo + batch])
            masks = eager.segmenter(chunk.contiguous(memory_format=torch.channels_last)).argmax(1)
            eager.purifier(chunk, masks)

    rates = {}
    for name, step in (("networks_onnx", run_onnx), ("networks_torch_eager", run_eager)):
        step(0)
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < min_time:
            for lo in range(0, len(x), batch):
                step(lo)
            done += len(x)
        rates[name] = round(done / (time.perf_counter() - start), 1)
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("runs/purify_cli_speed"))
    parser.add_argument("--out", default="benchmarks/results/purify_cli_speed.json")
    args = parser.parse_args()
    data = render_once(args.work / f"wild_n{args.n}_seed4242", "wild", args.n, (36, 60), 4242)
    cli = str(Path(sys.executable).with_name("maskpurify"))
    rounds = []
    for r in range(args.rounds):
        row: dict[str, float] = {"matmul_2048_gflops": round(matmul_gflops(2048), 1)}
        for backend in BACKENDS:
            out = args.work / f"out_{backend}"
            shutil.rmtree(out, ignore_errors=True)
            command = [cli, "purify", "--input", str(data), "--out", str(out), "--masks", "auto", "--backend", backend,
                       "--quiet"]
            start = time.perf_counter()
            done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if done.returncode != 0:
                sys.exit(f"{shlex.join(command)} failed: {done.stderr.strip().splitlines()[-1:]}")
            row[backend] = round(args.n / (time.perf_counter() - start), 1)
        row.update(networks_alone(data))
        row["auto_over_torch"] = round(row["auto"] / row["torch"], 3)
        row["auto_over_torch_eager_chain"] = round(row["auto"] / row["networks_torch_eager"], 3)
        rounds.append(row)
        print(f"round {r}: " + ", ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    summary = {k: float(np.median([row[k] for row in rounds])) for k in rounds[0]}
    record = {"command": shlex.join([os.path.relpath(sys.executable), *sys.argv]),
              "what": "eyes/s end to end (subprocess start to exit) of `maskpurify purify --masks auto --backend B` on "
                      "a rendered wild dataset at 36x60; median over interleaved rounds",
              "n": args.n, "backends": list(BACKENDS), "median": summary, "rounds": rounds,
              "cpu_count": os.cpu_count(), "machine": platform.machine(), "load_average": list(os.getloadavg())}
    atomic_write_json(args.out, record)
    print(f"median: {summary}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
