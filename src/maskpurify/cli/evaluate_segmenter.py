"""maskpurify evaluate-segmenter: IoU and pupil-centre error of the segmenter on a labelled eye dataset."""

from __future__ import annotations

import argparse
import json

from maskpurify.config import flag_type

HELP = "per-class IoU and pupil-centre error of a segmenter on a labelled eye dataset"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="CKPT", help="segmenter checkpoint (weights/segmenter)")
    parser.add_argument("--data", required=True, metavar="DIR", help="dataset folder with masks")
    parser.add_argument("--out", metavar="DIR", help="write segmenter_eval.json here")
    parser.add_argument("--name", default="segmenter_eval", help="report file stem (default: segmenter_eval)")
    parser.add_argument("--batch-size", type=flag_type("batch_size"), default=256)
    parser.add_argument("--device", help="cpu, cuda ... (default: cuda when available)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from maskpurify.config import command_line
    from maskpurify.errors import UserError
    from maskpurify.evaluation.segmentation_metrics import segmentation_summary
    from maskpurify.fileio import atomic_write_json
    from maskpurify.nets.segmenter import load_segmenter, predict_masks
    from maskpurify.training.common import choose_device, load_arrays_checked

    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: must be at least 1")
    model = load_segmenter(args.model, choose_device(args.device))
    data = load_arrays_checked(args.data)
    pred = predict_masks(model, data["images"], args.batch_size)
    summary = segmentation_summary(pred, data["masks"], data.get("pupil_center"))
    report = {"command": command_line(), "model": str(args.model), "data": str(args.data), **summary}
    if args.out:
        path = Path(args.out) / f"{args.name}.json"
        atomic_write_json(path, report)
        print(f"wrote {path}")
    print(json.dumps({"miou": round(summary["miou"], 4), **{k: round(v, 4) for k, v in summary["iou"].items()},
                      "pupil_centre_mean_px": round(summary["pupil_centre_vs_mask"]["mean_px"], 3)}))
    return 0
