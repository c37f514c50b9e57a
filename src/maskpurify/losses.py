"""The purifier's losses: region-masked style (Gram), content, total variation, the region-level task loss, identity,
task-level guidance (gaze or pupil centre) and region colour statistics, each a named module holding its frozen
dependencies, summed by :class:`WeightedLoss`.

Every term returns a scalar and knows nothing about training loops. Regions are given as
(N,1,H,W) float maps at image resolution (1 = attention: sclera, iris, pupil) and are resized to each
feature map here, so callers never deal with feature resolutions.

Resizing rule: area averaging (adaptive average pooling), kept *fractional*, not thresholded: a feature
cell straddling the boundary counts in proportion to its overlap. This stays meaningful on the 4x7
maps of deep layers, where thresholding would flip whole cells in or out. Optional erosion (in image
pixels, before resizing) trims a band along the boundary so style statistics do not bleed across it
(Gatys et al. 2017, "Controlling perceptual factors in neural style transfer").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn

from maskpurify.errors import UserError
from maskpurify.masks import PUPIL
from maskpurify.nets.encoders import FeatureEncoder
from maskpurify.nets.gaze import label_maps

_EPS = 1e-6


def region_weights(region: torch.Tensor, size: tuple[int, int], erode: int = 0) -> torch.Tensor:
    """Region (N,1,H,W) in [0,1] -> fractional weights (N,1,h,w) at a feature map's size.

    ``erode`` > 0 first shrinks the region by that many image pixels (a max-pool of the complement),
    then the map is area-resized (adaptive average pool; it upsamples by repetition when h > H).
    """
    if erode > 0:
        region = 1.0 - F.max_pool2d(1.0 - region, 2 * erode + 1, stride=1, padding=erode)
    if tuple(region.shape[-2:]) == tuple(size):
        return region
    return F.adaptive_avg_pool2d(region, size)


def masked_gram(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Gram matrix of ``features`` (N,C,h,w) over the pixels weighted by ``weights`` (N,1,h,w) -> (N,C,C).

    Normalised by (sum of weights) * C, so regions of different size are comparable and all-ones
    weights give the usual Gram / (C*h*w). An empty region gives an all-zero Gram (no NaN); callers
    drop such samples with :func:`region_present`.
    """
    n, c = features.shape[:2]
    flat = features.flatten(2)
    weighted = flat * weights.flatten(2)
    area = weights.flatten(1).sum(1).clamp_min(_EPS)
    return torch.bmm(weighted, flat.transpose(1, 2)) / (area * c).view(n, 1, 1)


def region_present(weights: torch.Tensor) -> torch.Tensor:
    """(N,) float: 1 where the region has any weight, 0 where it is empty."""
    return (weights.flatten(1).sum(1) > _EPS).to(weights.dtype)


def _mean_over_present(per_sample: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Mean over samples whose region exists; 0 (still in the graph) when none does."""
    return (per_sample * present).sum() / present.sum().clamp_min(1.0)


def style_loss_region(out_feats: Sequence[torch.Tensor], style_feats: Sequence[torch.Tensor],
                      out_region: torch.Tensor, style_region: torch.Tensor, layers: Sequence[int],
                      erode: int = 0) -> torch.Tensor:
    """Mean over ``layers`` of the MSE between each output's region Gram and the style batch's region Gram.

    Unpaired by design: the style batch holds *other* (synthetic) images, so the target is one Gram per
    layer pooled over the whole style batch's region (every style pixel of the region counts once,
    i.e. the area-weighted mean of the per-image Grams): a low-variance estimate of the synthetic
    domain's region style, not of any one image. Output samples with an empty region are skipped, and
    the term is 0 when the whole style batch lacks the region.
    """
    losses = []
    for index in layers:
        out_f, sty_f = out_feats[index], style_feats[index]
        w_out = region_weights(out_region, out_f.shape[-2:], erode)
        w_sty = region_weights(style_region, sty_f.shape[-2:], erode)
        with torch.no_grad():
            area = w_sty.flatten(1).sum(1)
            target = (masked_gram(sty_f, w_sty) * area.view(-1, 1, 1)).sum(0) / area.sum().clamp_min(_EPS)
        gram = masked_gram(out_f, w_out)
        per_sample = (gram - target).square().mean((1, 2))
        # No style pixels in this region at all: there is no target, so the term contributes nothing.
        present = region_present(w_out) * (area.sum() > _EPS).to(per_sample.dtype)
        losses.append(_mean_over_present(per_sample, present))
    return torch.stack(losses).mean()


def content_loss(out_feats: Sequence[torch.Tensor], in_feats: Sequence[torch.Tensor], layers: Sequence[int],
                 weights: torch.Tensor | None = None) -> torch.Tensor:
    """Feature reconstruction (mean over ``layers`` of a squared error) of the output against the input.

    ``weights`` None: plain MSE over the full image. Otherwise a region map (N,1,H,W) at image
    resolution, area-resized to each layer; the error is averaged inside the region (normalised by its
    area per sample) so a small iris weighs as much as a large one. Empty regions are skipped.
    """
    losses = []
    for index in layers:
        out_f, in_f = out_feats[index], in_feats[index].detach()
        error = (out_f - in_f).square().mean(1, keepdim=True)
        if weights is None:
            losses.append(error.mean())
            continue
        w = region_weights(weights, out_f.shape[-2:])
        per_sample = (error * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(_EPS)
        losses.append(_mean_over_present(per_sample, region_present(w)))
    return torch.stack(losses).mean()


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels (anisotropic L1 TV): damps speckle and
    checkerboard artefacts while, unlike squared TV, leaving sharp iris and pupil edges cheap."""
    dy = (image[:, :, 1:, :] - image[:, :, :-1, :]).abs().mean()
    dx = (image[:, :, :, 1:] - image[:, :, :, :-1]).abs().mean()
    return dx + dy


