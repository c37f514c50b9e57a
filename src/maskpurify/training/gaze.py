"""Train a gaze estimator on synthetic eyes only (the learning-by-synthesis model the purifier serves).

Outputs in the out dir: ``gaze.safetensors`` + ``gaze.json`` (final weights; sidecar rebuilds the network),
``last.safetensors`` + ``last.json`` (resumable training state), ``log.csv``, ``config.yaml`` + ``run.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from maskpurify.config import command_line, parse_size, save_run_record
from maskpurify.degradation import DegradationConfig, degrade
from maskpurify.errors import UserError
from maskpurify.geometry import angular_error_deg
from maskpurify.nets.gaze import GazeNetConfig, build_gaze_net, gaze_net_inputs, predict_gaze, save_gaze_net
from maskpurify.training.augment import photometric_augment
from maskpurify.training.common import CSVLogger, Checkpointer, DistContext, MinibatchSampler, cleanup_distributed, \
    init_distributed, load_arrays_checked, lr_at, render_once, run_loop, seed_everything, set_lr, \
    step_generator, to_float_images, unwrap, wrap_model
from maskpurify.training.real_data import refuse_supervised_wild


@dataclass
class TrainDataConfig:
    """Where the synthetic training eyes come from: a rendered folder, or rendered on the fly into the out dir.

    With ``format`` (a reader kind, e.g. unityeyes) ``path`` is a dataset in that format, read by
    :func:`maskpurify.formats.open_reader` with ``options``; it must provide gaze labels.
    """

    path: str | None = None
    render_n: int = 120000
    render_seed: int = 1001
    size: str = "36x60"
    #: use only the first ``limit`` samples (None = all); renders are deterministic per index, so the first N
    #: of a larger render with the same seed equal a render of N
    limit: int | None = None
    #: the last fraction of the (limited) samples is held out for validation
    val_fraction: float = 0.05
    format: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class GazeTrainConfig:
    data: TrainDataConfig = field(default_factory=TrainDataConfig)
    #: the shipped estimator: LeNet with batch norm after its convolutions and a 256-wide hidden layer (2.48 deg
    #: on fresh synthetic eyes; MPIIGaze's plain LeNet with fc 500 reached 2.77 on 60k eyes, 2.63 on 120k)
    model: GazeNetConfig = field(default_factory=lambda: GazeNetConfig(hidden=256, conv_bn=True))
    steps: int = 3000
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    warmup: int = 100
    loss: Literal["l1", "mse", "smooth_l1"] = "l1"
    #: photometric augmentation strength (0 = off, the default; keep it mild, <= 0.3)
    augment: float = 0.0
    #: domain randomisation: every training batch goes through the project's randomised degradation model,
    #: pixels kept in place so the gaze labels stay exact (strength 0 = off, the shipped estimator; 1 = the
    #: domain-randomised baseline that is used on raw real images, with no purification)
    degradation: DegradationConfig = field(default_factory=lambda: DegradationConfig(strength=0.0))
    seed: int = 0
    log_every: int = 50
    eval_every: int = 500
    checkpoint_every: int = 250
    device: str = "auto"
    #: CPU threads for torch (0 = torch's default); 1 is fastest when other processes share the cores
    num_threads: int = 0


def _split(data: dict[str, np.ndarray], val_fraction: float, limit: int | None = None
           ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    n = len(data["images"]) if limit is None else min(limit, len(data["images"]))
    n_val = int(round(n * val_fraction)) if n > 1 else 0
    keys = [k for k in ("images", "masks", "gaze", "head_pose", "pupil_center") if k in data]
    tensors = {k: torch.from_numpy(np.ascontiguousarray(data[k])) for k in keys}
    train = {k: v[: n - n_val] for k, v in tensors.items()}
    val = {k: v[n - n_val:n] for k, v in tensors.items()}
    return train, val


def prepare_training_data(cfg: TrainDataConfig, out_dir: Path, ctx: DistContext, progress: bool = True
                          ) -> dict[str, np.ndarray]:
    if cfg.format:
        from maskpurify.formats.arrays import require_labels, source_arrays

        if not cfg.path:
            raise UserError(f"data.path: a '{cfg.format}' source needs a path")
        # Gaze needs no masks: a format without them is read as is (no segmenter).
        data = source_arrays(cfg.format, cfg.path, cfg.options, parse_size(cfg.size), cfg.limit,
                             progress=progress and ctx.is_main, need_masks=False, what="data.path")
        require_labels(data, "gaze", f"data.path {cfg.path}")
        return data
    if cfg.path:
        refuse_supervised_wild(cfg.path, "data.path")
        return load_arrays_checked(cfg.path, "data.path")
    folder = render_once(out_dir / "data" / f"synthetic_n{cfg.render_n}_seed{cfg.render_seed}", "synthetic",
                         cfg.render_n, parse_size(cfg.size), cfg.render_seed, ctx, progress and ctx.is_main)
    return load_arrays_checked(folder, "rendered training set")


def gaze_loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "l1":
        return F.l1_loss(pred, target)
    if kind == "mse":
        return F.mse_loss(pred, target)
    return F.smooth_l1_loss(pred, target, beta=0.02)


def train_gaze(config: GazeTrainConfig, out_dir: str | Path, resume: bool = True, stop_at: int | None = None,
               progress: bool = True, arrays: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Train (or resume) and write the outputs listed in the module docstring; returns a summary dict.

    ``stop_at`` ends the run after that many steps (as an interruption would), leaving ``last`` to resume from.
    ``arrays`` (in the form of :func:`maskpurify.world.dataset.load_arrays`) replaces ``config.data`` (tests).
    """
    out = Path(out_dir)
    ctx = init_distributed(None if config.device == "auto" else config.device)
    try:
        if ctx.is_main:
            out.mkdir(parents=True, exist_ok=True)
        if config.num_threads > 0:
            torch.set_num_threads(config.num_threads)
        seed_everything(config.seed + ctx.rank)
        data = arrays if arrays is not None else prepare_training_data(config.data, out, ctx, progress)
        randomised = config.degradation.strength > 0
        if randomised and (config.model.inputs != "image" or "masks" not in data):
            raise UserError("degradation.strength > 0 degrades eye images with their masks: it needs "
                            "model.inputs=image and training data with masks")
        data = {**data, "images": gaze_net_inputs(config.model, data, "training data")}
        train, val = _split(data, config.data.val_fraction, config.data.limit)
        if config.model.use_head_pose and "head_pose" not in train:
            raise UserError("model.use_head_pose=true but the training data has no head_pose array")
        if config.model.use_head_pose and config.data.format:
            from maskpurify.formats.arrays import require_labels
            require_labels(data, "head_pose", f"model.use_head_pose=true: data.path {config.data.path}")

        model = build_gaze_net(config.model).to(ctx.device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        checkpointer = Checkpointer(out, "last", ctx)
        start = 0
        if resume and checkpointer.exists():
            start, _ = checkpointer.restore({"model": model}, {"optimizer": optimizer})
        elif ctx.is_main:
            save_run_record(out, config, config.seed, {"trainer": "gaze", "world_size": ctx.world_size})
        net = wrap_model(model, ctx)
        logger = CSVLogger(out / "log.csv", resume_step=start if start > 0 else None, enabled=ctx.is_main)
        sampler = MinibatchSampler(len(train["images"]), config.batch_size, config.seed, ctx.rank, ctx.world_size)
        use_pose = config.model.use_head_pose

        def step_fn(step: int) -> dict[str, float]:
            net.train()
            idx = sampler.indices(step)
            images_u8 = train["images"][idx]
            if randomised:
                degraded, _ = degrade(images_u8.numpy(), train["masks"][idx].numpy(),
                                      np.random.default_rng([config.seed, step, ctx.rank]), config.degradation,
                                      geometry=False)
                images_u8 = torch.from_numpy(degraded)
            images = to_float_images(images_u8, ctx.device)
            if config.augment > 0:
                images = photometric_augment(images, step_generator(config.seed, step, ctx.rank), config.augment)
            target = train["gaze"][idx].to(ctx.device)
            pose = train["head_pose"][idx].to(ctx.device) if use_pose else None
            lr = lr_at(step, config.steps, config.lr, config.schedule, config.warmup)
            set_lr(optimizer, lr)
            pred = net(images, pose)
            loss = gaze_loss(pred, target, config.loss)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                err = torch.rad2deg((pred - target).norm(dim=1)).mean()
            return {"loss": loss.item(), "train_err_deg": err.item(), "lr": lr}

        def validate() -> float:
            if len(val["images"]) == 0:
                return float("nan")
            pred = predict_gaze(model, val["images"], val.get("head_pose") if use_pose else None)
            return float(angular_error_deg(pred.numpy().astype(np.float64), val["gaze"].numpy().astype(np.float64))
                         .mean())

        def on_log(step: int, means: dict[str, float]) -> dict[str, float] | None:
            if ctx.is_main and (step % config.eval_every == 0 or step == config.steps):
                return {"val_err_deg": validate()}
            return None

        def save(step: int) -> None:
            checkpointer.save(step, {"model": model}, {"optimizer": optimizer})

        done = run_loop(step_fn, start=start, total=config.steps, save=save, ctx=ctx, logger=logger,
                        log_every=config.log_every, checkpoint_every=config.checkpoint_every, stop_at=stop_at,
                        on_log=on_log, desc="train-gaze", progress=progress)
        summary: dict[str, Any] = {"steps_done": done, "finished": done >= config.steps}
        if done >= config.steps and ctx.is_main:
            summary["val_mean_error_deg"] = validate()
            save_gaze_net(out / "gaze", unwrap(model), {"trained": {
                "command": command_line(), "seed": config.seed, "steps": config.steps,
                "data": config.data.path or f"rendered synthetic n={config.data.render_n} "
                                            f"seed={config.data.render_seed} size={config.data.size}",
                "val_mean_error_deg": summary["val_mean_error_deg"]}})
        return summary
    finally:
        cleanup_distributed(ctx)
