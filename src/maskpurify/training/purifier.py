"""Train the mask-guided purifier: unpaired, content from the wild domain, style from the synthetic domain.

Every step draws a wild batch (image + mask) and an independent synthetic batch (image + mask). The purifier
re-renders the wild batch; :func:`maskpurify.losses.purifier_loss` scores it (region style against the
synthetic batch, content against the input, the frozen segmenter's region-level task loss, TV).

Outputs in the out dir: ``purifier.safetensors`` + ``purifier.json`` (final weights; the sidecar rebuilds the
network), ``last.*`` (resumable state), ``log.csv``, ``previews/step_*.png``, ``config.yaml`` + ``run.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from maskpurify.batch import EyeBatch
from maskpurify.checkpoints import WEIGHTS_DIR, checkpoint_meta
from maskpurify.config import command_line, parse_size
from maskpurify.degradation import DegradationConfig, corrupt_masks, degrade, paint_out_eyes
from maskpurify.errors import UserError
from maskpurify.losses import LabelMapGaze, LossConfig, LossInputs, PupilCentroid, TaskGuide, purifier_loss
from maskpurify.masks import EYE_LABELS, DataSpec, LabelSet
from maskpurify.nets.encoders import build_encoder
from maskpurify.nets.gaze import gaze_config_dict, load_gaze_net
from maskpurify.nets.purifier import Purifier, PurifierConfig, save_purifier
from maskpurify.nets.segmenter import load_segmenter, predict_masks
from maskpurify.training.common import MinibatchSampler, lr_at, set_lr, to_float_images, unwrap, wrap_model
from maskpurify.training.loop import LoopConfig, Run, Task, fit
from maskpurify.training.real_data import is_real_standin
from maskpurify.training.sources import SourceConfig, load_source

DEFAULT_SEGMENTER = str(WEIGHTS_DIR / "segmenter")
DEFAULT_GAZE_GUIDE = str(WEIGHTS_DIR / "gaze_guide")
DEFAULT_GAZE_FROM_LABELS = str(WEIGHTS_DIR / "gaze_from_labels")


@dataclass
class PurifierDataConfig:
    content: SourceConfig = field(default_factory=SourceConfig)
    style: SourceConfig = field(default_factory=lambda: SourceConfig(render_seed=3001))
    size: str = "36x60"
    #: masks of the content images: 'segmenter' (predicted on the raw images, as for real data without
    #: annotations) or 'given' (from the dataset; refused for wild renders by the real-data rule,
    #: :mod:`maskpurify.training.real_data`)
    content_masks: Literal["given", "segmenter"] = "segmenter"


@dataclass
class EncoderConfig:
    name: Literal["efficientnet-lite0", "vgg19", "random"] = "efficientnet-lite0"
    weights_path: str | None = None
    #: 1: EfficientNet sees 36x60 directly (features 18x30 .. 2x3); 2x faster than 2 and no worse here
    upsample: int = 1


@dataclass
class NetConfig:
    base_channels: int = 16
    num_res_blocks: int = 3
    use_mask: bool = True
    #: normalisation regions inside the network: 'attention' (attention vs background) or 'labels'
    norm_regions: Literal["attention", "labels"] = "attention"
    #: output head (see :class:`maskpurify.nets.purifier.PurifierConfig`); fullres sees the input pixels directly
    head: Literal["subpixel", "fullres"] = "fullres"
    #: label set of the masks: 4 / (1, 2, 3) the eye labels (skin, sclera, iris, pupil); 2 / (1,) binary masks
    #: (background, attention), e.g. COCO instances (train those with loss.task=0: the segmenter is an eye one)
    num_labels: int = 4
    attention_labels: tuple[int, ...] = (1, 2, 3)
    #: a frozen label-map gaze net (``gaze_from_labels``, the gaze guide's target) reads the mask and modulates
    #: the residual blocks (:class:`maskpurify.nets.purifier.Purifier`); eye masks only. Off in the shipped
    #: recipe: with inferred masks it did not help (README, tuning history) and it costs a fifth of the time
    gaze_prior: bool = False

    def label_set(self) -> LabelSet:
        """The label set the sources' masks must use (eye labels, binary, or generic)."""
        from maskpurify.masks import label_set_for

        return label_set_for(self.num_labels, self.attention_labels)

    def purifier_config(self, gaze_prior: nn.Module | None = None) -> PurifierConfig:
        """The network this config describes (what the checkpoint sidecar stores); ``gaze_prior`` is the
        label-map gaze net when ``self.gaze_prior`` is on."""
        return PurifierConfig(self.base_channels, self.num_res_blocks, num_labels=self.num_labels,
                              attention_labels=tuple(self.attention_labels), use_mask=self.use_mask,
                              norm_regions=self.norm_regions, head=self.head,
                              gaze_prior=gaze_config_dict(gaze_prior.config) if gaze_prior is not None else None)


