"""maskpurify simgan-refine: refine every image of an eye dataset folder with a SimGAN refiner."""

from __future__ import annotations

import argparse

from maskpurify.config import flag_type

HELP = "refine a dataset folder with a SimGAN refiner (e.g. purify a wild test set with a real2syn refiner)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--refiner", required=True, metavar="CKPT", help="refiner checkpoint (OUT/refiner of "
                        "train-simgan)")
    parser.add_argument("--data", required=True, metavar="DIR", help="dataset folder to refine")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the refined copy")
    parser.add_argument("--batch-size", type=flag_type("batch_size"), default=256)
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    parser.add_argument("--device", help="cpu, cuda ... (default: cuda when available)")


def run(args: argparse.Namespace) -> int:
    from maskpurify.errors import UserError
    from maskpurify.training.simgan import refine_dataset

    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: must be at least 1")
    out = refine_dataset(args.refiner, args.data, args.out, args.batch_size, args.device, args.overwrite)
    print(f"wrote {out}")
    return 0
