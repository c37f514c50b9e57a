"""``maskpurify render``: write a procedural eye dataset (and/or a contact sheet)."""

from __future__ import annotations

import argparse
from pathlib import Path

from maskpurify.cli._common import add_config_arguments, resolve_config
from maskpurify.config import MAX_PREVIEW_ROWS, MAX_SAMPLES, flag_type, save_run_record
from maskpurify.errors import UserError
from maskpurify.world.domains import DOMAINS, RenderConfig

HELP = "render a procedural eye dataset (eye world: synthetic, wild; near-IR eye camera: nir-synthetic, nir-wild) with masks and gaze labels"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--domain", choices=DOMAINS, default="synthetic", help="appearance preset (default: synthetic)")
    parser.add_argument("--n", type=flag_type("n"), help=f"number of images to render (1 to {MAX_SAMPLES:,})")
    parser.add_argument("--size", default="36x60", metavar="HxW", help="image size, height x width (default 36x60)")
    parser.add_argument("--seed", type=flag_type("seed"), default=0, help="random seed; the same seed gives the same geometry "
                        "in every domain (default 0)")
    parser.add_argument("--out", metavar="DIR", help="dataset directory to write")
    parser.add_argument("--grey", action="store_true", help="write single-channel greyscale images")
    parser.add_argument("--unityeyes", action="store_true", help="also write per-sample jpg+json in the UnityEyes "
                        "format under DIR/unityeyes/")
    parser.add_argument("--shard-size", type=flag_type("shard_size"), default=4096, help="samples per .npz shard (default 4096)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing, different dataset")
    parser.add_argument("--workers", type=flag_type("workers"), help="render processes (default: one per usable core "
                        "for 2,048 images or more; the files are the same for any number)")
    parser.add_argument("--preview", metavar="PNG", help="also write a contact sheet (both domains, same geometry)")
    parser.add_argument("--preview-n", type=flag_type("preview_n"), default=8,
                        help=f"rows in the contact sheet (default 8, at most {MAX_PREVIEW_ROWS})")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from maskpurify.fileio import ensure_writable
    from maskpurify.world.dataset import write_dataset
    from maskpurify.world.preview import preview_sheet
    from maskpurify.config import parse_size

    config = resolve_config(RenderConfig, args)
    size = parse_size(args.size)
    if args.out is None and args.n is None and args.preview is None:
        raise UserError("nothing to do: give --out DIR --n N, and/or --preview sheet.png")
    if (args.out is None) != (args.n is None):
        raise UserError("--out and --n go together (a dataset needs both)")
    if args.n is not None and args.n < 1:
        raise UserError(f"--n must be at least 1, got {args.n}")
    if args.preview_n < 1:
        raise UserError(f"--preview-n must be at least 1, got {args.preview_n}")
    if args.preview is not None:
        if Path(args.preview).suffix.lower() != ".png":
            raise UserError(f"--preview {args.preview}: the contact sheet is a .png file")
        ensure_writable(args.preview, args.overwrite)
    config.geometry_for(args.domain).validate()
    if args.out is not None:
        out = write_dataset(args.out, config.preset(args.domain), args.n, size, args.seed, grey=args.grey,
                            shard_size=args.shard_size, unityeyes=args.unityeyes, overwrite=args.overwrite,
                            geometry=config.geometry_for(args.domain), progress=not args.quiet, workers=args.workers)
        save_run_record(out, config, args.seed, {"domain": args.domain, "n": args.n, "size": list(size),
                                                 "grey": args.grey, "shard_size": args.shard_size,
                                                 "unityeyes": args.unityeyes})
        print(f"wrote {args.n} {args.domain} eyes ({size[0]}x{size[1]}) to {out}")
    if args.preview is not None:
        path = preview_sheet(args.preview, args.preview_n, size, args.seed, config)
        print(f"wrote contact sheet {path}")
    return 0
