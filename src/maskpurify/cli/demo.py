"""maskpurify demo: the whole experiment on the embedded eye world, then the LPW-style table on the near-IR world,
from a fresh clone."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from maskpurify.cli._common import add_config_arguments, resolve_config

HELP = ("render both domains, purify with the shipped weights, run the side-by-side and write the report; then the "
        "LPW-style pupil-detection table on the near-IR world")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--out", metavar="DIR", default="runs/demo", help="output folder (default: runs/demo)")
    parser.add_argument("--quick", action="store_true", help="small test set, for smoke tests")


def run(args: argparse.Namespace) -> int:
    from maskpurify.cli.evaluate import evaluate
    from maskpurify.cli.evaluate_lpw import evaluate_lpw
    from maskpurify.evaluation.experiment import ExperimentConfig
    from maskpurify.evaluation.lpw import LPWConfig
    from maskpurify.world.preview import preview_sheet

    out = Path(args.out)
    config = resolve_config(ExperimentConfig, args)
    sheet = preview_sheet(out / "world.png", n=8, seed=0)
    print(f"embedded world: both domains side by side in {sheet}")
    evaluate(dataclasses.replace(config), out / "report", overwrite=True, quick=args.quick)
    evaluate_lpw(LPWConfig(), out / "lpw", quick=args.quick)
    return 0
