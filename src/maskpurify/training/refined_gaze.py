"""SimGAN's evaluation, step 2: refine the synthetic gaze training set with a syn2real refiner and train a gaze
estimator on the refined images (then evaluate it on raw real/wild eyes, as the paper does on MPIIGaze).

For a fair comparison the gaze training uses the shipped estimator's settings: :func:`shipped_gaze_config`
rebuilds a :class:`GazeTrainConfig` from ``weights/gaze.json`` (network config, steps, seed, training data)
when it exists, else the :class:`GazeTrainConfig` defaults. Only the images change; labels stay.

Outputs in the out dir: those of :func:`maskpurify.training.gaze.train_gaze` (``gaze.safetensors`` + ``.json``
with ``refined_by`` in the sidecar, ``last.*``, ``log.csv``) plus ``refined_preview.png`` (raw | refined).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
from pathlib import Path
from typing import Any

import numpy as np

from maskpurify.batch import EyeBatch
from maskpurify.checkpoints import WEIGHTS_DIR, checkpoint_paths, load_checkpoint
from maskpurify.config import load_config
from maskpurify.errors import UserError
from maskpurify.fileio import atomic_write_json, read_json, save_image
from maskpurify.nets.gaze import GazeNetConfig, gaze_config_from_dict, load_gaze_net
from maskpurify.nets.purifier import load_purifier
from maskpurify.training.common import choose_device, init_distributed
from maskpurify.purification import Purification
from maskpurify.training.gaze import GazeTrainConfig, load_training_data, train_gaze
from maskpurify.training.loop import Run

DEFAULT_SHIPPED_GAZE = str(WEIGHTS_DIR / "gaze")
_RENDERED = re.compile(r"rendered synthetic n=(\d+) seed=(\d+) size=(\d+x\d+)")


def shipped_gaze_config(path: str | Path | None = DEFAULT_SHIPPED_GAZE) -> tuple[GazeTrainConfig, bool]:
    """(config, found): the :class:`GazeTrainConfig` the shipped gaze estimator at ``path`` was trained with,
    as far as its sidecar tells, else the defaults: the ``--config`` file and ``--set`` overrides of the command
    recorded in ``trained.command`` (when they still apply), then the network config, steps, seed and training
    data recorded in the sidecar."""
    config = GazeTrainConfig()
    if path is None:
        return config, False
    weights, sidecar = checkpoint_paths(path)
    if not (weights.is_file() and sidecar.is_file()):
        return config, False
    meta = read_json(sidecar)
    if meta.get("kind") != "gaze":
        raise UserError(f"{sidecar}: not a gaze estimator sidecar (kind is {meta.get('kind')!r})")
    model: GazeNetConfig = gaze_config_from_dict(meta["config"]) if "config" in meta else config.model
    trained = meta.get("trained", {})
    config = _config_from_command(str(trained.get("command", "")))
    data = config.data
    source = str(trained.get("data", ""))
    match = _RENDERED.fullmatch(source)
    if match:
        data = dataclasses.replace(data, render_n=int(match.group(1)), render_seed=int(match.group(2)),
                                   size=match.group(3))
    elif source and Path(source).exists():
        data = dataclasses.replace(data, path=source)
    config = dataclasses.replace(config, model=model, data=data,
                                 steps=int(trained.get("steps", config.steps)),
                                 seed=int(trained.get("seed", config.seed)))
    return config, True


def _config_from_command(command: str) -> GazeTrainConfig:
    """GazeTrainConfig of a recorded ``maskpurify train-gaze [--config F] [--set k=v]...`` command line."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return GazeTrainConfig()
    config_file, overrides = None, []
    for flag, value in zip(argv, argv[1:]):
        if flag == "--config" and Path(value).is_file():
            config_file = value
        elif flag == "--set":
            overrides.append(value)
    for arg in argv:
        if arg.startswith("--set="):
            overrides.append(arg[len("--set="):])
    try:
        return load_config(GazeTrainConfig, config_file, overrides)
    except UserError:
        return GazeTrainConfig()


def _preview(path: Path, raw: np.ndarray, refined: np.ndarray, n: int = 8, scale: int = 4) -> None:
    rows = [np.concatenate([raw[i], np.full((raw.shape[1], 2, 3), 255, np.uint8), refined[i]], 1)
            for i in range(min(n, len(raw)))]
    grid = np.concatenate(rows, 0)
    save_image(path, np.kron(grid, np.ones((scale, scale, 1), np.uint8)))


def train_refined_gaze(refiner: str | Path, out_dir: str | Path, config: GazeTrainConfig | None = None,
                       resume: bool = True, stop_at: int | None = None, progress: bool = True,
                       arrays: EyeBatch | None = None, refine_batch: int = 256,
                       shipped_gaze: str | Path | None = DEFAULT_SHIPPED_GAZE, device: str | None = None
                       ) -> dict[str, Any]:
    """Refine the synthetic gaze training set with the syn2real refiner checkpoint ``refiner`` and train a gaze
    estimator on it into ``out_dir``; returns train_gaze's summary plus where the config came from.

    ``config`` defaults to :func:`shipped_gaze_config` (``shipped_gaze``'s sidecar, else the defaults);
    ``device`` overrides ``config.device``; ``arrays`` replaces the synthetic training set (tests). Refinement is deterministic (inference mode), so a
    resumed run refines again and continues on identical images.
    """
    out = Path(out_dir)
    _, meta = load_checkpoint(refiner)
    direction = meta.get("direction")
    if direction not in (None, "syn2real"):
        raise UserError(f"{refiner}: a {direction} refiner; SimGAN's gaze step needs a syn2real one")
    source = "given"
    if config is None:
        config, found = shipped_gaze_config(shipped_gaze)
        source = f"sidecar {shipped_gaze}.json" if found else "GazeTrainConfig defaults"
    if device:
        config = dataclasses.replace(config, device=device)
    if arrays is None:
        # (under torchrun this joins the process group that train_gaze then uses and closes)
        ctx = init_distributed(None if config.device == "auto" else config.device)
        data = load_training_data(config.data, Run(ctx, out, progress))
    else:
        data = arrays
    device = choose_device(None if config.device == "auto" else config.device)
    refined = Purification(load_purifier(refiner, device), None, device, refine_batch).purify_arrays(data.images)
    is_main = int(os.environ.get("RANK", "0")) == 0
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        _preview(out / "refined_preview.png", data.images, refined)
    summary = train_gaze(config, out, resume=resume, stop_at=stop_at, progress=progress,
                         arrays=dataclasses.replace(data, images=refined))
    weights, sidecar = checkpoint_paths(out / "gaze")
    if is_main and summary.get("finished") and sidecar.is_file():
        # Record in the sidecar that this estimator was trained on refined images.
        gmeta = read_json(sidecar)
        gmeta["refined_by"] = {"refiner": str(refiner), "direction": "syn2real", "config_from": source}
        atomic_write_json(sidecar, gmeta)
        load_gaze_net(out / "gaze")  # still loads
        summary["gaze"] = str(weights)
    summary["config_from"] = source
    summary["refiner"] = str(refiner)
    return summary


__all__ = ["shipped_gaze_config", "train_refined_gaze"]
