"""What the real-photo artefact measures say about the synthetic style itself: an oracle on the stand-in.

A perfect purifier turns a wild eye into the synthetic render of the same eye: the same geometry and the same
materials (iris colour, skin, lashes), drawn in the synthetic preset. The renderer can draw exactly that, so the
measures (a) new very dark pixels outside the iris, (b) extra dark blobs in the iris and (c) corner colour ratio of
:mod:`maskpurify.evaluation.real_photos` are scored here, per wild eye, for:

- oracle rows: the exact synthetic counterpart, and the counterpart drawn without the synthetic limbal ring and
  without lashes (which parts of the style the measures count as damage);
- the shipped purifier with its automatic masks (``maskpurify.purify``, what a user gets) and with the exact masks
  (an oracle row);
- the grey-image control: a uniform grey image purified with the automatic masks of the wild eye.

The reference masks of the measures are the exact masks of the wild renders. If the oracle rows score as damaged
as often as the purifier, the measure counts the target style, not a defect of the purifier.
Run: .venv/bin/python benchmarks/artefact_oracle.py [--n 500] [--seeds 2002 2003] [--out PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maskpurify.evaluation.real_photos import WORKING_SIZE, artefacts
from maskpurify.fileio import atomic_write_json
from maskpurify.purification.pipeline import Pipeline
from maskpurify.world.domains import synthetic_preset
from maskpurify.world.renderer import RenderedEyes, render_batch, sample_params

GREY_LEVEL = 128


def rates(inputs: np.ndarray, outputs: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """Share of eyes damaged by (a), (b) (and by (b) with an extra blob at the iris edge, or at its centre), (a or
    b), (c), and the median corner ratio."""
    rows = [artefacts(i, o, m) for i, o, m in zip(inputs, outputs, masks)]
    a = np.array([r["damaged_a"] for r in rows])
    b = np.array([r["damaged_b"] for r in rows])
    c = np.array([r["damaged_c"] for r in rows])
    ratio = np.array([r["corner_ratio"] for r in rows], dtype=np.float64)
    edge = np.array([r["damaged_b_edge"] for r in rows])
    centre = np.array([r["damaged_b_centre"] for r in rows])
    return {"damaged_a": round(float(a.mean()), 4), "damaged_b": round(float(b.mean()), 4),
            "damaged_b_edge": round(float(edge.mean()), 4), "damaged_b_centre": round(float(centre.mean()), 4),
            "damaged_a_or_b": round(float((a | b).mean()), 4), "damaged_c": round(float(c.mean()), 4),
            "corner_ratio_median": round(float(np.nanmedian(ratio)), 3)}


def one_seed(pipeline: Pipeline, n: int, seed: int) -> dict[str, dict[str, float]]:
    """Every row on ``n`` wild eyes of one seed (geometry, materials and conditions drawn from it)."""
    params = sample_params(np.random.default_rng(seed), n)

    def draw(preset: Any, conditions_seed: int) -> RenderedEyes:
        return render_batch(params, preset, WORKING_SIZE, np.random.default_rng(conditions_seed),
                            identity_rng=np.random.default_rng(seed + 1))

    wild = draw("wild", seed + 2)
    synthetic = synthetic_preset()
    counterparts = {
        "oracle: exact synthetic counterpart": synthetic,
        "oracle: counterpart without the limbal ring": dataclasses.replace(synthetic, limbus=(0.0, 0.0)),
        "oracle: counterpart without limbal ring and lashes": dataclasses.replace(
            synthetic, limbus=(0.0, 0.0), lash_strength=(0.0, 0.0)),
    }
    rows = {name: rates(wild.images, draw(preset, seed + 3).images, wild.masks)
            for name, preset in counterparts.items()}
    auto = [pipeline.purify(image) for image in wild.images]
    rows["ours: automatic masks"] = rates(wild.images, np.stack([r.image for r in auto]), wild.masks)
    exact = [pipeline.purify(image, mask) for image, mask in zip(wild.images, wild.masks)]
    rows["ours: exact masks (oracle)"] = rates(wild.images, np.stack([r.image for r in exact]), wild.masks)
    grey = np.full_like(wild.images[0], GREY_LEVEL)
    controls = [pipeline.purify(grey, r.mask) for r in auto]
    rows["control: grey image, same automatic mask"] = rates(wild.images, np.stack([r.image for r in controls]),
                                                             wild.masks)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="wild eyes per seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2002, 2003])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/artefact_oracle.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipeline = Pipeline.load()
    per_seed = {str(seed): one_seed(pipeline, args.n, seed) for seed in args.seeds}
    names = list(next(iter(per_seed.values())))
    summary = {}
    for name in names:
        values = {k: [per_seed[s][name][k] for s in per_seed] for k in per_seed[str(args.seeds[0])][name]}
        summary[name] = {k: {"mean": round(float(np.mean(v)), 4), "spread": round(float(np.ptp(v)), 4)}
                         for k, v in values.items()}
    result = {"command": shlex.join([sys.executable, *sys.argv]), "cwd": os.getcwd(), "n_per_seed": args.n,
              "seeds": args.seeds, "size": list(WORKING_SIZE), "reference_masks": "exact masks of the wild renders",
              "summary": summary, "per_seed": per_seed}
    atomic_write_json(Path(args.out), result)
    width = max(map(len, names))
    keys = ("damaged_a", "damaged_b", "damaged_b_edge", "damaged_b_centre", "damaged_a_or_b", "damaged_c",
            "corner_ratio_median")
    print(f"{'row (mean over seeds, spread in brackets)':<{width}}  " + "  ".join(f"{k:>18}" for k in keys))
    for name in names:
        print(f"{name:<{width}}  " + "  ".join(f"{summary[name][k]['mean']:>9.3f} ({summary[name][k]['spread']:.3f})"
                                                 for k in keys))


if __name__ == "__main__":
    main()
