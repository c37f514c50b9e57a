import numpy as np
import pytest
import torch

from maskpurify.errors import UserError
from maskpurify.nets.segmenter import SegmenterConfig, build_segmenter, load_segmenter, predict_masks, save_segmenter
from maskpurify.training.augment import photometric_augment


@pytest.mark.parametrize("size", [(36, 60), (35, 61), (17, 23), (64, 64)])
def test_any_size_gives_logits_of_that_size(size):
    model = build_segmenter(SegmenterConfig(base_channels=8)).eval()
    out = model(torch.rand(2, 3, *size))
    assert out.shape == (2, 4, *size)


def test_differentiable_wrt_input():
    model = build_segmenter(SegmenterConfig(base_channels=8)).eval()
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


def test_augmentation_keeps_range_and_is_reproducible():
    x = torch.rand(6, 3, 36, 60)
    a = photometric_augment(x, torch.Generator().manual_seed(3))
    b = photometric_augment(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == x.shape
    assert 0 <= a.min() and a.max() <= 1 and not torch.allclose(a, x)
    assert torch.equal(photometric_augment(x, torch.Generator(), strength=0), x)
