"""The purifier: a small feed-forward, mask-guided style transfer network (Johnson et al. 2016 family).

The image and its one-hot mask go in; inside, every normalisation layer is *region normalisation*:
instance-norm statistics and learned affine parameters are kept separately for the attention region
(sclera, iris, pupil) and the background (skin), so the two regions get separate style paths (the
MGCAM / region-normalisation idea behind the paper's "style learnt separately from attention and bkgd").
The network predicts a residual in logit space, so at initialisation it is close to the identity and
the eye geometry is preserved unless the losses ask for a change.

Optionally the mask is also read as a whole: a frozen *gaze prior* (a gaze net trained on synthetic label maps)
reads the gaze the mask's regions imply, and that reading modulates every residual block (FiLM, Perez et al.
2018). Convolutions and region norms see the eye only locally; the gaze cues a synthetic-trained estimator reads
(where the glint sits, how the sclera is shaded around the eyeball) depend on the eye's geometry as a whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from maskpurify.checkpoints import load_network, save_checkpoint
from maskpurify.errors import UserError
from maskpurify.masks import LABEL_GREY, DataSpec, label_set_for
from maskpurify.nets.gaze import build_gaze_net, gaze_config_dict, label_maps

#: Pixels are clamped to [EPS, 1-EPS] before the logit so the residual never has to fight infinities.
_LOGIT_EPS = 1e-3
_NORM_EPS = 1e-5


@dataclass(frozen=True)
class PurifierConfig:
    """Everything needed to rebuild a Purifier (stored in the checkpoint sidecar). The defaults are the shipped
    ``weights/purifier``; SimGAN's refiner and the no-mask ablation say what they leave out."""

    base_channels: int = 16
    num_res_blocks: int = 3
    num_labels: int = 4
    attention_labels: tuple[int, ...] = (1, 2, 3)
    use_mask: bool = True
    #: regions with their own normalisation statistics: 'attention' (attention vs background, two regions)
    #: or 'labels' (one region per label: skin, sclera, iris, pupil — finer, still split by attention)
    norm_regions: str = "attention"
    #: output head: 'subpixel' (3x3 conv to 12 channels at 1/2, pixel-shuffled) or 'fullres' (a 3x3 conv of the
    #: 1/2 features, bilinearly upsampled, plus a 3x3 conv of the input image and mask at full resolution, then a
    #: 3x3 conv to the residual)
    head: str = "fullres"
    #: width of the full-resolution head's hidden layer
    head_channels: int = 8
    #: config (JSON form) of the frozen label-map gaze net whose reading of the mask modulates the residual
    #: blocks; None: no gaze prior. Its weights are part of the purifier's checkpoint.
    gaze_prior: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.base_channels < 1 or self.num_res_blocks < 0:
            raise UserError(f"purifier config: base_channels must be >= 1 and num_res_blocks >= 0, "
                            f"got {self.base_channels}, {self.num_res_blocks}")
        bad = [a for a in self.attention_labels if not 0 <= a < self.num_labels]
        if bad:
            raise UserError(f"purifier config: attention labels {bad} are not in 0..{self.num_labels - 1}")
        if self.norm_regions not in ("attention", "labels"):
            raise UserError(f"purifier config: norm_regions must be 'attention' or 'labels', got {self.norm_regions!r}")
        if self.head not in ("subpixel", "fullres"):
            raise UserError(f"purifier config: head must be 'subpixel' or 'fullres', got {self.head!r}")
        if self.gaze_prior is not None and not (self.use_mask and self.num_labels == len(LABEL_GREY)):
            raise UserError("purifier config: the gaze prior reads eye masks, so it needs use_mask and "
                            f"{len(LABEL_GREY)} labels (skin, sclera, iris, pupil)")

    @property
    def num_norm_regions(self) -> int:
        return self.num_labels if self.norm_regions == "labels" else 2


class RegionNorm(nn.Module):
    """Instance norm with statistics and affine parameters computed separately per region.

    ``region`` is (N,K,h,w): the fraction of each cell in each of K regions (they sum to 1), e.g. attention
    and background. Each region's statistics are weighted by its own map, so with binary maps the pixels of
    one region have no influence at all on another's statistics. An empty region gets mean 0 / variance 0,
    harmless because its weight is 0 everywhere. With ``use_mask=False`` this is plain instance norm with
    one affine, the ablation baseline.
    """

    def __init__(self, channels: int, use_mask: bool = True, regions: int = 2) -> None:
        super().__init__()
        self.use_mask = use_mask
        regions = regions if use_mask else 1
        self.weight = nn.Parameter(torch.ones(regions, channels))
        self.bias = nn.Parameter(torch.zeros(regions, channels))

    def forward(self, x: torch.Tensor, region: torch.Tensor | None) -> torch.Tensor:
        if not self.use_mask or region is None:
            return F.instance_norm(x, weight=self.weight[0], bias=self.bias[0], eps=_NORM_EPS)
        n, c, h, w = x.shape
        # All regions at once as batched matmuls (several times faster than masked reductions on CPU).
        weights = region.flatten(2)                                          # (N, K, hw)
        flat = x.flatten(2)                                                  # (N, C, hw)
        sums = torch.bmm(weights, torch.cat([flat, flat * flat], 1).transpose(1, 2))  # (N, K, 2C)
        area = weights.sum(2, keepdim=True).clamp_min(1.0)
        mean, mean_sq = (sums / area).split(c, 2)
        var = (mean_sq - mean * mean).clamp_min(0.0)
        scale = self.weight * torch.rsqrt(var + _NORM_EPS)                   # (N, K, C)
        shift = self.bias - mean * scale
        # Per-pixel affine: each pixel mixes the regions' (scale, shift) by its region weights.
        pixel = torch.bmm(torch.cat([scale, shift], 2).transpose(1, 2), weights)  # (N, 2C, hw)
        pixel_scale, pixel_shift = pixel.split(c, 1)
        return torch.addcmul(pixel_shift, flat, pixel_scale).view(n, c, h, w)


