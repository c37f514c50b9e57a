"""maskpurify evaluate-lpw: the LPW-style pupil-detection table on the embedded near-infrared world."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from maskpurify.cli._common import add_config_arguments, resolve_config

HELP = "the LPW-style table: pupil detection rate at 5 px on near-IR frames, raw, purified, baselines, controls"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--out", metavar="DIR", default="runs/lpw", help="output folder (default: runs/lpw)")
    parser.add_argument("--quick", action="store_true", help="small test set, for smoke tests")


def evaluate_lpw(config: Any, out: Path, quick: bool = False) -> dict[str, Any]:
    """Run the LPW-style experiment into ``out`` (results.json, examples.png, the videos) and print its tables;
    shared with ``maskpurify demo``."""
    from maskpurify.config import command_line, save_run_record, to_dict
    from maskpurify.evaluation.lpw import conditions_table, lpw_table, run_lpw_experiment
    from maskpurify.fileio import atomic_write_json

    if quick:
        config = dataclasses.replace(config, n=200, conditions_n=100, video_frames=48)
    out.mkdir(parents=True, exist_ok=True)
    save_run_record(out, config, config.seed)
    print(f"\nLPW-style pupil detection on {config.n} nir-wild frames ({config.size}; 1 px = "
          f"{640 // int(config.size.split('x')[1])} LPW px; masks from the near-IR segmenter) ...")
    results = run_lpw_experiment(config, out)
    results.update({"command": command_line(), "config": to_dict(config)})
    atomic_write_json(out / "results.json", results)
    print(lpw_table(results))
    print(f"{results['passed_through']} of {results['n']} nir-wild frames passed through unpurified (no plausible "
          f"eye in their mask); the segmenter found a pupil in {100 * results['segmenter_pupil_found']:.1f}% of them")
    if "conditions" in results:
        print(f"\ndetection rate at 5 LPW px outside the nir-wild preset ({config.conditions_n} other frames; "
              "± half the seed spread):")
        print(conditions_table(results["conditions"]))
    video = results["video"]
    print(f"\nLPW-layout video: {video['frames']} frames at {video['fps']:g} fps purified into {video['video']}; "
          f"read back {video['frames_read_back']} frames at {video['fps_read_back']:g} fps, labels "
          f"{'kept' if video['labels_kept'] else 'NOT kept'}; detection rate {100 * video['raw_rate']:.1f}% raw, "
          f"{100 * video['purified_rate']:.1f}% purified")
    for note in results["notes"]:
        print(f"note: {note}")
    print(f"numbers: {out / 'results.json'}")
    return results


def run(args: argparse.Namespace) -> int:
    from maskpurify.evaluation.lpw import LPWConfig

    evaluate_lpw(resolve_config(LPWConfig, args), Path(args.out), args.quick)
    return 0
