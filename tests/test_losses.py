"""Purifier losses: masked Grams, region style, content, TV, task loss and the composer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from maskpurify.errors import UserError
from maskpurify.losses import (TERMS, LabelMapGaze, LossConfig, LossInputs, TaskGuide, content_loss, masked_gram,
                               region_weights, style_loss_region, task_loss, total_variation)
from maskpurify.nets.encoders import build_encoder
from maskpurify.nets.gaze import GazeNetConfig, build_gaze_net


def _mask(n: int, h: int = 36, w: int = 60) -> torch.Tensor:
    mask = torch.zeros(n, h, w, dtype=torch.int64)
    mask[:, 8:28, 10:50] = 1
    mask[:, 12:24, 24:36] = 2
    mask[:, 16:20, 28:32] = 3
    return mask


def _region(mask: torch.Tensor) -> torch.Tensor:
    return (mask > 0).unsqueeze(1).float()


def test_region_weights_area_and_erosion() -> None:
    region = _region(_mask(1))
    w = region_weights(region, (9, 15))
    assert w.shape == (1, 1, 9, 15) and w.max() == 1 and ((w > 0) & (w < 1)).any()  # fractional at the edge
    assert torch.isclose(w.mean(), region.mean())  # area resize keeps the covered fraction
    eroded = region_weights(region, (36, 60), erode=2)
    assert eroded.sum() == (20 - 4) * (40 - 4)
    assert region_weights(region, (72, 120)).shape[-2:] == (72, 120)


def test_masked_gram_all_ones_is_plain_gram() -> None:
    f = torch.randn(2, 5, 6, 7)
    flat = f.flatten(2)
    plain = flat @ flat.transpose(1, 2) / (5 * 6 * 7)
    assert torch.allclose(masked_gram(f, torch.ones(2, 1, 6, 7)), plain, atol=1e-6)


def test_masked_gram_ignores_pixels_outside_region() -> None:
    f = torch.randn(1, 4, 6, 6)
    w = torch.zeros(1, 1, 6, 6)
    w[..., :3, :] = 1
    g = f.clone()
    g[..., 3:, :] = torch.randn(1, 4, 3, 6) * 10
    assert torch.allclose(masked_gram(f, w), masked_gram(g, w))
    assert torch.isfinite(masked_gram(f, torch.zeros_like(w))).all()


def test_content_loss_zero_for_identical_and_attention_ignores_background() -> None:
    enc = build_encoder("random")
    x = torch.rand(2, 3, 36, 60)
    region = _region(_mask(2))
    feats = enc(x)
    layers = enc.content_layers
    assert content_loss(feats, feats, layers) == 0
    assert content_loss(feats, feats, layers, region) == 0
    # Features far from the region (a corner change) leave the attention content untouched
    y = x.clone()
    y[:, :, :2, :3] = 1 - y[:, :, :2, :3]
    fy = enc(y)
    assert content_loss(fy, feats, layers) > 0
    assert content_loss(fy, feats, layers, region) == 0


def test_style_loss_zero_when_output_is_the_style() -> None:
    enc = build_encoder("random")
    x = torch.rand(1, 3, 36, 60)
    region = _region(_mask(1))
    feats = enc(x)
    assert style_loss_region(feats, feats, region, region, enc.style_layers) < 1e-10
    # background pixels of the output do not matter to the attention style loss
    y = x.clone()
    y[:, :, :3, :] = torch.rand(1, 3, 3, 60)
    fy = enc(y)
    assert style_loss_region(fy, feats, region, region, enc.style_layers, erode=2) < 1e-10
    assert style_loss_region(fy, feats, 1 - region, 1 - region, enc.style_layers) > 0


def test_style_loss_unpaired_target_is_pooled_over_style_batch() -> None:
    enc = build_encoder("random")
    region = _region(_mask(2))
    style = torch.rand(2, 3, 36, 60)
    out = style.flip(0).clone().requires_grad_(True)  # the same images, in the other order
    loss = style_loss_region(enc(out), enc(style), region, region, enc.style_layers)
    loss.backward()
    assert loss > 0 and out.grad is not None and out.grad.abs().sum() > 0
    # order of the style batch does not matter
    again = style_loss_region(enc(out), enc(style.flip(0)), region, region, enc.style_layers)
    assert torch.isclose(loss, again, rtol=1e-5)


def test_empty_regions_are_safe() -> None:
    enc = build_encoder("random")
    out = torch.rand(2, 3, 36, 60, requires_grad=True)
    feats = enc(out)
    empty = torch.zeros(2, 1, 36, 60)
    full = torch.ones(2, 1, 36, 60)
    loss = style_loss_region(feats, enc(torch.rand(2, 3, 36, 60)), empty, full, enc.style_layers)
    loss = loss + style_loss_region(feats, feats, full, empty, enc.style_layers)
    loss = loss + content_loss(feats, enc(torch.rand(2, 3, 36, 60)), enc.content_layers, empty)
    assert style_loss_region(feats, feats, full, empty, enc.style_layers) == 0  # no style target at all
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(out.grad).all()


def test_total_variation() -> None:
    assert total_variation(torch.full((1, 3, 5, 5), 0.3)) == 0
    assert total_variation(torch.rand(1, 3, 5, 5)) > 0


def test_task_loss_lower_when_logits_agree() -> None:
    mask = _mask(2)
    agree = nn.functional.one_hot(mask, 4).permute(0, 3, 1, 2).float() * 5
    disagree = agree.roll(1, dims=1)
    assert task_loss(agree, mask) < task_loss(disagree, mask)
    weighted = task_loss(disagree, mask, class_weights=(1, 1, 4, 4))
    assert torch.isfinite(weighted)
    with pytest.raises(UserError, match="class weights"):
        task_loss(agree, mask, class_weights=(1, 1))


class _Oracle(nn.Module):
    """A stand-in segmenter: dark pixels are 'pupil', everything else 'skin' (enough to pass gradients)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grey = x.mean(1, keepdim=True)
        return torch.cat([grey, grey * 0, grey * 0, 1 - grey], 1) * 4


