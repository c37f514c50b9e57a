"""maskpurify simgan-refine: refine every image of an eye dataset folder with a SimGAN refiner."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from maskpurify.cli._common import add_config_arguments, resolve_config
from maskpurify.config import flag_type

HELP = "refine a dataset folder with a SimGAN refiner (e.g. purify a wild test set with a real2syn refiner)"


@dataclass
class RefineConfig:
    """What ``maskpurify simgan-refine`` resolves from defaults, ``--config`` and ``--set`` (a flag wins)."""

    batch_size: int = 256
    device: str | None = None  # None: cuda when available


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--refiner", required=True, metavar="CKPT", help="refiner checkpoint (OUT/refiner of "
                        "train-simgan)")
    parser.add_argument("--data", required=True, metavar="DIR", help="dataset folder to refine")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the refined copy (with the run "
                        "record config.yaml + run.json)")
    parser.add_argument("--batch-size", type=flag_type("batch_size"), help="images per forward pass (default 256)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    parser.add_argument("--device", help="cpu, cuda ... (default: cuda when available)")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from maskpurify.config import save_run_record
    from maskpurify.purification.drivers import refine_dataset

    config = resolve_config(RefineConfig, args, ("batch_size", "device"))
    out = refine_dataset(args.refiner, args.data, args.out, config.batch_size, config.device, args.overwrite)
    save_run_record(out, config, None, {"refiner": str(args.refiner), "data": str(args.data)})
    print(f"wrote {out}")
    return 0
