"""Gaze from label maps, and the purifier's gaze guide: a frozen image reader must see the gaze the mask implies."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from maskpurify.batch import EyeBatch
from maskpurify.config import from_dict
from maskpurify.errors import UserError
from maskpurify.losses import LabelMapGaze, LossInputs, TaskGuide
from maskpurify.masks import EYE_LABELS, LABEL_GREY, label_image
from maskpurify.nets.gaze import GazeNetConfig, build_gaze_net, load_gaze_net
from maskpurify.training.gaze import GazeTrainConfig, train_gaze


def _eyes(n: int = 96, seed: int = 0) -> dict[str, np.ndarray]:
    """Label maps whose pupil column encodes the yaw: gaze is readable from the regions alone."""
    rng = np.random.default_rng(seed)
    yaw = rng.uniform(-0.4, 0.4, n).astype(np.float32)
    masks = np.zeros((n, 36, 60), np.uint8)
    masks[:, 10:26, 10:50] = 1
    for i, y in enumerate(yaw):
        x = int(round(30 + 40 * y))
        masks[i, 12:24, x - 6:x + 6] = 2
        masks[i, 15:21, x - 3:x + 3] = 3
    images = rng.integers(0, 255, (n, 36, 60, 3), dtype=np.uint8)  # appearance carries nothing here
    return EyeBatch(images, masks, EYE_LABELS, gaze=np.stack([np.zeros_like(yaw), yaw], 1))


def test_label_image_draws_each_label_at_its_grey_level() -> None:
    mask = np.array([[0, 1], [2, 3]], np.uint8)
    image = label_image(mask)
    assert image.shape == (2, 2, 3) and image.dtype == np.uint8
    assert np.array_equal(image[..., 0], image[..., 2])
    assert [int(v) for v in image[..., 0].ravel()] == [round(g * 255) for g in LABEL_GREY]


def test_gaze_net_trained_on_label_maps_reads_gaze_from_the_mask(tmp_path: Path) -> None:
    data = _eyes()
    config = from_dict(GazeTrainConfig, {"steps": 150, "batch_size": 32, "lr": 3e-3, "warmup": 5, "log_every": 50,
                                         "eval_every": 1000, "checkpoint_every": 1000, "num_threads": 1,
                                         "model": {"inputs": "labels", "hidden": 32}})
    train_gaze(config, tmp_path / "labels", arrays=data, progress=False)
    net = load_gaze_net(tmp_path / "labels" / "gaze")
    assert net.config.inputs == "labels"
    test = _eyes(32, seed=1)
    with torch.no_grad():
        pred = net(torch.from_numpy(label_image(test.masks)).permute(0, 3, 1, 2).float() / 255)
    error = (pred[:, 1] - torch.from_numpy(test.gaze[:, 1])).abs().mean()
    assert error < 0.5 * np.abs(test.gaze[:, 1]).mean()  # it learnt the yaw, not the mean
    no_masks = replace(data, masks=None)
    with pytest.raises(UserError, match="no masks"):
        train_gaze(config, tmp_path / "none", arrays=no_masks, progress=False)


def test_gaze_guide_is_zero_when_the_reader_agrees_and_has_gradients() -> None:
    torch.manual_seed(0)
    from_labels = build_gaze_net(GazeNetConfig(inputs="labels", hidden=16))
    mask = torch.from_numpy(_eyes(4).masks).long()
    labels_drawn = torch.from_numpy(label_image(mask.numpy())).permute(0, 3, 1, 2).float() / 255
    # a reader identical to the label reader, fed the label drawing, agrees exactly
    twin = build_gaze_net(GazeNetConfig(hidden=16))
    twin.load_state_dict(from_labels.state_dict())
    guide = TaskGuide(twin, LabelMapGaze(from_labels))
    region = (mask > 0).unsqueeze(1).float()
    drawn = labels_drawn.clone()
    assert guide(LossInputs(drawn, drawn, mask, drawn, mask)).item() == pytest.approx(0.0, abs=1e-6)
    output = torch.rand(4, 3, 36, 60, requires_grad=True)
    loss = guide(LossInputs(output, output.detach(), mask, output.detach(), mask))
    loss.backward()
    assert loss.item() > 0 and output.grad is not None
    inside, outside = output.grad * region, output.grad * (1 - region)
    assert inside.abs().sum() > 0 and outside.abs().sum() == 0  # the skin cannot be used to steer the reader
    assert all(not p.requires_grad for p in guide.parameters())
    with pytest.raises(UserError, match="label-map gaze net"):
        TaskGuide(from_labels, LabelMapGaze(twin))
