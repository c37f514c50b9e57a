"""maskpurify train-segmenter: train the eye-region segmenter on synthetic eyes."""

from __future__ import annotations

import argparse
import dataclasses
import json

from maskpurify.cli._common import add_config_arguments, resolve_config

HELP = ("train the 4-class eye segmenter on synthetic eyes with photometric augmentation "
        "(renders the training set when --data is not given)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--data", metavar="DIR", help="rendered synthetic dataset folder (default: render "
                        "data.render_n eyes with data.render_seed into OUT/data)")
    parser.add_argument("--out", metavar="DIR", default="runs/segmenter",
                        help="output folder (default: runs/segmenter)")
    parser.add_argument("--no-resume", dest="resume", action="store_false",
                        help="start afresh even when OUT/last.safetensors exists")
    parser.add_argument("--max-steps", type=int, metavar="N", help="stop after N steps (resumable), e.g. to test")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from maskpurify.training.segmenter import SegmenterTrainConfig, train_segmenter

    config = resolve_config(SegmenterTrainConfig, args)
    if args.data:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, path=args.data))
    if args.device:
        config = dataclasses.replace(config, device=args.device)
    summary = train_segmenter(config, args.out, resume=args.resume, stop_at=args.max_steps,
                              progress=not args.quiet)
    print(json.dumps(summary))
    return 0
