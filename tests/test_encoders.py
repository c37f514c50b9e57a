"""The frozen loss networks: layer pyramids, frozenness, and the VGG-19 weight-file loader."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from maskpurify.errors import UserError
from maskpurify.nets.encoders import _VGG19_TO_RELU4_1, build_encoder


def _check_frozen(encoder: torch.nn.Module) -> None:
    assert not any(p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert not encoder.training


def test_efficientnet_layers_shrink() -> None:
    """Loads the shipped ImageNet weights offline; about 0.3 s on 2 idle cores."""
    encoder = build_encoder("efficientnet-lite0")
    x = torch.rand(4, 3, 36, 60, requires_grad=True)
    feats = encoder(x)
    sum(f.square().mean() for f in feats).backward()
    assert len(feats) == len(encoder.layer_names) >= 3
    sizes = [f.shape[-1] for f in feats]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)
    assert feats[0].shape[-2:] == (36, 60)  # upsample 2 then stride 2
    assert all(torch.isfinite(f).all() and f.std() > 0.1 for f in feats)
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert encoder.content_layers and encoder.style_layers
    _check_frozen(encoder)


def test_random_encoder_is_deterministic() -> None:
    x = torch.rand(2, 3, 37, 61)
    a, b = build_encoder("random")(x), build_encoder("random", upsample=1)(x)
    assert [f.shape[-2:] for f in a][0] == (74, 122) and b[0].shape[-2:] == (37, 61)
    assert torch.equal(build_encoder("random")(x)[-1], a[-1])
    _check_frozen(build_encoder("random"))


def _fake_vgg19(path: Path) -> None:
    """A torchvision-format VGG-19 state dict: real key names and shapes, random weights, plus extra keys."""
    state, channels = {}, 3
    index = 0
    for item in _VGG19_TO_RELU4_1:
        if item == "M":
            index += 1
            continue
        state[f"features.{index}.weight"] = torch.randn(int(item), channels, 3, 3) * 0.05
        state[f"features.{index}.bias"] = torch.zeros(int(item))
        channels, index = int(item), index + 2
    state["classifier.0.weight"] = torch.zeros(2, 2)
    torch.save(state, path)


def test_vgg19_loads_torchvision_format(tmp_path: Path) -> None:
    path = tmp_path / "vgg19.pth"
    _fake_vgg19(path)
    encoder = build_encoder("vgg19", str(path))
    assert encoder.layer_names == ["relu1_1", "relu2_1", "relu2_2", "relu3_1", "relu3_2", "relu4_1"]
    state = torch.load(path, weights_only=True)
    assert torch.equal(encoder.stages[0][0].weight, state["features.0.weight"])
    feats = encoder(torch.rand(1, 3, 36, 60))
    assert [f.shape[1] for f in feats] == [64, 128, 128, 256, 256, 512]
    assert feats[-1].shape[-2:] == (9, 15)
    _check_frozen(encoder)


def test_vgg19_bad_files_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="needs a weights file"):
        build_encoder("vgg19")
    with pytest.raises(UserError, match="no such weights file"):
        build_encoder("vgg19", str(tmp_path / "missing.pth"))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable"):
        build_encoder("vgg19", str(garbage))
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    with pytest.raises(UserError, match="features.0.weight"):
        build_encoder("vgg19", str(wrong))
    torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3), "features.0.bias": torch.zeros(8)}, wrong)
    with pytest.raises(UserError, match="has shape"):
        build_encoder("vgg19", str(wrong))


def test_unknown_encoder_name() -> None:
    with pytest.raises(UserError, match="unknown name"):
        build_encoder("resnet")
