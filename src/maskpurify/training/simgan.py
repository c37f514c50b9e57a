"""SimGAN (Shrivastava et al., CVPR 2017): an adversarially trained refiner, in either direction.

- ``direction="syn2real"`` (the original): the refiner R takes *synthetic* eyes and makes them look wild/real;
  the local patch discriminator D separates refined synthetic images from real (wild) ones. A gaze estimator
  is then trained on the refined synthetic set (:mod:`maskpurify.training.refined_gaze`).
- ``direction="real2syn"``: the same machinery the other way, R takes wild eyes and makes them look
  synthetic: a SimGAN-style adversarial *purifier*, the baseline for the mask-guided purifier.

Losses (Shrivastava et al., Algorithm 1 and eq. 1-4), per patch logit of :class:`PatchDiscriminator`:

- D: ``d_loss = BCE(D(target), 1) + BCE(D(fake), 0)``, where half of the fake batch is the current refined
  batch and half comes from a :class:`HistoryBuffer` of earlier refined images (the buffer then takes the
  current half in place of random old entries);
- R: ``adv = BCE(D(R(x)), 1)`` (refined images classified as the target domain, every patch) plus
  ``self_reg_weight * self_reg``, ``self_reg = mean |R(x) - x|`` (L1 self-regularisation in the identity
  feature space, as the paper does for eyes), plus (ours, optional) ``residual_tv_weight * residual_tv``,
  the total variation of ``R(x) - x``, against the checkerboards a sub-pixel refiner fools D with.

The schedule: ``pretrain_r`` steps of R with self-regularisation only, then ``pretrain_d`` steps of D alone
(against the pre-trained R), then ``steps`` adversarial iterations of ``k_g`` refiner updates followed by
``k_d`` discriminator updates (paper: 1000 / 200 pre-training steps, K_g = 2, K_d = 1). The CSV column ``step``
counts all three phases; ``phase`` is 0, 1, 2; terms a phase does not compute are logged as 0.

The refiner is a :class:`maskpurify.nets.purifier.Purifier` with ``use_mask=False`` (a plain residual
image-to-image network of the same capacity as the purifier; the mask argument is ignored, zeros are passed).

Outputs in the out dir: ``refiner.safetensors`` + ``refiner.json`` (final refiner, loadable with
:func:`maskpurify.nets.purifier.load_purifier`; the sidecar holds ``direction`` and the training info),
``last.*`` (resumable: refiner, discriminator, both optimizers, the history buffer, RNG), ``log.csv``,
``previews/step_*.png`` (input | mask | refined | a target-domain sample), ``config.yaml`` + ``run.json``.

Resume is exact in a single process (the history buffer is part of the checkpoint, every random choice is a
pure function of the step). Under DDP every rank keeps its own buffer but only rank 0's is saved; a resumed
multi-rank run gives every rank rank 0's buffer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from maskpurify.batch import EyeBatch
from maskpurify.config import command_line, parse_size
from maskpurify.errors import UserError
from maskpurify.nets.discriminator import PatchDiscriminator
from maskpurify.nets.purifier import Purifier, PurifierConfig, save_purifier
from maskpurify.training.common import MinibatchSampler, lr_at, set_lr, step_generator, to_float_images, unwrap, \
    wrap_model
from maskpurify.training.loop import LoopConfig, Run, Task, fit
from maskpurify.training.sources import SourceConfig, load_source

Direction = Literal["syn2real", "real2syn"]
DIRECTIONS: tuple[str, ...] = ("syn2real", "real2syn")


@dataclass
class SimGANDataConfig:
    #: real-like images (same defaults as the purifier's content set)
    wild: SourceConfig = field(default_factory=SourceConfig)
    #: synthetic images (same defaults as the purifier's style set)
    synthetic: SourceConfig = field(default_factory=lambda: SourceConfig(render_seed=3001))
    size: str = "36x60"


@dataclass
class RefinerNetConfig:
    """The refiner: a Purifier without mask, gaze prior or full-resolution head (SimGAN's refiner is a plain
    residual network; same capacity as the purifier at the same numbers)."""

    base_channels: int = 16
    num_res_blocks: int = 3
    #: PatchDiscriminator width
    disc_channels: int = 32


@dataclass
class SimGANTrainConfig(LoopConfig):
    direction: Direction = "syn2real"
    data: SimGANDataConfig = field(default_factory=SimGANDataConfig)
    net: RefinerNetConfig = field(default_factory=RefinerNetConfig)
    #: adversarial iterations (each k_g refiner + k_d discriminator updates), after the pre-training
    steps: int = 500
    pretrain_r: int = 100
    pretrain_d: int = 50
    k_g: int = 2
    k_d: int = 1
    #: lambda of the L1 self-regularisation (mean absolute pixel difference, images in [0, 1])
    self_reg_weight: float = 0.5
    #: total variation of the change R(x) - x (OURS, not SimGAN's): smooth changes (light, colour) stay cheap,
    #: pixel-level patterns get expensive; it stops the refiner fooling D with checkerboards (0 = off)
    residual_tv_weight: float = 2.0
    #: refined images kept for the discriminator (paper: 12800); 0 turns the buffer off
    history_size: int = 3200
    #: share of each fake discriminator batch drawn from the buffer (paper: 0.5)
    history_fraction: float = 0.5
    lr_r: float = 1e-3
    lr_d: float = 2e-4
    beta1: float = 0.5
    schedule: Literal["cosine", "step", "constant"] = "constant"
    log_every: int = 25
    preview_every: int = 250
    checkpoint_every: int = 100

    @property
    def total_steps(self) -> int:
        return self.pretrain_r + self.pretrain_d + self.steps


def validate_config(config: SimGANTrainConfig) -> None:
    if config.direction not in DIRECTIONS:
        raise UserError(f"config: direction must be one of {', '.join(DIRECTIONS)}, got {config.direction!r}")
    for name in ("steps", "pretrain_r", "pretrain_d", "history_size"):
        if getattr(config, name) < 0:
            raise UserError(f"config: {name} must be >= 0, got {getattr(config, name)}")
    for name in ("k_g", "k_d", "batch_size"):
        if getattr(config, name) < 1:
            raise UserError(f"config: {name} must be >= 1, got {getattr(config, name)}")
    if not 0.0 <= config.history_fraction < 1.0:
        raise UserError(f"config: history_fraction must be in [0, 1), got {config.history_fraction}")
    if config.self_reg_weight < 0:
        raise UserError(f"config: self_reg_weight must be >= 0, got {config.self_reg_weight}")


# ----------------------------------------------------------------------------------------------------------------
# History buffer


class HistoryBuffer(nn.Module):
    """SimGAN's history of refined images, stored as uint8 buffers so it rides in the training checkpoint.

    :meth:`draw` returns ``k`` random past images (fewer while it holds fewer); :meth:`push` appends until
    full, then overwrites random older entries. All random choices come from the generator passed in.
    """

    def __init__(self, capacity: int, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.capacity = int(capacity)
        self.register_buffer("images", torch.zeros((self.capacity, *image_shape), dtype=torch.uint8))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def __len__(self) -> int:
        return int(self.count)

    def draw(self, k: int, generator: torch.Generator) -> torch.Tensor:
        """Up to ``k`` stored images, float (k,3,H,W) in [0, 1] on the buffer's device."""
        n = min(k, len(self))
        if n == 0:
            return self.images.new_zeros((0, *self.images.shape[1:])).float()
        idx = torch.randperm(len(self), generator=generator)[:n].to(self.images.device)
        return self.images[idx].float().div_(255.0)

    @torch.no_grad()
    def push(self, images: torch.Tensor, generator: torch.Generator) -> None:
        """Store float (k,3,H,W) [0,1] images: into free slots first, then over random old ones."""
        if self.capacity == 0 or len(images) == 0:
            return
        images = images[: self.capacity]
        q = images.detach().clamp(0, 1).mul(255.0).round().to(torch.uint8).to(self.images.device)
        old = len(self)
        free = self.capacity - old
        n_new = min(free, len(q))
        if n_new:
            self.images[len(self):len(self) + n_new] = q[:n_new]
            self.count += n_new
        rest = q[n_new:]
        if len(rest):
            # over entries stored before this call only (len(rest) <= old), never over the ones just added
            slots = torch.randperm(old, generator=generator)[: len(rest)].to(self.images.device)
            self.images[slots] = rest


