"""maskpurify train-gaze: train a gaze estimator on synthetic eyes only."""

from __future__ import annotations

import argparse
import dataclasses
import json

from maskpurify.cli._common import add_config_arguments, add_training_arguments, resolve_config

HELP = "train a gaze estimator on synthetic eyes (renders the training set when --data is not given)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--data", metavar="DIR", help="rendered synthetic dataset folder (default: render "
                        "data.render_n eyes with data.render_seed into OUT/data)")
    add_training_arguments(parser, "runs/gaze")


def run(args: argparse.Namespace) -> int:
    from maskpurify.training.gaze import GazeTrainConfig, train_gaze

    config = resolve_config(GazeTrainConfig, args)
    if args.data:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, path=args.data))
    if args.device:
        config = dataclasses.replace(config, device=args.device)
    summary = train_gaze(config, args.out, resume=args.resume, stop_at=args.max_steps, progress=not args.quiet)
    print(json.dumps(summary))
    return 0
