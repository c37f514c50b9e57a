"""Train the eye-region segmenter on synthetic eyes (never on the wild domain), each batch pushed through the
project's randomised degradation model (:mod:`maskpurify.degradation`), so that it holds on eyes it has never
seen: the wild test domain, real crops, purified images.

Outputs in the out dir: ``segmenter.safetensors`` + ``segmenter.json``, ``last`` (resumable state),
``log.csv``, ``config.yaml`` + ``run.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from maskpurify.batch import EyeBatch
from maskpurify.config import command_line
from maskpurify.degradation import DegradationConfig, degrade, no_eye
from maskpurify.metrics.segmentation import segmentation_summary
from maskpurify.nets.segmenter import SegmenterConfig, build_segmenter, predict_masks, save_segmenter
from maskpurify.training.common import lr_at, set_lr, to_float_images, unwrap
from maskpurify.training.gaze import TrainDataConfig, describe_data, load_training_data
from maskpurify.training.loop import LoopConfig, Run, SupervisedTask, fit
from maskpurify.training.sources import split_train_val


@dataclass
class SegmenterTrainConfig(LoopConfig):
    #: the first 30k of the (60k) synthetic render are plenty for segmentation
    data: TrainDataConfig = field(default_factory=lambda: TrainDataConfig(limit=30000))
    #: four resolutions: under heavy degradation the context of the coarsest (5x8) level pays
    model: SegmenterConfig = field(default_factory=lambda: SegmenterConfig(base_channels=8, levels=4))
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup: int = 50
    #: weight of the soft Dice term (sclera, iris, pupil) added to cross-entropy
    dice_weight: float = 0.5
    #: the randomised degradation model every training batch goes through (strength 0 = clean synthetic eyes)
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    #: share of training crops replaced by crops without an eye (labelled all skin, then degraded as well), so
    #: that blank, noisy or closed-eye crops give no eye instead of a hallucinated one
    no_eye: float = 0.04
    eval_every: int = 500


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, dice_weight: float) -> tuple[torch.Tensor, ...]:
    ce = F.cross_entropy(logits, target)
    if dice_weight <= 0:
        return ce, ce, torch.zeros(())
    probs = logits.softmax(1)[:, 1:]
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].float()
    inter = (probs * onehot).sum(dim=(0, 2, 3))
    denom = probs.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    dice = 1 - ((2 * inter + 1) / (denom + 1)).mean()
    return ce + dice_weight * dice, ce, dice


class SegmenterTask(SupervisedTask):
    """Cross-entropy + Dice on degraded synthetic eyes (some replaced by eyeless crops), validated by mean IoU."""

    name = "segmenter"

    def setup(self, run: Run) -> None:
        config, ctx = self.config, run.ctx
        data = self.arrays if self.arrays is not None else load_training_data(config.data, run)
        self.train, self.val = split_train_val(data, config.data.val_fraction, config.data.limit)
        self.use_model(build_segmenter(config.model), run, data.size)

    def step(self, step: int) -> dict[str, float]:
        config, ctx, train = self.config, self.ctx, self.train
        self.net.train()
        idx = self.sampler.indices(step)
        rng = np.random.default_rng([config.seed, step, ctx.rank])
        images_u8, masks_u8 = train["images"][idx].numpy().copy(), train["masks"][idx].numpy().copy()
        for i in np.flatnonzero(rng.random(len(idx)) < config.no_eye):
            images_u8[i], masks_u8[i] = no_eye(images_u8[i], masks_u8[i], rng)
        images_u8, masks_u8 = degrade(images_u8, masks_u8, rng, config.degradation)
        images = to_float_images(torch.from_numpy(images_u8), ctx.device)
        target = torch.from_numpy(masks_u8).to(ctx.device).long()
        lr = lr_at(step, config.steps, config.lr, config.schedule, config.warmup)
        set_lr(self.optimizer, lr)
        loss, ce, dice = segmentation_loss(self.net(images), target, config.dice_weight)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.item(), "ce": ce.item(), "dice": dice.item(), "lr": lr}

    def evaluate(self) -> dict[str, float]:
        if len(self.val["images"]) == 0:
            return {}
        summary = segmentation_summary(predict_masks(self.model, self.val["images"]), self.val["masks"].numpy())
        return {"val_miou": summary["miou"], "val_iou_pupil": summary["iou"]["pupil"]}

    def export(self, run: Run, last_log: dict[str, float]) -> dict[str, Any]:
        config, scores = self.config, self.evaluate()
        save_segmenter(run.out / "segmenter", unwrap(self.model), {"trained": {
            "command": command_line(), "seed": config.seed, "steps": config.steps,
            "data": describe_data(config.data), "val_miou": scores.get("val_miou")}})
        return scores


def train_segmenter(config: SegmenterTrainConfig, out_dir: str | Path, resume: bool = True,
                    stop_at: int | None = None, progress: bool = True,
                    arrays: EyeBatch | None = None) -> dict[str, Any]:
    """Train (or resume) and write the outputs listed in the module docstring; returns a summary dict."""
    return fit(SegmenterTask(config, arrays), config, out_dir, resume, stop_at, progress, config)
