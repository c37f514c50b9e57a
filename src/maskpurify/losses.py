"""The purifier's losses: region-masked style (Gram), content, total variation and the region-level task loss.

Every function returns a scalar and knows nothing about training loops. Regions are given as
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
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from maskpurify.errors import UserError
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


@dataclass(frozen=True)
class LossWeights:
    """Weight of each term; 0 switches a term off (it is then not computed and logged as 0).

    Defaults come from benchmarks/loss_magnitudes.py (EfficientNet-Lite0, upsample 2, rendered 36x60
    wild eyes vs synthetic style). Raw values there: style about 4 per region at the start, 1.7
    (attention) / 3.2 (background) for a perfect restyling; content about 100 (full) / 140 (attention)
    for a perfect restyling but only 134 / 239 for *wrong geometry*, so ImageNet feature content barely
    separates restyling from moving the eye. Hence style weights bring each style term to about 1,
    content weights are small enough that a perfect restyling still lowers the total (it costs about
    0.5), and geometry is guarded mainly by the task term (cross-entropy, weight 1) and the
    residual design of the purifier. TV (raw about 0.05) is a light regulariser.
    """

    style_attention: float = 0.25
    style_background: float = 0.25
    content_full: float = 0.002
    content_attention: float = 0.002
    task: float = 1.0
    tv: float = 1.0
    #: identity on the synthetic style batch: a synthetic input is already in the target style, so the purifier
    #: should return it unchanged (L1); the CycleGAN identity loss (Zhu et al. 2017), it teaches the decoder
    #: the clean rendered look and keeps it from adding artefacts of its own
    identity: float = 0.0
    #: gaze-level task guidance (see :class:`GazeGuide`)
    gaze: float = 0.0


TERMS = ("style_attention", "style_background", "content_full", "content_attention", "task", "tv", "identity",
         "gaze")


class GazeGuide(nn.Module):
    """Gaze-level task guidance: a frozen gaze estimator trained on synthetic eyes must read from the output the
    gaze that the mask's regions imply, as read by a second frozen estimator trained on synthetic label maps
    (:func:`maskpurify.masks.label_image`).

    The region-level task loss keeps the iris and pupil in place but says nothing of cues that only the synthetic
    look carries, such as where the corneal highlight of its frontal light falls (a glint at the wrong place moves
    a synthetic-trained estimator by about 2 degrees on clean synthetic eyes). The target comes from the mask only,
    so wild appearance never leaks into it. Both nets must be other than the estimator the results are scored with.
    """

    def __init__(self, reader: nn.Module, from_labels: nn.Module) -> None:
        super().__init__()
        if reader.config.inputs != "image" or from_labels.config.inputs != "labels":
            raise UserError("gaze guide: needs an image gaze net and a label-map gaze net (inputs: labels)")
        self.reader, self.from_labels = reader.eval(), from_labels.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, output: torch.Tensor, mask: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
        """Mean L1 (radians) between the pitch/yaw read from the output and the one implied by the mask.

        Gradients reach only the attention ``region`` (N,1,H,W): the guide may re-render the eye, but it cannot
        steer the reader with patterns painted on the skin."""
        with torch.no_grad():
            target = self.from_labels(label_maps(mask).to(output.dtype))
        seen = output * region + output.detach() * (1 - region)
        return (self.reader(seen) - target).abs().mean()


class PurifierLoss(nn.Module):
    """All purifier loss terms, weighted and summed; each term also reported on its own.

    Returns ``(total, logs)``: ``logs[term]`` is the unweighted value, ``logs["w_" + term]`` the
    weighted one, ``logs["total"]`` the sum (all Python floats, for logging).
    The encoder and segmenter are passed per call (they are frozen and owned elsewhere); the
    segmenter must already be frozen by its owner (eval mode, no trainable parameters), it only
    passes gradients through to the output.
    """

    def __init__(self, weights: LossWeights | None = None, attention_labels: Sequence[int] = (1, 2, 3),
                 style_erode: int = 1, style_layers: Sequence[int] | None = None,
                 content_layers: Sequence[int] | None = None,
                 task_class_weights: Sequence[float] | None = None, style_per_label: bool = False) -> None:
        super().__init__()
        self.weights = weights or LossWeights()
        bad = [t for t, w in asdict(self.weights).items() if w < 0]
        if bad:
            raise UserError(f"loss weights: {bad} are negative")
        self.attention_labels = tuple(attention_labels)
        self.style_erode = style_erode
        self.style_layers = None if style_layers is None else list(style_layers)
        self.content_layers = None if content_layers is None else list(content_layers)
        self.task_class_weights = None if task_class_weights is None else tuple(task_class_weights)
        #: match the attention style label by label (sclera to sclera, iris to iris, pupil to pupil) instead of
        #: over the attention region as a whole
        self.style_per_label = style_per_label

    def attention(self, mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(N,H,W) labels -> (N,1,H,W) attention region (1) vs background (0)."""
        labels = torch.tensor(self.attention_labels, device=mask.device)
        return torch.isin(mask, labels).unsqueeze(1).to(dtype)

    def forward(self, output: torch.Tensor, image: torch.Tensor, input_mask: torch.Tensor,
                style_images: torch.Tensor, style_masks: torch.Tensor, encoder: FeatureEncoder,
                segmenter: nn.Module | None = None, style_output: torch.Tensor | None = None,
                gaze_guide: GazeGuide | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """output: purifier(image, input_mask); style_images/style_masks: an unpaired synthetic batch;
        style_output: purifier(style_images, style_masks), needed only by the identity term; gaze_guide: needed
        only by the gaze term."""
        w = self.weights
        if w.task > 0 and segmenter is None:
            raise UserError("loss: the task loss weight is > 0 but no segmenter was given (set task: 0 to ablate)")
        if w.identity > 0 and style_output is None:
            raise ValueError("loss: the identity weight is > 0 but no style_output (purified style batch) was given")
        if w.gaze > 0 and gaze_guide is None:
            raise UserError("loss: the gaze weight is > 0 but no gaze guide was given (set gaze: 0 to ablate)")
        style_layers = self.style_layers if self.style_layers is not None else encoder.style_layers
        content_layers = self.content_layers if self.content_layers is not None else encoder.content_layers
        region = self.attention(input_mask, output.dtype)
        need_style = w.style_attention > 0 or w.style_background > 0
        need_content = w.content_full > 0 or w.content_attention > 0
        out_feats = encoder(output) if need_style or need_content else []
        terms: dict[str, torch.Tensor] = {}
        if need_style:
            style_region = self.attention(style_masks, output.dtype)
            with torch.no_grad():
                style_feats = encoder(style_images)

            def region_style(out_region: torch.Tensor, sty_region: torch.Tensor, erode: int) -> torch.Tensor:
                return style_loss_region(out_feats, style_feats, out_region, sty_region, style_layers, erode)

            if w.style_attention > 0:
                if self.style_per_label:
                    terms["style_attention"] = torch.stack([
                        region_style((input_mask == label).unsqueeze(1).to(output.dtype),
                                     (style_masks == label).unsqueeze(1).to(output.dtype), 0)
                        for label in self.attention_labels]).mean()
                else:
                    terms["style_attention"] = region_style(region, style_region, self.style_erode)
            if w.style_background > 0:
                terms["style_background"] = region_style(1.0 - region, 1.0 - style_region, self.style_erode)
        if need_content:
            with torch.no_grad():
                in_feats = encoder(image)
            if w.content_full > 0:
                terms["content_full"] = content_loss(out_feats, in_feats, content_layers)
            if w.content_attention > 0:
                terms["content_attention"] = content_loss(out_feats, in_feats, content_layers, region)
        if w.task > 0 and segmenter is not None:
            terms["task"] = task_loss(segmenter(output), input_mask, self.task_class_weights)
        if w.tv > 0:
            terms["tv"] = total_variation(output)
        if w.identity > 0 and style_output is not None:
            terms["identity"] = (style_output - style_images).abs().mean()
        if w.gaze > 0 and gaze_guide is not None:
            terms["gaze"] = gaze_guide(output, input_mask, region)
        total = sum((getattr(w, name) * value for name, value in terms.items()), output.new_zeros(()))
        logs: dict[str, float] = {}
        for name in TERMS:
            value = float(terms[name].detach()) if name in terms else 0.0
            logs[name] = value
            logs["w_" + name] = getattr(w, name) * value
        logs["total"] = float(total.detach())
        return total, logs
