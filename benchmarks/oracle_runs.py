"""The command line the two oracle diagnostics share (segmenter_ceiling.py, gaze_ceiling.py): both train on
labelled wild eyes, which nothing shipped may do, so both take the same few options and nothing else."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def oracle_parser(description: str, trainer: str, work: str, out: str) -> argparse.ArgumentParser:
    """--set KEY=VALUE (the trainer's config), --threads, --work (runs and rendered data), --out (JSON)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a key of the {trainer} training config (repeatable)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--work", default=work, help="runs and rendered data")
    parser.add_argument("--out", default=out, help="JSON to write; an existing one keeps its other runs")
    return parser


def parse_oracle_args(parser: argparse.ArgumentParser) -> tuple[argparse.Namespace, Path]:
    """Parsed arguments (torch threads set) and the work folder."""
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    return args, Path(args.work)
