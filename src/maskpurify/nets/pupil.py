"""The pupil detector of the near-infrared world: a small CNN of the gaze-net family (:mod:`maskpurify.nets.gaze`,
its heatmap locator) reading a whole eye-camera frame and returning the pupil centre, as a learned LPW detector
does.

Its two outputs are the pupil centre as a fraction of the frame's width and height, so one network reads frames of
any size (it resizes them to its input size, 48x64: LPW's 640x480 at a tenth). The checkpoint is a gaze net's with
``"target": "pupil_center"`` in its sidecar. A LeNet regressor (the gaze estimator's architecture) reached only
1.8 px mean error (18 LPW px) after 500 steps on clean frames: its pooling and fully connected layers lose the
sub-pixel position, so the detector locates instead (soft-argmax of a heatmap).
"""

from __future__ import annotations

import torch
from torch import nn

from maskpurify.nets.gaze import GazeNetConfig, predict_gaze

#: The shipped detector: the heatmap locator with 8/16/32 channels (26 k parameters).
PUPIL_NET = GazeNetConfig(arch="heatmap", input_size=(48, 64), base_channels=8)


def pupil_target(centres: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, 2) pixel centres (x, y) -> the network's outputs: fractions of the width and height."""
    height, width = size
    return centres.float() / torch.tensor([float(width), float(height)])


@torch.no_grad()
def predict_pupil(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """(N, 2) pupil centres (x, y) in pixels of ``images`` (uint8 (N,H,W,3) or float (N,3,H,W) in [0, 1])."""
    height, width = (images.shape[1:3] if images.dtype == torch.uint8 else images.shape[-2:])
    return predict_gaze(model, images, batch_size=batch_size) * torch.tensor([float(width), float(height)])
