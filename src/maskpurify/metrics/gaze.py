"""The gaze evaluation protocol (as SimGAN and MPIIGaze report it): per-sample 3-D angular error in degrees
(:func:`maskpurify.geometry.angular_error_deg`) -> mean, median, std, share within 5 and 7 degrees (SimGAN's
figure), error binned by true gaze pitch and yaw; a JSON report carrying the exact command, plus a plot of
error vs gaze angle and the cumulative error curve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from maskpurify.config import command_line
from maskpurify.fileio import atomic_write_json
from maskpurify.geometry import angular_error_deg
from maskpurify.nets.gaze import predict_gaze

THRESHOLDS_DEG = (5.0, 7.0)


def error_stats(errors_deg: np.ndarray) -> dict[str, float]:
    """Summary statistics of per-sample angular errors (degrees)."""
    e = np.asarray(errors_deg, np.float64)
    if e.size == 0:
        return {"n": 0}
    stats: dict[str, float] = {
        "n": int(e.size),
        "mean_deg": float(e.mean()),
        "median_deg": float(np.median(e)),
        "std_deg": float(e.std()),
        "p90_deg": float(np.percentile(e, 90)),
        "max_deg": float(e.max()),
    }
    for t in THRESHOLDS_DEG:
        stats[f"within_{t:g}deg"] = float((e <= t).mean())
    return stats


def mean_error_deg(model: torch.nn.Module, images: np.ndarray, truth: np.ndarray) -> float:
    """Mean angular error (degrees) of a gaze net reading uint8 images (N,H,W,3), or label images for a label-map
    net, against the true (N,2) pitch/yaw."""
    pred = predict_gaze(model, torch.from_numpy(np.ascontiguousarray(images))).numpy().astype(np.float64)
    return float(angular_error_deg(pred, np.asarray(truth, np.float64)).mean())


def binned_errors(errors_deg: np.ndarray, values_deg: np.ndarray, width_deg: float = 5.0) -> list[dict[str, float]]:
    """Errors grouped by a true gaze angle (degrees) in bins of ``width_deg``; empty bins are skipped."""
    errors_deg, values_deg = np.asarray(errors_deg), np.asarray(values_deg)
    if errors_deg.size == 0:
        return []
    lo = np.floor(values_deg.min() / width_deg) * width_deg
    hi = np.ceil(values_deg.max() / width_deg + 1e-9) * width_deg
    edges = np.arange(lo, hi + width_deg / 2, width_deg)
    which = np.clip(np.digitize(values_deg, edges) - 1, 0, len(edges) - 2)
    out = []
    for b in range(len(edges) - 1):
        sel = errors_deg[which == b]
        if sel.size:
            out.append({"lo_deg": float(edges[b]), "hi_deg": float(edges[b + 1]), "n": int(sel.size),
                        "mean_deg": float(sel.mean()), "median_deg": float(np.median(sel))})
    return out


def gaze_report(pred_pitchyaw: np.ndarray, true_pitchyaw: np.ndarray, bin_width_deg: float = 5.0,
                extra: dict[str, Any] | None = None) -> tuple[dict[str, Any], np.ndarray]:
    """(report, per-sample errors) for predicted vs true pitch/yaw in radians. The report holds the command."""
    pred = np.asarray(pred_pitchyaw, np.float64)
    true = np.asarray(true_pitchyaw, np.float64)
    if pred.shape != true.shape or pred.ndim != 2 or pred.shape[1] != 2:
        raise ValueError(f"expected two (N, 2) pitch/yaw arrays, got {pred.shape} and {true.shape}")
    errors = angular_error_deg(pred, true)
    true_deg = np.degrees(true)
    report: dict[str, Any] = {
        "command": command_line(),
        **(extra or {}),
        "angular_error": error_stats(errors),
        "by_pitch": binned_errors(errors, true_deg[:, 0], bin_width_deg),
        "by_yaw": binned_errors(errors, true_deg[:, 1], bin_width_deg),
        "bias_deg": {"pitch": float(np.degrees((pred - true)[:, 0]).mean()),
                     "yaw": float(np.degrees((pred - true)[:, 1]).mean())},
    }
    return report, errors


def plot_gaze_errors(path: str | Path, errors_deg: np.ndarray, true_pitchyaw: np.ndarray, title: str = "") -> Path:
    """Three panels: error vs true pitch, error vs true yaw (points and binned mean), cumulative error curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    true_deg = np.degrees(np.asarray(true_pitchyaw, np.float64))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, col, name in ((axes[0], 0, "pitch"), (axes[1], 1, "yaw")):
        ax.scatter(true_deg[:, col], errors_deg, s=3, alpha=0.25, color="tab:blue", lw=0)
        bins = binned_errors(errors_deg, true_deg[:, col])
        ax.plot([(b["lo_deg"] + b["hi_deg"]) / 2 for b in bins], [b["mean_deg"] for b in bins], "o-",
                color="tab:red", label="binned mean")
        ax.set_xlabel(f"true gaze {name} (deg)")
        ax.set_ylabel("angular error (deg)")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left")
    e = np.sort(np.asarray(errors_deg))
    axes[2].plot(e, np.arange(1, len(e) + 1) / max(1, len(e)), color="tab:blue")
    for t in THRESHOLDS_DEG:
        axes[2].axvline(t, ls="--", color="grey", lw=0.8)
    axes[2].set_xlabel("angular error (deg)")
    axes[2].set_ylabel("share of samples with error <= x")
    axes[2].set_xlim(0, max(10.0, float(np.percentile(e, 99)) if len(e) else 10.0))
    axes[2].set_ylim(0, 1)
    axes[2].grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_gaze_report(out_dir: str | Path, report: dict[str, Any], errors_deg: np.ndarray,
                      true_pitchyaw: np.ndarray, name: str = "gaze_eval") -> tuple[Path, Path]:
    """``<name>.json`` and ``<name>.png`` in ``out_dir``; returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / f"{name}.json", report)
    stats = report.get("angular_error", {})
    title = f"mean {stats.get('mean_deg', float('nan')):.2f} deg, n={stats.get('n', 0)}"
    plot = plot_gaze_errors(out / f"{name}.png", errors_deg, true_pitchyaw, title)
    return out / f"{name}.json", plot
