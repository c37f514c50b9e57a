"""The real-data rule: wild renders stand in for real images, so no trainer learns from their labels."""

import json

import numpy as np
import pytest
import torch

from maskpurify.batch import EyeBatch
from maskpurify.cli import main
from maskpurify.errors import UserError
from maskpurify.masks import EYE_LABELS
from maskpurify.nets.purifier import load_purifier
from maskpurify.nets.segmenter import build_segmenter, load_segmenter, save_segmenter
from maskpurify.training.purifier import EncoderConfig, PurifierTrainConfig, train_purifier
from maskpurify.training.real_data import dataset_domain, is_real_standin, unlabelled
from maskpurify.training.common import DistContext
from maskpurify.training.loop import Run
from maskpurify.training.segmenter import SegmenterTrainConfig, train_segmenter
from maskpurify.training.simgan import SimGANTrainConfig
from maskpurify.training.sources import SourceConfig, load_source
from maskpurify.world.dataset import shard_name, write_dataset


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("rule")
    wild = write_dataset(root / "wild", "wild", 16, (36, 60), seed=5, progress=False)
    synthetic = write_dataset(root / "synthetic", "synthetic", 16, (36, 60), seed=6, progress=False)
    # the same wild images with other labels: masks shifted, gaze and landmarks changed
    tampered = write_dataset(root / "tampered", "wild", 16, (36, 60), seed=5, progress=False)
    shard = tampered / shard_name(0)
    with np.load(shard) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["masks"] = np.roll(arrays["masks"], 7, axis=2)
    arrays["gaze"] = -arrays["gaze"]
    np.savez(shard, **arrays)
    return {"wild": wild, "synthetic": synthetic, "tampered": tampered}


def test_domain_detection(datasets, tmp_path):
    assert dataset_domain(datasets["wild"]) == "wild" and is_real_standin(datasets["wild"])
    assert not is_real_standin(datasets["synthetic"])
    assert dataset_domain(tmp_path) is None and not is_real_standin(tmp_path)
    assert is_real_standin(None, "wild") and not is_real_standin(None, "synthetic")
    images = np.zeros((2, 4, 6, 3), np.uint8)
    kept = unlabelled(EyeBatch(images, np.zeros((2, 4, 6), np.uint8), EYE_LABELS, gaze=np.zeros((2, 2), np.float32)))
    assert kept.images is images and kept.masks is None and kept.gaze is None


def _purifier_config(tmp_path, datasets, content):
    torch.manual_seed(0)
    seg = save_segmenter(tmp_path / "seg", build_segmenter())
    config = PurifierTrainConfig(segmenter=str(seg), steps=2, batch_size=4, log_every=1, preview_every=100,
                                 checkpoint_every=100, encoder=EncoderConfig(name="random"), device="cpu",
                                 num_threads=1)
    config.data.content = SourceConfig(path=str(content))
    config.data.style = SourceConfig(path=str(datasets["synthetic"]))
    return config


def test_purifier_refuses_exact_wild_masks(tmp_path, datasets):
    config = _purifier_config(tmp_path, datasets, datasets["wild"])
    config.data.content_masks = "given"
    with pytest.raises(UserError, match="real-data rule"):
        train_purifier(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "purifier.safetensors").exists()


def test_purifier_ignores_wild_labels(tmp_path, datasets):
    """Two wild sources with the same images and different labels train the same weights."""
    weights = []
    for name in ("wild", "tampered"):
        config = _purifier_config(tmp_path, datasets, datasets[name])
        assert config.data.content_masks == "segmenter"
        train_purifier(config, tmp_path / name, progress=False)
        weights.append(load_purifier(tmp_path / name / "purifier").state_dict())
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key])


def test_simgan_reads_wild_as_unlabelled(tmp_path, datasets):
    config = SimGANTrainConfig()
    config.data.wild.path = str(datasets["wild"])
    run = Run(DistContext(), tmp_path, progress=False)
    arrays = load_source(config.data.wild, "wild", (36, 60), run, "data.wild.path", unlabelled_role=True)
    assert arrays.masks is None and arrays.gaze is None and not arrays.landmarks
    synthetic = load_source(SourceConfig(path=str(datasets["synthetic"])), "synthetic", (36, 60), run,
                            "data.synthetic.path")
    assert synthetic.masks is not None and synthetic.gaze is not None


