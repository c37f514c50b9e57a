import numpy as np
import torch

from maskpurify.metrics.image import attention_ssim, kernel_inception_distance, pupil_shift


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


def test_region_colours_pool_each_region_and_measure_distance_to_a_reference():
    from maskpurify.metrics.image import colour_distance, region_colours

    masks = np.zeros((2, 4, 6), np.uint8)
    masks[:, :, 3:] = 1  # right half: sclera; no iris or pupil anywhere
    images = np.zeros((2, 4, 6, 3), np.uint8)
    images[:, :, :3] = (200, 150, 120)  # skin colour
    images[:, :, 3:] = 255  # white sclera
    stats = region_colours(images, masks)
    assert set(stats) == {"skin", "sclera"}  # absent regions are left out, not NaN
    assert np.allclose(stats["sclera"]["mean_lab"], [100, 0, 0], atol=0.5)
    assert np.allclose(stats["skin"]["sd_lab"], 0, atol=1e-4)
    darker = images.copy()
    darker[:, :, 3:] = 128
    distance = colour_distance(region_colours(darker, masks), stats)
    assert distance["skin"] < 1e-4 and distance["sclera"] > 40  # only the changed region moves
