import numpy as np

from maskpurify.baselines.classical import ReinhardTransfer, RegionHistogramMatch


def _batch(rng, n, lo, hi):
    images = rng.integers(lo, hi, size=(n, 12, 20, 3), dtype=np.uint8)
    masks = np.zeros((n, 12, 20), np.uint8)
    masks[:, 3:9, 5:15] = 2
    return images, masks


def test_reinhard_matches_region_means_separately():
    rng = np.random.default_rng(0)
    target, tmask = _batch(rng, 8, 0, 255)
    target[:, 3:9, 5:15] = rng.integers(20, 60, size=(8, 6, 10, 3))  # dark attention region
    source, smask = _batch(rng, 4, 150, 255)
    out = ReinhardTransfer().fit(target, tmask).apply(source, smask)
    att = smask > 0
    assert abs(out[att].mean() - target[tmask > 0].mean()) < 8
    assert abs(out[~att].mean() - target[tmask == 0].mean()) < 12


def test_histogram_matching_reproduces_target_distribution():
    rng = np.random.default_rng(1)
    target, tmask = _batch(rng, 8, 0, 100)
    source, smask = _batch(rng, 4, 100, 255)
    out = RegionHistogramMatch().fit(target, tmask).apply(source, smask)
    assert out.dtype == np.uint8 and out.shape == source.shape
    assert abs(np.median(out) - np.median(target)) < 5
    # order is preserved inside a region: a monotone map
    i, c = 0, 0
    region = smask[i] == 0
    src, dst = source[i, ..., c][region], out[i, ..., c][region]
    order = np.argsort(src, kind="stable")
    assert np.all(np.diff(dst[order].astype(int)) >= 0)