def test_purifier_loss_logs_every_term_and_ablates() -> None:
    from maskpurify.losses import purifier_loss

    enc = build_encoder("random")
    mask = _mask(2)
    image = torch.rand(2, 3, 36, 60)
    output = (image * 0.9).requires_grad_(True)
    style, style_mask = torch.rand(3, 3, 36, 60), _mask(3)
    config = LossConfig(style_attention=2, style_background=1, content_full=1, content_attention=1, task=0.5, tv=3,
                        identity=4, gaze=2, colour=1.5, style_per_label=False)
    style_output = (style * 0.8).requires_grad_(True)
    torch.manual_seed(0)
    guide = TaskGuide(build_gaze_net(GazeNetConfig(hidden=8)),
                      LabelMapGaze(build_gaze_net(GazeNetConfig(hidden=8, inputs="labels"))))
    inputs = LossInputs(output, image, mask, style, style_mask, style_output)
    total, logs = purifier_loss(config, enc, segmenter=_Oracle(), gaze_guide=guide)(inputs)
    total.backward()
    assert output.grad is not None and output.grad.abs().sum() > 0
    assert style_output.grad is not None and style_output.grad.abs().sum() > 0
    assert logs["identity"] == pytest.approx((style * 0.2).abs().mean().item(), rel=1e-5)
    for term in TERMS:
        assert logs[term] > 0 and logs["w_" + term] == pytest.approx(getattr(config, term) * logs[term])
    assert logs["total"] == pytest.approx(sum(logs["w_" + t] for t in TERMS), rel=1e-5)

    ablated = LossConfig(style_attention=0, task=0, identity=0, gaze=0)
    total, logs = purifier_loss(ablated, enc)(LossInputs(output, image, mask, style, style_mask))
    assert logs["style_attention"] == 0 and logs["task"] == 0 and logs["style_background"] > 0
    assert logs["identity"] == 0
    with pytest.raises(UserError, match="no segmenter"):
        purifier_loss(LossConfig(), enc, gaze_guide=guide)
    with pytest.raises(UserError, match="no gaze guide"):
        purifier_loss(LossConfig(), enc, segmenter=_Oracle())
    with pytest.raises(UserError, match="negative"):
        purifier_loss(LossConfig(tv=-1, task=0, gaze=0), enc)
    with pytest.raises(ValueError, match="style_output"):
        purifier_loss(LossConfig(task=0, gaze=0), enc)(LossInputs(output, image, mask, style, style_mask))


def test_terms_are_the_weights_of_the_loss_config() -> None:
    """One list of terms: the weight fields of LossConfig, each a key ``loss.<term>`` an ablation sets to 0."""
    assert TERMS == ("style_attention", "style_background", "content_full", "content_attention", "task", "tv",
                     "identity", "gaze", "colour")
    assert all(getattr(LossConfig(), term) > 0 for term in TERMS)