class _ConvNormAct(nn.Module):
    """3x3 conv -> region norm -> ReLU (optional)."""

    def __init__(self, cin: int, cout: int, stride: int, use_mask: bool, act: bool = True, regions: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.norm = RegionNorm(cout, use_mask, regions)
        self.act = act

    def forward(self, x: torch.Tensor, region: torch.Tensor | None) -> torch.Tensor:
        x = self.norm(self.conv(x), region)
        return F.relu(x, inplace=True) if self.act else x


class _ResBlock(nn.Module):
    def __init__(self, channels: int, use_mask: bool, regions: int = 2) -> None:
        super().__init__()
        self.a = _ConvNormAct(channels, channels, 1, use_mask, regions=regions)
        self.b = _ConvNormAct(channels, channels, 1, use_mask, act=False, regions=regions)

    def forward(self, x: torch.Tensor, region: torch.Tensor | None) -> torch.Tensor:
        return x + self.b(self.a(x, region), region)


class Purifier(nn.Module):
    """Real image + mask -> synthetic-style image of the same size, fully convolutional.

    Layout (c = base_channels): 3x3 stride-2 conv to c channels (1/2) -> 3x3 stride-2 conv to 2c (1/4)
    -> residual blocks at 1/4 (FiLM-modulated by the gaze prior) -> nearest upsample + 3x3 conv to c, plus the
    1/2 encoder features (skip) -> the head (``config.head``), a 3-channel residual added to logit(image).
    Every norm is a :class:`RegionNorm`. Sides that are not multiples of 4 are replicate-padded and the output
    is cropped back.
    """

    STRIDE = 4

    def __init__(self, config: PurifierConfig | None = None, gaze_prior: nn.Module | None = None) -> None:
        """``gaze_prior``: the trained label-map gaze net that ``config.gaze_prior`` describes, copied in (see
        :meth:`load_gaze_prior`); without it the prior keeps its initial weights, to be loaded from a checkpoint."""
        super().__init__()
        self.config = config or PurifierConfig()
        #: the data it works on (the sidecar's, once loaded; a trainer sets the size it trains at)
        self.spec = DataSpec(labels=label_set_for(self.config.num_labels, self.config.attention_labels))
        c, m, k = self.config.base_channels, self.config.use_mask, self.config.num_norm_regions
        cin = 3 + self.config.num_labels
        self.down1 = _ConvNormAct(cin, c, 2, m, regions=k)            # 1/2
        self.down2 = _ConvNormAct(c, 2 * c, 2, m, regions=k)          # 1/4
        self.blocks = nn.ModuleList(_ResBlock(2 * c, m, k) for _ in range(self.config.num_res_blocks))
        self.up = _ConvNormAct(2 * c, c, 1, m, regions=k)             # 1/2, after nearest upsampling
        self.prior: nn.Module | None = None
        if self.config.gaze_prior is not None:
            self.prior = build_gaze_net(dict(self.config.gaze_prior)).eval().requires_grad_(False)
            # pitch/yaw -> a (scale, shift) per channel of every residual block; zero at first, so training
            # starts from the network without the prior
            self.film = nn.Sequential(nn.Linear(2, 64), nn.ReLU(),
                                      nn.Linear(64, max(self.config.num_res_blocks, 1) * 2 * 2 * c))
            with torch.no_grad():
                self.film[2].weight.zero_()
                self.film[2].bias.zero_()
        if self.config.head == "fullres":
            # the features are projected to head_channels before upsampling, so only thin convs run at full size
            self.head_features = nn.Conv2d(c, self.config.head_channels, 3, padding=1)
            self.head_input = nn.Conv2d(cin, self.config.head_channels, 3, padding=1)
            self.out = nn.Conv2d(self.config.head_channels, 3, 3, padding=1)
        else:
            # Sub-pixel output (ESPCN): 12 channels at 1/2 resolution -> 3 channels at full resolution, so
            # no convolution runs at full resolution (the cost that dominates otherwise).
            self.out = nn.Conv2d(c, 3 * 4, 3, padding=1)
        # Small output weights: starts near the identity, yet gradients reach every layer from step one.
        with torch.no_grad():
            self.out.weight.mul_(0.1)
            self.out.bias.zero_()
        if gaze_prior is not None:
            self.load_gaze_prior(gaze_prior)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Purifier:
        """Rebuild from :meth:`config_dict` output (e.g. a checkpoint sidecar). Unknown and missing keys are
        refused: a sidecar must describe its network whole, not lean on defaults that may change."""
        known = {f.name for f in fields(PurifierConfig)}
        unknown, missing = sorted(set(config) - known), sorted(known - set(config))
        if unknown:
            raise UserError(f"purifier config: unknown keys {unknown} (known: {sorted(known)})")
        if missing:
            raise UserError(f"purifier config: missing keys {missing}")
        values = dict(config)
        if "attention_labels" in values:
            values["attention_labels"] = tuple(int(a) for a in values["attention_labels"])
        return cls(PurifierConfig(**values))

    def config_dict(self) -> dict[str, Any]:
        """The JSON-able config, the inverse of :meth:`from_config`."""
        data = asdict(self.config)
        data["attention_labels"] = list(data["attention_labels"])
        return data

    def load_gaze_prior(self, net: nn.Module) -> None:
        """Copy a trained label-map gaze net into the prior; it must match ``config.gaze_prior``."""
        if self.prior is None or gaze_config_dict(net.config) != dict(self.config.gaze_prior):  # type: ignore[arg-type]
            raise UserError("purifier: this gaze net is not the one the purifier's gaze_prior config describes")
        self.prior.load_state_dict(net.state_dict())

    def train(self, mode: bool = True) -> Purifier:
        """As nn.Module.train, but the frozen gaze prior always stays in eval mode."""
        super().train(mode)
        if self.prior is not None:
            self.prior.eval()
        return self

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """image (N,3,H,W) in [0,1], mask (N,H,W) int64 labels -> (N,3,H,W) in (0,1)."""
        n, _, h, w = image.shape
        pad_h, pad_w = -h % self.STRIDE, -w % self.STRIDE
        if self.config.use_mask:
            # one-hot by comparison, and the regions (one per label, or attention then background) as sums of its
            # planes: the same 0/1 maps as F.one_hot and a lookup table, without ONNX Runtime's slow OneHot and Gather
            labels = torch.arange(self.config.num_labels, device=mask.device).view(1, -1, 1, 1)
            onehot = (mask.long().unsqueeze(1) == labels).to(image.dtype)
            if self.config.norm_regions == "labels":
                region = onehot
            else:
                attention = onehot[:, list(self.config.attention_labels)].sum(1, keepdim=True)
                region = torch.cat([attention, 1.0 - attention], 1)
        else:
            onehot = image.new_zeros(n, self.config.num_labels, h, w)
            region = None
        x = torch.cat([image, onehot], 1)
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
            if region is not None:
                region = F.pad(region, (0, pad_w, 0, pad_h), mode="replicate")
        # Region weights at 1/2 and 1/4 resolution: the fraction of each cell in each region.
        r2 = F.avg_pool2d(region, 2) if region is not None else None
        r4 = F.avg_pool2d(r2, 2) if r2 is not None else None

        e1 = self.down1(x, r2)
        y = self.down2(e1, r4)
        film = None
        if self.prior is not None:
            with torch.no_grad():
                gaze = self.prior(label_maps(mask).to(image.dtype))
            film = self.film(gaze).view(n, -1, 2, y.shape[1], 1, 1)
        for index, block in enumerate(self.blocks):
            y = block(y, r4)
            if film is not None:
                y = torch.addcmul(film[:, index, 1], y, 1 + film[:, index, 0])
        y = self.up(F.interpolate(y, scale_factor=2.0, mode="nearest"), r2) + e1
        if self.config.head == "fullres":
            up = F.interpolate(self.head_features(y), size=x.shape[-2:], mode="bilinear", align_corners=False)
            residual = self.out(F.relu(up + self.head_input(x)))[:, :, :h, :w]
        else:
            residual = F.pixel_shuffle(self.out(y), 2)[:, :, :h, :w]
        base = torch.logit(image.clamp(_LOGIT_EPS, 1 - _LOGIT_EPS))
        return torch.sigmoid(base + residual)


def save_purifier(path: str | Path, model: Purifier, extra: dict[str, Any] | None = None) -> Path:
    """Write ``path.safetensors`` + ``path.json``; the sidecar holds the network config and its data spec."""
    meta: dict[str, Any] = {"kind": "purifier", "config": model.config_dict(), **model.spec.to_meta()}
    meta.update(extra or {})
    return save_checkpoint(path, dict(model.state_dict()), meta)


def load_purifier(path: str | Path, device: str | torch.device = "cpu") -> Purifier:
    """Rebuild a purifier from its checkpoint, in eval mode on ``device``, with the data spec its sidecar records."""
    model, meta = load_network(path, "purifier", Purifier.from_config, device)
    model.spec = DataSpec.from_meta(meta, path, model.spec)
    return model  # type: ignore[return-value]
