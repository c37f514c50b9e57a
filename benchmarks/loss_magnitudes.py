"""Typical raw (unweighted) magnitudes of each purifier loss term, so loss weights can be balanced.

Inputs are random eye-like 36x60 images (ellipse sclera, circular iris and pupil, random colours,
lighting gradient and noise) with exact masks; the "style" batch is drawn the same way with other
colours. Scenarios: the untrained purifier's output (near identity), and an unrelated image as output
(the scale a broken content term reaches). The task term uses an untrained random segmenter
(cross-entropy near ln 4 = 1.39); a trained one gives far less.
Run: .venv/bin/python benchmarks/loss_magnitudes.py [--encoder NAME] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import torch
from torch import nn

from maskpurify.losses import TERMS, LossWeights, PurifierLoss
from maskpurify.nets.encoders import build_encoder
from maskpurify.nets.purifier import Purifier


def eye_batch(n: int, generator: torch.Generator, bright: float) -> tuple[torch.Tensor, torch.Tensor]:
    """n random eye-like images (N,3,36,60) and their label masks (N,36,60)."""
    h, w = 36, 60
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator)

    cx, cy = 30 + 6 * (rand(n) - 0.5), 18 + 4 * (rand(n) - 0.5)
    ix, iy = cx + 10 * (rand(n) - 0.5), cy + 4 * (rand(n) - 0.5)
    sclera = ((xs - cx.view(n, 1, 1)) / 24) ** 2 + ((ys - cy.view(n, 1, 1)) / 10) ** 2 < 1
    dist = ((xs - ix.view(n, 1, 1)) ** 2 + (ys - iy.view(n, 1, 1)) ** 2).sqrt()
    iris, pupil = sclera & (dist < 8), sclera & (dist < 3)
    mask = sclera.long() + iris.long() + pupil.long()
    palette = bright * (0.3 + 0.7 * rand(n, 4, 3))  # colour per label
    image = torch.einsum("nkc,nkhw->nchw", palette, nn.functional.one_hot(mask, 4).permute(0, 3, 1, 2).float())
    light = 1 + 0.4 * (rand(n, 1, 1, 1) - 0.5) * (xs / w - 0.5)
    image = (image * light + 0.05 * torch.randn(n, 3, h, w, generator=generator)).clamp(0, 1)
    return image, mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="efficientnet-lite0")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", default="benchmarks/results/loss_magnitudes.json")
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    real, real_mask = eye_batch(args.batch, g, bright=0.8)
    style, style_mask = eye_batch(args.batch, g, bright=1.0)
    other, _ = eye_batch(args.batch, g, bright=0.8)
    encoder = build_encoder(args.encoder)
    segmenter = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 4, 3, padding=1)).eval()
    for p in segmenter.parameters():
        p.requires_grad_(False)
    loss = PurifierLoss(LossWeights(1, 1, 1, 1, 1, 1))
    with torch.no_grad():
        near_identity = Purifier().eval()(real, real_mask)
    scenarios = {"untrained_purifier_output": near_identity, "unrelated_image_output": other,
                 "identity_output": real}
    results = {}
    for name, output in scenarios.items():
        with torch.no_grad():
            _, logs = loss(output, real, real_mask, style, style_mask, encoder, segmenter)
        results[name] = {t: logs[t] for t in TERMS}
        print(name, {t: f"{v:.4g}" for t, v in results[name].items()})
    report = {"command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]), "encoder": args.encoder,
              "batch": args.batch, "size": [36, 60], "raw_terms": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
