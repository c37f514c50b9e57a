"""The side-by-side experiment: every method on the same wild test set, scored by the same synthetic-trained
gaze estimator (unless the method retrains it, as SimGAN does), plus image-level metrics.

Methods (each skipped with a note when its weights are missing):
  synthetic (floor)  the gaze estimator on synthetic renders of the same geometry: the error to aim at
  raw                wild images as they are
  reinhard           region-wise Reinhard colour transfer toward the synthetic domain
  histogram          region-wise histogram matching toward the synthetic domain
  simgan             SimGAN: gaze estimator retrained on synthetic eyes refined to look wild; raw wild input
  simgan-reverse     a SimGAN-style adversarial refiner run wild -> synthetic
  ours, no mask      the purifier without masks (ablation)
  ours -<term>       the purifier trained with one loss term removed (ablation table)
  ours               the full mask-guided purifier
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from maskpurify.baselines.classical import ReinhardTransfer, RegionHistogramMatch
from maskpurify.evaluation.gaze_metrics import error_stats
from maskpurify.evaluation.image_metrics import attention_ssim, kernel_inception_distance, pupil_shift
from maskpurify.geometry import angular_error_deg
from maskpurify.losses import TERMS
from maskpurify.nets.encoders import build_encoder
from maskpurify.nets.gaze import load_gaze_net, predict_gaze
from maskpurify.nets.purifier import load_purifier
from maskpurify.nets.segmenter import load_segmenter, predict_masks
from maskpurify.checkpoints import WEIGHTS_DIR
from maskpurify.config import parse_size
from maskpurify.training.common import load_arrays_checked, render_once

DEFAULT_WEIGHTS = str(WEIGHTS_DIR)

Transform = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class TestSetConfig:
    n: int = 1000
    #: wild and synthetic test sets share this seed, so they hold the same eyes (geometry) in the two styles
    seed: int = 9001
    size: str = "36x60"
    #: synthetic reference images (other eyes) for the classical baselines' target statistics and for KID
    reference_n: int = 2000
    reference_seed: int = 9101


@dataclass
class ExperimentConfig:
    test: TestSetConfig = field(default_factory=TestSetConfig)
    #: masks handed to mask-based methods: 'given' (the renderer's exact masks: the paper's RGB-mask pairs)
    #: or 'segmenter' (predicted on the raw wild image, as for real images without masks). The full purifier
    #: is always also run with the other source, as an extra row.
    masks: Literal["given", "segmenter"] = "given"
    weights: str = DEFAULT_WEIGHTS
    ablations: bool = True
    batch_size: int = 256
    kid_subsets: int = 20
    grid_examples: int = 8
    device: str = "cpu"


@dataclass
class Method:
    name: str
    group: Literal["reference", "baseline", "ablation", "ours"]
    description: str
    transform: Transform | None = None
    gaze_model: str | None = None
    #: mask source for this method when it differs from the experiment's
    masks: Literal["given", "segmenter"] | None = None


def purifier_transform(path: Path, device: str, batch_size: int) -> Transform:
    """A purifier checkpoint as a batched (uint8 images, masks) -> uint8 images function."""
    model = load_purifier(path, device)

    @torch.inference_mode()
    def apply(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(images[start:start + batch_size]).to(device).permute(0, 3, 1, 2).float() / 255
            m = torch.from_numpy(masks[start:start + batch_size]).to(device).long()
            y = model(x, m)
            out.append((y.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy())
        return np.concatenate(out)

    return apply


def _weights(root: Path, name: str) -> Path | None:
    path = root / f"{name}.safetensors"
    return path if path.is_file() else None


def build_methods(config: ExperimentConfig, reference: dict[str, np.ndarray], notes: list[str]) -> list[Method]:
    """The methods whose weights exist, in the order of the table."""
    root = Path(config.weights)
    methods = [Method("raw", "reference", "wild images as they are")]
    reinhard = ReinhardTransfer().fit(reference["images"], reference["masks"])
    histogram = RegionHistogramMatch().fit(reference["images"], reference["masks"])
    methods.append(Method("reinhard", "baseline", "region-wise Reinhard colour transfer (Lab mean/std)",
                          reinhard.apply))
    methods.append(Method("histogram", "baseline", "region-wise histogram matching", histogram.apply))

    def optional(name: str, file: str, group: Any, description: str, kind: str = "purifier") -> None:
        path = _weights(root, file)
        if path is None:
            notes.append(f"{name}: skipped, {root / file}.safetensors not found")
        elif kind == "gaze":
            methods.append(Method(name, group, description, gaze_model=str(path)))
        else:
            methods.append(Method(name, group, description, purifier_transform(path, config.device,
                                                                                 config.batch_size)))

    optional("simgan", "simgan_gaze", "baseline", "SimGAN: gaze net retrained on synthetic eyes refined to look "
             "wild (syn->real refiner); raw wild input", kind="gaze")
    optional("simgan-reverse", "simgan_real2syn", "baseline", "SimGAN-style adversarial refiner run wild -> "
             "synthetic (no mask)")
    optional("ours, no mask", "purifier_nomask", "ablation", "our purifier trained and run without masks")
    if config.ablations:
        for term in TERMS:
            optional(f"ours -{term}", f"ablations/purifier_no_{term}", "ablation",
                     f"our purifier trained without the {term} term")
    optional("ours", "purifier", "ours", "mask-guided purifier, all loss terms")
    if methods[-1].name == "ours":
        other: Literal["given", "segmenter"] = "segmenter" if config.masks == "given" else "given"
        label = "automatic masks" if other == "segmenter" else "exact masks"
        methods.append(Method(f"ours, {label}", "ours", f"the full purifier given {label} instead",
                              methods[-1].transform, masks=other))
    return methods


def _nanmean(values: np.ndarray) -> float:
    """Mean over the finite entries; NaN (without a warning) when there are none."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _pooled_features(encoder: torch.nn.Module, images: np.ndarray, batch_size: int) -> torch.Tensor:
    feats = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(images[start:start + batch_size]).permute(0, 3, 1, 2).float() / 255
            feats.append(torch.cat([f.mean((2, 3)) for f in encoder(x)], 1))
    return torch.cat(feats)


