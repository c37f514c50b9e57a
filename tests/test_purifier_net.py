"""The purifier network: shapes at any size, gradients, mask dependence and per-region normalisation."""

from __future__ import annotations

import pytest
import torch

from maskpurify.errors import UserError
from maskpurify.nets.discriminator import PatchDiscriminator
from maskpurify.nets.purifier import Purifier, PurifierConfig, RegionNorm


def _plain(**kwargs) -> PurifierConfig:
    """The network without the shipped recipe's gaze prior and full-resolution head, unless ``kwargs`` add them."""
    return PurifierConfig(**{"head": "subpixel", "gaze_prior": None, **kwargs})


def _batch(n: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(n, 3, h, w, generator=g)
    mask = torch.zeros(n, h, w, dtype=torch.int64)
    mask[:, h // 4: 3 * h // 4, w // 5: 4 * w // 5] = 1
    mask[:, h // 3: 2 * h // 3, w // 3: w // 2] = 2
    mask[:, 2 * h // 5: 3 * h // 5, 2 * w // 5: w // 2] = 3
    return image, mask


@pytest.mark.parametrize("size", [(36, 60), (37, 61), (1, 1), (5, 9), (480, 640)])
def test_output_shape_and_range(size: tuple[int, int]) -> None:
    h, w = size
    net = Purifier(_plain()).eval()
    image, mask = _batch(1 if h > 100 else 3, h, w)
    with torch.inference_mode():
        out = net(image, mask)
    assert out.shape == image.shape
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_starts_near_identity() -> None:
    image, mask = _batch(2, 36, 60)
    with torch.no_grad():
        out = Purifier(_plain())(image, mask)
    assert (out - image).abs().mean() < 0.1


def test_gradients_reach_every_parameter() -> None:
    net = Purifier(_plain())
    image, mask = _batch(2, 37, 61)
    net(image, mask).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_use_mask_false_ignores_the_mask() -> None:
    torch.manual_seed(0)
    net = Purifier(_plain(use_mask=False)).eval()
    image, mask = _batch(2, 36, 60)
    with torch.no_grad():
        assert torch.equal(net(image, mask), net(image, torch.zeros_like(mask)))


def test_use_mask_true_depends_on_the_mask() -> None:
    torch.manual_seed(0)
    net = Purifier(_plain()).eval()
    image, mask = _batch(2, 36, 60)
    with torch.no_grad():
        assert (net(image, mask) - net(image, torch.zeros_like(mask))).abs().max() > 1e-4


def test_region_norm_statistics_are_per_region() -> None:
    torch.manual_seed(0)
    norm = RegionNorm(4)
    x = torch.randn(2, 4, 8, 10)
    region = torch.zeros(2, 1, 8, 10)
    region[:, :, 2:6, 3:7] = 1
    changed = x + (1 - region) * torch.randn_like(x) * 5  # only background pixels change
    regions = torch.cat([region, 1 - region], 1)  # attention, background
    a, b = norm(x, regions), norm(changed, regions)
    inside = region.bool().expand_as(a)
    assert torch.allclose(a[inside], b[inside], atol=1e-5)
    assert not torch.allclose(a[~inside], b[~inside], atol=1e-3)
    # each region is normalised on its own: zero mean, unit variance inside it
    att = a[inside].view(2, 4, -1)
    assert att.mean(-1).abs().max() < 1e-4 and (att.var(-1, unbiased=False) - 1).abs().max() < 1e-3


def test_region_norm_empty_region_is_finite() -> None:
    norm = RegionNorm(3)
    x = torch.randn(2, 3, 5, 5)
    for region in (torch.zeros(2, 1, 5, 5), torch.ones(2, 1, 5, 5)):
        out = norm(x, torch.cat([region, 1 - region], 1))
        assert torch.isfinite(out).all()
        assert torch.allclose(out, torch.nn.functional.instance_norm(x, eps=1e-5), atol=1e-4)


def test_label_norm_regions_separate_every_label() -> None:
    """norm_regions='labels': one statistics region per label, so iris pixels never touch sclera statistics."""
    net = Purifier(_plain(base_channels=8, num_res_blocks=1, norm_regions="labels"))
    assert net.down1.norm.weight.shape[0] == 4
    torch.manual_seed(0)
    norm = RegionNorm(4, regions=4)
    labels = torch.zeros(1, 8, 10, dtype=torch.long)
    labels[:, 2:6, 2:8] = 1
    labels[:, 3:5, 4:6] = 2
    regions = torch.nn.functional.one_hot(labels, 4).permute(0, 3, 1, 2).float()
    x = torch.randn(1, 4, 8, 10)
    changed = x + (labels == 2).unsqueeze(1) * 5.0
    sclera = (labels == 1).unsqueeze(1).expand_as(x)
    assert torch.allclose(norm(x, regions)[sclera], norm(changed, regions)[sclera], atol=1e-5)
    with torch.no_grad():
        y = net(torch.rand(2, 3, 36, 60), torch.randint(0, 4, (2, 36, 60)))
    assert y.shape == (2, 3, 36, 60) and torch.isfinite(y).all()


def test_config_round_trip() -> None:
    net = Purifier(_plain(base_channels=8, num_res_blocks=1, use_mask=False))
    again = Purifier.from_config(net.config_dict())
    assert again.config == net.config
    again.load_state_dict(net.state_dict())
    with pytest.raises(UserError, match="unknown keys"):
        Purifier.from_config({"width": 3})
    with pytest.raises(UserError, match="missing keys.*head"):
        Purifier.from_config({k: v for k, v in net.config_dict().items() if k != "head"})
    with pytest.raises(UserError, match="attention labels"):
        PurifierConfig(attention_labels=(5,))


@pytest.mark.parametrize("size", [(36, 60), (37, 61), (480, 640)])
def test_patch_discriminator_grid(size: tuple[int, int]) -> None:
    h, w = size
    with torch.no_grad():
        logits = PatchDiscriminator()(torch.rand(2, 3, h, w))
    assert logits.shape == (2, 1, -(-h // 4), -(-w // 4))


@pytest.mark.parametrize("size", [(36, 60), (37, 61), (5, 9)])
def test_fullres_head_keeps_size_starts_near_identity_and_trains(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    net = Purifier(_plain(head="fullres"))
    image, mask = _batch(2, *size)
    out = net(image, mask)
    assert out.shape == image.shape and (out - image).abs().mean() < 0.1
    out.square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    with pytest.raises(UserError, match="head"):
        PurifierConfig(head="deconv")


def _prior_config() -> dict:
    from maskpurify.nets.gaze import GazeNetConfig, gaze_config_dict

    return gaze_config_dict(GazeNetConfig(inputs="labels", hidden=8, input_size=(16, 24)))


def test_gaze_prior_starts_as_the_network_without_it() -> None:
    torch.manual_seed(0)
    with_prior = Purifier(_plain(base_channels=8, num_res_blocks=2, gaze_prior=_prior_config()))
    plain = Purifier(_plain(base_channels=8, num_res_blocks=2))
    shared = {k: v for k, v in with_prior.state_dict().items() if not k.startswith(("prior.", "film."))}
    plain.load_state_dict(shared)
    image, mask = _batch(2, 36, 60)
    with torch.no_grad():
        torch.testing.assert_close(with_prior(image, mask), plain(image, mask))


def test_gaze_prior_reading_modulates_the_output_and_stays_frozen() -> None:
    torch.manual_seed(0)
    net = Purifier(_plain(base_channels=8, num_res_blocks=1, gaze_prior=_prior_config()))
    torch.nn.init.normal_(net.film[2].weight, std=0.5)
    net.train()
    assert not net.prior.training
    image, mask = _batch(2, 36, 60)
    out = net(image, mask)
    out.square().mean().backward()
    assert net.film[2].weight.grad is not None and net.film[2].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.prior.parameters())
    with torch.no_grad():
        net.prior.fc.bias.add_(1.0)  # the prior now reads another gaze from the same mask
        assert (net(image, mask) - out).abs().max() > 1e-4


def test_gaze_prior_is_saved_inside_the_checkpoint(tmp_path) -> None:
    from maskpurify.nets.gaze import GazeNetConfig, build_gaze_net
    from maskpurify.nets.purifier import load_purifier, save_purifier

    torch.manual_seed(0)
    prior = build_gaze_net(_prior_config())
    net = Purifier(_plain(base_channels=8, num_res_blocks=1, gaze_prior=_prior_config()))
    net.load_gaze_prior(prior)
    torch.nn.init.normal_(net.film[2].weight, std=0.5)
    image, mask = _batch(2, 36, 60)
    save_purifier(tmp_path / "p", net)
    loaded = load_purifier(tmp_path / "p")
    with torch.no_grad():
        torch.testing.assert_close(loaded(image, mask), net.eval()(image, mask))
    torch.testing.assert_close(loaded.prior.state_dict(), prior.state_dict())
    with pytest.raises(UserError, match="gaze_prior"):
        net.load_gaze_prior(build_gaze_net(GazeNetConfig(inputs="labels", hidden=16, input_size=(16, 24))))


@pytest.mark.parametrize("kwargs", [{"use_mask": False}, {"num_labels": 2, "attention_labels": (1,)}])
def test_gaze_prior_needs_eye_masks(kwargs: dict) -> None:
    with pytest.raises(UserError, match="gaze prior reads eye masks"):
        PurifierConfig(gaze_prior=_prior_config(), **kwargs)


def test_defaults_are_the_shipped_purifier() -> None:
    """PurifierConfig() is the recipe of weights/purifier: its sidecar describes the default network."""
    from maskpurify.checkpoints import WEIGHTS_DIR, load_checkpoint
    from maskpurify.nets.gaze import LABEL_GAZE_NET, gaze_config_dict

    assert Purifier(PurifierConfig()).config_dict() == load_checkpoint(WEIGHTS_DIR / "purifier")[1]["config"]
    assert gaze_config_dict(LABEL_GAZE_NET) == load_checkpoint(WEIGHTS_DIR / "gaze_from_labels")[1]["config"]
