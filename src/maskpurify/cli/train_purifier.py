"""maskpurify train-purifier: train the mask-guided purifier (wild content, synthetic style, unpaired)."""

from __future__ import annotations

import argparse
import dataclasses
import json

from maskpurify.cli._common import add_config_arguments, add_training_arguments, resolve_config

HELP = "train the mask-guided purifier (renders wild content and synthetic style sets when not given)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--content", metavar="DIR", help="dataset folder of real/wild images with masks "
                        "(default: render data.content.render_n wild eyes into OUT/data)")
    parser.add_argument("--style", metavar="DIR", help="dataset folder of synthetic images with masks "
                        "(default: render data.style.render_n synthetic eyes into OUT/data)")
    parser.add_argument("--no-mask", action="store_true", help="the ablation: same network, mask not used "
                        "(nor read by the gaze prior)")
    add_training_arguments(parser, "runs/purifier")


def run(args: argparse.Namespace) -> int:
    from maskpurify.training.purifier import PurifierTrainConfig, train_purifier

    config = resolve_config(PurifierTrainConfig, args)
    data = config.data
    if args.content:
        data = dataclasses.replace(data, content=dataclasses.replace(data.content, path=args.content))
    if args.style:
        data = dataclasses.replace(data, style=dataclasses.replace(data.style, path=args.style))
    config = dataclasses.replace(config, data=data)
    if args.no_mask:
        config = dataclasses.replace(config, net=dataclasses.replace(config.net, use_mask=False, gaze_prior=False))
    if args.device:
        config = dataclasses.replace(config, device=args.device)
    summary = train_purifier(config, args.out, resume=args.resume, stop_at=args.max_steps, progress=not args.quiet)
    print(json.dumps(summary))
    return 0
