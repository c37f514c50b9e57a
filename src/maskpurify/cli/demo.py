"""maskpurify demo: the whole experiment on the embedded eye world, from a fresh clone."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from maskpurify.cli._common import add_config_arguments, resolve_config

HELP = "render both domains, purify with the shipped weights, run the side-by-side and write the report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--out", metavar="DIR", default="runs/demo", help="output folder (default: runs/demo)")
    parser.add_argument("--quick", action="store_true", help="small test set, for smoke tests")


def run(args: argparse.Namespace) -> int:
    from maskpurify.cli.evaluate import evaluate
    from maskpurify.evaluation.experiment import ExperimentConfig
    from maskpurify.world.preview import preview_sheet

    out = Path(args.out)
    config = resolve_config(ExperimentConfig, args)
    sheet = preview_sheet(out / "world.png", n=8, seed=0)
    print(f"embedded world: both domains side by side in {sheet}")
    evaluate(dataclasses.replace(config), out / "report", overwrite=True, quick=args.quick)
    return 0
