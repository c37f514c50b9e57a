"""The working size and label set every network's sidecar records (:class:`maskpurify.masks.DataSpec`)."""

import json
import shutil

import numpy as np
import pytest
import torch

from maskpurify.batch import EyeBatch
from maskpurify.checkpoints import WEIGHTS_DIR, checkpoint_paths
from maskpurify.errors import UserError
from maskpurify.masks import BINARY_LABELS, EYE_LABELS, DataSpec, LabelSet
from maskpurify.nets.gaze import GazeNetConfig, build_gaze_net, load_gaze_net, save_gaze_net
from maskpurify.nets.purifier import Purifier, PurifierConfig, load_purifier, save_purifier
from maskpurify.nets.segmenter import SegmenterConfig, build_segmenter, load_segmenter, save_segmenter
from maskpurify.purification import Purification

LOADERS = {"purifier": load_purifier, "segmenter": load_segmenter, "gaze": load_gaze_net}


@pytest.mark.parametrize("sidecar", sorted(WEIGHTS_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_shipped_sidecars_with_or_without_the_fields_are_36x60_eyes(sidecar, tmp_path):
    meta = json.loads(sidecar.read_text())
    model = LOADERS[meta["kind"]](sidecar.with_suffix(""))
    assert model.spec.size == (36, 60) and model.spec.labels is EYE_LABELS
    # the same checkpoint as written before the fields existed
    old = {k: v for k, v in meta.items() if k not in ("working_size", "labels")}
    (tmp_path / sidecar.name).write_text(json.dumps(old))
    shutil.copy(sidecar.with_suffix(".safetensors"), tmp_path / sidecar.with_suffix(".safetensors").name)
    model = LOADERS[meta["kind"]](tmp_path / sidecar.stem)
    assert model.spec.size == (36, 60) and model.spec.labels is EYE_LABELS


def test_the_engine_takes_its_working_size_from_the_purifier_checkpoint(tmp_path):
    assert Purification.load(segmenter=False).working_size == (36, 60)
    net = Purifier(PurifierConfig(base_channels=4, num_res_blocks=0, num_labels=2, attention_labels=(1,),
                                  gaze_prior=None))
    net.spec = DataSpec((24, 40), BINARY_LABELS)
    save_purifier(tmp_path / "p", net)
    meta = json.loads(checkpoint_paths(tmp_path / "p")[1].read_text())
    assert meta["working_size"] == [24, 40]
    assert meta["labels"] == {"names": ["background", "attention"], "attention": [1]}
    engine = Purification.load(tmp_path / "p", segmenter=False)
    assert engine.working_size == (24, 40) and engine.labels is BINARY_LABELS


def test_segmenter_and_gaze_sidecars_round_trip(tmp_path):
    seg = build_segmenter(SegmenterConfig(num_classes=3, base_channels=4, levels=2))
    assert seg.spec.labels.attention == (1, 2)
    named = LabelSet(("bg", "lid", "iris"), (1, 2), ((0, 0, 0), (9, 9, 9), (1, 2, 3)))
    seg.spec = DataSpec((18, 30), named)
    save_segmenter(tmp_path / "s", seg)
    assert load_segmenter(tmp_path / "s").spec == DataSpec((18, 30), named)
    gaze = build_gaze_net(GazeNetConfig(hidden=8, input_size=(16, 24)))
    assert gaze.spec.size == (16, 24)
    save_gaze_net(tmp_path / "g", gaze)
    assert load_gaze_net(tmp_path / "g").spec == DataSpec((16, 24), EYE_LABELS)


def test_a_legacy_segmenter_label_list_is_the_eye_label_set():
    spec = DataSpec.from_meta({"labels": ["skin", "sclera", "iris", "pupil"]}, "seg.json", DataSpec())
    assert spec.labels is EYE_LABELS and spec.size == (36, 60)


@pytest.mark.parametrize("meta", [{"working_size": [36]}, {"working_size": "36x60"}, {"working_size": [0, 60]},
                                  {"working_size": [True, 60]}, {"labels": {"names": ["a"]}},
                                  {"labels": {"names": ["a", "b"], "attention": [5]}}, {"labels": 3}])
def test_a_bad_spec_in_a_sidecar_is_one_clear_error(meta):
    with pytest.raises(UserError) as err:
        DataSpec.from_meta(meta, "x.json", DataSpec())
    assert "x.json" in str(err.value) or "label set" in str(err.value)
    assert "\n" not in str(err.value)


def test_a_trained_segmenter_records_its_data_size(tmp_path):
    from maskpurify.training.segmenter import SegmenterTrainConfig, train_segmenter

    rng = np.random.default_rng(0)
    masks = np.zeros((16, 20, 32), np.uint8)
    masks[:, 5:15, 8:24] = 1
    arrays = EyeBatch(rng.integers(0, 256, (16, 20, 32, 3), dtype=np.uint8), masks, EYE_LABELS)
    torch.manual_seed(0)
    train_segmenter(SegmenterTrainConfig(steps=2, batch_size=4, device="cpu", log_every=1), tmp_path, progress=False,
                    arrays=arrays)
    assert load_segmenter(tmp_path / "segmenter").spec.size == (20, 32)
