"""MPIIGaze-style appearance-based gaze estimators on 36x60 eye images (Zhang et al. 2015; hysts/pytorch_mpiigaze).

Every caller passes RGB in [0, 1] as (N, 3, H, W); by default the network turns it grey with fixed luma weights
(MPIIGaze works on grey eyes), resizes it to ``input_size`` when it differs, and standardises each image
(subtract its mean, divide by its std). An optional head pose (N, 2) is concatenated before the last fully
connected layer. The output is (N, 2) pitch/yaw in radians (MPIIGaze convention, see :mod:`maskpurify.geometry`).

- :class:`LeNetGaze`: the MPIIGaze paper's LeNet (conv 20 -> pool -> conv 50 -> pool -> fc 500).
- :class:`ResNetPreactGaze`: ResNet-preact-8 (three pre-activation stages 16/32/64, as in pytorch_mpiigaze).
- :class:`HeatmapLocator`: not a gaze reader but a locator (the near-IR pupil detector): a small U-Net whose
  heatmap's soft-argmax is the output, (x, y) as fractions of the width and height. Pooling networks lose the
  sub-pixel position a pupil detector needs (LPW's 5 px is half a pixel of a 48x64 frame).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from maskpurify.batch import EyeBatch
from maskpurify.checkpoints import load_network, save_checkpoint
from maskpurify.errors import UserError
from maskpurify.masks import LABEL_GREY, DataSpec, label_image

#: ITU-R BT.601 luma weights used for the RGB -> grey conversion inside the models.
LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class GazeNetConfig:
    """Everything needed to rebuild a gaze estimator (stored in the checkpoint sidecar)."""

    arch: Literal["lenet", "resnet_preact", "heatmap"] = "lenet"
    #: what the network reads: 'image' (eye images) or 'labels' (the eye's label map drawn by
    #: :func:`maskpurify.masks.label_image`: gaze from region geometry alone, the purifier's gaze guide target)
    inputs: Literal["image", "labels"] = "image"
    grey: bool = True
    use_head_pose: bool = False
    standardize: bool = True
    input_size: tuple[int, int] = (36, 60)
    base_channels: int = 16
    #: LeNet: width of the hidden fully connected layer (500 in MPIIGaze)
    hidden: int = 500
    #: LeNet: output channels of its two 5x5 convolutions (20, 50 in MPIIGaze)
    conv_channels: tuple[int, int] = (20, 50)
    #: LeNet: batch norm and ReLU after each convolution (MPIIGaze's LeNet has neither; they speed up fitting)
    conv_bn: bool = False
    #: ResNet-preact depth (8 = one basic block per stage; 14 = two, ...): depth = 6 * blocks + 2.
    depth: int = 8
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.arch not in ("lenet", "resnet_preact", "heatmap"):
            raise UserError(f"gaze net config: arch must be 'lenet', 'resnet_preact' or 'heatmap', got {self.arch!r}")
        if self.arch == "heatmap" and self.use_head_pose:
            raise UserError("gaze net config: the heatmap locator reads no head pose")
        if self.inputs not in ("image", "labels"):
            raise UserError(f"gaze net config: inputs must be 'image' or 'labels', got {self.inputs!r}")
        if self.arch == "resnet_preact" and (self.depth - 2) % 6 != 0:
            raise UserError(f"gaze net config: resnet_preact depth must be 6n+2 (8, 14, 20), got {self.depth}")
        if min(self.input_size) < 16:
            raise UserError(f"gaze net config: input_size must be at least 16x16, got {self.input_size}")


#: The label-map gaze net of the shipped purifier's gaze prior (``weights/gaze_from_labels``).
LABEL_GAZE_NET = GazeNetConfig(inputs="labels", hidden=256, conv_channels=(12, 32), conv_bn=True)


class _GazeBase(nn.Module):
    """Shared input handling: RGB -> grey, resize, per-image standardisation; head pose concat; final FC."""

    def __init__(self, config: GazeNetConfig) -> None:
        super().__init__()
        self.config = config
        #: the data it works on (the sidecar's, once loaded; a trainer sets the size and labels it trains on)
        self.spec = DataSpec(size=config.input_size)
        self.register_buffer("luma", torch.tensor(LUMA).view(1, 3, 1, 1), persistent=False)

    @property
    def in_channels(self) -> int:
        return 1 if self.config.grey else 3

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"gaze net expects (N,3,H,W) RGB or (N,1,H,W) grey images, got {tuple(images.shape)}")
        x = images.float()
        if self.config.grey:
            if x.shape[1] == 3:
                x = (x * self.luma.to(x.dtype)).sum(1, keepdim=True)
        elif x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if tuple(x.shape[-2:]) != tuple(self.config.input_size):
            x = F.interpolate(x, size=tuple(self.config.input_size), mode="bilinear", align_corners=False,
                              antialias=x.shape[-2] > self.config.input_size[0])
        if self.config.standardize:
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            std = x.std(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) / (std + 1e-3)
        return x

    def head(self, features: torch.Tensor, head_pose: torch.Tensor | None) -> torch.Tensor:
        if self.config.use_head_pose:
            if head_pose is None:
                raise ValueError("this gaze net was built with use_head_pose=True: pass head_pose (N, 2)")
            features = torch.cat([features, head_pose.to(features.dtype)], 1)
        return self.fc(features)

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def forward(self, images: torch.Tensor, head_pose: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(self.prepare(images)), head_pose)


def _max_pool2(x: torch.Tensor) -> torch.Tensor:
    """F.max_pool2d(x, 2). Without gradients it is computed as two strided maxima: the same values, about ten
    times faster on CPU, which matters where a gaze net runs inside the purifier. With gradients it stays
    max_pool2d, whose backward sends a tied window's gradient to one input, as the shipped nets were trained."""
    if torch.is_grad_enabled() and x.requires_grad:
        return F.max_pool2d(x, 2)
    x = x[..., : x.shape[-2] // 2 * 2, : x.shape[-1] // 2 * 2]
    rows = torch.maximum(x[..., 0::2, :], x[..., 1::2, :])
    return torch.maximum(rows[..., 0::2], rows[..., 1::2])


class LeNetGaze(_GazeBase):
    """The MPIIGaze LeNet: conv5x5(20) - maxpool - conv5x5(50) - maxpool - fc(hidden) - [head pose] - fc(2).

    The default: about 7x cheaper than ResNet-preact-8 on CPU, so it trains in minutes on two cores."""

    def __init__(self, config: GazeNetConfig) -> None:
        super().__init__(config)
        h, w = config.input_size
        c1, c2 = config.conv_channels
        self.conv1 = nn.Conv2d(self.in_channels, c1, 5)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        self.bn1, self.bn2 = (nn.BatchNorm2d(c1), nn.BatchNorm2d(c2)) if config.conv_bn else (None, None)
        fh, fw = ((h - 4) // 2 - 4) // 2, ((w - 4) // 2 - 4) // 2
        self.fc1 = nn.Linear(c2 * fh * fw, config.hidden)
        self.drop = nn.Dropout(config.dropout)
        self.fc = nn.Linear(config.hidden + (2 if config.use_head_pose else 0), 2)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.fc.weight, std=1e-3)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2)):
            x = conv(x)
            if bn is not None:
                x = F.relu(bn(x))
            x = _max_pool2(x)
        return self.drop(F.relu(self.fc1(x.flatten(1))))


