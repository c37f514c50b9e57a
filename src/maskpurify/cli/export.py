"""``maskpurify export``: write the networks in a portable format (ONNX), for ONNX Runtime and other runtimes."""

from __future__ import annotations

import argparse

from maskpurify.errors import UserError

HELP = "export the segmenter, purifier and gaze estimator as ONNX files (with JSON sidecars)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("onnx",), default="onnx", help="file format (default: onnx)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder: segmenter.onnx, purifier.onnx, gaze.onnx, each with NAME.json (the "
                             "checkpoint's sidecar plus input/output names, dtypes and shapes, opset, sha256)")
    parser.add_argument("--checkpoint", metavar="CKPT", help="purifier checkpoint (default: weights/purifier; "
                        "'none': skip)")
    parser.add_argument("--segmenter", metavar="CKPT", help="segmenter checkpoint (default: weights/segmenter; "
                        "'none': skip)")
    parser.add_argument("--gaze", metavar="CKPT", help="gaze estimator checkpoint (default: weights/gaze; "
                        "'none': skip)")
    parser.add_argument("--size", metavar="HxW", help="image size the graphs take (default: each network's working "
                        "size from its sidecar, 36x60 for the shipped ones); the batch axis is always dynamic")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files in --out")


def run(args: argparse.Namespace) -> int:
    from maskpurify.checkpoints import WEIGHTS_DIR
    from maskpurify.config import parse_size
    from maskpurify.purification.onnx_backend import export_checkpoints

    size = parse_size(args.size, min_side=1) if args.size else None
    chosen = {}
    for kind, value, default in (("segmenter", args.segmenter, "segmenter"), ("purifier", args.checkpoint, "purifier"),
                                 ("gaze", args.gaze, "gaze")):
        chosen[kind] = None if value == "none" else (value or WEIGHTS_DIR / default)
    if all(v is None for v in chosen.values()):
        raise UserError("--checkpoint, --segmenter and --gaze are all 'none': nothing to export")
    written = export_checkpoints(chosen, args.out, size, overwrite=args.overwrite)
    for kind, path in written.items():
        print(f"{kind}: {path} (+ {path.with_suffix('.json').name})")
    return 0
