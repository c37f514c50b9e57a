"""maskpurify evaluate-gaze: the gaze evaluation protocol on a labelled eye dataset."""

from __future__ import annotations

import argparse
import json

from maskpurify.config import flag_type

HELP = "angular gaze error of a gaze estimator on a labelled eye dataset (JSON report + plots)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="CKPT", help="gaze checkpoint (e.g. weights/gaze)")
    parser.add_argument("--data", required=True, metavar="DIR", help="rendered / converted dataset folder")
    parser.add_argument("--out", metavar="DIR", help="write gaze_eval.json and gaze_eval.png here")
    parser.add_argument("--name", default="gaze_eval", help="report file stem (default: gaze_eval)")
    parser.add_argument("--batch-size", type=flag_type("batch_size"), default=512)
    parser.add_argument("--device", help="cpu, cuda ... (default: cuda when available)")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from maskpurify.errors import UserError
    from maskpurify.evaluation.gaze_metrics import gaze_report, write_gaze_report
    from maskpurify.nets.gaze import gaze_net_inputs, load_gaze_net, predict_gaze
    from maskpurify.training.common import choose_device, load_arrays_checked

    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: must be at least 1")
    model = load_gaze_net(args.model, choose_device(args.device))
    data = load_arrays_checked(args.data)
    pose = None
    if model.config.use_head_pose:
        if "head_pose" not in data:
            raise UserError(f"--data {args.data}: the model needs head poses but the dataset has none")
        pose = torch.from_numpy(np.ascontiguousarray(data["head_pose"], np.float32))
    images = gaze_net_inputs(model.config, data, f"--data {args.data}")
    pred = predict_gaze(model, torch.from_numpy(np.ascontiguousarray(images)), pose, args.batch_size)
    report, errors = gaze_report(pred.numpy(), data["gaze"], extra={"model": str(args.model), "data": str(args.data)})
    if args.out:
        json_path, plot_path = write_gaze_report(args.out, report, errors, data["gaze"], args.name)
        print(f"wrote {json_path} and {plot_path}")
    stats = report["angular_error"]
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in stats.items()}))
    return 0
