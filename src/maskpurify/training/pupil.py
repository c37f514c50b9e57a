"""Train the near-IR world's pupil detector on synthetic frames only: the gaze trainer's task with the pupil
centre as its target (one loop, one trainer; only the target and the error columns differ).

Outputs in the out dir: ``pupil.safetensors`` + ``pupil.json`` (a gaze net's checkpoint whose sidecar records
``"target": "pupil_center"``), ``last``, ``log.csv``, ``config.yaml`` + ``run.json``. With
``degradation.strength=1`` it is the domain-randomised baseline (every batch through the degradation model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maskpurify.batch import EyeBatch
from maskpurify.config import command_line
from maskpurify.metrics.pupil import detection_rate, pupil_errors
from maskpurify.nets.gaze import GazeNetConfig, save_gaze_net
from maskpurify.nets.pupil import PUPIL_NET, predict_pupil, pupil_target
from maskpurify.training.common import unwrap
from maskpurify.training.gaze import GazeTask, GazeTrainConfig, TrainDataConfig, describe_data
from maskpurify.training.loop import Run, fit


@dataclass
class PupilTrainConfig(GazeTrainConfig):
    """1000 steps x 32 on 20k nir-synthetic frames at 48x64: the purifier's pupil guide; the scored detectors train
    3000 steps (``scripts/make_nir_weights.sh``: at 1000 the seeds were still climbing, 20 points apart)."""

    data: TrainDataConfig = field(default_factory=lambda: TrainDataConfig(
        domain="nir-synthetic", render_n=20000, render_seed=4001, size="48x64"))
    model: GazeNetConfig = PUPIL_NET
    steps: int = 1000
    batch_size: int = 32


class PupilTask(GazeTask):
    """Regress the pupil centre (fractions of the frame) from whole eye-camera frames."""

    name = "pupil"
    outputs = ("pupil",)

    def target(self, idx: torch.Tensor) -> torch.Tensor:
        return pupil_target(self.train["pupil_center"][idx], tuple(self.train["images"].shape[1:3]))

    def train_error(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        height, width = self.train["images"].shape[1:3]
        scale = torch.tensor([float(width), float(height)], device=pred.device)
        return {"train_err_px": ((pred - target) * scale).norm(dim=1).mean().item()}

    def _val_errors(self) -> np.ndarray:
        """LPW-pixel errors on the held-out tail."""
        images = self.val["images"]
        pred = predict_pupil(self.model, images).numpy()
        return pupil_errors(pred, self.val["pupil_center"].numpy(), int(images.shape[2]))

    def evaluate(self) -> dict[str, float]:
        errors = self._val_errors()
        return {"val_err_lpw_px": float(errors.mean()) if errors.size else float("nan"),
                "val_rate_5px": detection_rate(errors)}

    def export(self, run: Run, last_log: dict[str, float]) -> dict[str, Any]:
        config, scores = self.config, self.evaluate()
        save_gaze_net(run.out / "pupil", unwrap(self.model), {"target": "pupil_center", "trained": {
            "command": command_line(), "seed": config.seed, "steps": config.steps,
            "data": describe_data(config.data), **scores}})
        return scores


def train_pupil(config: PupilTrainConfig, out_dir: str | Path, resume: bool = True, stop_at: int | None = None,
                progress: bool = True, arrays: EyeBatch | None = None) -> dict[str, Any]:
    """Train (or resume) the detector and write the outputs listed in the module docstring; ``arrays`` replaces
    ``config.data`` (tests)."""
    return fit(PupilTask(config, arrays), config, out_dir, resume, stop_at, progress, config)
