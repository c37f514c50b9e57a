"""maskpurify evaluate: the side-by-side experiment and its report."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from maskpurify.cli._common import add_config_arguments, resolve_config
from maskpurify.errors import UserError
from maskpurify.fileio import read_json

HELP = "run every method on the same wild test set and write report.html + results.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--out", metavar="DIR", default="runs/evaluate", help="report folder (default: runs/evaluate)")
    parser.add_argument("--quick", action="store_true", help="small test set (200 eyes), for smoke tests")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing report in --out")


def _training_budget(weights: Path) -> dict[str, Any]:
    """What each shipped network of the eye world's sidecar says about how it was trained (the near-IR world's, in
    ``nir/``, belong to the LPW table)."""
    budget = {}
    for sidecar in sorted(weights.rglob("*.json")):
        if "nir" in sidecar.relative_to(weights).parts[:-1]:
            continue
        try:
            meta = read_json(sidecar)
        except UserError:
            continue
        if isinstance(meta, dict) and "trained" in meta:
            budget[str(sidecar.relative_to(weights).with_suffix(""))] = meta["trained"]
    return budget


def evaluate(config: Any, out: Path, overwrite: bool, quick: bool) -> dict[str, Any]:
    """Run the experiment into ``out`` and print the table; shared with ``maskpurify demo``."""
    from maskpurify.config import command_line, save_run_record, to_dict
    from maskpurify.evaluation.experiment import run_experiment
    from maskpurify.evaluation.report import conditions_text, text_table, write_report
    from maskpurify.fileio import ensure_writable

    ensure_writable(out / "results.json", overwrite)
    if quick:
        config = dataclasses.replace(config, kid_subsets=5, test=dataclasses.replace(
            config.test, n=200, reference_n=500), conditions=dataclasses.replace(config.conditions, n=200))
    save_run_record(out, config, config.test.seed)
    print(f"evaluating on {config.test.n} wild test eyes (masks inferred from the images; exact masks only in "
          "oracle rows) ...")
    results = run_experiment(config, out)
    budget = _training_budget(Path(config.weights))
    steps = sorted({(b.get("steps"), b.get("batch_size")) for b in budget.values() if b.get("steps")},
                   key=lambda s: (s[0] or 0, s[1] or 0))
    results.update({"command": command_line(), "config": to_dict(config), "training": budget,
                    "budget": "learned methods trained for " + ", ".join(
                        f"{s} steps" + (f" x batch {b}" if b else "") for s, b in steps) if steps else ""})
    page = write_report(out, results, logs={p.stem: p for p in sorted(Path(config.weights).glob("logs/*.csv"))},
                        examples=config.grid_examples)
    print()
    print(text_table(results["rows"]))
    seg, real = results["segmenter"], results["real_eyes"]
    print(f"\nmasks from the image: segmenter mean IoU (sclera, iris, pupil) {seg['wild']['miou']:.3f} on the wild "
          f"test eyes, {seg['synthetic']['miou']:.3f} on their synthetic twins, {real['mean_iou']:.3f} on "
          f"{real['n']} real eye crops (FaceMesh reference); {results['eye_check_flagged']} wild eyes failed the eye "
          "check and were passed through")
    unseen = results.get("unseen_conditions")
    if unseen:
        print(f"\nconditions outside the wild preset ({unseen['n']} other eyes; floor {unseen['floor_deg']:.2f}°):")
        print(conditions_text(unseen))
    for note in results["notes"]:
        print(f"note: {note}")
    print(f"\nreport: {page}\nnumbers: {out / 'results.json'}")
    return results


def run(args: argparse.Namespace) -> int:
    from maskpurify.evaluation.experiment import ExperimentConfig

    config = resolve_config(ExperimentConfig, args)
    evaluate(config, Path(args.out), args.overwrite, args.quick)
    return 0
