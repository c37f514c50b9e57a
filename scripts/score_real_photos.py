"""Score a purifier on the real-photo check set with the artefact measures (``maskpurify.evaluation.real_photos``).

Runs the identity and the shipped purifier (or ``--checkpoint``) on one half, at the working size 36x60, with the
masks the purifier would get: ``--masks segmenter`` (its own segmenter, as for eye crops) or ``--masks facemesh``
(the FaceMesh reference maps, as ``maskpurify purify`` uses them on face photos; the eye check still applies).
The purifier is used only through a ``purify_fn`` callable, so the measures do not depend on its API. Prints one
JSON object (per-eye rows with ``--per-eye``)::

    .venv/bin/python scripts/score_real_photos.py --half tune --masks facemesh
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from maskpurify.evaluation.real_photos import WORKING_SIZE, score_purifier


def shipped_purify_fn(checkpoint: Path | None, use_masks: bool) -> Any:
    """A ``purify_fn`` around :meth:`Purification.purify_batch` (automatic=True: its eye check decides which eyes
    are purified, as on face photos)."""
    from maskpurify.purification import Purification

    engine = Purification.load(checkpoint)

    def purify_fn(crops: np.ndarray, flips: np.ndarray, masks: np.ndarray | None = None) -> tuple[np.ndarray,
                                                                                                  np.ndarray]:
        names = [f"eye{i}" for i in range(len(crops))]
        sides = ["right" if f else "left" for f in flips]
        given = [np.ascontiguousarray(m) for m in masks] if use_masks and masks is not None else None
        done = engine.purify_batch(crops, given, names, sides, automatic=True)
        return np.asarray(done.images), np.array([p is None for p in done.problems], dtype=bool)

    return purify_fn


def summary(result: dict[str, Any], per_eye: bool) -> dict[str, Any]:
    out = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items() if k != "per_eye"}
    if per_eye:
        out["per_eye"] = result["per_eye"]
    else:
        out["damaged_eyes"] = [r["name"] for r in result["per_eye"]
                               if r["purified"] and (r["damaged_a"] or r["damaged_b"] or r["damaged_c"])]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--half", choices=("tune", "report"), default="tune")
    parser.add_argument("--masks", choices=("segmenter", "facemesh"), default="facemesh")
    parser.add_argument("--checkpoint", type=Path, help="purifier checkpoint (default: the shipped one)")
    parser.add_argument("--per-eye", action="store_true", help="print the per-eye rows too")
    args = parser.parse_args(argv)
    use_masks = args.masks == "facemesh"

    def identity(crops: np.ndarray, flips: np.ndarray, masks: np.ndarray | None = None) -> tuple[np.ndarray,
                                                                                                np.ndarray]:
        return crops.copy(), np.ones(len(crops), dtype=bool)

    report = {
        "identity": summary(score_purifier(identity, args.half, WORKING_SIZE, pass_masks=True), args.per_eye),
        "purifier": summary(score_purifier(shipped_purify_fn(args.checkpoint, use_masks), args.half, WORKING_SIZE,
                                           pass_masks=True), args.per_eye),
        "masks": args.masks,
    }
    json.dump(report, sys.stdout, indent=1, default=float)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
