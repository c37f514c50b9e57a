"""Shared training machinery for every trainer (gaze, segmenter, purifier, SimGAN):

- :func:`seed_everything`, :func:`choose_device`;
- :func:`init_distributed` -> :class:`DistContext` (torchrun env; gloo on CPU, nccl on CUDA; no-op alone);
- :class:`CSVLogger` (appends; on resume drops the rows after the checkpoint, so none is duplicated);
- :class:`Checkpointer` (models + optimizers + step + RNG state, one commit point per save: ``last.json`` + folder);
- :class:`MinibatchSampler` (random minibatches from in-memory arrays, sharded by rank, a pure function of the
  step, so a resumed run draws exactly the batches the uninterrupted run would have drawn);
- :func:`lr_at` / :func:`set_lr` (warmup + cosine / step / constant schedules, a pure function of the step).

The loop itself is :func:`maskpurify.training.loop.fit`.
"""

from __future__ import annotations

import csv
import io
import math
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from maskpurify.checkpoints import checkpoint_exists, checkpoint_paths, clean_stale, commit_checkpoint, \
    load_checkpoint, optimizer_state, restore_optimizer
from maskpurify.errors import UserError
from maskpurify.fileio import atomic_write_text, clean_stale_temps

# ----------------------------------------------------------------------------------------------------------------
# Seeding, devices, distributed


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def choose_device(requested: str | None = None) -> torch.device:
    """``requested`` if given ('cpu', 'cuda', 'cuda:1', 'mps'), else CUDA when available, else CPU."""
    if requested and requested != "auto":
        try:
            device = torch.device(requested)
        except RuntimeError:
            raise UserError(f"--device {requested}: not a device (use cpu, cuda, cuda:N or mps)") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UserError(f"--device {requested}: CUDA is not available on this machine")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | None = None) -> DistContext:
    """Join the process group set up by ``torchrun`` (RANK / WORLD_SIZE / LOCAL_RANK); alone, a no-op.

    On CUDA each rank takes GPU ``LOCAL_RANK`` and the nccl backend; on CPU the gloo backend.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(device=choose_device(device))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    base = choose_device(device)
    if base.type == "cuda":
        base = torch.device("cuda", local)
        torch.cuda.set_device(base)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if base.type == "cuda" else "gloo")
    return DistContext(rank=rank, world_size=world, local_rank=local, device=base)


def barrier(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.barrier()


def cleanup_distributed(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, ctx: DistContext) -> nn.Module:
    """DistributedDataParallel around ``model`` when distributed, else ``model`` itself."""
    if not ctx.distributed:
        return model
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def mean_across_ranks(values: Mapping[str, float], ctx: DistContext) -> dict[str, float]:
    """Average scalar metrics over ranks (identity when alone)."""
    if not ctx.distributed or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return {k: float(v) / ctx.world_size for k, v in zip(keys, t.tolist())}


# ----------------------------------------------------------------------------------------------------------------
# CSV log


class CSVLogger:
    """Append rows to a CSV file. Opened with ``resume_step``, it first drops rows whose ``step`` is beyond
    the checkpoint (and any torn last line), so a resumed run's rows follow on without duplicates.
    Only rank 0 should write (pass ``enabled=False`` elsewhere)."""

    def __init__(self, path: str | Path, resume_step: int | None = None, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self.fields: list[str] | None = None
        if not enabled:
            return
        if self.path.is_file():
            if resume_step is None:
                self.path.unlink()
            else:
                self._truncate(resume_step)

    def _read(self) -> tuple[list[str] | None, list[dict[str, str]]]:
        text = self.path.read_text() if self.path.is_file() else ""
        if text and not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]  # a torn last line from a kill mid-write
        reader = csv.DictReader(io.StringIO(text))
        rows = [r for r in reader if None not in r.values() and None not in r]
        return reader.fieldnames and list(reader.fieldnames), rows

    def _truncate(self, resume_step: int) -> None:
        fields, rows = self._read()
        if not fields:
            self.path.unlink()
            return
        kept = [r for r in rows if _as_int(r.get("step")) is not None and _as_int(r["step"]) <= resume_step]
        self._rewrite(fields, kept)

    def _rewrite(self, fields: list[str], rows: list[dict[str, Any]]) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.path, buffer.getvalue())
        self.fields = fields

    def log(self, row: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        if self.fields is None and self.path.is_file():
            self.fields = self._read()[0]
        new = [k for k in row if self.fields is None or k not in self.fields]
        if self.fields is None or new:
            old_rows = self._read()[1] if self.path.is_file() else []
            self._rewrite((self.fields or []) + new, old_rows)
        assert self.fields is not None
        buffer = io.StringIO()
        csv.DictWriter(buffer, fieldnames=self.fields, extrasaction="ignore", lineterminator="\n").writerow(
            {k: _fmt(v) for k, v in row.items()})
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(buffer.getvalue())  # one write of one whole line
            handle.flush()

    def rows(self) -> list[dict[str, str]]:
        return self._read()[1] if self.path.is_file() else []


def _as_int(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


# ----------------------------------------------------------------------------------------------------------------
# Checkpoints


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, pystate, pygauss = random.getstate()
    meta = {"numpy": [kind, int(pos), int(has_gauss), float(gauss)], "python": [version, list(pystate), pygauss]}
    return tensors, meta


def _restore_rng(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"].to(torch.uint8))
    cuda = sorted(k for k in tensors if k.startswith("rng.cuda."))
    if cuda and torch.cuda.is_available():
        states = [tensors[k].to(torch.uint8) for k in cuda]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
    if "rng.numpy" in tensors and "numpy" in meta:
        kind, pos, has_gauss, gauss = meta["numpy"]
        np.random.set_state((kind, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "python" in meta:
        version, pystate, pygauss = meta["python"]
        random.setstate((version, tuple(pystate), pygauss))


class Checkpointer:
    """Save / restore the whole training state as committed checkpoint ``<out_dir>/<name>``: a version folder per
    save plus the pointer ``<name>.json``, replaced last (see :mod:`maskpurify.checkpoints`), so a kill at any
    moment leaves the previous or the new state, never a mix, and the next save clears what it left behind.

    Models (``state_dict`` incl. buffers) are stored under ``model.<key>.``, optimizers under ``optim.<key>.``
    (through :func:`maskpurify.checkpoints.optimizer_state`), plus the step, the RNG states and ``extra``.
    Only rank 0 writes; every rank restores. A run folder of the older layout (``last.safetensors`` +
    ``last.json``) is still restored, and replaced by the new layout at the next save.
    """

    def __init__(self, out_dir: str | Path, name: str = "last", ctx: DistContext | None = None) -> None:
        self.path = Path(out_dir) / name
        self.ctx = ctx or DistContext()
        if self.ctx.is_main:
            # Temporary files and folders of a killed run (this run is the folder's only writer).
            clean_stale(self.path.parent, name)
            clean_stale_temps(self.path.parent)

    @property
    def weights_path(self) -> Path:
        """The file that names the checkpoint in messages: the pointer (or a legacy run's weights)."""
        weights, sidecar = checkpoint_paths(self.path)
        return weights if weights.is_file() else sidecar

    def exists(self) -> bool:
        """Whether there is a checkpoint to resume from (:meth:`restore` verifies it)."""
        return checkpoint_exists(self.path)

    def save(self, step: int, models: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer],
             extra: dict[str, Any] | None = None) -> None:
        if not self.ctx.is_main:
            return
        tensors: dict[str, torch.Tensor] = {}
        meta: dict[str, Any] = {"kind": "training-state", "step": int(step), "optimizers": {}, "extra": extra or {}}
        for key, model in models.items():
            for name, value in unwrap(model).state_dict().items():
                tensors[f"model.{key}.{name}"] = value
        for key, optimizer in optimizers.items():
            opt_tensors, opt_meta = optimizer_state(optimizer)
            tensors.update({f"{key}/{name}": value for name, value in opt_tensors.items()})
            meta["optimizers"][key] = opt_meta
        rng_tensors, meta["rng"] = _rng_state()
        tensors.update(rng_tensors)
        commit_checkpoint(self.path.parent, self.path.name, step, tensors, meta)

    def restore(self, models: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer],
                map_location: torch.device | str = "cpu") -> tuple[int, dict[str, Any]]:
        """Load the saved state into ``models`` and ``optimizers``; returns (step, extra)."""
        tensors, meta = load_checkpoint(self.path)
        if meta.get("kind") != "training-state":
            raise UserError(f"{self.weights_path}: not a training-state checkpoint")
        for key, model in models.items():
            prefix = f"model.{key}."
            state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            try:
                unwrap(model).load_state_dict(state)
            except RuntimeError as exc:
                raise UserError(f"{self.weights_path}: saved '{key}' does not match this network "
                                f"({str(exc).splitlines()[0]}); use a fresh --out or --no-resume") from None
        for key, optimizer in optimizers.items():
            prefix = f"{key}/"
            opt_tensors = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            restore_optimizer(optimizer, opt_tensors, meta["optimizers"][key])
        _restore_rng(tensors, meta.get("rng", {}))
        return int(meta["step"]), dict(meta.get("extra", {}))


