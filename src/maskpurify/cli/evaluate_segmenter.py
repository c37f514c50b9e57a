"""maskpurify evaluate-segmenter: IoU and pupil-centre error of the segmenter on a labelled eye dataset."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

from maskpurify.cli._common import add_config_arguments, resolve_config
from maskpurify.config import flag_type

HELP = "per-class IoU and pupil-centre error of a segmenter on a labelled eye dataset"


@dataclass
class SegmenterEvalConfig:
    """What ``maskpurify evaluate-segmenter`` resolves from defaults, ``--config`` and ``--set`` (a flag wins)."""

    batch_size: int = 256
    device: str | None = None  # None: cuda when available


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="CKPT", help="segmenter checkpoint (weights/segmenter)")
    parser.add_argument("--data", required=True, metavar="DIR", help="dataset folder with masks")
    parser.add_argument("--out", metavar="DIR", help="write NAME.json here, with the run record NAME.config.yaml "
                        "+ NAME.run.json")
    parser.add_argument("--name", default="segmenter_eval", help="report file stem (default: segmenter_eval)")
    parser.add_argument("--batch-size", type=flag_type("batch_size"), help="images per forward pass (default 256)")
    parser.add_argument("--device", help="cpu, cuda ... (default: cuda when available)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing report NAME.json in --out")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from maskpurify.config import command_line, save_run_record
    from maskpurify.metrics.segmentation import segmentation_summary
    from maskpurify.fileio import OutputGuard, atomic_write_json
    from maskpurify.nets.segmenter import load_segmenter, predict_masks
    from maskpurify.training.common import choose_device
    from maskpurify.world.dataset import load_arrays_checked

    config = resolve_config(SegmenterEvalConfig, args, ("batch_size", "device"))
    if args.out:
        guard = OutputGuard(args.out, inputs=[args.model, args.data], overwrite=args.overwrite)
        for suffix in (".json", ".config.yaml", ".run.json"):
            guard.claim(Path(args.out) / f"{args.name}{suffix}", "--name")
    model = load_segmenter(args.model, choose_device(config.device))
    data = load_arrays_checked(args.data)
    pred = predict_masks(model, data.images, config.batch_size)
    summary = segmentation_summary(pred, data.masks, data.pupil_center)
    report = {"command": command_line(), "model": str(args.model), "data": str(args.data), **summary}
    if args.out:
        path = Path(args.out) / f"{args.name}.json"
        atomic_write_json(path, report)
        save_run_record(args.out, config, None, {"model": str(args.model), "data": str(args.data),
                                                 "report": str(path)}, name=args.name)
        print(f"wrote {path}")
    print(json.dumps({"miou": round(summary["miou"], 4), **{k: round(v, 4) for k, v in summary["iou"].items()},
                      "pupil_centre_mean_px": round(summary["pupil_centre_vs_mask"]["mean_px"], 3)}))
    return 0
