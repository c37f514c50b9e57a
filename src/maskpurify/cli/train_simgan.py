"""maskpurify train-simgan: the SimGAN baseline (adversarial refiner + local patch discriminator), either way."""

from __future__ import annotations

import argparse
import dataclasses
import json

from maskpurify.cli._common import add_config_arguments, add_training_arguments, resolve_config

HELP = "train a SimGAN refiner: syn2real (the original; --train-gaze retrains gaze on refined eyes) or real2syn"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--direction", choices=("syn2real", "real2syn"),
                        help="syn2real: refine synthetic eyes to look real (SimGAN); real2syn: refine wild eyes to "
                        "look synthetic (a SimGAN-style purifier). Default: the config's direction (syn2real)")
    parser.add_argument("--wild", metavar="DIR", help="dataset folder of real/wild images "
                        "(default: render data.wild.render_n wild eyes into OUT/data)")
    parser.add_argument("--synthetic", metavar="DIR", help="dataset folder of synthetic images "
                        "(default: render data.synthetic.render_n synthetic eyes into OUT/data)")
    parser.add_argument("--train-gaze", action="store_true",
                        help="syn2real only: then refine the synthetic gaze training set and train a gaze estimator "
                        "on it into OUT/gaze (settings of the shipped weights/gaze.json when present)")
    parser.add_argument("--gaze-config", metavar="YAML",
                        help="with --train-gaze: a GazeTrainConfig file instead of the shipped estimator's settings")
    parser.add_argument("--gaze-like", metavar="CKPT", help="with --train-gaze: take the gaze training settings "
                        "from this gaze checkpoint's sidecar (default: the shipped weights/gaze)")
    add_training_arguments(parser, "runs/simgan")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from maskpurify.config import load_config
    from maskpurify.errors import UserError
    from maskpurify.training.gaze import GazeTrainConfig
    from maskpurify.training.refined_gaze import train_refined_gaze
    from maskpurify.training.simgan import SimGANTrainConfig, train_simgan

    config = resolve_config(SimGANTrainConfig, args)
    if args.direction:
        config = dataclasses.replace(config, direction=args.direction)
    if args.train_gaze and config.direction != "syn2real":
        raise UserError("--train-gaze needs --direction syn2real (SimGAN trains gaze on refined synthetic eyes)")
    if (args.gaze_config or args.gaze_like) and not args.train_gaze:
        raise UserError("--gaze-config and --gaze-like are only used with --train-gaze")
    if args.gaze_config and args.gaze_like:
        raise UserError("give --gaze-config or --gaze-like, not both")
    if args.max_steps is not None and args.max_steps < 0:
        raise UserError(f"--max-steps {args.max_steps}: must be >= 0")
    data = config.data
    if args.wild:
        data = dataclasses.replace(data, wild=dataclasses.replace(data.wild, path=args.wild))
    if args.synthetic:
        data = dataclasses.replace(data, synthetic=dataclasses.replace(data.synthetic, path=args.synthetic))
    config = dataclasses.replace(config, data=data)
    if args.device:
        config = dataclasses.replace(config, device=args.device)
    summary = train_simgan(config, args.out, resume=args.resume, stop_at=args.max_steps, progress=not args.quiet)
    print(json.dumps(summary))
    if args.train_gaze and summary["finished"]:
        gaze_config = load_config(GazeTrainConfig, args.gaze_config) if args.gaze_config else None
        kwargs = {"shipped_gaze": args.gaze_like} if args.gaze_like else {}
        if not args.quiet:
            print(f"--train-gaze: training a gaze estimator on refined synthetic eyes in {Path(args.out) / 'gaze'}; "
                  "its synthetic training set (the shipped estimator's: 120,000 eyes unless --gaze-config sets "
                  "data.path or data.render_n) is rendered there first")
        gaze_summary = train_refined_gaze(Path(args.out) / "refiner", Path(args.out) / "gaze", gaze_config,
                                          resume=args.resume, progress=not args.quiet, device=args.device, **kwargs)
        print(json.dumps(gaze_summary))
    return 0
