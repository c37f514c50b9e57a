import numpy as np
import pytest
import torch

from maskpurify.errors import UserError
from maskpurify.nets.segmenter import SegmenterConfig, build_segmenter, load_segmenter, predict_masks, save_segmenter
from maskpurify.training.augment import photometric_augment


@pytest.mark.parametrize("stem", [1, 2])
@pytest.mark.parametrize("size", [(36, 60), (35, 61), (17, 23), (64, 64)])
def test_any_size_gives_logits_of_that_size(size, stem):
    model = build_segmenter(SegmenterConfig(base_channels=8, stem=stem)).eval()
    out = model(torch.rand(2, 3, *size))
    assert out.shape == (2, 4, *size)


def test_half_resolution_unet_costs_a_fraction_and_sees_single_pixels():
    from torch.utils.flop_counter import FlopCounterMode

    def flops(config):
        counter = FlopCounterMode(display=False)
        with counter:
            build_segmenter(config).eval()(torch.rand(1, 3, 36, 60))
        return counter.get_total_flops()

    assert flops(SegmenterConfig(base_channels=8, levels=4, stem=2)) < 0.45 * flops(
        SegmenterConfig(base_channels=8, levels=4))
    # the full-resolution head: changing one pixel changes the logits at that pixel, not only its 2x2 block
    torch.manual_seed(0)
    model = build_segmenter(SegmenterConfig(base_channels=8, levels=3, stem=2)).eval()
    x = torch.rand(1, 3, 36, 60)
    y = x.clone()
    y[0, :, 20, 31] = 1 - y[0, :, 20, 31]
    diff = (model(x) - model(y)).abs().sum(1)[0]
    assert diff[20, 31] > diff[20, 30] and diff[20, 31] > diff[21, 31]


@pytest.mark.parametrize("stem", [1, 2])
def test_differentiable_wrt_input(stem):
    model = build_segmenter(SegmenterConfig(base_channels=8, stem=stem)).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(2, 3, 36, 60, requires_grad=True)
    model(x)[:, 3].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_round_trip_and_predict(tmp_path):
    torch.manual_seed(0)
    model = build_segmenter(SegmenterConfig(base_channels=8, levels=2))
    model(torch.rand(4, 3, 36, 60))  # BN statistics
    model.eval()
    save_segmenter(tmp_path / "seg", model)
    again = load_segmenter(tmp_path / "seg")
    x = torch.rand(3, 3, 36, 60)
    assert torch.equal(model(x), again(x))
    images = np.random.default_rng(0).integers(0, 255, (3, 36, 60, 3), dtype=np.uint8)
    masks = predict_masks(again, images, batch_size=2)
    assert masks.shape == (3, 36, 60) and masks.dtype == np.uint8 and masks.max() <= 3
    with pytest.raises(UserError):
        build_segmenter({"levels": 9})
    with pytest.raises(UserError, match="stem"):
        build_segmenter({"stem": 4})


def test_augmentation_keeps_range_and_is_reproducible():
    x = torch.rand(6, 3, 36, 60)
    a = photometric_augment(x, torch.Generator().manual_seed(3))
    b = photometric_augment(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == x.shape
    assert 0 <= a.min() and a.max() <= 1 and not torch.allclose(a, x)
    assert torch.equal(photometric_augment(x, torch.Generator(), strength=0), x)


def test_clean_share_leaves_that_share_of_crops_as_rendered():
    from maskpurify.training.segmenter import SegmenterTrainConfig, training_crops
    from maskpurify.world.renderer import render_samples

    batch = render_samples("synthetic", 64, seed=5)
    images, masks = batch.images, batch.masks

    def unchanged(clean: float) -> np.ndarray:
        config = SegmenterTrainConfig(no_eye=0.0, clean=clean)
        out, out_masks = training_crops(images, masks, np.random.default_rng(1), config)
        assert out.shape == images.shape and out_masks.shape == masks.shape
        return np.array([np.array_equal(a, b) and np.array_equal(m, n)
                         for a, b, m, n in zip(out, images, out_masks, masks)])

    assert not unchanged(0.0).any()          # the shipped recipe degrades every crop
    assert unchanged(1.0).all()
    share = unchanged(0.5).mean()
    assert 0.3 < share < 0.7
    with pytest.raises(UserError, match="clean"):
        SegmenterTrainConfig(clean=1.5)