class _PreactBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = (nn.Conv2d(cin, cout, 1, stride, 0, bias=False)
                         if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        y = self.conv1(pre)
        y = self.conv2(F.relu(self.bn2(y)))
        return y + (self.shortcut(pre) if self.shortcut is not None else x)


class ResNetPreactGaze(_GazeBase):
    """ResNet-preact (depth 6n+2): conv 3x3 - three pre-activation stages (c, 2c, 4c; strides 1, 2, 2) -
    BN-ReLU - global average pool - [head pose] - fc(2)."""

    def __init__(self, config: GazeNetConfig) -> None:
        super().__init__(config)
        c = config.base_channels
        blocks = (config.depth - 2) // 6
        self.conv = nn.Conv2d(self.in_channels, c, 3, 1, 1, bias=False)
        stages: list[nn.Module] = []
        cin = c
        for cout, stride in ((c, 1), (2 * c, 2), (4 * c, 2)):
            for i in range(blocks):
                stages.append(_PreactBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.stages = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(cin)
        self.drop = nn.Dropout(config.dropout)
        self.fc = nn.Linear(cin + (2 if config.use_head_pose else 0), 2)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.fc.weight, std=1e-3)
        nn.init.zeros_(self.fc.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.conv(x))
        x = F.relu(self.bn(x))
        return self.drop(F.adaptive_avg_pool2d(x, 1).flatten(1))


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class HeatmapLocator(_GazeBase):
    """Where a thing is: a three-level U-Net (c, 2c, 4c channels; one convolution at full resolution on the way
    down and one on the way up) gives one logit per pixel; the output is the
    softmax-weighted mean pixel position (soft-argmax), ``(x / W, y / H)`` with pixel centres at integer x, y."""

    def __init__(self, config: GazeNetConfig) -> None:
        super().__init__(config)
        c = config.base_channels
        self.enc1 = _conv_bn(self.in_channels, c)
        self.enc2 = nn.Sequential(_conv_bn(c, 2 * c), _conv_bn(2 * c, 2 * c))
        self.enc3 = nn.Sequential(_conv_bn(2 * c, 4 * c), _conv_bn(4 * c, 4 * c))
        self.dec2 = _conv_bn(6 * c, 2 * c)
        self.dec1 = _conv_bn(3 * c, c)
        self.logits = nn.Conv2d(c, 1, 1)

    def forward(self, images: torch.Tensor, head_pose: torch.Tensor | None = None) -> torch.Tensor:
        x = self.prepare(images)
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([F.interpolate(e3, size=e2.shape[-2:], mode="bilinear", align_corners=False), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, size=e1.shape[-2:], mode="bilinear", align_corners=False), e1], 1))
        heat = self.logits(d1).flatten(1).softmax(1).view(len(x), *x.shape[-2:])
        h, w = x.shape[-2:]
        xs = torch.arange(w, device=x.device, dtype=heat.dtype) / w
        ys = torch.arange(h, device=x.device, dtype=heat.dtype) / h
        return torch.stack([(heat.sum(1) * xs).sum(1), (heat.sum(2) * ys).sum(1)], 1)