# ----------------------------------------------------------------------------------------------------------------
# Losses


def patch_bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Mean binary cross-entropy over every patch logit against one label (SimGAN's local adversarial loss)."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def self_regularisation(refined: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """L1 in the identity feature space: mean |R(x) - x|."""
    return (refined - inputs).abs().mean()


def residual_tv(refined: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Mean absolute horizontal + vertical difference of the change ``refined - inputs``."""
    d = refined - inputs
    return (d[..., :, 1:] - d[..., :, :-1]).abs().mean() + (d[..., 1:, :] - d[..., :-1, :]).abs().mean()


def build_refiner(net: RefinerNetConfig) -> Purifier:
    return Purifier(PurifierConfig(net.base_channels, net.num_res_blocks, use_mask=False, head="subpixel",
                                   gaze_prior=None))


# ----------------------------------------------------------------------------------------------------------------
# Training


class SimGANTask(Task):
    """SimGAN's schedule (refiner pre-training, discriminator pre-training, then adversarial iterations); the
    CSV column ``step`` counts all three phases."""

    name = "simgan"
    #: ``gaze/``: the gaze run ``train-simgan --train-gaze`` trains on images of this refiner
    outputs = ("refiner", "gaze/")

    def __init__(self, config: SimGANTrainConfig,
                 arrays: tuple[EyeBatch, EyeBatch] | None = None) -> None:
        validate_config(config)
        super().__init__(config, arrays)
        self.info = {"direction": config.direction}
        #: sampler draws per step (every phase uses the same numbering)
        self.per_step = config.k_g + config.k_d

    @property
    def total_steps(self) -> int:
        return self.config.total_steps

    def setup(self, run: Run) -> None:
        config, ctx = self.config, run.ctx
        self.ctx = ctx
        size = parse_size(config.data.size)
        if self.arrays is not None:
            source, target = self.arrays
        else:
            # the wild side stands in for real images: unlabelled (the real-data rule)
            wild = load_source(config.data.wild, "wild", size, run, "data.wild.path", unlabelled_role=True)
            synthetic = load_source(config.data.synthetic, "synthetic", size, run, "data.synthetic.path")
            source, target = (synthetic, wild) if config.direction == "syn2real" else (wild, synthetic)
        self.src_images = torch.from_numpy(np.ascontiguousarray(source.images))
        self.tgt_images = torch.from_numpy(np.ascontiguousarray(target.images))
        self.src_masks = torch.from_numpy(np.ascontiguousarray(source.masks)).long() if source.masks is not None \
            else None
        if self.src_images.shape[1:] != self.tgt_images.shape[1:]:
            raise UserError(f"source images {tuple(self.src_images.shape[1:3])} and target images "
                            f"{tuple(self.tgt_images.shape[1:3])} differ in size; render or convert both at one size")
        h, w = int(self.src_images.shape[1]), int(self.src_images.shape[2])
        self.refiner = build_refiner(config.net).to(ctx.device)
        self.refiner.spec = replace(self.refiner.spec, size=(h, w))
        self.disc = PatchDiscriminator(config.net.disc_channels).to(ctx.device)
        self.history = HistoryBuffer(config.history_size, (3, h, w)).to(ctx.device)
        self.opt_r = torch.optim.Adam(self.refiner.parameters(), lr=config.lr_r, betas=(config.beta1, 0.999))
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=config.lr_d, betas=(config.beta1, 0.999))
        self.models = {"refiner": self.refiner, "disc": self.disc, "history": self.history}
        self.optimizers = {"opt_r": self.opt_r, "opt_d": self.opt_d}
        self.r_net, self.d_net = wrap_model(self.refiner, ctx), wrap_model(self.disc, ctx)
        b = config.batch_size
        self.src_sampler = MinibatchSampler(len(self.src_images), b, config.seed, ctx.rank, ctx.world_size)
        self.tgt_sampler = MinibatchSampler(len(self.tgt_images), b, config.seed + 1, ctx.rank, ctx.world_size)
        self.n_hist = int(round(b * config.history_fraction)) if config.history_size > 0 else 0

    def check_resume(self, extra: dict[str, Any], path: Path) -> None:
        if extra.get("direction", self.config.direction) != self.config.direction:
            raise UserError(f"{path}: a {extra['direction']} run, but direction is {self.config.direction}; use a "
                            "fresh --out or --no-resume")

    def _source_batch(self, i: int) -> torch.Tensor:
        return to_float_images(self.src_images[self.src_sampler.indices(i)], self.ctx.device)

    def _r_update(self, i: int, adversarial: bool) -> dict[str, float]:
        config = self.config
        x = self._source_batch(i)
        refined = self.r_net(x, _zeros_mask(x))
        reg = self_regularisation(refined, x)
        tv = residual_tv(refined, x)
        if adversarial:
            self.disc.requires_grad_(False)
            adv = patch_bce(self.disc(refined), real=True)  # unwrapped D: no gradient sync for D here
            self.disc.requires_grad_(True)
            loss = adv + config.self_reg_weight * reg + config.residual_tv_weight * tv
        else:
            adv = reg.new_zeros(())
            loss = reg
        self.opt_r.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_r.step()
        return {"adv": adv.item(), "self_reg": reg.item(), "residual_tv": tv.item()}

    def _d_update(self, i: int, step: int, sub: int) -> dict[str, float]:
        config, b, n_hist = self.config, self.config.batch_size, self.n_hist
        x = self._source_batch(i)
        real = to_float_images(self.tgt_images[self.tgt_sampler.indices(i)], self.ctx.device)
        with torch.no_grad():
            refined = self.refiner(x, _zeros_mask(x))
        gen = step_generator(config.seed, step * self.per_step + sub, self.ctx.rank)
        old = self.history.draw(n_hist, gen) if n_hist else refined[:0]
        fake = torch.cat([refined[: b - len(old)], old])
        logits_real, logits_fake = self.d_net(torch.cat([real, fake])).split([len(real), len(fake)])
        loss = patch_bce(logits_real, real=True) + patch_bce(logits_fake, real=False)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        if n_hist:
            self.history.push(refined[:n_hist], gen)
        with torch.no_grad():
            acc_real = (logits_real > 0).float().mean()
            acc_fake = (logits_fake < 0).float().mean()
        return {"d_loss": loss.item(), "d_acc_real": float(acc_real), "d_acc_fake": float(acc_fake)}

    def step(self, step: int) -> dict[str, float]:
        config = self.config
        p_r, p_d = config.pretrain_r, config.pretrain_d
        self.r_net.train()
        self.d_net.train()
        terms = {"phase": 0.0, "d_loss": 0.0, "adv": 0.0, "self_reg": 0.0, "residual_tv": 0.0,
                 "d_acc_real": 0.0, "d_acc_fake": 0.0}
        adv_step = max(0, step - p_r - p_d)
        lr_r = lr_at(adv_step, config.steps, config.lr_r, config.schedule, config.warmup)
        lr_d = lr_at(adv_step, config.steps, config.lr_d, config.schedule, config.warmup)
        set_lr(self.opt_r, lr_r)
        set_lr(self.opt_d, lr_d)
        base = step * self.per_step
        if step < p_r:  # pre-train R: self-regularisation only
            terms.update(self._r_update(base, adversarial=False))
        elif step < p_r + p_d:  # pre-train D against the pre-trained R
            terms["phase"] = 1.0
            terms.update(self._d_update(base, step, 0))
        else:
            terms["phase"] = 2.0
            r_terms = [self._r_update(base + j, adversarial=True) for j in range(config.k_g)]
            d_terms = [self._d_update(base + config.k_g + j, step, config.k_g + j) for j in range(config.k_d)]
            for group in (r_terms, d_terms):
                for key in group[0]:
                    terms[key] = sum(t[key] for t in group) / len(group)
        return {**terms, "lr_r": lr_r, "lr_d": lr_d}

    def preview(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        device = self.ctx.device
        i = (step - 1) * self.per_step
        idx = self.src_sampler.indices(i)[:8]
        x = to_float_images(self.src_images[idx], device)
        mask = self.src_masks[idx].to(device) if self.src_masks is not None else _zeros_mask(x)
        sample = to_float_images(self.tgt_images[self.tgt_sampler.indices(i)[:8]], device)
        with torch.no_grad():
            self.refiner.eval()
            refined = self.refiner(x, _zeros_mask(x))
            self.refiner.train()
        return x, mask, refined, sample

    def export(self, run: Run, last_log: dict[str, float]) -> dict[str, Any]:
        config = self.config
        path = save_purifier(run.out / "refiner", unwrap(self.refiner), {
            "direction": config.direction,
            "refiner": "simgan",
            "trained": {"command": command_line(), "seed": config.seed, "direction": config.direction,
                        "steps": config.steps, "pretrain_r": config.pretrain_r,
                        "pretrain_d": config.pretrain_d, "k_g": config.k_g, "k_d": config.k_d,
                        "batch_size": config.batch_size, "self_reg_weight": config.self_reg_weight,
                        "residual_tv_weight": config.residual_tv_weight,
                        "history_size": config.history_size, "lr_r": config.lr_r, "lr_d": config.lr_d,
                        "data": asdict(config.data) if self.arrays is None else "arrays",
                        "final_log": last_log}})
        return {"final_log": last_log, "refiner": str(path)}


def _zeros_mask(x: torch.Tensor) -> torch.Tensor:
    """The mask argument of a mask-free refiner."""
    return torch.zeros(x.shape[0], x.shape[2], x.shape[3], dtype=torch.long, device=x.device)


def train_simgan(config: SimGANTrainConfig, out_dir: str | Path, resume: bool = True, stop_at: int | None = None,
                 progress: bool = True, arrays: tuple[EyeBatch, EyeBatch] | None = None
                 ) -> dict[str, Any]:
    """Train (or resume) a SimGAN refiner in ``config.direction``; returns a summary dict.

    ``arrays`` = (source, target) batches (as :func:`maskpurify.world.dataset.load_arrays_checked` returns) replace
    ``config.data`` (tests): source = the refiner's input domain (synthetic for syn2real, wild for real2syn),
    target = the domain it learns to imitate. ``stop_at`` ends the run early (counting all phases) with a
    resumable checkpoint, as a kill would.
    """
    summary = fit(SimGANTask(config, arrays), config, out_dir, resume, stop_at, progress, config)
    return {**summary, "total_steps": config.total_steps}
