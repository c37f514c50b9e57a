"""Train the eye-region segmenter on synthetic eyes (never on the wild domain's labels), each batch pushed through
the project's randomised degradation model (:mod:`maskpurify.degradation`), so that it holds on eyes it has never
seen: the wild test domain, real crops, purified images.

Optionally (``self_training > 0``) it also learns from *unlabelled* real images, as a user with only real images
could: a mean teacher (Tarvainen & Valpola 2017; an exponential moving average of the network) labels each real
image, and the network learns those labels, where the teacher is confident, on a degraded copy of the image
(FixMatch-style consistency, Sohn et al. 2020). The real images' own labels are never read (the real-data rule).
With ``teacher`` a fixed segmenter checkpoint labels them instead: distillation, e.g. of the shipped segmenter into
the cheaper half-resolution network (``model.stem=2``).

Outputs in the out dir: ``segmenter.safetensors`` + ``segmenter.json``, ``last`` (resumable state),
``log.csv``, ``config.yaml`` + ``run.json``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from maskpurify.batch import EyeBatch
from maskpurify.config import command_line
from maskpurify.degradation import DegradationConfig, degrade, no_eye
from maskpurify.metrics.segmentation import segmentation_summary
from maskpurify.errors import UserError
from maskpurify.nets.segmenter import SegmenterConfig, build_segmenter, load_segmenter, predict_masks, save_segmenter
from maskpurify.training.common import MinibatchSampler, lr_at, set_lr, to_float_images
from maskpurify.training.gaze import TrainDataConfig, describe_data, load_training_data
from maskpurify.training.loop import LoopConfig, Run, SupervisedTask, fit
from maskpurify.training.sources import SourceConfig, load_source, split_train_val


@dataclass
class SegmenterTrainConfig(LoopConfig):
    #: the first 30k of the (120k) synthetic render are plenty for segmentation
    data: TrainDataConfig = field(default_factory=lambda: TrainDataConfig(limit=30000))
    #: four resolutions: under heavy degradation the context of the coarsest (5x8) level pays (``model.stem=2``
    #: runs them at half resolution for 2.5x the speed, at 0.02 less IoU: README, tuning history)
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
    #: share of training crops left as rendered (the degradation skipped), so that clean synthetic eyes keep
    #: their sharp boundaries; 0 = every crop degraded
    clean: float = 0.0
    eval_every: int = 500
    #: start from this segmenter checkpoint (its network config must equal ``model``); None = random init
    init: str | None = None
    #: weight of the self-training term on unlabelled real images (0 = off, the shipped recipe)
    self_training: float = 0.0
    #: the unlabelled real images (without a path: wild renders, n 12000 seed 2001, images only)
    unlabelled: SourceConfig = field(default_factory=SourceConfig)
    #: pixels whose teacher confidence is below this are left out of the self-training term
    confidence: float = 0.9
    #: decay of the teacher's moving average of the network's weights
    teacher_decay: float = 0.999
    #: a segmenter checkpoint that labels the unlabelled images instead of the moving average, and stays fixed
    #: (distillation, e.g. into a cheaper ``model``); None = the mean teacher
    teacher: str | None = None
    #: strength of the degradation model on the network's copy of each real image (they are degraded already)
    unlabelled_strength: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.clean <= 1:
            raise UserError(f"segmenter config: clean must be in [0, 1], got {self.clean}")
        if self.self_training < 0 or not 0 < self.confidence < 1 or not 0 <= self.teacher_decay < 1:
            raise UserError("segmenter config: self_training must be >= 0, confidence in (0, 1) and teacher_decay "
                            f"in [0, 1), got {self.self_training}, {self.confidence}, {self.teacher_decay}")


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


def training_crops(images: np.ndarray, masks: np.ndarray, rng: np.random.Generator, config: SegmenterTrainConfig
                   ) -> tuple[np.ndarray, np.ndarray]:
    """A training batch as the segmenter sees it: a share of the crops swapped for eyeless ones (``no_eye``), then
    every crop degraded, except a share ``clean`` left as rendered. Returns new arrays."""
    images, masks = images.copy(), masks.copy()
    for i in np.flatnonzero(rng.random(len(images)) < config.no_eye):
        images[i], masks[i] = no_eye(images[i], masks[i], rng)
    # drawn only when used, so that a recipe without clean crops keeps its random stream
    keep = rng.random(len(images)) < config.clean if config.clean > 0 else None
    degraded, degraded_masks = degrade(images, masks, rng, config.degradation)
    if keep is not None:
        degraded[keep], degraded_masks[keep] = images[keep], masks[keep]
    return degraded, degraded_masks


class SegmenterTask(SupervisedTask):
    """Cross-entropy + Dice on degraded synthetic eyes (some replaced by eyeless crops), validated by mean IoU."""

    name = "segmenter"
    outputs = ("segmenter",)

    def setup(self, run: Run) -> None:
        config, ctx = self.config, run.ctx
        data = self.arrays if self.arrays is not None else load_training_data(config.data, run)
        self.train, self.val = split_train_val(data, config.data.val_fraction, config.data.limit)
        model = build_segmenter(config.model)
        if config.init:
            start = load_segmenter(config.init)
            if start.config != config.model:
                raise UserError(f"init {config.init}: its network {start.config} is not model {config.model}; "
                                "set model.* to match")
            model.load_state_dict(start.state_dict())
        self.use_model(model, run, data.size)
        if config.self_training > 0:
            real = load_source(config.unlabelled, "wild", data.size, run, "unlabelled.path", unlabelled_role=True)
            self.real = torch.from_numpy(np.ascontiguousarray(real.images))
            self.real_sampler = MinibatchSampler(len(self.real), config.batch_size, config.seed + 1, run.ctx.rank,
                                                 run.ctx.world_size)
            if config.teacher:  # fixed: loaded again on resume, never saved with the run
                self.teacher = load_segmenter(config.teacher, ctx.device).requires_grad_(False)
                if self.teacher.config.num_classes != config.model.num_classes:
                    raise UserError(f"teacher {config.teacher}: predicts {self.teacher.config.num_classes} labels, "
                                    f"model.num_classes is {config.model.num_classes}")
            else:
                self.teacher = copy.deepcopy(self.model).eval().requires_grad_(False)  # its data spec too
                self.models["teacher"] = self.teacher

    def step(self, step: int) -> dict[str, float]:
        config, ctx, train = self.config, self.ctx, self.train
        self.net.train()
        idx = self.sampler.indices(step)
        rng = np.random.default_rng([config.seed, step, ctx.rank])
        images_u8, masks_u8 = training_crops(train["images"][idx].numpy(), train["masks"][idx].numpy(), rng, config)
        images = to_float_images(torch.from_numpy(images_u8), ctx.device)
        target = torch.from_numpy(masks_u8).to(ctx.device).long()
        lr = lr_at(step, config.steps, config.lr, config.schedule, config.warmup)
        set_lr(self.optimizer, lr)
        loss, ce, dice = segmentation_loss(self.net(images), target, config.dice_weight)
        terms = {"ce": ce.item(), "dice": dice.item()}
        if config.self_training > 0:
            self_loss, kept = self.self_training_loss(step, rng)
            loss = loss + config.self_training * self_loss
            terms.update(self_training=self_loss.item(), confident=kept)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if config.self_training > 0 and not config.teacher:
            self.update_teacher()
        return {"loss": loss.item(), **terms, "lr": lr}

    def self_training_loss(self, step: int, rng: np.random.Generator) -> tuple[torch.Tensor, float]:
        """Cross-entropy of the network on degraded copies of real images against the teacher's confident labels
        of the images as they are; returns the loss and the fraction of pixels kept."""
        config, device = self.config, self.ctx.device
        real_u8 = self.real[self.real_sampler.indices(step)]
        with torch.no_grad():
            probs = self.teacher(to_float_images(real_u8, device)).softmax(1)
        confidence, labels = probs.max(1)
        # Unsure pixels ride through the degradation's warp as labels 4..7 (nearest-neighbour, so never mixed)
        # and are dropped after it; the degradation's photometric terms read only the labels 0..3.
        coded = (labels + 4 * (confidence < config.confidence)).to(torch.uint8).cpu().numpy()
        images_u8, coded = degrade(real_u8.numpy(), coded, rng,
                                   replace(config.degradation, strength=config.unlabelled_strength))
        target = torch.from_numpy(coded.astype(np.int64)).to(device)
        target = torch.where(target >= 4, torch.full_like(target, -100), target)
        kept = float((target >= 0).float().mean())
        logits = self.net(to_float_images(torch.from_numpy(images_u8), device))
        if kept == 0:
            return logits.sum() * 0.0, kept
        return F.cross_entropy(logits, target, ignore_index=-100), kept

    @torch.no_grad()
    def update_teacher(self) -> None:
        decay = self.config.teacher_decay
        for mean, value in zip(self.teacher.state_dict().values(), self.model.state_dict().values()):
            if mean.dtype.is_floating_point:
                mean.mul_(decay).add_(value, alpha=1 - decay)
            else:
                mean.copy_(value)

    @property
    def final(self) -> torch.nn.Module:
        """The network to validate and ship: the mean teacher when self-training (the steadier average); the
        network itself when a fixed teacher distils into it."""
        return self.teacher if self.config.self_training > 0 and not self.config.teacher else self.model

    def evaluate(self) -> dict[str, float]:
        if len(self.val["images"]) == 0:
            return {}
        summary = segmentation_summary(predict_masks(self.final, self.val["images"]), self.val["masks"].numpy())
        return {"val_miou": summary["miou"], "val_iou_pupil": summary["iou"]["pupil"]}

    def export(self, run: Run, last_log: dict[str, float]) -> dict[str, Any]:
        config, scores = self.config, self.evaluate()
        save_segmenter(run.out / "segmenter", self.final, {"trained": {
            "command": command_line(), "seed": config.seed, "steps": config.steps,
            "data": describe_data(config.data), "val_miou": scores.get("val_miou"), "init": config.init,
            "self_training": config.self_training, "teacher": config.teacher}})
        return scores


def train_segmenter(config: SegmenterTrainConfig, out_dir: str | Path, resume: bool = True,
                    stop_at: int | None = None, progress: bool = True,
                    arrays: EyeBatch | None = None) -> dict[str, Any]:
    """Train (or resume) and write the outputs listed in the module docstring; returns a summary dict."""
    return fit(SegmenterTask(config, arrays), config, out_dir, resume, stop_at, progress, config)
