"""The purifier's pupil guide (the near-IR world's :class:`maskpurify.losses.TaskGuide`): a frozen synthetic-trained
pupil detector must find the pupil of a purified clean frame where it finds it in the original, and, with the mask
target, at the mask's pupil centroid."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from maskpurify.batch import EyeBatch
from maskpurify.checkpoints import WEIGHTS_DIR
from maskpurify.errors import UserError
from maskpurify.losses import LossConfig, LossInputs, PupilCentroid, TaskGuide
from maskpurify.masks import EYE_LABELS, PUPIL
from maskpurify.nets.gaze import build_gaze_net, load_gaze_net, save_gaze_net
from maskpurify.nets.pupil import PUPIL_NET
from maskpurify.nets.segmenter import build_segmenter, save_segmenter
from maskpurify.training.purifier import (EncoderConfig, PurifierDataConfig, PurifierTrainConfig, build_guide,
                                          train_purifier)
from maskpurify.world.domains import NIR_SIZE
from maskpurify.world.renderer import render_samples

DETECTOR = WEIGHTS_DIR / "nir" / "pupil_s0"


@pytest.fixture(scope="module")
def clean() -> tuple[torch.Tensor, torch.Tensor]:
    """Eight clean nir-synthetic frames (float, N,3,H,W) and their exact masks."""
    frames = render_samples("nir-synthetic", 8, NIR_SIZE, seed=21)
    return (torch.from_numpy(frames.images).permute(0, 3, 1, 2).float() / 255,
            torch.from_numpy(frames.masks.astype(np.int64)))


def _inputs(output: torch.Tensor, mask: torch.Tensor, identity_out: torch.Tensor, original: torch.Tensor
            ) -> LossInputs:
    return LossInputs(output, output.detach(), mask, original, mask, identity_out)


def test_pupil_centroid_is_the_pupil_pixels_mean_as_fractions_and_absent_without_a_pupil() -> None:
    mask = torch.zeros(2, 48, 64, dtype=torch.long)
    mask[0, 10:14, 20:26] = PUPIL  # x 20..25, y 10..13
    centre, present = PupilCentroid()(mask, torch.float32)
    torch.testing.assert_close(centre[0], torch.tensor([22.5 / 64, 11.5 / 48]))
    assert present.tolist() == [1.0, 0.0]


def test_pupil_guide_is_zero_for_the_clean_original_and_grows_as_the_pupil_moves(clean) -> None:
    images, masks = clean
    guide = TaskGuide(load_gaze_net(DETECTOR), None, keep_identity=True)
    assert guide(_inputs(images, masks, images, images)).item() == pytest.approx(0.0, abs=1e-7)
    moved = [guide(_inputs(images, masks, torch.roll(images, shift, -1), images)).item() for shift in (2, 4)]
    # 2 px of a 64 px frame is 0.031 in x, 0 in y: mean 0.016 where the detector follows the pupil exactly
    assert 0.008 < moved[0] < moved[1]


def test_the_mask_target_asks_for_the_pupil_at_the_masks_centroid_inside_the_eye_only(clean) -> None:
    images, masks = clean
    guide = TaskGuide(load_gaze_net(DETECTOR), PupilCentroid())
    output = images.clone().requires_grad_(True)
    exact = guide(_inputs(output, masks, images, images))
    shifted = guide(_inputs(images, torch.roll(masks, 4, -1), images, images))
    assert exact.item() < 0.01 < shifted.item()  # the detector on clean frames is within a pixel of the mask's pupil
    exact.backward()
    outside = (masks == 0).unsqueeze(1).expand_as(output)
    assert output.grad is not None and output.grad[~outside].abs().sum() > 0
    assert output.grad[outside].abs().sum() == 0  # the skin cannot be used to steer the detector
    with pytest.raises(UserError, match="guide nothing"):
        TaskGuide(load_gaze_net(DETECTOR), None, keep_identity=False)


def test_the_purifier_builds_the_guide_its_config_names_and_refuses_a_mismatched_reader(tmp_path: Path) -> None:
    detector = save_gaze_net(tmp_path / "pupil", build_gaze_net(PUPIL_NET), {"target": "pupil_center"})
    config = PurifierTrainConfig(guide_reads="pupil_center", gaze_guide=str(tmp_path / "pupil"))
    assert detector.is_file() and isinstance(build_guide(config, "cpu").target, PupilCentroid)
    assert build_guide(dataclasses.replace(config, guide_mask_target=False), "cpu").target is None
    with pytest.raises(UserError, match="guide_reads is gaze"):
        build_guide(dataclasses.replace(config, guide_reads="gaze"), "cpu")
    with pytest.raises(UserError, match="guide_reads is pupil_center"):
        build_guide(PurifierTrainConfig(guide_reads="pupil_center"), "cpu")


def test_a_purifier_trains_with_the_pupil_guide(tmp_path: Path, clean) -> None:
    images, masks = clean
    frames = EyeBatch((images.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy(),
                      masks.numpy().astype(np.uint8), EYE_LABELS)
    save_gaze_net(tmp_path / "pupil", load_gaze_net(DETECTOR), {"target": "pupil_center"})
    seg = save_segmenter(tmp_path / "seg", build_segmenter())
    config = PurifierTrainConfig(segmenter=str(seg), steps=2, batch_size=4, log_every=1, checkpoint_every=2,
                                 preview_every=100, encoder=EncoderConfig(name="random"), device="cpu",
                                 loss=LossConfig(gaze=300.0), guide_reads="pupil_center",
                                 gaze_guide=str(tmp_path / "pupil"), data=PurifierDataConfig(size="48x64"))
    assert train_purifier(config, tmp_path / "run", progress=False, arrays=(frames, frames))["finished"]
    with open(tmp_path / "run" / "log.csv") as handle:
        assert float(list(csv.DictReader(handle))[-1]["gaze"]) > 0
