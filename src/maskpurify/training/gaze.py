"""Train a gaze estimator on synthetic eyes only (the learning-by-synthesis model the purifier serves).

Outputs in the out dir: ``gaze.safetensors`` + ``gaze.json`` (final weights; sidecar rebuilds the network),
``last`` (resumable training state), ``log.csv``, ``config.yaml`` + ``run.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from maskpurify.batch import EyeBatch
from maskpurify.config import command_line, parse_size
from maskpurify.degradation import DegradationConfig, degrade
from maskpurify.errors import UserError
from maskpurify.geometry import angular_error_deg
from maskpurify.nets.gaze import GazeNetConfig, build_gaze_net, gaze_net_inputs, predict_gaze, save_gaze_net
from maskpurify.training.augment import photometric_augment
from maskpurify.training.common import lr_at, set_lr, step_generator, to_float_images, unwrap
from maskpurify.training.loop import LoopConfig, Run, SupervisedTask, fit
from maskpurify.training.real_data import is_real_standin
from maskpurify.training.sources import SourceConfig, load_source, split_train_val


@dataclass
class TrainDataConfig(SourceConfig):
    """The synthetic training eyes of a supervised trainer (gaze, segmenter); a ``format`` source must provide gaze
    labels."""

    render_n: int = 120000
    render_seed: int = 1001
    size: str = "36x60"
    #: the renderer domain rendered when there is no path (a clean domain: ``synthetic`` or ``nir-synthetic``)
    domain: str = "synthetic"
    #: the last fraction of the (limited) samples is held out for validation
    val_fraction: float = 0.05


@dataclass
class GazeTrainConfig(LoopConfig):
    data: TrainDataConfig = field(default_factory=TrainDataConfig)
    #: LeNet with batch norm after its convolutions and a 256-wide hidden layer (the shipped estimator)
    model: GazeNetConfig = field(default_factory=lambda: GazeNetConfig(hidden=256, conv_bn=True))
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 100
    loss: Literal["l1", "mse", "smooth_l1"] = "l1"
    #: photometric augmentation strength (0 = off, the default; keep it mild, <= 0.3)
    augment: float = 0.0
    #: domain randomisation: every training batch goes through the project's randomised degradation model,
    #: pixels kept in place so the gaze labels stay exact (strength 0 = off, the shipped estimator; 1 = the
    #: domain-randomised baseline that is used on raw real images, with no purification)
    degradation: DegradationConfig = field(default_factory=lambda: DegradationConfig(strength=0.0))
    eval_every: int = 500


def load_training_data(cfg: TrainDataConfig, run: Run) -> EyeBatch:
    """The synthetic training eyes of a supervised trainer (never wild labels: the real-data rule)."""
    if is_real_standin(None, cfg.domain):
        raise UserError(f"data.domain {cfg.domain}: stands in for real images, so its labels cannot train a network "
                        "(the real-data rule); render a clean domain")
    return load_source(cfg, cfg.domain, parse_size(cfg.size), run, "data.path", supervised=True)


def gaze_loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "l1":
        return F.l1_loss(pred, target)
    if kind == "mse":
        return F.mse_loss(pred, target)
    return F.smooth_l1_loss(pred, target, beta=0.02)


class GazeTask(SupervisedTask):
    """Regress pitch/yaw from synthetic eyes (optionally degraded or augmented), validated on a held-out tail."""

    name = "gaze"
    outputs = ("gaze",)

    def target(self, idx: torch.Tensor) -> torch.Tensor:
        """The regression target of training samples ``idx`` (the pupil detector regresses another label)."""
        return self.train["gaze"][idx]

    def train_error(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        """The error column of the training log."""
        return {"train_err_deg": torch.rad2deg((pred - target).norm(dim=1)).mean().item()}

    def setup(self, run: Run) -> None:
        config, ctx = self.config, run.ctx
        data = self.arrays if self.arrays is not None else load_training_data(config.data, run)
        self.randomised = config.degradation.strength > 0
        if self.randomised and (config.model.inputs != "image" or data.masks is None):
            raise UserError("degradation.strength > 0 degrades eye images with their masks: it needs "
                            "model.inputs=image and training data with masks")
        data = replace(data, images=gaze_net_inputs(config.model, data, "training data"))
        self.train, self.val = split_train_val(data, config.data.val_fraction, config.data.limit)
        if config.model.use_head_pose and "head_pose" not in self.train:
            raise UserError("model.use_head_pose=true but the training data has no head_pose array")
        if config.model.use_head_pose and config.data.format:
            from maskpurify.formats.arrays import require_labels
            require_labels(data, "head_pose", f"model.use_head_pose=true: data.path {config.data.path}")
        self.use_model(build_gaze_net(config.model), run, data.size)

    def step(self, step: int) -> dict[str, float]:
        config, ctx, train = self.config, self.ctx, self.train
        self.net.train()
        idx = self.sampler.indices(step)
        images_u8 = train["images"][idx]
        if self.randomised:
            degraded, _ = degrade(images_u8.numpy(), train["masks"][idx].numpy(),
                                  np.random.default_rng([config.seed, step, ctx.rank]), config.degradation,
                                  geometry=False)
            images_u8 = torch.from_numpy(degraded)
        images = to_float_images(images_u8, ctx.device)
        if config.augment > 0:
            images = photometric_augment(images, step_generator(config.seed, step, ctx.rank), config.augment)
        target = self.target(idx).to(ctx.device)
        pose = train["head_pose"][idx].to(ctx.device) if config.model.use_head_pose else None
        lr = lr_at(step, config.steps, config.lr, config.schedule, config.warmup)
        set_lr(self.optimizer, lr)
        pred = self.net(images, pose)
        loss = gaze_loss(pred, target, config.loss)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            err = self.train_error(pred, target)
        return {"loss": loss.item(), **err, "lr": lr}

    def _val_error(self) -> float:
        val = self.val
        if len(val["images"]) == 0:
            return float("nan")
        pred = predict_gaze(self.model, val["images"], val.get("head_pose") if self.config.model.use_head_pose
                            else None)
        return float(angular_error_deg(pred.numpy().astype(np.float64), val["gaze"].numpy().astype(np.float64))
                     .mean())

    def evaluate(self) -> dict[str, float]:
        return {"val_err_deg": self._val_error()}

    def export(self, run: Run, last_log: dict[str, float]) -> dict[str, Any]:
        config, error = self.config, self._val_error()
        save_gaze_net(run.out / "gaze", unwrap(self.model), {"trained": {
            "command": command_line(), "seed": config.seed, "steps": config.steps,
            "data": describe_data(config.data), "val_mean_error_deg": error}})
        return {"val_mean_error_deg": error}


def describe_data(data: TrainDataConfig) -> str:
    """The training data of a supervised trainer, as its weights' sidecar records it."""
    return data.path or f"rendered {data.domain} n={data.render_n} seed={data.render_seed} size={data.size}"


def train_gaze(config: GazeTrainConfig, out_dir: str | Path, resume: bool = True, stop_at: int | None = None,
               progress: bool = True, arrays: EyeBatch | None = None) -> dict[str, Any]:
    """Train (or resume) and write the outputs listed in the module docstring; returns a summary dict.

    ``arrays`` (a batch as :func:`maskpurify.world.dataset.load_arrays_checked` returns) replaces ``config.data``
    (tests).
    """
    return fit(GazeTask(config, arrays), config, out_dir, resume, stop_at, progress, config)