GazeNet = LeNetGaze | ResNetPreactGaze | HeatmapLocator


def build_gaze_net(config: GazeNetConfig | dict[str, Any] | None = None) -> GazeNet:
    """Build the network named by ``config.arch`` (a GazeNetConfig or its dict form)."""
    config = gaze_config_from_dict(config) if isinstance(config, dict) else (config or GazeNetConfig())
    return {"lenet": LeNetGaze, "resnet_preact": ResNetPreactGaze, "heatmap": HeatmapLocator}[config.arch](config)


def gaze_config_from_dict(data: dict[str, Any]) -> GazeNetConfig:
    known = {f.name for f in fields(GazeNetConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"gaze net config: unknown key '{unknown[0]}' (known: {', '.join(sorted(known))})")
    values = dict(data)
    for key in ("input_size", "conv_channels"):
        if key in values:
            values[key] = tuple(int(v) for v in values[key])
    return GazeNetConfig(**values)


def gaze_config_dict(config: GazeNetConfig) -> dict[str, Any]:
    """The JSON-able form of ``config``, the inverse of :func:`gaze_config_from_dict`."""
    return {**asdict(config), "input_size": list(config.input_size), "conv_channels": list(config.conv_channels)}


#: The grey level of each eye label as :func:`maskpurify.masks.label_image` draws it (uint8), in [0, 1].
_LABEL_LEVELS = torch.from_numpy(label_image(np.arange(len(LABEL_GREY), dtype=np.uint8))[:, 0]).float() / 255.0


def label_maps(mask: torch.Tensor) -> torch.Tensor:
    """(N,H,W) eye labels -> (N,3,H,W) float label images in [0, 1]: :func:`maskpurify.masks.label_image`
    for tensors, to the same uint8 grey levels, so a label-map gaze net reads both alike."""
    return _LABEL_LEVELS.to(mask.device)[mask.long()].unsqueeze(1).expand(-1, 3, -1, -1)


def gaze_net_inputs(config: GazeNetConfig, data: EyeBatch, what: str) -> np.ndarray:
    """The (N,H,W,3) uint8 array a gaze net with ``config`` reads from a dataset: its images, or for
    ``inputs: labels`` its masks drawn by :func:`maskpurify.masks.label_image`."""
    if config.inputs == "image":
        return data.images
    if data.masks is None:
        raise UserError(f"{what}: the gaze net reads label maps (inputs: labels) but the data has no masks")
    return label_image(data.masks)


def save_gaze_net(path: str | Path, model: LeNetGaze | ResNetPreactGaze, extra: dict[str, Any] | None = None
                  ) -> Path:
    """Write ``path.safetensors`` + ``path.json``; the sidecar holds the network config and its data spec."""
    meta: dict[str, Any] = {"kind": "gaze", "config": gaze_config_dict(model.config), **model.spec.to_meta()}
    meta.update(extra or {})
    return save_checkpoint(path, dict(model.state_dict()), meta)


def load_gaze_net(path: str | Path, device: str | torch.device = "cpu") -> LeNetGaze | ResNetPreactGaze:
    """Rebuild a gaze estimator from its checkpoint, in eval mode on ``device``, with its sidecar's data spec."""
    model, meta = load_network(path, "gaze", build_gaze_net, device)
    model.spec = DataSpec.from_meta(meta, path, model.spec)
    return model  # type: ignore[return-value]


@torch.no_grad()
def predict_gaze(model: nn.Module, images: torch.Tensor, head_pose: torch.Tensor | None = None,
                 batch_size: int = 512) -> torch.Tensor:
    """Pitch/yaw (N, 2) for uint8 (N,H,W,3) or float (N,3,H,W) [0,1] images, in batches, on the model's device."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        if batch.dtype == torch.uint8:
            batch = batch.permute(0, 3, 1, 2)
        batch = batch.to(device).float()
        if images.dtype == torch.uint8:
            batch = batch / 255.0
        pose = head_pose[start:start + batch_size].to(device).float() if head_pose is not None else None
        out.append(model(batch, pose).cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, 2)
