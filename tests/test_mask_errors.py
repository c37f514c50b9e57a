"""Training the purifier to follow the image where its mask is wrong: the mask errors, the painted-out eyes and
the options that turn them on."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from maskpurify.degradation import MASK_ERRORS, corrupt_mask, corrupt_masks, paint_out_eyes
from maskpurify.errors import UserError
from maskpurify.masks import IRIS, PUPIL, SCLERA, SKIN
from maskpurify.nets.purifier import load_purifier
from maskpurify.training.purifier import train_purifier

from test_training_purifier import _arrays, config  # noqa: F401  (the shared fixture)


def _eye_mask() -> np.ndarray:
    mask = np.zeros((36, 60), np.uint8)
    mask[10:26, 12:48] = SCLERA
    yy, xx = np.mgrid[:36, :60]
    disc = (yy - 18) ** 2 + (xx - 30) ** 2
    mask[(disc <= 49) & (mask > 0)] = IRIS
    mask[(disc <= 9) & (mask > 0)] = PUPIL
    return mask


def test_each_mask_error_changes_the_mask_and_keeps_it_a_label_map() -> None:
    mask, other = _eye_mask(), np.roll(_eye_mask(), 6, axis=1)
    seen = set()
    for seed in range(200):
        rng = np.random.default_rng(seed)
        kind = MASK_ERRORS[int(np.random.default_rng(seed).integers(len(MASK_ERRORS)))]
        wrong = corrupt_mask(mask, rng, other)
        seen.add(kind)
        assert wrong.dtype == np.uint8 and wrong.shape == mask.shape and set(np.unique(wrong)) <= {0, 1, 2, 3}
        assert not np.array_equal(wrong, mask), kind
        if kind == "shift":  # the iris moves inside the eye region, which keeps its outline
            assert np.array_equal(wrong > SKIN, mask > SKIN)
        if kind == "second":
            assert (wrong >= IRIS).sum() > (mask >= IRIS).sum()
        if kind == "no_pupil":
            assert not (wrong == PUPIL).any() and np.array_equal(wrong >= IRIS, mask >= IRIS)
        if kind == "no_iris":
            assert not (wrong >= IRIS).any()
        if kind == "other":
            assert np.array_equal(wrong, other)
    assert seen == set(MASK_ERRORS)
    np.testing.assert_array_equal(corrupt_mask(mask, np.random.default_rng(3)),
                                  corrupt_mask(mask, np.random.default_rng(3)))


def test_share_of_the_batch() -> None:
    masks = np.stack([np.roll(_eye_mask(), s, axis=1) for s in range(-4, 4)])
    assert np.array_equal(corrupt_masks(masks, np.random.default_rng(0), 0.0), masks)
    changed = [not np.array_equal(a, b) for a, b in zip(corrupt_masks(masks, np.random.default_rng(0), 1.0), masks)]
    assert sum(changed) == len(masks)


def test_painted_out_eyes_show_skin_where_the_eye_was() -> None:
    mask = _eye_mask()
    image = np.full((36, 60, 3), (200, 150, 120), np.uint8)
    image[mask > SKIN] = (250, 250, 250)
    image[mask >= IRIS] = (40, 30, 20)
    out, painted = paint_out_eyes(image[None], mask[None], np.random.default_rng(0), 1.0)
    assert painted.tolist() == [True]
    eye = out[0][mask > SKIN].astype(int)
    assert np.abs(eye - (200, 150, 120)).max() < 30  # skin-coloured where the eye was
    same, none = paint_out_eyes(image[None], mask[None], np.random.default_rng(0), 0.0)
    assert np.array_equal(same, image[None]) and not none.any()


@pytest.mark.slow
def test_training_with_mask_errors_and_painted_out_eyes(tmp_path, config) -> None:  # noqa: F811
    config = dataclasses.replace(config, mask_errors=0.5, painted_out=0.25)
    summary = train_purifier(config, tmp_path / "run", progress=False, arrays=(_arrays(0), _arrays(1)))
    assert summary["finished"]
    assert load_purifier(tmp_path / "run" / "purifier")(torch.rand(1, 3, 16, 24),
                                                        torch.zeros(1, 16, 24, dtype=torch.long)).shape == (1, 3, 16, 24)
    for bad, message in (({"mask_errors": 1.5}, "within"), ({"painted_out": 0.5, "loss": dataclasses.replace(
            config.loss, identity=0.0)}, "identity term")):
        with pytest.raises(UserError, match=message):
            train_purifier(dataclasses.replace(config, **bad), tmp_path / "bad", progress=False,
                           arrays=(_arrays(0), _arrays(1)))