@pytest.mark.parametrize("command", ["train-gaze", "train-segmenter"])
def test_supervised_trainers_refuse_wild(tmp_path, datasets, capsys, command):
    out = tmp_path / command
    assert main([command, "--data", str(datasets["wild"]), "--out", str(out), "--quiet",
                 "--set", "steps=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "real-data rule" in err[0] and str(datasets["wild"]) in err[0]
    assert not any(out.glob("*.safetensors"))


def test_segmenter_self_training_ignores_wild_labels(tmp_path, datasets):
    """Self-training reads wild renders as images only: the same images with other labels train the same weights,
    and the run starts from its init checkpoint and moves away from it."""
    torch.manual_seed(0)
    init = save_segmenter(tmp_path / "init", build_segmenter(SegmenterTrainConfig().model))
    synthetic = load_source(SourceConfig(path=str(datasets["synthetic"])), "synthetic", (36, 60),
                            Run(DistContext(), tmp_path, progress=False), "data.path", supervised=True)
    weights = []
    for name in ("wild", "tampered"):
        config = SegmenterTrainConfig(steps=2, batch_size=4, log_every=1, checkpoint_every=100, eval_every=0,
                                      device="cpu", num_threads=1, init=str(init).removesuffix(".safetensors"),
                                      self_training=1.0, unlabelled=SourceConfig(path=str(datasets[name])))
        train_segmenter(config, tmp_path / name, arrays=synthetic, progress=False)
        weights.append(load_segmenter(tmp_path / name / "segmenter").state_dict())
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key])
    start = load_segmenter(tmp_path / "init").state_dict()
    moved = [k for k in start if start[k].is_floating_point() and not torch.equal(start[k], weights[0][k])]
    assert moved and all(torch.allclose(start[k], weights[0][k], atol=0.05) for k in moved)


def test_segmenter_self_trains_on_a_folder_of_unlabelled_crops(tmp_path, datasets):
    """A user's real eyes are a folder of crops without masks: self-training reads them as images only."""
    import cv2

    synthetic = load_source(SourceConfig(path=str(datasets["synthetic"])), "synthetic", (36, 60),
                            Run(DistContext(), tmp_path, progress=False), "data.path", supervised=True)
    folder = tmp_path / "crops"
    folder.mkdir()
    for i, image in enumerate(synthetic.images[:8]):
        cv2.imwrite(str(folder / f"{i}.png"), image[..., ::-1])
    config = SegmenterTrainConfig(steps=2, batch_size=4, log_every=1, checkpoint_every=100, device="cpu",
                                  num_threads=1, self_training=1.0,
                                  unlabelled=SourceConfig(path=str(folder), format="folder"))
    summary = train_segmenter(config, tmp_path / "run", arrays=synthetic, progress=False)
    assert summary["finished"]
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert "self_training" in rows[0] and len(rows) == 3


def test_segmenter_distils_a_fixed_teacher_into_a_cheaper_network(tmp_path, datasets):
    """With ``teacher`` a fixed segmenter labels the unlabelled wild images (their own labels still unread: the
    tampered copy trains the same weights); the network it distils into, here the half-resolution one, is what
    is saved, and the teacher's file is left as it was."""
    from maskpurify.nets.segmenter import SegmenterConfig

    torch.manual_seed(0)
    teacher = save_segmenter(tmp_path / "teacher", build_segmenter(SegmenterTrainConfig().model))
    before = teacher.read_bytes()
    synthetic = load_source(SourceConfig(path=str(datasets["synthetic"])), "synthetic", (36, 60),
                            Run(DistContext(), tmp_path, progress=False), "data.path", supervised=True)
    weights = []
    for name in ("wild", "tampered"):
        config = SegmenterTrainConfig(steps=2, batch_size=4, log_every=1, checkpoint_every=100, eval_every=0,
                                      device="cpu", num_threads=1, self_training=1.0, seed=3,
                                      model=SegmenterConfig(base_channels=8, levels=4, stem=2),
                                      teacher=str(teacher).removesuffix(".safetensors"),
                                      unlabelled=SourceConfig(path=str(datasets[name])))
        train_segmenter(config, tmp_path / name, arrays=synthetic, progress=False)
        student = load_segmenter(tmp_path / name / "segmenter")
        assert student.config.stem == 2
        sidecar = json.loads((tmp_path / name / "segmenter.json").read_text())
        assert sidecar["trained"]["teacher"] == config.teacher
        weights.append(student.state_dict())
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key])
    assert teacher.read_bytes() == before
    with pytest.raises(UserError, match="predicts 4 labels"):
        train_segmenter(SegmenterTrainConfig(steps=1, batch_size=4, device="cpu", num_threads=1, self_training=1.0,
                                             model=SegmenterConfig(num_classes=2, base_channels=4, levels=2),
                                             teacher=str(teacher).removesuffix(".safetensors"),
                                             unlabelled=SourceConfig(path=str(datasets["wild"]))),
                        tmp_path / "mismatch", arrays=synthetic, progress=False)
