"""RegionNorm, the purifier's numerical core, tested per function in kornia's manner: gradients, shapes, bad input."""

from __future__ import annotations

import pytest
import torch

from maskpurify.nets.purifier import RegionNorm


def _region(n: int, k: int, h: int, w: int, generator: torch.Generator) -> torch.Tensor:
    """Fractional region maps (N,K,h,w) that sum to 1 over K, as the purifier's area-resized masks do."""
    return torch.rand(n, k, h, w, generator=generator, dtype=torch.float64).softmax(1)


@pytest.mark.parametrize("regions", [2, 4])
def test_gradcheck_float64(regions: int) -> None:
    gen = torch.Generator().manual_seed(0)
    norm = RegionNorm(3, regions=regions).double()
    with torch.no_grad():
        norm.weight.copy_(torch.rand(norm.weight.shape, generator=gen, dtype=torch.float64) + 0.5)
        norm.bias.copy_(torch.randn(norm.bias.shape, generator=gen, dtype=torch.float64))
    x = torch.randn(2, 3, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    region = _region(2, regions, 4, 5, gen).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, r, wt, b: torch.func.functional_call(
        norm, {"weight": wt, "bias": b}, (a, r)), (x, region, norm.weight, norm.bias))


def test_gradcheck_without_mask_is_instance_norm() -> None:
    gen = torch.Generator().manual_seed(1)
    norm = RegionNorm(3, use_mask=False).double()
    x = torch.randn(2, 3, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: norm(a, None), (x,))
    torch.testing.assert_close(norm(x, None), torch.nn.functional.instance_norm(x, eps=1e-5))


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 8, 6, 10), (3, 16, 9, 15)])
def test_shape_and_dtype_are_kept(shape: tuple[int, int, int, int]) -> None:
    gen = torch.Generator().manual_seed(2)
    n, c, h, w = shape
    x = torch.randn(shape, generator=gen)
    out = RegionNorm(c)(x, _region(n, 2, h, w, gen).float())
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()


def test_each_region_is_normalised_on_its_own() -> None:
    """With binary maps and identity affines each region comes out with mean 0 and variance 1, whatever the other."""
    gen = torch.Generator().manual_seed(3)
    region = torch.zeros(1, 2, 6, 8, dtype=torch.float64)
    region[:, 0, :, :4], region[:, 1, :, 4:] = 1, 1
    x = torch.randn(1, 2, 6, 8, generator=gen, dtype=torch.float64)
    x[..., 4:] = x[..., 4:] * 100 + 50
    out = RegionNorm(2).double()(x, region)
    for k, cols in ((0, slice(0, 4)), (1, slice(4, 8))):
        part = out[..., cols]
        torch.testing.assert_close(part.mean((2, 3)), torch.zeros(1, 2, dtype=torch.float64), atol=1e-6, rtol=0)
        torch.testing.assert_close(part.var((2, 3), unbiased=False), torch.ones(1, 2, dtype=torch.float64),
                                   atol=1e-3, rtol=0)


def test_an_empty_region_gives_finite_output() -> None:
    region = torch.zeros(2, 2, 4, 5)
    region[:, 0] = 1
    out = RegionNorm(3)(torch.randn(2, 3, 4, 5), region)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("region_shape", [(2, 2, 4, 6), (2, 3, 4, 5), (1, 2, 4, 5)])
def test_bad_region_shape_is_refused(region_shape: tuple[int, int, int, int]) -> None:
    """A region map of another size, region count or batch than the features raises instead of broadcasting."""
    with pytest.raises(RuntimeError):
        RegionNorm(3)(torch.randn(2, 3, 4, 5), torch.rand(region_shape))