def task_loss(logits: torch.Tensor, input_mask: torch.Tensor,
              class_weights: Sequence[float] | None = None) -> torch.Tensor:
    """Region-level task-guided loss: cross-entropy of a frozen segmenter's logits on the *output*
    (N,K,H,W) against the *input's* mask (N,H,W), so the regions (and with them the gaze geometry)
    must survive purification. ``class_weights`` (length K) can favour the small iris and pupil."""
    weight = None
    if class_weights is not None:
        if len(class_weights) != logits.shape[1]:
            raise UserError(f"task loss: {len(class_weights)} class weights for {logits.shape[1]} classes")
        weight = torch.tensor(list(class_weights), dtype=logits.dtype, device=logits.device)
    return F.cross_entropy(logits, input_mask.long(), weight=weight)


def _term(default: float) -> float:
    """A loss weight: a field of :class:`LossConfig` that :data:`TERMS` lists (0 drops the term)."""
    return field(default=default, metadata={"term": True})


@dataclass
class LossConfig:
    """The purifier's loss: the weight of each term (0 drops it, the ablations) and the terms' settings.

    The defaults are the shipped purifier's recipe, chosen by gaze error on a held-out wild set (see "Tuning history"
    in the README): the region-level task and gaze terms carry the geometry, content stays weak because ImageNet
    features barely separate restyling from moving the eye.
    """

    style_attention: float = _term(1.0)
    style_background: float = _term(0.25)
    content_full: float = _term(0.0002)
    content_attention: float = _term(0.0001)
    task: float = _term(50.0)
    tv: float = _term(5.0)
    #: identity on the synthetic style batch (L1): a synthetic input is already in the target style, so the purifier
    #: should return it unchanged (the CycleGAN identity loss); it teaches the decoder the clean rendered look
    identity: float = _term(50.0)
    #: task-level guidance (see :class:`TaskGuide`): gaze in the eye world, the pupil centre in the near-IR one
    gaze: float = _term(300.0)
    #: pixel colour statistics per region against the synthetic batch's (see :class:`RegionColour`)
    colour: float = _term(30.0)
    #: erosion (pixels) of the regions for the style Grams, so style does not bleed across the boundary
    style_erode: int = 1
    #: attention style label by label (sclera, iris, pupil each to its synthetic counterpart)
    style_per_label: bool = True
    #: cross-entropy class weights of the task loss (skin, sclera, iris, pupil); used only when task > 0
    task_class_weights: tuple[float, float, float, float] = (1.0, 1.0, 2.0, 2.0)

    def weight(self, term: str) -> float:
        return float(getattr(self, term))


#: The loss terms, in the order they are computed and logged: the one list (configs, ablations, experiment rows).
TERMS: tuple[str, ...] = tuple(f.name for f in fields(LossConfig) if f.metadata.get("term"))


