"""Training throughput of the purifier with the shipped recipe (images/s and FLOP/s of one full step:
purifier forward on the wild and the synthetic batch (identity term), the frozen EfficientNet-Lite0 loss
network on output / input / style batch, the frozen segmenter's task loss, the frozen gaze guide, backward,
Adam), against a 2048x2048 fp32 matmul timed in the same run.
Run: .venv/bin/python benchmarks/train_speed.py [--threads N] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from purify_speed import count_flops, seconds_per_call  # noqa: E402

from maskpurify.losses import GazeGuide, LossInputs, purifier_loss  # noqa: E402
from maskpurify.nets.encoders import build_encoder  # noqa: E402
from maskpurify.nets.gaze import load_gaze_net  # noqa: E402
from maskpurify.nets.purifier import Purifier  # noqa: E402
from maskpurify.nets.segmenter import build_segmenter  # noqa: E402
from maskpurify.training.purifier import PurifierTrainConfig, purify_batches  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", default="benchmarks/results/train_speed.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    recipe = PurifierTrainConfig()
    batch = recipe.batch_size
    from_labels = load_gaze_net(recipe.gaze_from_labels)
    prior = from_labels if recipe.net.gaze_prior else None
    net = Purifier(recipe.net.purifier_config(prior), prior)
    guide = GazeGuide(load_gaze_net(recipe.gaze_guide), from_labels)
    encoder = build_encoder(recipe.encoder.name, upsample=recipe.encoder.upsample)
    segmenter = build_segmenter().eval().requires_grad_(False)
    loss = purifier_loss(recipe.loss, encoder, recipe.net.attention_labels, segmenter, guide)
    optimizer = torch.optim.Adam(net.parameters(), lr=recipe.lr)
    image, style = torch.rand(batch, 3, 36, 60), torch.rand(batch, 3, 36, 60)
    mask, style_mask = torch.randint(0, 4, (batch, 36, 60)), torch.randint(0, 4, (batch, 36, 60))

    def step() -> None:
        output, style_output = purify_batches(net, image, mask, style, style_mask, recipe.loss.identity > 0)
        total, _ = loss(LossInputs(output, image, mask, style, style_mask, style_output))
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    flops = count_flops(step)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    with torch.inference_mode():
        matmul = 2 * 2048 ** 3 / seconds_per_call(lambda: a @ b, torch.device("cpu"), min_time=1.0)
    sec = seconds_per_call(step, torch.device("cpu"), min_time=5.0)
    results = {
        "command": " ".join(shlex.quote(x) for x in [sys.executable, *sys.argv]),
        "threads": torch.get_num_threads(), "batch": batch, "size": [36, 60],
        "encoder": recipe.encoder.name, "encoder_upsample": recipe.encoder.upsample,
        "seconds_per_step": round(sec, 4), "images_per_s": round(batch / sec, 1),
        "gflop_per_step": round(flops / 1e9, 2), "achieved_gflops": round(flops / sec / 1e9, 2),
        "matmul_2048_gflops": round(matmul / 1e9, 2), "fraction_of_matmul_flops": round(flops / sec / matmul, 3),
        "load_average_1_5_15_min": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(results, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
