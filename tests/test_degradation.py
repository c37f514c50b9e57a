import numpy as np
import pytest

from maskpurify.batch import EyeBatch
from maskpurify.degradation import DegradationConfig, degrade
from maskpurify.errors import UserError
from maskpurify.masks import EYE_LABELS
from maskpurify.world.renderer import render_samples


@pytest.fixture(scope="module")
def eyes():
    batch = render_samples("synthetic", 48, (36, 60), seed=3)
    return batch.images, batch.masks


def test_deterministic_per_seed_and_varied(eyes):
    images, masks = eyes
    a = degrade(images, masks, np.random.default_rng(1))
    b = degrade(images, masks, np.random.default_rng(1))
    c = degrade(images, masks, np.random.default_rng(2))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    # every image is changed, and by different amounts (independent draws per image)
    change = np.abs(a[0].astype(int) - images.astype(int)).mean(axis=(1, 2, 3))
    assert (change > 0).all() and change.std() > 2


def test_strength_zero_is_identity(eyes):
    images, masks = eyes
    out, out_masks = degrade(images, masks, np.random.default_rng(0), DegradationConfig(strength=0.0))
    np.testing.assert_array_equal(out, images)
    np.testing.assert_array_equal(out_masks, masks)


def test_without_geometry_masks_stay_exact(eyes):
    images, masks = eyes
    out, out_masks = degrade(images, masks, np.random.default_rng(0), geometry=False)
    np.testing.assert_array_equal(out_masks, masks)
    assert out.dtype == np.uint8 and out.shape == images.shape


def test_geometry_moves_image_and_mask_together(eyes):
    images, masks = eyes
    out, out_masks = degrade(images, masks, np.random.default_rng(4))
    assert set(np.unique(out_masks)) <= {0, 1, 2, 3}
    moved = (out_masks != masks).any(axis=(1, 2))
    assert 0.2 < moved.mean() < 1.0
    # the pupil moved with the image: the image is darkest where the warped mask says pupil
    grey = out[moved].astype(float).mean(-1)
    assert grey[out_masks[moved] == 3].mean() < grey[out_masks[moved] == 0].mean() - 20


def test_bad_inputs(eyes):
    images, masks = eyes
    with pytest.raises(UserError, match="uint8"):
        degrade(images.astype(np.float32), masks, np.random.default_rng(0))
    with pytest.raises(UserError, match="do not match"):
        degrade(images, masks[:, :10], np.random.default_rng(0))
    with pytest.raises(UserError, match="strength"):
        DegradationConfig(strength=-1)
    with pytest.raises(UserError, match="blur_prob"):
        DegradationConfig(blur_prob=2.0)
    with pytest.raises(UserError, match="low"):
        DegradationConfig(scale=(2.0, 1.0))


def test_domain_randomised_gaze_training(tmp_path, eyes):
    import torch

    from maskpurify.nets.gaze import GazeNetConfig, load_gaze_net
    from maskpurify.training.gaze import GazeTrainConfig, train_gaze

    images, masks = eyes
    batch = render_samples("synthetic", 48, (36, 60), seed=3)
    arrays = EyeBatch(images, masks, EYE_LABELS, gaze=batch.gaze.astype(np.float32))
    weights = {}
    for strength in (0.0, 1.0):
        torch.manual_seed(0)
        config = GazeTrainConfig(steps=2, batch_size=8, log_every=1, eval_every=100, checkpoint_every=100,
                                 device="cpu", num_threads=1, degradation=DegradationConfig(strength=strength))
        train_gaze(config, tmp_path / f"s{strength}", progress=False, arrays=arrays)
        weights[strength] = load_gaze_net(tmp_path / f"s{strength}" / "gaze").state_dict()
    # the degraded batches train other weights than the clean ones, from the same seed
    assert any(not torch.equal(weights[0.0][k], weights[1.0][k]) for k in weights[0.0])
    labels = GazeTrainConfig(steps=2, model=GazeNetConfig(inputs="labels"), degradation=DegradationConfig())
    with pytest.raises(UserError, match="model.inputs=image"):
        train_gaze(labels, tmp_path / "labels", progress=False, arrays=arrays)


def test_no_eye_crops_are_all_skin(eyes):
    from maskpurify.degradation import no_eye

    images, masks = eyes
    rng = np.random.default_rng(0)
    for i in range(16):
        image, mask = no_eye(images[i], masks[i], rng)
        assert image.shape == images[i].shape and image.dtype == np.uint8
        assert not mask.any()
        assert not np.array_equal(image, images[i])
