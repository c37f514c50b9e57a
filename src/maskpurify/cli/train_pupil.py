"""maskpurify train-pupil: train the near-IR world's pupil detector on synthetic frames only."""

from __future__ import annotations

import argparse
import dataclasses
import json

from maskpurify.cli._common import add_config_arguments, add_training_arguments, resolve_config

HELP = "train a pupil detector on nir-synthetic frames (renders the training set when --data is not given)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--data", metavar="DIR", help="rendered nir-synthetic dataset folder (default: render "
                        "data.render_n frames with data.render_seed into OUT/data)")
    add_training_arguments(parser, "runs/pupil")


def run(args: argparse.Namespace) -> int:
    from maskpurify.training.pupil import PupilTrainConfig, train_pupil

    config = resolve_config(PupilTrainConfig, args)
    if args.data:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, path=args.data))
    if args.device:
        config = dataclasses.replace(config, device=args.device)
    summary = train_pupil(config, args.out, resume=args.resume, stop_at=args.max_steps, progress=not args.quiet)
    print(json.dumps(summary))
    return 0