# ----------------------------------------------------------------------------------------------------------------
# Minibatches and schedules


class MinibatchSampler:
    """Random minibatch indices over ``n`` samples, as a pure function of the step.

    Every epoch is a fresh permutation (seeded by ``seed`` and the epoch); rank ``r`` of ``w`` takes every w-th
    index (DistributedSampler-style sharding) and the incomplete last batch is dropped.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        if n < batch_size * world_size:
            raise UserError(f"training set of {n} samples is smaller than one batch ({batch_size} x {world_size} "
                            f"ranks); lower batch_size")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.per_epoch = (n // world_size) // batch_size
        self._epoch = -1
        self._shard = torch.empty(0, dtype=torch.long)

    def indices(self, step: int) -> torch.Tensor:
        epoch, k = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._shard = torch.randperm(self.n, generator=gen)[self.rank::self.world_size]
            self._epoch = epoch
        return self._shard[k * self.batch_size:(k + 1) * self.batch_size]


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """A CPU generator for the random choices of one step (augmentation), a pure function of its arguments."""
    return torch.Generator().manual_seed((seed * 7_919 + step) * 131 + rank)


def to_float_images(images_u8: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """uint8 (N,H,W,3) -> float32 (N,3,H,W) in [0, 1] on ``device``."""
    return images_u8.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)


def lr_at(step: int, total: int, base: float, schedule: str = "cosine", warmup: int = 0,
          final_factor: float = 0.01) -> float:
    """Learning rate at ``step``: linear warmup, then 'cosine' (to ``final_factor * base``), 'step'
    (x0.1 at 50% and 75%) or 'constant'."""
    if warmup > 0 and step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "cosine":
        return base * (final_factor + (1 - final_factor) * 0.5 * (1 + math.cos(math.pi * progress)))
    if schedule == "step":
        return base * (0.1 ** (int(progress >= 0.5) + int(progress >= 0.75)))
    if schedule == "constant":
        return base
    raise UserError(f"config: schedule must be 'cosine', 'step' or 'constant', got {schedule!r}")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
