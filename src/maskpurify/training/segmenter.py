"""Train the eye-region segmenter on synthetic eyes (never on the wild domain), each batch pushed through the
project's randomised degradation model (:mod:`maskpurify.degradation`), so that it holds on eyes it has never
seen: the wild test domain, real crops, purified images.

Outputs in the out dir: ``segmenter.safetensors`` + ``segmenter.json``, ``last.*`` (resumable state),
``log.csv``, ``config.yaml`` + ``run.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from maskpurify.config import command_line, save_run_record
from maskpurify.evaluation.segmentation_metrics import segmentation_summary
from maskpurify.nets.segmenter import SegmenterConfig, build_segmenter, predict_masks, save_segmenter
from maskpurify.degradation import DegradationConfig, degrade, no_eye
from maskpurify.training.common import CSVLogger, Checkpointer, MinibatchSampler, cleanup_distributed, \
    init_distributed, lr_at, run_loop, seed_everything, set_lr, to_float_images, unwrap, wrap_model
from maskpurify.training.gaze import TrainDataConfig, _split, prepare_training_data


@dataclass
class SegmenterTrainConfig:
    #: the first 30k of the (60k) synthetic render are plenty for segmentation
    data: TrainDataConfig = field(default_factory=lambda: TrainDataConfig(limit=30000))
    #: four resolutions: under heavy degradation the context of the 5x8 level pays (wild IoU 0.686 -> 0.726)
    model: SegmenterConfig = field(default_factory=lambda: SegmenterConfig(base_channels=8, levels=4))
    steps: int = 3000
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    warmup: int = 50
    #: weight of the soft Dice term (sclera, iris, pupil) added to cross-entropy
    dice_weight: float = 0.5
    #: the randomised degradation model every training batch goes through (strength 0 = clean synthetic eyes)
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    #: share of training crops replaced by crops without an eye (labelled all skin, then degraded as well), so
    #: that blank, noisy or closed-eye crops give no eye instead of a hallucinated one
    no_eye: float = 0.04
    seed: int = 0
    log_every: int = 50
    eval_every: int = 500
    checkpoint_every: int = 250
    device: str = "auto"
    #: CPU threads for torch (0 = torch's default); 1 is fastest when other processes share the cores
    num_threads: int = 0


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


def train_segmenter(config: SegmenterTrainConfig, out_dir: str | Path, resume: bool = True,
                    stop_at: int | None = None, progress: bool = True,
                    arrays: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Train (or resume) and write the outputs listed in the module docstring; returns a summary dict."""
    out = Path(out_dir)
    ctx = init_distributed(None if config.device == "auto" else config.device)
    try:
        if ctx.is_main:
            out.mkdir(parents=True, exist_ok=True)
        if config.num_threads > 0:
            torch.set_num_threads(config.num_threads)
        seed_everything(config.seed + ctx.rank)
        data = arrays if arrays is not None else prepare_training_data(config.data, out, ctx, progress)
        train, val = _split(data, config.data.val_fraction, config.data.limit)
        model = build_segmenter(config.model).to(ctx.device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        checkpointer = Checkpointer(out, "last", ctx)
        start = 0
        if resume and checkpointer.exists():
            start, _ = checkpointer.restore({"model": model}, {"optimizer": optimizer})
        elif ctx.is_main:
            save_run_record(out, config, config.seed, {"trainer": "segmenter", "world_size": ctx.world_size})
        net = wrap_model(model, ctx)
        logger = CSVLogger(out / "log.csv", resume_step=start if start > 0 else None, enabled=ctx.is_main)
        sampler = MinibatchSampler(len(train["images"]), config.batch_size, config.seed, ctx.rank, ctx.world_size)

        def step_fn(step: int) -> dict[str, float]:
            net.train()
            idx = sampler.indices(step)
            rng = np.random.default_rng([config.seed, step, ctx.rank])
            images_u8, masks_u8 = train["images"][idx].numpy().copy(), train["masks"][idx].numpy().copy()
            for i in np.flatnonzero(rng.random(len(idx)) < config.no_eye):
                images_u8[i], masks_u8[i] = no_eye(images_u8[i], masks_u8[i], rng)
            images_u8, masks_u8 = degrade(images_u8, masks_u8, rng, config.degradation)
            images = to_float_images(torch.from_numpy(images_u8), ctx.device)
            target = torch.from_numpy(masks_u8).to(ctx.device).long()
            lr = lr_at(step, config.steps, config.lr, config.schedule, config.warmup)
            set_lr(optimizer, lr)
            loss, ce, dice = segmentation_loss(net(images), target, config.dice_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return {"loss": loss.item(), "ce": ce.item(), "dice": dice.item(), "lr": lr}

        def validate() -> dict[str, float]:
            if len(val["images"]) == 0:
                return {}
            pred = predict_masks(model, val["images"])
            summary = segmentation_summary(pred, val["masks"].numpy())
            return {"val_miou": summary["miou"], "val_iou_pupil": summary["iou"]["pupil"]}

        def on_log(step: int, means: dict[str, float]) -> dict[str, float] | None:
            if ctx.is_main and (step % config.eval_every == 0 or step == config.steps):
                return validate()
            return None

        def save(step: int) -> None:
            checkpointer.save(step, {"model": model}, {"optimizer": optimizer})

        done = run_loop(step_fn, start=start, total=config.steps, save=save, ctx=ctx, logger=logger,
                        log_every=config.log_every, checkpoint_every=config.checkpoint_every, stop_at=stop_at,
                        on_log=on_log, desc="train-segmenter", progress=progress)
        summary: dict[str, Any] = {"steps_done": done, "finished": done >= config.steps}
        if done >= config.steps and ctx.is_main:
            summary.update(validate())
            save_segmenter(out / "segmenter", unwrap(model), {"trained": {
                "command": command_line(), "seed": config.seed, "steps": config.steps,
                "data": config.data.path or f"rendered synthetic n={config.data.render_n} "
                                            f"seed={config.data.render_seed} size={config.data.size}",
                "val_miou": summary.get("val_miou")}})
        return summary
    finally:
        cleanup_distributed(ctx)
