"""maskpurify evaluate-gaze: the gaze evaluation protocol on a labelled eye dataset."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

from maskpurify.cli._common import add_config_arguments, resolve_config
from maskpurify.config import flag_type

HELP = "angular gaze error of a gaze estimator on a labelled eye dataset (JSON report + plots)"


@dataclass
class GazeEvalConfig:
    """What ``maskpurify evaluate-gaze`` resolves from defaults, ``--config`` and ``--set`` (a flag wins)."""

    batch_size: int = 512
    device: str | None = None  # None: cuda when available


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="CKPT", help="gaze checkpoint (e.g. weights/gaze)")
    parser.add_argument("--data", required=True, metavar="DIR", help="rendered / converted dataset folder")
    parser.add_argument("--out", metavar="DIR", help="write NAME.json and NAME.png here, with the run record "
                        "NAME.config.yaml + NAME.run.json")
    parser.add_argument("--name", default="gaze_eval", help="report file stem (default: gaze_eval)")
    parser.add_argument("--batch-size", type=flag_type("batch_size"), help="images per forward pass (default 512)")
    parser.add_argument("--device", help="cpu, cuda ... (default: cuda when available)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing report NAME.json in --out")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    import torch

    from maskpurify.config import save_run_record
    from maskpurify.errors import UserError
    from maskpurify.metrics.gaze import gaze_report, write_gaze_report
    from maskpurify.fileio import OutputGuard
    from maskpurify.nets.gaze import gaze_net_inputs, load_gaze_net, predict_gaze
    from maskpurify.training.common import choose_device
    from maskpurify.world.dataset import load_arrays_checked

    config = resolve_config(GazeEvalConfig, args, ("batch_size", "device"))
    if args.out:
        guard = OutputGuard(args.out, inputs=[args.model, args.data], overwrite=args.overwrite)
        for suffix in (".json", ".png", ".config.yaml", ".run.json"):
            guard.claim(Path(args.out) / f"{args.name}{suffix}", "--name")
    model = load_gaze_net(args.model, choose_device(config.device))
    data = load_arrays_checked(args.data)
    pose = None
    if model.config.use_head_pose:
        if data.head_pose is None:
            raise UserError(f"--data {args.data}: the model needs head poses but the dataset has none")
        pose = torch.from_numpy(np.ascontiguousarray(data.head_pose, np.float32))
    images = gaze_net_inputs(model.config, data, f"--data {args.data}")
    pred = predict_gaze(model, torch.from_numpy(np.ascontiguousarray(images)), pose, config.batch_size)
    report, errors = gaze_report(pred.numpy(), data.gaze, extra={"model": str(args.model), "data": str(args.data)})
    if args.out:
        json_path, plot_path = write_gaze_report(args.out, report, errors, data.gaze, args.name)
        save_run_record(args.out, config, None, {"model": str(args.model), "data": str(args.data),
                                                 "report": str(json_path)}, name=args.name)
        print(f"wrote {json_path} and {plot_path}")
    stats = report["angular_error"]
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in stats.items()}))
    return 0
