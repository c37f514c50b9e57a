"""The side-by-side experiment: every method on the same wild test set, scored by the same synthetic-trained
gaze estimator (unless the method retrains it, as SimGAN does), plus image-level metrics and the controls that
a shortcut would pass.

Wild images stand in for a user's real images, so every mask-based method gets masks inferred from the image by
the project's segmenter; the renderer's exact masks appear only in rows of the *oracle* group.

Rows (each skipped with a note when its weights are missing):
  synthetic (floor)         the gaze estimator on synthetic renders of the same geometry: the error to aim at
  raw                       wild images as they are
  mask alone                gaze read from the inferred label map alone (no image): what the mask carries
  reinhard / histogram      region-wise colour transfer / histogram matching toward the synthetic domain
  simgan / simgan-reverse   SimGAN (gaze net retrained on refined synthetic eyes) / its refiner run wild -> synthetic
  domain-randomised ...     a gaze estimator trained under the randomised degradation model, on raw and on ours
  ours, no mask; ours -term the purifier without masks; trained with one loss term removed (ablations)
  ours                      the full mask-guided purifier, inferred masks (the headline)
  oracle: ...               the exact renderer masks: gaze from the exact mask alone, ours with exact masks
  control: ...              a uniform grey image with the same inferred masks; clean synthetic twins purified

Then raw, mask alone, the domain-randomised estimator, ours and the grey control again under each condition of
:mod:`maskpurify.evaluation.conditions` (outside the wild preset, other eyes): the control for fitting the preset.
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
from maskpurify.batch import EyeBatch
from maskpurify.checkpoints import WEIGHTS_DIR
from maskpurify.config import parse_size
from maskpurify.evaluation.conditions import CONDITIONS, render_condition
from maskpurify.evaluation.real_eyes import evaluate_real_eyes
from maskpurify.fileio import read_json
from maskpurify.geometry import angular_error_deg
from maskpurify.losses import TERMS
from maskpurify.masks import label_image
from maskpurify.metrics.gaze import error_stats
from maskpurify.metrics.image import attention_ssim, colour_distance, kernel_inception_distance, \
    pooled_features, pupil_shift, region_colours
from maskpurify.metrics.segmentation import segmentation_summary
from maskpurify.nets.encoders import build_encoder
from maskpurify.nets.gaze import load_gaze_net, predict_gaze
from maskpurify.nets.purifier import load_purifier
from maskpurify.nets.segmenter import load_segmenter, predict_masks
from maskpurify.purification.engine import Purification, eye_check
from maskpurify.world.dataset import load_arrays_checked, render_once
from maskpurify.world.domains import synthetic_preset
from maskpurify.world.renderer import render_samples

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
class ConditionsConfig:
    """The eyes of :data:`maskpurify.evaluation.conditions.CONDITIONS`."""

    enabled: bool = True
    n: int = 1000
    #: a seed used nowhere else, so that no choice was made on these eyes
    seed: int = 7311


@dataclass
class ExperimentConfig:
    test: TestSetConfig = field(default_factory=TestSetConfig)
    #: the methods and their controls under conditions outside the wild preset
    conditions: ConditionsConfig = field(default_factory=ConditionsConfig)
    weights: str = DEFAULT_WEIGHTS
    ablations: bool = True
    #: the oracle rows (exact renderer masks) and the control rows (grey image, clean synthetic eyes)
    oracle: bool = True
    controls: bool = True
    batch_size: int = 256
    kid_subsets: int = 20
    grid_examples: int = 8
    device: str = "cpu"
    #: the baselines over seeds, measured by benchmarks/baseline_spread.py on the same test eyes (too slow to
    #: retrain here); shown when the file exists and its test set is this one
    baseline_spread: str = "benchmarks/results/baseline_spread.json"


MaskSource = Literal["inferred", "exact"]
Inputs = Literal["wild", "grey", "synthetic"]


@dataclass
class Method:
    name: str
    group: Literal["reference", "mask only", "baseline", "ablation", "ours", "oracle", "control"]
    description: str
    transform: Transform | None = None
    gaze_model: str | None = None
    #: masks handed to the method: inferred by the segmenter from its input image, or the renderer's exact ones
    masks: MaskSource = "inferred"
    #: the images the method is applied to: the wild test eyes, a uniform grey image, or their synthetic twins
    inputs: Inputs = "wild"
    #: the gaze is read from the label image of the masks alone (``gaze_model`` reads label maps)
    mask_only: bool = False


def purifier_transform(path: Path, device: str, batch_size: int) -> Transform:
    """A purifier checkpoint as a batched (uint8 images, masks) -> uint8 images function (the engine's library
    call: every image purified, the eye check is the experiment's, for every method alike)."""
    engine = Purification(load_purifier(path, device), None, device, batch_size)

    def apply(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
        return engine.purify_arrays(images, masks)

    apply.reads_masks = engine.reads_masks  # type: ignore[attr-defined]
    return apply


def _weights(root: Path, name: str) -> Path | None:
    path = root / f"{name}.safetensors"
    return path if path.is_file() else None


def build_methods(config: ExperimentConfig, reference: EyeBatch, notes: list[str]) -> list[Method]:
    """The methods whose weights exist, in the order of the table."""
    root = Path(config.weights)
    methods = [Method("raw", "reference", "wild images as they are")]
    labels_net = _weights(root, "gaze_from_labels")
    if labels_net is None:
        notes.append(f"mask alone: skipped, {root / 'gaze_from_labels'}.safetensors not found")
    else:
        methods.append(Method("mask alone", "mask only", "gaze read from the inferred mask alone (no image)",
                              gaze_model=str(labels_net), mask_only=True))
    reinhard = ReinhardTransfer().fit(reference.images, reference.masks)
    histogram = RegionHistogramMatch().fit(reference.images, reference.masks)
    methods.append(Method("reinhard", "baseline", "region-wise Reinhard colour transfer (Lab mean/std)",
                          reinhard.apply))
    methods.append(Method("histogram", "baseline", "region-wise histogram matching", histogram.apply))

    def optional(name: str, file: str, group: Any, description: str, kind: str = "purifier") -> Method | None:
        path = _weights(root, file)
        if path is None:
            notes.append(f"{name}: skipped, {root / file}.safetensors not found")
            return None
        if kind == "gaze":
            method = Method(name, group, description, gaze_model=str(path))
        else:
            method = Method(name, group, description, purifier_transform(path, config.device, config.batch_size))
        methods.append(method)
        return method

    optional("simgan", "simgan_gaze", "baseline", "SimGAN: gaze net retrained on synthetic eyes refined to look "
             "wild (syn->real refiner); raw wild input", kind="gaze")
    optional("simgan-reverse", "simgan_real2syn", "baseline", "SimGAN-style adversarial refiner run wild -> "
             "synthetic (no mask)")
    randomised = optional("domain-randomised estimator", "gaze_randomised", "baseline", "a gaze estimator trained "
                          "on synthetic eyes under the project's randomised degradations; raw wild input, no "
                          "purification", kind="gaze")
    optional("ours, no mask", "purifier_nomask", "ablation", "our purifier trained and run without masks")
    if config.ablations:
        for term in TERMS:
            optional(f"ours -{term}", f"ablations/purifier_no_{term}", "ablation",
                     f"our purifier trained without the {term} term")
    ours = optional("ours", "purifier", "ours", "mask-guided purifier, masks inferred from the image")
    if randomised is not None and ours is not None:
        methods.append(Method("domain-randomised estimator on ours", "baseline", "the domain-randomised estimator "
                              "reading our purified eyes (do the two combine?)", ours.transform,
                              gaze_model=randomised.gaze_model))
    if config.oracle:
        if labels_net is not None:
            methods.append(Method("oracle: mask alone", "oracle", "gaze read from the exact renderer mask alone",
                                  gaze_model=str(labels_net), mask_only=True, masks="exact"))
        if ours is not None:
            methods.append(Method("oracle: ours, exact masks", "oracle", "the full purifier given the renderer's "
                                  "exact masks", ours.transform, masks="exact"))
    if config.controls and ours is not None:
        methods.append(Method("control: grey image", "control", "a uniform grey image purified with the wild "
                              "eye's inferred mask: scores well only if the mask, not the image, carries the gaze",
                              ours.transform, inputs="grey"))
        methods.append(Method("control: clean synthetic", "control", "the synthetic twins purified (masks "
                              "inferred from them): should stay at the floor", ours.transform, inputs="synthetic"))
    return methods


def _not_an_eye(masks: np.ndarray) -> np.ndarray:
    """(N,) bool: the automatic masks that fail the eye check; ``purify --masks auto`` passes those eyes through."""
    return np.array([problem is not None for problem in eye_check(masks)], bool)


def _outputs(method: Method, images: np.ndarray, masks: np.ndarray, not_an_eye: np.ndarray) -> np.ndarray:
    """What the gaze estimator reads for ``method``: the label image of the masks, the method's output (an eye
    whose automatic mask failed the eye check passed through, as ``purify --masks auto`` does), or the input."""
    if method.mask_only:
        return label_image(masks)
    if method.transform is None:
        return images
    outputs = method.transform(images, masks)
    if method.inputs == "wild" and method.masks == "inferred" and not_an_eye.any():
        outputs = np.where(not_an_eye[:, None, None, None], images, outputs)
    return outputs


#: the rows scored under every condition: the headline, its controls and the baseline a user would pick instead
CONDITION_METHODS = ("raw", "mask alone", "domain-randomised estimator", "ours", "control: grey image")


def _unseen_conditions(config: ExperimentConfig, methods: list[Method], segmenter: torch.nn.Module,
                       gaze_errors: Callable[[str, np.ndarray, np.ndarray], np.ndarray], gaze_default: str,
                       progress: Callable[[str], None]) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """Mean gaze error of the :data:`CONDITION_METHODS` under each of :data:`CONDITIONS`, with the segmenter's IoU
    (the renderer's masks are test labels here) and the floor: the same eyes rendered synthetic. Also returns,
    per condition, the first few eyes as rendered, their inferred masks and ours, for the report's picture."""
    size, n, seed = parse_size(config.test.size), config.conditions.n, config.conditions.seed
    chosen = [m for m in methods if m.name in CONDITION_METHODS]
    reference = render_samples(synthetic_preset(), n, size, seed)
    floor = float(gaze_errors(gaze_default, reference.images, reference.gaze).mean())
    result: dict[str, Any] = {"n": n, "seed": seed, "floor_deg": floor, "conditions": {}}
    examples: dict[str, dict[str, np.ndarray]] = {}
    shown = min(n, config.grid_examples // 2)
    for name, condition in CONDITIONS.items():
        progress(f"  condition: {name} ...")
        images = render_condition(condition, n, size, seed)
        masks = predict_masks(segmenter, images)
        not_an_eye = _not_an_eye(masks)
        inputs = {"wild": images, "grey": np.full_like(images, 128)}
        errors = {}
        for method in chosen:
            outputs = _outputs(method, inputs[method.inputs], masks, not_an_eye)
            errors[method.name] = float(gaze_errors(method.gaze_model or gaze_default, outputs,
                                                    reference.gaze).mean())
            if method.name == "ours":
                examples[name] = {"input": images[:shown], "mask": masks[:shown], "ours": outputs[:shown]}
        raw, ours = errors["raw"], errors.get("ours")
        result["conditions"][name] = {
            "description": condition.description, "mean_error_deg": errors,
            "gap_closed": (raw - ours) / (raw - floor) if ours is not None and raw != floor else None,
            "segmenter_miou": segmentation_summary(masks, reference.masks)["miou"],
            "passed_through": int(not_an_eye.sum()),
        }
    return result, examples


def _nanmean(values: np.ndarray) -> float:
    """Mean over the finite entries; NaN (without a warning) when there are none."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _baseline_spread(path: Path, test: TestSetConfig, notes: list[str]) -> dict[str, Any] | None:
    if not path.is_file():
        notes.append(f"baselines over seeds: {path} not found (run benchmarks/baseline_spread.py)")
        return None
    spread = read_json(path)
    if (spread.get("test_set", {}).get("n"), spread.get("test_set", {}).get("seed")) != (test.n, test.seed):
        notes.append(f"baselines over seeds: {path} was measured on another test set; not shown")
        return None
    return spread


def _colour_row(stats: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    distance = colour_distance(stats, reference)
    return {name: {**region, "delta_e_to_synthetic": distance[name]} for name, region in stats.items()}


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

    masks_exact = wild.masks
    masks_inferred = predict_masks(segmenter, wild.images)
    # as `maskpurify purify --masks auto` does: an eye whose automatic mask is implausible is passed through
    not_an_eye = _not_an_eye(masks_inferred)
    inputs = {"wild": wild.images, "grey": np.full_like(wild.images, 128), "synthetic": synthetic.images}
    mask_sources = {("wild", "inferred"): masks_inferred, ("wild", "exact"): masks_exact,
                    ("grey", "inferred"): masks_inferred,
                    ("synthetic", "inferred"): predict_masks(segmenter, synthetic.images)}
    encoder = build_encoder("efficientnet-lite0")
    synthetic_features = pooled_features(encoder, reference.images, config.batch_size)
    synthetic_colours = region_colours(reference.images, reference.masks)
    # region colours are measured with the renderer's masks of the eyes an output shows (test labels, never inputs)
    depicted = {"wild": masks_exact, "grey": masks_exact, "synthetic": synthetic.masks}
    notes: list[str] = []
    methods = build_methods(config, reference, notes)

    floor_errors = gaze_errors(gaze_default, synthetic.images, synthetic.gaze)
    rows: list[dict[str, Any]] = [{"method": "synthetic (floor)", "group": "reference",
                                   "description": "the same eyes rendered in the synthetic style",
                                   "gaze": error_stats(floor_errors)}]
    errors_by_method = {"synthetic (floor)": floor_errors}
    outputs_by_method: dict[str, np.ndarray] = {}
    for method in methods:
        progress(f"  {method.name} ...")
        images_in = inputs[method.inputs]
        method_masks = mask_sources[(method.inputs, method.masks)]
        started = time.perf_counter()
        outputs = _outputs(method, images_in, method_masks, not_an_eye)
        seconds = time.perf_counter() - started
        errors = gaze_errors(method.gaze_model or gaze_default, outputs, wild.gaze)
        row: dict[str, Any] = {
            "method": method.name, "group": method.group, "description": method.description,
            "gaze": error_stats(errors), "inputs": method.inputs,
            "masks": method.masks if method.mask_only or (method.transform is not None and getattr(
                method.transform, "reads_masks", True)) else None,
            "ms_per_image": 1000 * seconds / len(outputs) if method.transform else 0.0,
        }
        if not method.mask_only:
            found = predict_masks(segmenter, outputs)
            kid_mean, kid_std = kernel_inception_distance(pooled_features(encoder, outputs, config.batch_size),
                                                          synthetic_features, subsets=config.kid_subsets)
            row.update({
                "pupil_shift_px": _nanmean(pupil_shift(method_masks, found)),
                "pupil_error_vs_truth_px": _nanmean(pupil_shift(masks_exact, found)),
                "attention_ssim": _nanmean(attention_ssim(images_in, outputs, masks_exact)),
                "kid": kid_mean, "kid_std": kid_std,
                "region_colour": _colour_row(region_colours(outputs, depicted[method.inputs]), synthetic_colours),
            })
        rows.append(row)
        errors_by_method[method.name] = errors
        if method.transform and method.inputs == "wild":
            outputs_by_method[method.name] = outputs
    floor = rows[0]["gaze"]["mean_deg"]
    raw = next(r for r in rows if r["method"] == "raw")["gaze"]["mean_deg"]
    for row in rows:
        row["gap_closure"] = (raw - row["gaze"]["mean_deg"]) / (raw - floor) if raw != floor else float("nan")
    conditions, condition_examples = (
        _unseen_conditions(config, methods, segmenter, gaze_errors, gaze_default, progress)
        if config.conditions.enabled else (None, {}))
    return {
        "rows": rows, "notes": notes, "baseline_spread": _baseline_spread(Path(config.baseline_spread), t, notes),
        "unseen_conditions": conditions,
        "eye_check_flagged": int(not_an_eye.sum()),
        "real_eyes": evaluate_real_eyes(segmenter, work),
        "segmenter": {"wild": segmentation_summary(masks_inferred, masks_exact),
                      "synthetic": segmentation_summary(mask_sources[("synthetic", "inferred")], synthetic.masks)},
        "mask_source": "inferred (segmenter); exact masks only in oracle rows",
        "synthetic_region_colour": synthetic_colours,
        "floor_deg": floor, "raw_deg": raw,
        "_arrays": {"wild": wild, "synthetic": synthetic, "masks_in": masks_inferred, "errors": errors_by_method,
                    "outputs": outputs_by_method, "conditions": condition_examples},
    }