def run_experiment(config: ExperimentConfig, work_dir: str | Path, progress: Callable[[str], None] = print
                   ) -> dict[str, Any]:
    """Render (or reuse) the test sets, run every method, and return all numbers plus the arrays the report
    draws (under the ``_arrays`` key, not JSON-able)."""
    work = Path(work_dir)
    size = parse_size(config.test.size)
    t = config.test
    wild = load_arrays_checked(render_once(work / "data" / f"wild_n{t.n}_seed{t.seed}", "wild", t.n, size, t.seed))
    synthetic = load_arrays_checked(render_once(work / "data" / f"synthetic_n{t.n}_seed{t.seed}", "synthetic", t.n,
                                                size, t.seed))
    reference = load_arrays_checked(render_once(work / "data" / f"synthetic_n{t.reference_n}_seed{t.reference_seed}",
                                                "synthetic", t.reference_n, size, t.reference_seed))
    root = Path(config.weights)
    segmenter = load_segmenter(root / "segmenter", config.device)
    gaze_default = str(root / "gaze")
    gaze_nets: dict[str, torch.nn.Module] = {}

    def gaze_errors(model_path: str, images: np.ndarray, truth: np.ndarray) -> np.ndarray:
        if model_path not in gaze_nets:
            gaze_nets[model_path] = load_gaze_net(model_path, config.device)
        pred = predict_gaze(gaze_nets[model_path], torch.from_numpy(images)).numpy().astype(np.float64)
        return angular_error_deg(pred, truth.astype(np.float64))

    masks_given = wild["masks"]
    mask_sources = {"given": masks_given, "segmenter": predict_masks(segmenter, wild["images"])}
    masks_in = mask_sources[config.masks]
    encoder = build_encoder("efficientnet-lite0")
    synthetic_features = _pooled_features(encoder, reference["images"], config.batch_size)
    notes: list[str] = []
    methods = build_methods(config, reference, notes)

    floor_errors = gaze_errors(gaze_default, synthetic["images"], synthetic["gaze"])
    rows: list[dict[str, Any]] = [{"method": "synthetic (floor)", "group": "reference",
                                   "description": "the same eyes rendered in the synthetic style",
                                   "gaze": error_stats(floor_errors)}]
    errors_by_method = {"synthetic (floor)": floor_errors}
    outputs_by_method: dict[str, np.ndarray] = {}
    for method in methods:
        progress(f"  {method.name} ...")
        method_masks = mask_sources[method.masks or config.masks]
        started = time.perf_counter()
        outputs = method.transform(wild["images"], method_masks) if method.transform else wild["images"]
        seconds = time.perf_counter() - started
        errors = gaze_errors(method.gaze_model or gaze_default, outputs, wild["gaze"])
        found = predict_masks(segmenter, outputs)
        kid_mean, kid_std = kernel_inception_distance(_pooled_features(encoder, outputs, config.batch_size),
                                                      synthetic_features, subsets=config.kid_subsets)
        rows.append({
            "method": method.name, "group": method.group, "description": method.description,
            "gaze": error_stats(errors),
            "masks": method.masks or config.masks if method.transform else None,
            "pupil_shift_px": _nanmean(pupil_shift(method_masks, found)),
            "pupil_error_vs_truth_px": _nanmean(pupil_shift(masks_given, found)),
            "attention_ssim": _nanmean(attention_ssim(wild["images"], outputs, masks_given)),
            "kid": kid_mean, "kid_std": kid_std,
            "ms_per_image": 1000 * seconds / len(outputs) if method.transform else 0.0,
        })
        errors_by_method[method.name] = errors
        if method.transform:
            outputs_by_method[method.name] = outputs
    floor = rows[0]["gaze"]["mean_deg"]
    raw = next(r for r in rows if r["method"] == "raw")["gaze"]["mean_deg"]
    for row in rows:
        row["gap_closure"] = (raw - row["gaze"]["mean_deg"]) / (raw - floor) if raw != floor else float("nan")
    return {
        "rows": rows, "notes": notes, "mask_source": config.masks,
        "floor_deg": floor, "raw_deg": raw,
        "_arrays": {"wild": wild, "synthetic": synthetic, "masks_in": masks_in, "errors": errors_by_method,
                    "outputs": outputs_by_method},
    }
