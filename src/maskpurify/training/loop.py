"""The one training loop: :func:`fit` drives a :class:`Task` (its models, optimisers and step) through distributed
setup, seeding, threads, resume, the run record, the CSV log, previews and the final export, so that a trainer is
only what differs between trainers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from tqdm import tqdm

from maskpurify.config import save_run_record
from maskpurify.errors import UserError
from maskpurify.training.common import CSVLogger, Checkpointer, DistContext, MinibatchSampler, cleanup_distributed, \
    init_distributed, mean_across_ranks, seed_everything, wrap_model
from maskpurify.training.previews import save_preview_grid


@dataclass
class LoopConfig:
    """The fields every trainer's config shares (its YAML keys sit at the top level of the trainer's config).

    A trainer's config subclasses this and re-declares only the defaults its recipe changes.
    """

    steps: int = 3000
    batch_size: int = 32
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    warmup: int = 0
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 250
    device: str = "auto"
    #: CPU threads for torch (0 = torch's default); 1 is fastest when other processes share the cores
    num_threads: int = 0


@dataclass(frozen=True)
class Run:
    """What a task is told about the run it belongs to."""

    ctx: DistContext
    out: Path
    progress: bool


class Task:
    """One trainer, in the manner of CycleGAN's model contract: :func:`fit` calls :meth:`setup`, restores or
    saves :attr:`models` and :attr:`optimizers`, then calls :meth:`step` for every step and :meth:`export` at the
    end. ``name`` names the trainer in the run record and the progress bar."""

    name: str = "task"

    def __init__(self, config: Any, arrays: Any = None) -> None:
        #: the trainer's config, and the arrays that replace its data (tests)
        self.config, self.arrays = config, arrays
        #: steps between validations (:meth:`evaluate`) and between preview grids (:meth:`preview`); 0 = never
        self.eval_every = getattr(config, "eval_every", 0)
        self.preview_every = getattr(config, "preview_every", 0)
        #: run-record (``run.json``), checkpoint and summary entries besides the trainer's name
        self.info: dict[str, Any] = {}
        self.models: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    @property
    def total_steps(self) -> int:
        return int(self.config.steps)

    def setup(self, run: Run) -> None:
        """Read the data and build the models and optimisers (after seeding, so their initial weights follow it)."""
        raise NotImplementedError

    def check_resume(self, extra: dict[str, Any], path: Path) -> None:
        """Refuse a checkpoint whose ``info`` does not match this run (nothing to check by default)."""

    def step(self, step: int) -> dict[str, float]:
        """One optimisation step; returns named scalars for the log."""
        raise NotImplementedError

    def evaluate(self) -> dict[str, float]:
        """Validation columns for the log (rank 0 only)."""
        return {}

    def preview(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """(inputs, masks, outputs, style sample) for a preview grid after ``step`` steps."""
        return None

    def export(self, run: Run, last_log: dict[str, float]) -> dict[str, Any]:
        """Write the final weights (rank 0, finished runs only); returns summary entries."""
        raise NotImplementedError


class SupervisedTask(Task):
    """A task that trains one network on labelled minibatches of ``self.train`` (the gaze estimator, the segmenter)."""

    def use_model(self, model: nn.Module, run: Run, size: tuple[int, int]) -> None:
        """Train ``model`` (built after seeding): its spec records the data's working size; AdamW at the config's
        lr and weight decay; the DDP wrap; one minibatch sampler over ``self.train``."""
        config, ctx = self.config, run.ctx
        self.model = model.to(ctx.device)
        self.model.spec = replace(self.model.spec, size=size)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.models, self.optimizers = {"model": self.model}, {"optimizer": self.optimizer}
        self.net = wrap_model(self.model, ctx)
        self.sampler = MinibatchSampler(len(self.train["images"]), config.batch_size, config.seed, ctx.rank,
                                        ctx.world_size)
        self.ctx = ctx


def fit(task: Task, loop: LoopConfig, out: str | Path, resume: bool = True, stop_at: int | None = None,
        progress: bool = True, config: Any = None) -> dict[str, Any]:
    """Train ``task`` into ``out`` (resuming from its checkpoint when ``resume``); returns a summary dict.

    ``config`` (default ``loop``) is the trainer's full config, saved as the run record. ``stop_at`` ends the run
    after that many steps (as an interruption would), leaving ``last`` to resume from.
    """
    out = Path(out)
    ctx = init_distributed(None if loop.device == "auto" else loop.device)
    try:
        if ctx.is_main:
            out.mkdir(parents=True, exist_ok=True)
        if loop.num_threads > 0:
            torch.set_num_threads(loop.num_threads)
        seed_everything(loop.seed + ctx.rank)
        run = Run(ctx, out, progress)
        task.setup(run)
        total = task.total_steps
        checkpointer = Checkpointer(out, "last", ctx)
        start = 0
        if resume and checkpointer.exists():
            start, extra = checkpointer.restore(task.models, task.optimizers)
            task.check_resume(extra, checkpointer.weights_path)
        elif ctx.is_main:
            save_run_record(out, config if config is not None else loop, loop.seed,
                            {"trainer": task.name, **task.info, "world_size": ctx.world_size})
        logger = CSVLogger(out / "log.csv", resume_step=start if start > 0 else None, enabled=ctx.is_main)

        def on_log(step: int, means: dict[str, float]) -> dict[str, float] | None:
            if not ctx.is_main:
                return None
            columns = task.evaluate() if _due(step, task.eval_every, total) else None
            grid = task.preview(step) if _due(step, task.preview_every, total) else None
            if grid is not None:
                save_preview_grid(out / "previews" / f"step_{step:06d}.png", *grid)
            return columns

        def save(step: int) -> None:
            checkpointer.save(step, task.models, task.optimizers, extra=dict(task.info) or None)

        done = run_loop(task.step, start=start, total=total, save=save, ctx=ctx, logger=logger,
                        log_every=loop.log_every, checkpoint_every=loop.checkpoint_every, stop_at=stop_at,
                        on_log=on_log, desc=f"train-{task.name}", progress=progress)
        summary: dict[str, Any] = {**task.info, "steps_done": done, "finished": done >= total}
        if done >= total and ctx.is_main:
            rows = logger.rows()
            last = {k: float(v) for k, v in rows[-1].items() if k != "step" and v != ""} if rows else {}
            summary.update(task.export(run, last))
        return summary
    finally:
        cleanup_distributed(ctx)


def _due(step: int, every: int, total: int) -> bool:
    return every > 0 and (step % every == 0 or step == total)


def run_loop(step_fn: Callable[[int], Mapping[str, float]], *, start: int, total: int,
             save: Callable[[int], None], ctx: DistContext, logger: CSVLogger | None = None,
             log_every: int = 50, checkpoint_every: int = 500, stop_at: int | None = None,
             on_log: Callable[[int, dict[str, float]], dict[str, float] | None] | None = None,
             desc: str = "train", progress: bool = True) -> int:
    """Run ``step_fn(step)`` for ``step = start .. total - 1`` and return the number of steps done.

    ``step_fn`` returns named scalar loss terms; their means over each ``log_every`` window go to the CSV log
    (column ``step`` = steps done) and to the progress bar (rank 0 only). ``on_log(step, means)`` may add more
    columns (e.g. a validation error). ``save(steps_done)`` is called every ``checkpoint_every`` steps and when
    the loop ends; ``stop_at`` ends it early (as an interruption would), leaving a resumable checkpoint.
    """
    for name, value, low in (("steps", total, 1), ("log_every", log_every, 1),
                              ("checkpoint_every", checkpoint_every, 1), ("resumed step", start, 0)):
        if value < low:  # configs are checked on load; this guards library callers that build them directly
            raise UserError(f"{desc}: {name} must be at least {low}, got {value}")
    if stop_at is not None and stop_at < 0:
        raise UserError(f"{desc}: stop_at must be at least 0, got {stop_at}")
    end = total if stop_at is None else min(total, stop_at)
    sums: dict[str, float] = {}
    count = 0
    tick = time.perf_counter()
    bar = tqdm(total=total, initial=start, desc=desc, dynamic_ncols=True, leave=True,
               disable=not (progress and ctx.is_main))
    step = start
    try:
        for step in range(start, end):
            terms = step_fn(step)
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + float(value)
            count += 1
            done = step + 1
            if done % log_every == 0 or done == total:
                means = mean_across_ranks({k: v / count for k, v in sums.items()}, ctx)
                extra = on_log(done, means) if on_log is not None else None
                now = time.perf_counter()
                row = {"step": done, **means, **(extra or {}), "sec_per_step": (now - tick) / count}
                if logger is not None:
                    logger.log(row)
                bar.set_postfix({k: f"{v:.4g}" for k, v in {**means, **(extra or {})}.items()}, refresh=False)
                sums, count, tick = {}, 0, now
            bar.update(1)
            if done % checkpoint_every == 0 and done < end:
                save(done)
        step = end
        if end > start or start == 0:
            save(end)
    finally:
        bar.close()
    return step