class LossInputs:
    """One step's tensors, with the encoder features the terms share computed once (output features keep their
    graph; input and style features do not).

    output: purifier(image, mask); style_images/style_masks: an unpaired synthetic batch; style_output: the
    purifier's output for the identity batch, needed only by the identity term; identity_target: what that output
    should be (default: the style batch itself; an eye painted over, where training shows the purifier an eye mask
    on an image without the eye).
    """

    def __init__(self, output: torch.Tensor, image: torch.Tensor, mask: torch.Tensor, style_images: torch.Tensor,
                 style_masks: torch.Tensor, style_output: torch.Tensor | None = None,
                 identity_target: torch.Tensor | None = None) -> None:
        self.output, self.image, self.mask = output, image, mask
        self.style_images, self.style_masks, self.style_output = style_images, style_masks, style_output
        self.identity_target = style_images if identity_target is None else identity_target
        self._features: dict[tuple[int, str], list[torch.Tensor]] = {}

    def features(self, encoder: FeatureEncoder, which: str) -> list[torch.Tensor]:
        """Encoder features of ``which`` ('output', 'image' or 'style'), computed once per encoder."""
        key = (id(encoder), which)
        if key not in self._features:
            if which == "output":
                self._features[key] = encoder(self.output)
            else:
                with torch.no_grad():
                    self._features[key] = encoder(self.image if which == "image" else self.style_images)
        return self._features[key]


