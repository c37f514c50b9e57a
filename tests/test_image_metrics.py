import numpy as np
import torch

from maskpurify.evaluation.image_metrics import attention_ssim, kernel_inception_distance, pupil_shift


def _eye(shift=0):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(36, 60, 3), dtype=np.uint8)
    mask = np.zeros((36, 60), np.uint8)
    mask[8:28, 15:45] = 1
    mask[12:24, 24 + shift:36 + shift] = 2
    mask[15:21, 27 + shift:33 + shift] = 3
    return image, mask


def test_ssim_ignores_brightness_and_contrast_but_not_structure():
    image, mask = _eye()
    brighter = np.clip(image.astype(int) // 2 + 60, 0, 255).astype(np.uint8)
    scrambled = np.random.default_rng(5).permutation(image.reshape(-1, 3)).reshape(image.shape)
    same = attention_ssim(image[None], brighter[None], mask[None])[0]
    other = attention_ssim(image[None], scrambled[None], mask[None])[0]
    assert same > 0.95
    assert other < 0.3


def test_pupil_shift_measures_centroid_distance():
    _, a = _eye(0)
    _, b = _eye(3)
    shifts = pupil_shift(np.stack([a, a]), np.stack([b, np.zeros_like(b)]))
    assert abs(shifts[0] - 3.0) < 1e-6
    assert np.isnan(shifts[1])


def test_kid_near_zero_for_same_distribution_and_positive_for_shifted():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(400, 16, generator=gen)
    b = torch.randn(400, 16, generator=gen)
    same, _ = kernel_inception_distance(a, b, subsets=10, subset_size=200)
    shifted, _ = kernel_inception_distance(a, b + 1.0, subsets=10, subset_size=200)
    assert abs(same) < 0.05
    assert shifted > 10 * abs(same) + 0.1
