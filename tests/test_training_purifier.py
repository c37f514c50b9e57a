import csv
import dataclasses

import numpy as np
import pytest
import torch

from maskpurify.batch import EyeBatch
from maskpurify.errors import UserError
from maskpurify.masks import EYE_LABELS
from maskpurify.nets.gaze import load_gaze_net
from maskpurify.nets.purifier import load_purifier
from maskpurify.nets.segmenter import build_segmenter, save_segmenter
from maskpurify.training.purifier import EncoderConfig, PurifierTrainConfig, train_purifier


def _arrays(seed, n=64):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 255, size=(n, 16, 24, 3), dtype=np.uint8)
    masks = np.zeros((n, 16, 24), np.uint8)
    masks[:, 4:12, 6:18] = 1
    masks[:, 6:10, 9:15] = 2
    masks[:, 7:9, 11:13] = 3
    return EyeBatch(images, masks, EYE_LABELS, gaze=np.zeros((n, 2), np.float32))


@pytest.fixture
def config(tmp_path):
    torch.manual_seed(0)
    seg = save_segmenter(tmp_path / "seg", build_segmenter())
    return PurifierTrainConfig(segmenter=str(seg), steps=6, batch_size=8, log_every=2, preview_every=3,
                               checkpoint_every=2, encoder=EncoderConfig(name="random"), device="cpu")


def test_purifier_trains_saves_and_previews(tmp_path, config):
    out = tmp_path / "run"
    summary = train_purifier(config, out, progress=False, arrays=(_arrays(0), _arrays(1)))
    assert summary["finished"]
    model = load_purifier(out / "purifier")
    assert model.spec.size == (16, 24) and model.spec.labels is EYE_LABELS  # the data it trained on, read back
    y = model(torch.rand(2, 3, 16, 24), torch.zeros(2, 16, 24, dtype=torch.long))
    assert y.shape == (2, 3, 16, 24)
    assert model.prior is None  # the shipped recipe has no gaze prior
    assert (out / "previews" / "step_000006.png").is_file()
    header = (out / "log.csv").read_text().splitlines()[0]
    for term in ("style_attention", "style_background", "content_full", "content_attention", "task", "tv"):
        assert term in header


def test_purifier_resume_matches_uninterrupted_run(tmp_path, config):
    arrays = (_arrays(0), _arrays(1))
    train_purifier(config, tmp_path / "a", progress=False, arrays=arrays)
    train_purifier(config, tmp_path / "b", progress=False, arrays=arrays, stop_at=3)
    assert not (tmp_path / "b" / "purifier.safetensors").exists()
    train_purifier(config, tmp_path / "b", progress=False, arrays=arrays)
    a = load_purifier(tmp_path / "a" / "purifier").state_dict()
    b = load_purifier(tmp_path / "b" / "purifier").state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key])


def test_no_mask_ablation_trains_without_task_loss(tmp_path, config):
    cfg = dataclasses.replace(config, net=dataclasses.replace(config.net, use_mask=False, gaze_prior=False),
                              loss=dataclasses.replace(config.loss, task=0.0))
    summary = train_purifier(cfg, tmp_path / "c", progress=False, arrays=(_arrays(0), _arrays(1)))
    assert summary["finished"]
    model = load_purifier(tmp_path / "c" / "purifier")
    assert not model.config.use_mask and model.prior is None


def test_gaze_prior_is_copied_in_and_needs_a_mask(tmp_path, config):
    cfg = dataclasses.replace(config, net=dataclasses.replace(config.net, gaze_prior=True))
    train_purifier(cfg, tmp_path / "p", progress=False, arrays=(_arrays(0), _arrays(1)))
    # the gaze prior is the label-map gaze net, copied into the checkpoint unchanged
    model = load_purifier(tmp_path / "p" / "purifier")
    torch.testing.assert_close(model.prior.state_dict(), load_gaze_net(config.gaze_from_labels).state_dict())
    cfg = dataclasses.replace(cfg, net=dataclasses.replace(cfg.net, use_mask=False))
    with pytest.raises(UserError, match="net.gaze_prior=false"):
        train_purifier(cfg, tmp_path / "d", progress=False, arrays=(_arrays(0), _arrays(1)))


def test_identity_gaze_terms_and_fullres_head_train(tmp_path, config):
    from maskpurify.nets.gaze import GazeNetConfig, build_gaze_net, save_gaze_net

    save_gaze_net(tmp_path / "reader", build_gaze_net(GazeNetConfig(hidden=8, input_size=(16, 24))))
    save_gaze_net(tmp_path / "labels", build_gaze_net(GazeNetConfig(hidden=8, inputs="labels",
                                                                    input_size=(16, 24))))
    cfg = dataclasses.replace(config, net=dataclasses.replace(config.net, head="fullres"),
                              loss=dataclasses.replace(config.loss, identity=5.0, gaze=2.0),
                              gaze_guide=str(tmp_path / "reader"), gaze_from_labels=str(tmp_path / "labels"))
    assert train_purifier(cfg, tmp_path / "d", progress=False, arrays=(_arrays(0), _arrays(1)))["finished"]
    assert load_purifier(tmp_path / "d" / "purifier").config.head == "fullres"
    with open(tmp_path / "d" / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert float(rows[-1]["identity"]) > 0 and float(rows[-1]["gaze"]) > 0
    swapped = dataclasses.replace(cfg, gaze_guide=str(tmp_path / "labels"), gaze_from_labels=str(tmp_path / "reader"))
    with pytest.raises(UserError, match="gaze guide"):
        train_purifier(swapped, tmp_path / "e", progress=False, arrays=(_arrays(0), _arrays(1)))


def test_identity_masks_from_the_segmenter_ignore_the_given_style_masks(tmp_path, config):
    """identity_masks=segmenter: the identity batch is purified with masks inferred from it, as at test time, so
    the style set's own masks (here wrong) reach no term once the style terms are off; with 'given' they do."""
    loss = dataclasses.replace(config.loss, style_attention=0.0, style_background=0.0, colour=0.0, identity=5.0)
    content, style = _arrays(0), _arrays(1)
    wrong = EyeBatch(style.images, np.zeros_like(style.masks), EYE_LABELS, gaze=style.gaze)

    def weights(identity_masks, style_batch, name):
        cfg = dataclasses.replace(config, loss=loss, identity_masks=identity_masks)
        train_purifier(cfg, tmp_path / name, progress=False, arrays=(content, style_batch))
        return load_purifier(tmp_path / name / "purifier").state_dict()

    inferred, inferred_wrong = weights("segmenter", style, "a"), weights("segmenter", wrong, "b")
    for key in inferred:
        torch.testing.assert_close(inferred[key], inferred_wrong[key], rtol=0, atol=0)
    given, given_wrong = weights("given", style, "c"), weights("given", wrong, "d")
    assert any(not torch.equal(given[key], given_wrong[key]) for key in given)