def test_per_label_attention_style_separates_sclera_iris_and_pupil():
    """Per-label style sees a swap of iris and sclera appearance that the attention-wide Gram cannot."""
    from maskpurify.losses import RegionStyle
    from maskpurify.nets.encoders import build_encoder

    encoder = build_encoder("random", upsample=1)
    mask = torch.zeros(2, 24, 40, dtype=torch.long)
    mask[:, 6:18, 8:32] = 1
    mask[:, 8:16, 14:26] = 2
    mask[:, 10:14, 18:22] = 3
    colours = {0: (0.8, 0.6, 0.5), 1: (0.95, 0.95, 0.95), 2: (0.2, 0.4, 0.8), 3: (0.02, 0.02, 0.02)}

    def paint(lut):
        img = torch.zeros(2, 3, 24, 40)
        for label, rgb in lut.items():
            img += (mask == label).unsqueeze(1) * torch.tensor(rgb).view(1, 3, 1, 1)
        return img

    style = paint(colours)
    swapped = paint({**colours, 1: colours[2], 2: colours[1]})
    gaps = {}
    for per_label in (False, True):
        loss = RegionStyle(encoder, "attention", (1, 2, 3), erode=0, per_label=per_label)
        same = loss(LossInputs(style, style, mask, style, mask))
        gaps[per_label] = float(loss(LossInputs(swapped, swapped, mask, style, mask)))
        assert float(same) < 1e-6
        assert gaps[per_label] > 0
    assert gaps[True] > gaps[False]


def test_region_colour_matches_each_regions_mean_and_spread() -> None:
    """The colour term is 0 for an output with the style batch's per-region colours, and a shift of one region's
    colour by d costs d / (number of regions), with gradient only inside that region."""
    from maskpurify.losses import RegionColour

    mask = _mask(2)
    colours = torch.tensor([[0.8, 0.6, 0.5], [0.9, 0.9, 0.9], [0.3, 0.4, 0.7], [0.05, 0.05, 0.05]])
    style = colours[mask].permute(0, 3, 1, 2).contiguous()
    term = RegionColour((1, 2, 3))
    assert float(term(LossInputs(style.clone(), style, mask, style, mask))) < 1e-5
    shifted = (style + 0.1 * (mask == 2).unsqueeze(1)).requires_grad_(True)
    value = term(LossInputs(shifted, style, mask, style, mask))
    assert value.item() == pytest.approx(0.1 / 4, abs=1e-4)
    value.backward()
    moved = shifted.grad.abs().sum(1) > 0
    assert moved[mask == 2].all() and not moved[mask != 2].any()


def test_gaze_guide_keeps_the_identity_batchs_gaze() -> None:
    """keep_identity: the identity batch's output must read like its clean original; an unchanged one adds
    nothing, a changed one adds the readings' gap and gets gradient. Off, the identity batch is not read."""
    torch.manual_seed(0)
    reader, from_labels = build_gaze_net(GazeNetConfig(hidden=8)), \
        build_gaze_net(GazeNetConfig(hidden=8, inputs="labels"))
    mask, image, style = _mask(2), torch.rand(2, 3, 36, 60), torch.rand(2, 3, 36, 60)
    plain = TaskGuide(reader, LabelMapGaze(from_labels))
    keeping = TaskGuide(reader, LabelMapGaze(from_labels), keep_identity=True)
    base = float(plain(LossInputs(image, image, mask, style, mask)))
    assert float(keeping(LossInputs(image, image, mask, style, mask, style.clone()))) == pytest.approx(base, abs=1e-6)
    changed = style.flip(-1).requires_grad_(True)
    value = keeping(LossInputs(image, image, mask, style, mask, changed))
    gap = (reader(style.flip(-1)) - reader(style)).abs().mean()
    assert value.item() == pytest.approx(base + gap.item(), rel=1e-5) and gap.item() > 0
    value.backward()
    assert changed.grad is not None and changed.grad.abs().sum() > 0
    assert float(plain(LossInputs(image, image, mask, style, mask, changed))) == pytest.approx(base, abs=1e-6)


def test_guide_mask_weight_scales_only_the_mask_part() -> None:
    """mask_weight multiplies what the mask implies; the identity part keeps its own weight."""
    torch.manual_seed(0)
    reader, from_labels = build_gaze_net(GazeNetConfig(hidden=8)), \
        build_gaze_net(GazeNetConfig(hidden=8, inputs="labels"))
    mask, image, style = _mask(2), torch.rand(2, 3, 36, 60), torch.rand(2, 3, 36, 60)
    inputs = LossInputs(image, image, mask, style, mask, style.flip(-1))
    full = float(TaskGuide(reader, LabelMapGaze(from_labels), keep_identity=True)(inputs))
    identity = float(TaskGuide(reader, None, keep_identity=True)(inputs))
    quarter = float(TaskGuide(reader, LabelMapGaze(from_labels), keep_identity=True, mask_weight=0.25)(inputs))
    assert full > identity > 0
    assert quarter == pytest.approx(identity + 0.25 * (full - identity), rel=1e-5)