@dataclass
class PurifierTrainConfig(LoopConfig):
    data: PurifierDataConfig = field(default_factory=PurifierDataConfig)
    net: NetConfig = field(default_factory=NetConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    #: frozen segmenter for the task loss and for automatic content masks
    segmenter: str = DEFAULT_SEGMENTER
    #: what the guide (the gaze term, loss.gaze > 0) reads: 'gaze' (the eye world: a gaze reader, the mask's gaze
    #: read by a label-map gaze net) or 'pupil_center' (the near-IR world: a pupil detector, the mask's pupil
    #: centroid), :class:`maskpurify.losses.TaskGuide`
    guide_reads: Literal["gaze", "pupil_center"] = "gaze"
    #: frozen nets of the guide: the image reader (a gaze net, or a pupil detector) and, for 'gaze', the label-map
    #: reader, all trained on synthetic images only and none of them a net that scores the results
    gaze_guide: str = DEFAULT_GAZE_GUIDE
    gaze_from_labels: str = DEFAULT_GAZE_FROM_LABELS
    #: the guide asks the content batch's output to show what its mask implies (off: only the identity batch is
    #: guided, with gaze_keeps_identity)
    guide_mask_target: bool = True
    #: the mask part's weight in the guide, relative to the identity part (both scaled by loss.gaze): below 1 the
    #: purifier is asked less to paint what the mask implies than to keep what a clean eye shows
    guide_mask_weight: float = 1.0
    #: paired training: the identity batch (synthetic eyes) goes through this degradation model, with masks
    #: inferred by the segmenter from the degraded eye, and the identity term asks for the clean original back
    #: (strength 0: plain identity, clean synthetic in and out, exact masks)
    paired: DegradationConfig = field(default_factory=lambda: DegradationConfig(strength=0.0))
    #: masks of the identity batch: 'segmenter' (inferred from the eye the purifier sees, as at test time, so a
    #: clean eye with an imperfect mask must come back unchanged) or 'given' (the renderer's exact masks; paired
    #: training always infers them from the degraded eye)
    identity_masks: Literal["given", "segmenter"] = "segmenter"
    #: the guide also asks the identity batch's output to read like its clean original (to the guide's reader): pixels
    #: close to the original are not enough, a one-pixel iris or pupil shift moves the gaze or the pupil centre
    gaze_keeps_identity: bool = True
    #: share of the identity batch whose mask gets one deliberate error (:func:`maskpurify.degradation.corrupt_mask`:
    #: iris moved, a second iris, pupil or iris missing, another eye's mask, iris resized) while the target stays
    #: the clean eye: where mask and image disagree the purifier must follow the image, so that on a real photo
    #: a wrong mask paints nothing (0: off)
    mask_errors: float = 0.0
    #: share of the identity batch whose eye is painted over by the skin around it while its eye mask stays: the
    #: target is the painted-over image, so an eye mask on an image without that eye paints nothing (0: off)
    painted_out: float = 0.0
    steps: int = 600
    lr: float = 2e-3
    warmup: int = 50
    log_every: int = 25
    preview_every: int = 250
    checkpoint_every: int = 100


def build_guide(config: PurifierTrainConfig, device: str | torch.device) -> TaskGuide:
    """The gaze term's guide as ``config`` describes it; the reader's sidecar must say it reads what
    ``guide_reads`` names (a pupil detector's says ``"target": "pupil_center"``, a gaze net's nothing)."""
    reader = load_gaze_net(config.gaze_guide, device)  # a missing or broken checkpoint is its own error
    reads = (checkpoint_meta(config.gaze_guide) or {}).get("target", "gaze")  # the sidecar only, no tensors again
    if reads != config.guide_reads:
        raise UserError(f"guide_reads is {config.guide_reads} but gaze_guide {config.gaze_guide} reads {reads}")
    target: nn.Module | None = None
    if config.guide_mask_target:
        target = LabelMapGaze(load_gaze_net(config.gaze_from_labels, device)) if config.guide_reads == "gaze" \
            else PupilCentroid()
    return TaskGuide(reader, target, config.net.attention_labels, config.gaze_keeps_identity,
                     config.guide_mask_weight)


def purify_batches(net: torch.nn.Module, image: torch.Tensor, mask: torch.Tensor, style_image: torch.Tensor,
                   style_mask: torch.Tensor, with_style: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The training step's forward: the purified content batch, and with ``with_style`` (the identity term) the
    purified style batch too, from one pass over both (region norm is per sample), so DDP sees one pass a step."""
    if not with_style:
        return net(image, mask), None
    both = net(torch.cat([image, style_image]), torch.cat([mask, style_mask]))
    return both[:len(image)], both[len(image):]


class PurifierTask(Task):
    """Unpaired mask-guided restyling: wild content batches purified towards synthetic style batches."""

    name = "purifier"
    outputs = ("purifier",)

    def setup(self, run: Run) -> None:
        config, ctx = self.config, run.ctx
        self.ctx = ctx
        size = parse_size(config.data.size)
        labels = config.net.label_set()
        eye_masks = config.net.num_labels == len(EYE_LABELS.names)
        gaze_prior = None
        if config.net.gaze_prior:
            if not (eye_masks and config.net.use_mask):
                raise UserError("net.gaze_prior reads eye masks, so it needs net.use_mask and "
                                f"{len(EYE_LABELS.names)} labels: set net.gaze_prior=false")
            gaze_prior = load_gaze_net(config.gaze_from_labels, ctx.device)
        net_config = config.net.purifier_config(gaze_prior)
        # the segmenter comes first: a class-count mismatch fails before the datasets are read
        self.paired = config.paired.strength > 0
        for name in ("mask_errors", "painted_out"):
            share = getattr(config, name)
            if not 0.0 <= share <= 1.0:
                raise UserError(f"{name} must lie within [0, 1], got {share}")
            if share > 0 and config.loss.identity <= 0:
                raise UserError(f"{name} > 0 trains through the identity term: set loss.identity > 0")
        if config.painted_out > 0 and self.paired:
            raise UserError("painted_out and paired.strength > 0 both set the identity batch's input: choose one")
        if self.paired and config.loss.identity <= 0:
            raise UserError("paired.strength > 0 trains through the identity term: set loss.identity > 0")
        self.infer_identity_masks = config.loss.identity > 0 and (self.paired or config.identity_masks == "segmenter")
        needs_segmenter = (config.loss.task > 0 or config.data.content_masks == "segmenter"
                           or self.infer_identity_masks)
        segmenter = load_segmenter(config.segmenter, ctx.device) if needs_segmenter else None
        if segmenter is not None and segmenter.config.num_classes != config.net.num_labels:
            raise UserError(f"segmenter {config.segmenter} predicts {segmenter.config.num_classes} classes but "
                            f"net.num_labels is {config.net.num_labels}: set loss.task=0 (and "
                            "data.content_masks=given, identity_masks=given) -- the shipped segmenter is an eye "
                            "segmenter")
        if config.loss.task > 0 and len(config.loss.task_class_weights) != config.net.num_labels:
            raise UserError(f"loss.task_class_weights has {len(config.loss.task_class_weights)} entries but "
                            f"net.num_labels is {config.net.num_labels}: give one weight per label, or set loss.task=0")
        gaze_guide = None
        if config.loss.gaze > 0:
            if not eye_masks:
                raise UserError(f"loss.gaze > 0 needs eye masks ({len(EYE_LABELS.names)} labels) but net.num_labels "
                                f"is {config.net.num_labels}: set loss.gaze=0 -- the guide reads eye label maps")
            gaze_guide = build_guide(config, ctx.device)
        if config.data.content_masks == "given" and is_real_standin(
                config.data.content.path, None if config.data.content.format else "wild"):
            raise UserError("data.content_masks=given: the content source is wild renders, which stand in for real "
                            "images, so their exact masks are test labels (the real-data rule); use "
                            "data.content_masks=segmenter")
        if self.arrays is not None:
            content, style = self.arrays
        else:
            content = load_source(config.data.content, "wild", size, run, "data.content.path",
                                  segmenter=config.segmenter, labels=labels)
            style = load_source(config.data.style, "synthetic", size, run, "data.style.path",
                                segmenter=config.segmenter, labels=labels)
        if segmenter is not None:
            for p in segmenter.parameters():
                p.requires_grad_(False)
        content_masks = content.masks
        if config.data.content_masks == "segmenter":
            assert segmenter is not None
            content_masks = predict_masks(segmenter, content.images)
        if content_masks is None or style.masks is None:
            raise UserError("purifier training needs masks: content masks (or data.content_masks=segmenter) "
                            "and style masks")
        self.tensors = {
            "content_images": torch.from_numpy(np.ascontiguousarray(content.images)),
            "content_masks": torch.from_numpy(np.ascontiguousarray(content_masks)).long(),
            "style_images": torch.from_numpy(np.ascontiguousarray(style.images)),
            "style_masks": torch.from_numpy(np.ascontiguousarray(style.masks)).long(),
        }
        self.segmenter = segmenter
        self.model = Purifier(net_config, gaze_prior).to(ctx.device)
        self.model.spec = DataSpec(content.size, labels)
        encoder = build_encoder(config.encoder.name, config.encoder.weights_path, config.encoder.upsample)
        self.criterion = purifier_loss(config.loss, encoder.to(ctx.device), config.net.attention_labels, segmenter,
                                       gaze_guide)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.models, self.optimizers = {"model": self.model}, {"optimizer": self.optimizer}
        self.net = wrap_model(self.model, ctx)
        self.content_sampler = MinibatchSampler(len(self.tensors["content_images"]), config.batch_size, config.seed,
                                                ctx.rank, ctx.world_size)
        self.style_sampler = MinibatchSampler(len(self.tensors["style_images"]), config.batch_size, config.seed + 1,
                                              ctx.rank, ctx.world_size)

    def batch(self, step: int) -> tuple[torch.Tensor, ...]:
        """Content image and mask, style image and mask, and the identity batch's input and mask."""
        config, ctx, tensors = self.config, self.ctx, self.tensors
        ci, si = self.content_sampler.indices(step), self.style_sampler.indices(step)
        style_image = to_float_images(tensors["style_images"][si], ctx.device)
        style_mask = tensors["style_masks"][si].to(ctx.device)
        identity_in, identity_mask = style_image, style_mask
        if self.paired:
            degraded, _ = degrade(tensors["style_images"][si].numpy(), tensors["style_masks"][si].numpy(),
                                  np.random.default_rng([config.seed, step, ctx.rank]), config.paired,
                                  geometry=False)
            identity_in = to_float_images(torch.from_numpy(degraded), ctx.device)
        if self.infer_identity_masks:
            assert self.segmenter is not None
            with torch.no_grad():
                identity_mask = self.segmenter(identity_in).argmax(1)
        identity_target = None
        if config.painted_out > 0:
            painted, which = paint_out_eyes(tensors["style_images"][si].numpy(),
                                            tensors["style_masks"][si].numpy(),
                                            np.random.default_rng([config.seed, step, ctx.rank, 2]),
                                            config.painted_out)
            if which.any():
                identity_in = identity_target = to_float_images(torch.from_numpy(painted), ctx.device)
                flags = torch.from_numpy(which).to(ctx.device)
                # the eye's own mask, on the image without the eye
                identity_mask = torch.where(flags[:, None, None], style_mask, identity_mask)
        if config.mask_errors > 0:
            wrong = corrupt_masks(identity_mask.cpu().numpy().astype(np.uint8),
                                  np.random.default_rng([config.seed, step, ctx.rank, 1]), config.mask_errors)
            identity_mask = torch.from_numpy(wrong).long().to(ctx.device)
        return (to_float_images(tensors["content_images"][ci], ctx.device),
                tensors["content_masks"][ci].to(ctx.device), style_image, style_mask, identity_in, identity_mask,
                identity_target)

    def step(self, step: int) -> dict[str, float]:
        config = self.config
        self.net.train()
        image, mask, style_image, style_mask, identity_in, identity_mask, identity_target = self.batch(step)
        lr = lr_at(step, config.steps, config.lr, config.schedule, config.warmup)
        set_lr(self.optimizer, lr)
        output, style_output = purify_batches(self.net, image, mask, identity_in, identity_mask,
                                              config.loss.identity > 0)
        total, logs = self.criterion(LossInputs(output, image, mask, style_image, style_mask, style_output,
                                                identity_target))
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        terms = {k: v for k, v in logs.items() if not k.startswith("w_")}
        return {**terms, "lr": lr}

    def preview(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        image, mask, style_image = self.batch(step)[:3]
        with torch.no_grad():
            self.model.eval()
            output = self.model(image[:8], mask[:8])
        return image[:8], mask[:8], output, style_image[:8]

    def export(self, run: Run, last_log: dict[str, float]) -> dict[str, Any]:
        config = self.config
        save_purifier(run.out / "purifier", unwrap(self.model), {"trained": {
            "command": command_line(), "seed": config.seed, "steps": config.steps,
            "batch_size": config.batch_size, "loss": asdict(config.loss), "encoder": asdict(config.encoder),
            "content_masks": config.data.content_masks}})
        return {}


def train_purifier(config: PurifierTrainConfig, out_dir: str | Path, resume: bool = True, stop_at: int | None = None,
                   progress: bool = True, arrays: tuple[EyeBatch, EyeBatch] | None = None
                   ) -> dict[str, Any]:
    """Train (or resume) the purifier; returns a summary dict.

    ``arrays`` = (content, style) batches as :func:`maskpurify.world.dataset.load_arrays_checked` returns replace
    ``config.data`` (tests). ``stop_at`` ends the run early with a resumable checkpoint, as a kill would.
    """
    return fit(PurifierTask(config, arrays), config, out_dir, resume, stop_at, progress, config)
