"""Typical raw (unweighted) magnitudes of each purifier loss term, so loss weights can be balanced.

Eyes come from the project's renderer at 36x60: the real-like input is the ``wild`` preset, the style
batch is ``synthetic`` eyes with other geometry. Output scenarios:
- ``identity``: output = input (where training starts: the full style gap, no content change);
- ``ideal``: the same eyes (same geometry and identity seed) rendered in ``synthetic`` style (what a perfect
  purifier would produce: style near its floor, the content cost of a correct restyling);
- ``untrained_purifier``: a freshly initialised Purifier's output (near identity);
- ``wrong_geometry``: synthetic eyes with other geometry (the content cost of losing the gaze).
The task term uses an untrained random segmenter (cross-entropy near ln 4 = 1.39); a trained one gives
far less on good outputs.
Run: .venv/bin/python benchmarks/loss_magnitudes.py [--encoder NAME] [--batch N] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from maskpurify.losses import TERMS, LossConfig, LossInputs, purifier_loss
from maskpurify.nets.encoders import build_encoder
from maskpurify.nets.purifier import Purifier
from maskpurify.world.renderer import RenderedEyes, render_batch, sample_params


def _tensors(batch: RenderedEyes) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.from_numpy(batch.images).permute(0, 3, 1, 2).float() / 255.0
    return images, torch.from_numpy(batch.masks).long()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="efficientnet-lite0")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--out", default="benchmarks/results/loss_magnitudes.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    params, other_params = sample_params(rng, args.batch), sample_params(rng, args.batch)
    real, real_mask = _tensors(render_batch(params, "wild", (36, 60), np.random.default_rng(1),
                                            identity_rng=np.random.default_rng(2)))
    ideal, _ = _tensors(render_batch(params, "synthetic", (36, 60), np.random.default_rng(1),
                                     identity_rng=np.random.default_rng(2)))
    style, style_mask = _tensors(render_batch(other_params, "synthetic", (36, 60), np.random.default_rng(3)))
    wrong, _ = _tensors(render_batch(other_params, "synthetic", (36, 60), np.random.default_rng(4)))
    encoder = build_encoder(args.encoder)
    segmenter = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 4, 3, padding=1)).eval()
    for p in segmenter.parameters():
        p.requires_grad_(False)
    # every term at weight 1 but identity and gaze (they need a purified style batch and gaze nets)
    loss = purifier_loss(LossConfig(1, 1, 1, 1, 1, 1, identity=0, gaze=0, style_per_label=False,
                                    task_class_weights=(1, 1, 1, 1)), encoder, segmenter=segmenter)
    with torch.no_grad():
        untrained = Purifier().eval()(real, real_mask)
    scenarios = {"identity": real, "ideal": ideal, "untrained_purifier": untrained, "wrong_geometry": wrong}
    results = {}
    for name, output in scenarios.items():
        with torch.no_grad():
            _, logs = loss(LossInputs(output, real, real_mask, style, style_mask))
        results[name] = {t: round(logs[t], 5) for t in TERMS}
        print(f"{name:>20}", {t: f"{v:.4g}" for t, v in results[name].items()})
    report = {"command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]), "encoder": args.encoder,
              "batch": args.batch, "size": [36, 60], "raw_terms": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