def attention_region(mask: torch.Tensor, labels: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    """(N,H,W) labels -> (N,1,H,W) attention region (1) vs background (0)."""
    return torch.isin(mask, torch.tensor(tuple(labels), device=mask.device)).unsqueeze(1).to(dtype)


class RegionStyle(nn.Module):
    """Style (region Gram) of the output's attention region or background against the synthetic batch's; with
    ``per_label`` the attention style is matched label by label (sclera to sclera, iris to iris, pupil to pupil)."""

    def __init__(self, encoder: FeatureEncoder, region: str, attention_labels: Sequence[int], erode: int = 1,
                 per_label: bool = False) -> None:
        super().__init__()
        if region not in ("attention", "background"):
            raise ValueError(f"region must be 'attention' or 'background', got {region!r}")
        self.encoder, self.region, self.attention_labels = encoder, region, tuple(attention_labels)
        self.erode, self.per_label = erode, per_label

    def forward(self, x: LossInputs) -> torch.Tensor:
        out_feats, style_feats = x.features(self.encoder, "output"), x.features(self.encoder, "style")
        layers, dtype = self.encoder.style_layers, x.output.dtype

        def style(out_region: torch.Tensor, sty_region: torch.Tensor, erode: int) -> torch.Tensor:
            return style_loss_region(out_feats, style_feats, out_region, sty_region, layers, erode)

        if self.region == "attention" and self.per_label:
            return torch.stack([style((x.mask == label).unsqueeze(1).to(dtype),
                                      (x.style_masks == label).unsqueeze(1).to(dtype), 0)
                                for label in self.attention_labels]).mean()
        region = attention_region(x.mask, self.attention_labels, dtype)
        style_region = attention_region(x.style_masks, self.attention_labels, dtype)
        if self.region == "background":
            region, style_region = 1.0 - region, 1.0 - style_region
        return style(region, style_region, self.erode)


class Content(nn.Module):
    """Feature reconstruction of the input, over the full image or averaged inside the attention region."""

    def __init__(self, encoder: FeatureEncoder, attention_labels: Sequence[int] | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.attention_labels = None if attention_labels is None else tuple(attention_labels)

    def forward(self, x: LossInputs) -> torch.Tensor:
        region = None if self.attention_labels is None else \
            attention_region(x.mask, self.attention_labels, x.output.dtype)
        return content_loss(x.features(self.encoder, "output"), x.features(self.encoder, "image"),
                            self.encoder.content_layers, region)


class RegionTask(nn.Module):
    """:func:`task_loss` through a frozen segmenter (frozen by its owner: it only passes gradients through)."""

    def __init__(self, segmenter: nn.Module, class_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.segmenter = segmenter
        self.class_weights = None if class_weights is None else tuple(class_weights)

    def forward(self, x: LossInputs) -> torch.Tensor:
        return task_loss(self.segmenter(x.output), x.mask, self.class_weights)


class TotalVariation(nn.Module):
    def forward(self, x: LossInputs) -> torch.Tensor:
        return total_variation(x.output)


class Identity(nn.Module):
    """L1 between the purified synthetic batch and itself."""

    def forward(self, x: LossInputs) -> torch.Tensor:
        if x.style_output is None:
            raise ValueError("loss: the identity term needs style_output (the purified style batch)")
        return (x.style_output - x.identity_target).abs().mean()


class TaskGuide(nn.Module):
    """Task-level guidance through a frozen task net (the reader) trained on synthetic images only, so it reads
    what the synthetic look shows: the reader must read from the output what the mask implies (``target``: the
    mask -> the reader's outputs, None to drop this part), and with ``keep_identity`` read the identity batch's
    output like its clean original.

    The region-level task loss keeps the regions in place but says nothing of cues that only the synthetic look
    carries. The mask target comes from the mask only, so wild appearance never leaks into it. The reader must be
    other than the net the results are scored with. Gradients of the mask part reach only the attention region:
    the guide may re-render the eye, but it cannot steer the reader with patterns painted on the skin.

    ``mask_weight`` scales the mask part against the identity part. ``keep_identity``: the pixel identity term
    alone lets an imperfect mask move a clean iris or pupil by a pixel, which the L1 barely sees and the task reader
    does. The eye world's guide reads gaze (target :class:`LabelMapGaze`), the near-IR world's the pupil centre
    (target :class:`PupilCentroid`).
    """

    def __init__(self, reader: nn.Module, target: nn.Module | None, attention_labels: Sequence[int] = (1, 2, 3),
                 keep_identity: bool = False, mask_weight: float = 1.0) -> None:
        super().__init__()
        self.mask_weight = float(mask_weight)
        if reader.config.inputs != "image":
            raise UserError("guide: its reader must be a gaze net or pupil detector that reads images (inputs: image)")
        if target is None and not keep_identity:
            raise UserError("guide: neither a mask target nor keep_identity, so it would guide nothing")
        self.keep_identity = keep_identity
        self.reader, self.target = reader.eval(), None if target is None else target.eval()
        self.attention_labels = tuple(attention_labels)
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x: LossInputs) -> torch.Tensor:
        """Mean L1 (in the reader's units) between what the reader reads from the output and what the mask
        implies (over the samples where the target exists); with an identity batch, plus the same between its
        output and its clean original as the reader sees them."""
        output = x.output
        loss = output.new_zeros(())
        if self.target is not None:
            region = attention_region(x.mask, self.attention_labels, output.dtype)
            with torch.no_grad():
                target, present = self.target(x.mask, output.dtype)
            seen = output * region + output.detach() * (1 - region)
            per_sample = (self.reader(seen) - target).abs().mean(1)
            loss = loss + self.mask_weight * _mean_over_present(per_sample, present)
        if self.keep_identity and x.style_output is not None:
            with torch.no_grad():
                original = self.reader(x.identity_target)
            loss = loss + (self.reader(x.style_output) - original).abs().mean()
        return loss


class LabelMapGaze(nn.Module):
    """The gaze a mask implies: a frozen gaze net trained on synthetic label maps (:func:`maskpurify.masks.label_image`)
    reads it."""

    def __init__(self, from_labels: nn.Module) -> None:
        super().__init__()
        if from_labels.config.inputs != "labels":
            raise UserError("gaze guide: the mask's gaze needs a label-map gaze net (inputs: labels)")
        self.from_labels = from_labels

    def forward(self, mask: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        gaze = self.from_labels(label_maps(mask).to(dtype))
        return gaze, gaze.new_ones(len(gaze))


class PupilCentroid(nn.Module):
    """The pupil centre a mask implies: its pupil pixels' centroid, as fractions of the frame's width and height
    (the pupil detector's outputs, :func:`maskpurify.nets.pupil.pupil_target`); absent where it has no pupil."""

    def forward(self, mask: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        pupil = (mask == PUPIL).to(dtype)
        height, width = mask.shape[-2:]
        area = pupil.sum((1, 2))
        xs = torch.arange(width, dtype=dtype, device=mask.device)
        ys = torch.arange(height, dtype=dtype, device=mask.device)
        centre = torch.stack([(pupil.sum(1) * xs).sum(1) / width, (pupil.sum(2) * ys).sum(1) / height], 1)
        return centre / area.clamp_min(1.0).unsqueeze(1), (area > 0).to(dtype)


class RegionColour(nn.Module):
    """Mean and spread of each colour channel inside each region (background, then every attention label) of the
    output, against the same statistics pooled over the synthetic batch's region: the colours the Gram terms leave
    free (an iris may keep any mean colour whose feature correlations look synthetic). L1, averaged over channels,
    statistics, regions and the samples where the region exists."""

    def __init__(self, attention_labels: Sequence[int]) -> None:
        super().__init__()
        self.attention_labels = tuple(attention_labels)

    def _regions(self, mask: torch.Tensor, dtype: torch.dtype) -> list[torch.Tensor]:
        background = 1.0 - attention_region(mask, self.attention_labels, dtype)
        return [background, *((mask == label).unsqueeze(1).to(dtype) for label in self.attention_labels)]

    @staticmethod
    def _moments(image: torch.Tensor, weights: torch.Tensor, dims: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
        total = weights.sum(dims)
        area = total.clamp_min(_EPS)
        mean = (image * weights).sum(dims) / area
        centred = image - mean.view(*mean.shape, *([1] * (image.dim() - mean.dim())))
        spread = ((centred.square() * weights).sum(dims) / area + _EPS).sqrt()
        return mean, spread, total.squeeze(-1)

    def forward(self, x: LossInputs) -> torch.Tensor:
        dtype, losses = x.output.dtype, []
        # the style batch as one image (3, N*H*W): each region's statistics pooled over the whole synthetic batch
        style = x.style_images.transpose(0, 1).flatten(1)
        for out_w, sty_w in zip(self._regions(x.mask, dtype), self._regions(x.style_masks, dtype)):
            with torch.no_grad():
                target_mean, target_spread, style_area = self._moments(style, sty_w.transpose(0, 1).flatten(1), (1,))
            mean, spread, area = self._moments(x.output, out_w, (2, 3))
            per_sample = ((mean - target_mean).abs() + (spread - target_spread).abs()).mean(1)
            present = (area.flatten() > _EPS).to(dtype) * (style_area.sum() > _EPS).to(dtype)
            losses.append(_mean_over_present(per_sample, present))
        return torch.stack(losses).mean()


class WeightedLoss(nn.Module):
    """Named terms, each with its weight, summed; a term of weight 0 is not built, computed or required.

    Returns ``(total, logs)``: ``logs[term]`` is the unweighted value of every name in :data:`TERMS` (0 for a
    dropped term), ``logs["w_" + term]`` the weighted one, ``logs["total"]`` the sum (Python floats, for logging).
    """

    def __init__(self, terms: dict[str, tuple[nn.Module, float]]) -> None:
        super().__init__()
        bad = [name for name, (_, weight) in terms.items() if weight < 0]
        if bad:
            raise UserError(f"loss weights: {bad} are negative")
        self.terms = nn.ModuleDict({name: module for name, (module, weight) in terms.items() if weight > 0})
        self.weights = {name: weight for name, (_, weight) in terms.items() if weight > 0}

    def forward(self, x: LossInputs) -> tuple[torch.Tensor, dict[str, float]]:
        values = {name: term(x) for name, term in self.terms.items()}
        total = sum((self.weights[name] * value for name, value in values.items()), x.output.new_zeros(()))
        logs: dict[str, float] = {}
        for name in (*TERMS, *(n for n in values if n not in TERMS)):
            value = float(values[name].detach()) if name in values else 0.0
            logs[name] = value
            logs["w_" + name] = self.weights.get(name, 0.0) * value
        logs["total"] = float(total.detach())
        return total, logs


def purifier_loss(config: LossConfig, encoder: FeatureEncoder, attention_labels: Sequence[int] = (1, 2, 3),
                  segmenter: nn.Module | None = None, gaze_guide: TaskGuide | None = None) -> WeightedLoss:
    """The purifier's loss as ``config`` weighs it; the segmenter and the guide are needed only by terms of
    weight > 0 (task, gaze)."""
    w = config.weight
    if w("task") > 0 and segmenter is None:
        raise UserError("loss: the task loss weight is > 0 but no segmenter was given (set task: 0 to ablate)")
    if w("gaze") > 0 and gaze_guide is None:
        raise UserError("loss: the gaze weight is > 0 but no gaze guide was given (set gaze: 0 to ablate)")
    bad = [name for name in TERMS if w(name) < 0]
    if bad:
        raise UserError(f"loss weights: {bad} are negative")
    labels = tuple(attention_labels)
    build = {
        "style_attention": lambda: RegionStyle(encoder, "attention", labels, config.style_erode, config.style_per_label),
        "style_background": lambda: RegionStyle(encoder, "background", labels, config.style_erode),
        "content_full": lambda: Content(encoder),
        "content_attention": lambda: Content(encoder, labels),
        "task": lambda: RegionTask(segmenter, config.task_class_weights),  # type: ignore[arg-type]
        "tv": TotalVariation,
        "identity": Identity,
        "gaze": lambda: gaze_guide,  # type: ignore[return-value]
        "colour": lambda: RegionColour(labels),
    }
    return WeightedLoss({name: (build[name](), w(name)) for name in TERMS if w(name) > 0})
