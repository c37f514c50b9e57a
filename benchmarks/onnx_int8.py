"""Int8 static quantisation of the shipped segmenter and purifier in ONNX Runtime: eyes/s against the fp32 exports,
in the same run, and how far the int8 outputs move.

Each shipped export (``weights/onnx``) is quantised with ``onnxruntime.quantization.quantize_static`` (per-channel
int8 weights, uint8 activations calibrated on 512 wild renders of seed 7001, neither a training nor a test set) in
both of ONNX Runtime's formats (QOperator, QDQ). Rates: 36x60, batch 64, ``--threads`` intra-op threads, fp32 and
int8 sessions (the engine's session options) timed in interleaved rounds (each the median seconds per call over at
least ``--min-time`` s, as ``onnx_speed.py`` times them), a 1024x1024 fp32 matmul at the start of each round as the
reference for how busy the machine was. Fidelity: on 512
other wild renders (seed 7002), the share of pixels whose segmenter label changes and the purifier's mean and
largest absolute change in grey levels (both fed the fp32 segmenter's labels).

Needs ``ml_dtypes`` beside onnxruntime (its quantisation tools import it; the package does not).
Run: .venv/bin/python benchmarks/onnx_int8.py [--threads 2] [--rounds 3] [--out benchmarks/results/onnx_int8.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from maskpurify.fileio import atomic_write_json
from maskpurify.purification.onnx_backend import SHIPPED_DIR, session_options
from maskpurify.world.renderer import render_samples
from onnx_speed import seconds_per_call
from reference import matmul_gflops

BATCH = 64


def feeds(seed: int, n: int, labels: np.ndarray | None = None) -> list[dict[str, np.ndarray]]:
    """Batches of wild renders as the sessions take them: float (N,3,H,W) images, int64 (N,H,W) label maps."""
    eyes = render_samples("wild", n, (36, 60), seed=seed)
    images = eyes.images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    masks = (eyes.masks if labels is None else labels).astype(np.int64)
    return [{"image": images[i:i + BATCH], "mask": masks[i:i + BATCH]} for i in range(0, n, BATCH)]


class Calibration(CalibrationDataReader):
    def __init__(self, batches: list[dict[str, np.ndarray]], names: set[str]) -> None:
        self.batches = iter([{k: v for k, v in b.items() if k in names} for b in batches])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def session(path: Path, threads: int) -> ort.InferenceSession:
    """A session with the engine's own options."""
    return ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])


def rate(sess: ort.InferenceSession, feed: dict[str, np.ndarray], min_time: float) -> float:
    names = {i.name for i in sess.get_inputs()}
    feed = {k: v for k, v in feed.items() if k in names}
    return BATCH / seconds_per_call(lambda: sess.run(None, feed), min_time)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=1.0)
    parser.add_argument("--out", default="benchmarks/results/onnx_int8.json")
    args = parser.parse_args()
    calibration = feeds(7001, 512)
    test = feeds(7002, 512)
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="onnx_int8_") as tmp:
        fp32_seg = session(SHIPPED_DIR / "segmenter.onnx", args.threads)
        labels = np.concatenate([fp32_seg.run(None, {"image": b["image"]})[0].argmax(1) for b in test])
        test = [{"image": b["image"], "mask": labels[i * BATCH:(i + 1) * BATCH].astype(np.int64)}
                for i, b in enumerate(test)]
        for kind in ("segmenter", "purifier"):
            src = SHIPPED_DIR / f"{kind}.onnx"
            names = {i.name for i in session(src, 1).get_inputs()}
            prepared = Path(tmp) / f"{kind}_prepared.onnx"
            quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
            files = {"fp32": src}
            for fmt in (QuantFormat.QOperator, QuantFormat.QDQ):
                files[f"int8_{fmt.name}"] = Path(tmp) / f"{kind}_{fmt.name}.onnx"
                quantize_static(str(prepared), str(files[f"int8_{fmt.name}"]), Calibration(calibration, names),
                                quant_format=fmt, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                per_channel=True)
            sessions = {name: session(path, args.threads) for name, path in files.items()}
            rounds = []
            for _ in range(args.rounds):
                row: dict[str, float] = {"matmul_1024_gflops": matmul_gflops()}
                for name, sess in sessions.items():
                    row[f"{name}_eyes_per_s"] = round(rate(sess, test[0], args.min_time), 1)
                rounds.append(row)
            fidelity = {}
            for name, sess in sessions.items():
                if name == "fp32":
                    continue
                outs = [(sessions["fp32"].run(None, {k: b[k] for k in names})[0],
                         sess.run(None, {k: b[k] for k in names})[0]) for b in test]
                if kind == "segmenter":
                    fidelity[name] = {"labels_changed": float(np.mean([(a.argmax(1) != q.argmax(1)).mean()
                                                                        for a, q in outs]))}
                else:
                    diff = np.concatenate([np.abs(a - q).ravel() for a, q in outs]) * 255.0
                    fidelity[name] = {"mean_abs_grey_levels": float(diff.mean()),
                                      "max_abs_grey_levels": float(diff.max())}
            results[kind] = {"rounds": rounds, "median_eyes_per_s": {
                name: statistics.median(r[f"{name}_eyes_per_s"] for r in rounds) for name in sessions},
                "fidelity": fidelity}
            print(kind, results[kind]["median_eyes_per_s"], fidelity, flush=True)
    atomic_write_json(args.out, {
        "command": shlex.join([sys.executable.replace(os.getcwd() + "/", ""), *sys.argv]),
        "what": "int8 static quantisation (ONNX Runtime) of the shipped exports against fp32, 36x60, batch 64",
        "threads": args.threads, "onnxruntime": ort.__version__, "cpu_count": os.cpu_count(),
        "machine": platform.machine(), "load_average": list(os.getloadavg()), "results": results})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
