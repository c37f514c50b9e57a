"""What limits the segmenter on wild eyes: the same network trained on *labelled* wild eyes, an oracle.

The real-data rule forbids wild labels as training signal, so nothing trained here is shipped or used elsewhere.
The question it answers is what the shipped network could reach if the domain gap were closed completely: it trains
the segmenter recipe on the labels of the wild renders the shipped segmenter self-trains on (n 12000, seed 2001;
their images only, for the shipped one), with no extra degradation (they are degraded already), and scores both on
the wild tuning set (seed 2002). The gap between the two rows is what a better domain bridge could still win; the
gap between the oracle row and a bar is what the network and the images themselves do not allow.
The arrays go straight to the trainer's library call, which is how this script, and only it, gets past the
trainer's refusal of wild dataset folders. Runs resume after a kill.
Run: .venv/bin/python benchmarks/segmenter_ceiling.py [--name NAME] [--threads 1] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

from oracle_runs import oracle_parser, parse_oracle_args

from maskpurify.checkpoints import WEIGHTS_DIR
from maskpurify.config import load_config, parse_size
from maskpurify.fileio import atomic_write_json
from maskpurify.metrics.segmentation import segmentation_summary
from maskpurify.nets.segmenter import load_segmenter, predict_masks
from maskpurify.training.segmenter import SegmenterTrainConfig, train_segmenter
from maskpurify.world.dataset import load_arrays_checked, render_once


def main() -> None:
    parser = oracle_parser(__doc__.splitlines()[0], "segmenter", "runs/segmenter_ceiling",
                           "benchmarks/results/segmenter_ceiling.json")
    parser.add_argument("--name", default="oracle", help="run name under --work and key in the JSON")
    args, work = parse_oracle_args(parser)
    defaults = [f"num_threads={args.threads}", "degradation.strength=0", "data.limit=12000", "steps=3000",
                f"init={WEIGHTS_DIR / 'segmenter'}"]
    config = load_config(SegmenterTrainConfig, overrides=[*defaults, *args.overrides])
    size = parse_size(config.data.size)
    train = load_arrays_checked(render_once(work / "data" / "wild_n12000_seed2001", "wild", 12000, size, 2001))
    test = load_arrays_checked(render_once(work / "data" / "wild_n1000_seed2002", "wild", 1000, size, 2002))
    run = work / args.name
    if not (run / "segmenter.safetensors").is_file():
        train_segmenter(config, run, progress=False, arrays=train)

    def score(checkpoint: Path) -> dict[str, float]:
        summary = segmentation_summary(predict_masks(load_segmenter(checkpoint), test.images), test.masks,
                                       test.pupil_center)
        return {"miou": round(summary["miou"], 4), **{k: round(v, 4) for k, v in summary["iou"].items()},
                "pupil_centre_mean_px": round(summary["pupil_centre_vs_mask"]["mean_px"], 3)}

    out = Path(args.out)
    result = json.loads(out.read_text()) if out.is_file() else {}
    result.update({
        "test_set": {"domain": "wild", "n": len(test.images), "seed": 2002, "masks": "exact (test labels)"},
        "shipped": {"checkpoint": str(WEIGHTS_DIR / "segmenter"), **score(WEIGHTS_DIR / "segmenter")},
    })
    result.setdefault("oracles", {})[args.name] = {
        "command": shlex.join([sys.executable.split(os.sep)[-1], *sys.argv]),
        "trained_on": "wild n 12000 seed 2001, with its exact masks (forbidden for shipping: diagnostic only)",
        "overrides": [*defaults, *args.overrides],
        **score(run / "segmenter"),
    }
    atomic_write_json(out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
