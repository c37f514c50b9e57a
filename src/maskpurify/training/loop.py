"""The one training loop: :func:`fit` drives a :class:`Task` (its models, optimisers and step) through distributed
setup, seeding, threads, resume, the run record, the CSV log, previews and the final export, so that a trainer is
only what differs between trainers.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from tqdm import tqdm

from maskpurify.checkpoints import checkpoint_exists, checkpoint_meta, checkpoint_paths, remove_checkpoint
from maskpurify.config import save_run_record, to_dict
from maskpurify.errors import UserError
from maskpurify.fileio import read_yaml
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
    #: the checkpoints :meth:`export` writes into the out dir (``STEM.safetensors`` + ``STEM.json``) and, ending
    #: in ``/``, run folders made from them, removed when a run starts afresh there
    outputs: tuple[str, ...] = ()

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


#: Settings a resumed run may change, because the run still ends on the same weights: ``num_threads`` (CPU
#: threads), ``device`` (moving a run to another machine is resuming it; the numbers then differ only by
#: floating-point rounding) and how often the loop logs (``log_every``), validates (``eval_every``), draws preview
#: grids (``preview_every``) or checkpoints (``checkpoint_every``): none of these draws random numbers or touches
#: the weights (every step's batch and augmentation are a function of the step alone; a checkpoint restores the
#: RNG state). Neither is an early stop (``--max-steps``, the ``stop_at`` argument) nor the progress bar
#: (``--quiet``) part of the config. Any other difference from the run being resumed is refused by :func:`fit`.
RESUME_MAY_CHANGE = frozenset({"num_threads", "device", "log_every", "eval_every", "preview_every",
                               "checkpoint_every"})

#: What :func:`fit` writes into OUT besides the task's exported weights; a fresh start (``--no-resume``, or no
#: checkpoint to resume) removes them first (``data/``, the render cache keyed by its settings, stays).
RUN_FILES = ("log.csv", "previews")


def fit(task: Task, loop: LoopConfig, out: str | Path, resume: bool = True, stop_at: int | None = None,
        progress: bool = True, config: Any = None) -> dict[str, Any]:
    """Train ``task`` into ``out`` (resuming from its checkpoint when ``resume``); returns a summary dict.

    ``config`` (default ``loop``) is the trainer's full config, saved as the run record (``config.yaml``) and in
    every checkpoint. ``stop_at`` ends the run after that many steps (as an interruption would), leaving ``last``
    to resume from.

    Resuming is refused, in one line naming every differing key with its old and new value, when ``config``
    differs from the config of the run that wrote the checkpoint (its record in the checkpoint, else
    ``config.yaml``) in anything but :data:`RESUME_MAY_CHANGE`, and when the checkpoint is past the steps asked
    for, so the exported weights always are those of the config recorded beside them. A fresh start
    (``resume=False``, or no checkpoint) first removes the previous run's checkpoint, log, previews and exported
    weights. A run refused while reading its data or settings (before the first step) leaves nothing it created
    behind (a rendered training set in ``out/data`` included); what was there before stays.
    """
    out = Path(out)
    config = config if config is not None else loop
    record = to_dict(config)
    ctx = init_distributed(None if loop.device == "auto" else loop.device)
    try:
        if loop.num_threads > 0:
            torch.set_num_threads(loop.num_threads)
        resuming = resume and checkpoint_exists(out / "last")
        if resuming:  # before anything is written or rendered
            check_same_run(out, config, task.total_steps)
        existing = _Existing(out) if ctx.is_main else None
        try:
            if ctx.is_main:
                out.mkdir(parents=True, exist_ok=True)
            seed_everything(loop.seed + ctx.rank)
            run = Run(ctx, out, progress)
            task.setup(run)
            total = task.total_steps
            checkpointer = Checkpointer(out, "last", ctx)
            start = 0
            if resuming:
                start, extra = checkpointer.restore(task.models, task.optimizers)
                extra.pop("config", None)
                if start > total:  # a checkpoint without a config record (older versions)
                    raise UserError(_past_steps(out, start, total))
                task.check_resume(extra, checkpointer.weights_path)
            elif ctx.is_main:
                _remove_previous_run(out, task)
                save_run_record(out, config, loop.seed, {"trainer": task.name, **task.info,
                                                         "world_size": ctx.world_size})
        except (UserError, OSError):
            if existing is not None:
                existing.remove_new()
            raise
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
            checkpointer.save(step, task.models, task.optimizers, extra={**task.info, "config": record})

        done = run_loop(task.step, start=start, total=total, save=save, ctx=ctx, logger=logger,
                        log_every=loop.log_every, checkpoint_every=loop.checkpoint_every, stop_at=stop_at,
                        on_log=on_log, desc=f"train-{task.name}", progress=progress)
        summary: dict[str, Any] = {**task.info, "steps_done": done, "finished": done == total}
        if done == total and ctx.is_main:  # exactly the steps the exported sidecar records
            rows = logger.rows()
            last = {k: float(v) for k, v in rows[-1].items() if k != "step" and v != ""} if rows else {}
            summary.update(task.export(run, last))
        return summary
    finally:
        cleanup_distributed(ctx)


def check_same_run(out: Path, config: Any, total: int) -> None:
    """Refuse (one line) to resume the checkpoint in ``out`` with ``config`` when the run that wrote it had other
    settings (keys of :data:`RESUME_MAY_CHANGE` aside), or when it is past ``total`` steps."""
    meta = checkpoint_meta(out / "last")
    saved = meta.get("extra", {}).get("config") if isinstance(meta, dict) and \
        isinstance(meta.get("extra"), dict) else None
    if not isinstance(saved, dict) and (out / "config.yaml").is_file():
        try:  # a checkpoint of an older version: the run record written when its run started
            saved = read_yaml(out / "config.yaml")
        except UserError:
            saved = None
    if isinstance(saved, dict):
        differing = config_differences(saved, config)
        if differing:
            old = ", ".join(f"{key}={_show(a)}" for key, a, _ in differing)
            new = ", ".join(f"{key}={_show(b)}" for key, _, b in differing)
            raise UserError(f"{out}: holds a run with {old}; this command asks {new}; rerun with the same settings "
                            "to resume, or --no-resume to start over")
    step = meta.get("step") if isinstance(meta, dict) else None
    if isinstance(step, int) and step > total:
        raise UserError(_past_steps(out, step, total))


def config_differences(saved: dict[str, Any], config: Any) -> list[tuple[str, Any, Any]]:
    """(dotted key, saved value, new value) for every setting in which ``config`` differs from the ``saved`` config
    (its plain form), keys of :data:`RESUME_MAY_CHANGE` aside. Keys the saved config lacks (a field added since)
    take their default."""
    try:
        defaults = to_dict(type(config)())
    except TypeError:
        defaults = {}
    old, new = _flatten(_merged(defaults, saved)), _flatten(to_dict(config))
    missing = _Missing()
    return [(key, old.get(key, missing), new.get(key, missing)) for key in sorted(set(old) | set(new))
            if key.split(".")[0] not in RESUME_MAY_CHANGE and old.get(key, missing) != new.get(key, missing)]


class _Missing:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Missing)

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "(none)"


def _merged(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        merged[key] = _merged(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    return merged


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _show(value: Any) -> str:
    """A config value as the one-line refusal shows it (cut at 60 characters)."""
    if isinstance(value, _Missing):
        text = "(none)"
    elif isinstance(value, str):
        text = value if value and value.isprintable() and not any(c in value for c in " ,;=") else repr(value)
    else:
        try:
            text = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _past_steps(out: Path, step: int, total: int) -> str:
    return (f"{out}: holds a run checkpointed after {step} steps, past the {total} this command asks; rerun with "
            "the same settings to resume, or --no-resume to start over")


def _remove_previous_run(out: Path, task: Task) -> None:
    """Before a fresh start in ``out``: the previous run's checkpoint, log, previews and exported weights go, so
    nothing in ``out`` can be mistaken for this run's (a kill before the first checkpoint resumes nothing old)."""
    remove_checkpoint(out, "last")
    for name in RUN_FILES:
        _remove_path(out / name)
    for stem in task.outputs:
        if stem.endswith("/"):  # a run folder made from this run's results (simgan's refined gaze run)
            folder = out / stem.rstrip("/")
            if folder.is_dir() and not folder.is_symlink() and ((folder / "config.yaml").is_file()
                                                               or checkpoint_exists(folder / "last")):
                shutil.rmtree(folder)
            continue
        for path in checkpoint_paths(out / stem):
            _remove_path(path)


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


class _Existing:
    """What ``out`` (and ``out/data``) held before a run, so that a run refused before its first step can remove
    exactly what it created (a folder it made, files and rendered sets it added) and nothing else."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.out_existed = out.exists()
        self.top = set(out.iterdir()) if out.is_dir() else set()
        data = out / "data"
        self.data = set(data.iterdir()) if data.is_dir() and not data.is_symlink() else None

    def remove_new(self) -> None:
        with contextlib.suppress(OSError):
            if not self.out_existed:
                if self.out.is_dir() and not self.out.is_symlink():
                    shutil.rmtree(self.out)
                return
            if not self.out.is_dir():
                return
            for path in set(self.out.iterdir()) - self.top:
                _remove_path(path)
            data = self.out / "data"
            if self.data is not None and data.is_dir() and not data.is_symlink():
                for path in set(data.iterdir()) - self.data:
                    _remove_path(path)


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
