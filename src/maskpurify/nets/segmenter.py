"""A small U-Net eye-region segmenter: (N, 3, H, W) RGB in [0, 1] -> (N, 4, H, W) logits (skin, sclera, iris, pupil).

Any input size works: the image is padded (replicate) to a multiple of ``stem * 2 ** (levels - 1)`` and the logits
are cropped back. With ``stem=2`` the U-Net runs at half resolution behind a stride-2 convolution and a thin
full-resolution head (a 3x3 convolution of the image, added to the upsampled U-Net features) restores the edges:
about a third of the full-resolution U-Net's cost. Each image is standardised per channel inside the network, which removes global brightness,
contrast and colour casts. The network is differentiable w.r.t. its input, so a frozen copy can serve as the
task network of the purifier's region-level loss; it also serves as the automatic masker.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from maskpurify.checkpoints import load_network, save_checkpoint
from maskpurify.errors import UserError
from maskpurify.masks import DataSpec, label_set_for


@dataclass(frozen=True)
class SegmenterConfig:
    """Everything needed to rebuild a Segmenter (stored in the checkpoint sidecar)."""

    num_classes: int = 4
    base_channels: int = 16
    levels: int = 3
    standardize: bool = True
    #: 1: the U-Net sees the image at full resolution; 2: at half resolution, with a full-resolution head
    stem: int = 1

    def __post_init__(self) -> None:
        if not 2 <= self.levels <= 5:
            raise UserError(f"segmenter config: levels must be 2..5, got {self.levels}")
        if self.stem not in (1, 2):
            raise UserError(f"segmenter config: stem must be 1 or 2, got {self.stem}")
        if self.base_channels < 1 or self.num_classes < 2:
            raise UserError(f"segmenter config: base_channels must be >= 1 and num_classes >= 2, got "
                            f"{self.base_channels}, {self.num_classes}")


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class Segmenter(nn.Module):
    """U-Net with ``levels`` resolutions (channels c, 2c, 4c, ...), max-pool down, bilinear up + skip concat."""

    def __init__(self, config: SegmenterConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or SegmenterConfig()
        #: the data it works on (the sidecar's, once loaded; a trainer sets the size it trains at); by default
        #: every label but the first (skin, background) is attention: the eye labels for 4 classes
        self.spec = DataSpec(labels=label_set_for(config.num_classes, range(1, config.num_classes)))
        chans = [config.base_channels * 2 ** i for i in range(config.levels)]
        self.stem: nn.Module | None = None
        if config.stem == 2:
            c = chans[0]
            self.stem = nn.Sequential(nn.Conv2d(3, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c),
                                      nn.ReLU(inplace=True))
            self.head_input = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        first = chans[0] if config.stem == 2 else 3
        self.down = nn.ModuleList([_double_conv(first if i == 0 else chans[i - 1], c) for i, c in enumerate(chans)])
        self.up = nn.ModuleList([_double_conv(chans[i + 1] + chans[i], chans[i])
                                 for i in reversed(range(config.levels - 1))])
        self.out = nn.Conv2d(chans[0], config.num_classes, 3 if config.stem == 2 else 1,
                             padding=1 if config.stem == 2 else 0)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"segmenter expects (N,3,H,W) RGB images, got {tuple(images.shape)}")
        x = images.float()
        if self.config.standardize:
            mean = x.mean(dim=(2, 3), keepdim=True)
            std = x.std(dim=(2, 3), keepdim=True)
            x = (x - mean) / (std + 1e-2)
        h, w = x.shape[-2:]
        unit = self.config.stem * 2 ** (self.config.levels - 1)
        ph, pw = (-h) % unit, (-w) % unit
        if ph or pw:
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="replicate")
        image = x
        if self.stem is not None:
            x = self.stem(x)
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], 1))
        if self.stem is not None:
            x = F.interpolate(x, size=image.shape[-2:], mode="bilinear", align_corners=False)
            x = F.relu(x + self.head_input(image))
        logits = self.out(x)
        return logits[..., ph // 2: ph // 2 + h, pw // 2: pw // 2 + w]


def build_segmenter(config: SegmenterConfig | dict[str, Any] | None = None) -> Segmenter:
    if isinstance(config, dict):
        known = {f.name for f in fields(SegmenterConfig)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise UserError(f"segmenter config: unknown key '{unknown[0]}' (known: {', '.join(sorted(known))})")
        config = SegmenterConfig(**config)
    return Segmenter(config)


def save_segmenter(path: str | Path, model: Segmenter, extra: dict[str, Any] | None = None) -> Path:
    """Write ``path.safetensors`` + ``path.json``; the sidecar holds the network config and its data spec."""
    meta = {"kind": "segmenter", "config": asdict(model.config), **model.spec.to_meta()}
    meta.update(extra or {})
    return save_checkpoint(path, dict(model.state_dict()), meta)


def load_segmenter(path: str | Path, device: str | torch.device = "cpu") -> Segmenter:
    """Rebuild a segmenter from its checkpoint, in eval mode on ``device``, with the data spec its sidecar records."""
    model, meta = load_network(path, "segmenter", build_segmenter, device)
    model.spec = DataSpec.from_meta(meta, path, model.spec)
    return model  # type: ignore[return-value]


@torch.no_grad()
def predict_masks(model: Segmenter, images: np.ndarray | torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Label maps (N, H, W) uint8 for uint8 (N,H,W,3) images or float (N,3,H,W) [0,1] tensors."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    images = torch.as_tensor(images)
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        if batch.dtype == torch.uint8:
            batch = batch.permute(0, 3, 1, 2).float() / 255.0
        # channels-last memory (the permuted uint8 view already is) runs oneDNN's narrow convolutions about 1.8x
        # faster than (N,C,H,W) here (README, Speed)
        batch = batch.contiguous(memory_format=torch.channels_last)
        out.append(model(batch.to(device)).argmax(1).to(torch.uint8).cpu())
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, *images.shape[1:3]), np.uint8)
