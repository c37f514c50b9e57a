"""Trainers reading the real dataset formats (``format:`` sources) and the shipped configs in configs/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_formats_lpw import dark_masker, write_video  # tests/ is on sys.path (pytest's rootdir-less import)
from test_formats_mpiigaze import write_day
from test_formats_unityeyes import write_sample

from maskpurify.config import load_config
from maskpurify.errors import UserError
from maskpurify.formats import open_reader
from maskpurify.formats.arrays import reader_to_arrays, require_labels, source_arrays
from maskpurify.nets.segmenter import build_segmenter, save_segmenter
from maskpurify.training.gaze import GazeTrainConfig, train_gaze
from maskpurify.training.purifier import PurifierTrainConfig, train_purifier

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def unityeyes_folder(folder: Path, n: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    looks = ["(0.0000, 0.0000, -1.0000, 0.0000)", "(0.2000, -0.1000, -0.9747, 0.0000)"]
    for i in range(n):
        write_sample(folder, str(i + 1), looks[i % len(looks)])
    return folder


def test_reader_to_arrays_resizes_limits_and_fills_masks(tmp_path: Path) -> None:
    write_video(tmp_path / "lpw")
    reader = open_reader("lpw", tmp_path / "lpw")
    first = next(iter(reader))
    data = reader_to_arrays(reader, size=(18, 30), limit=3, masker=dark_masker, progress=False)
    assert data.images.shape == (3, 18, 30, 3) and data.images.dtype == np.uint8
    assert data.masks is not None and data.masks.shape == (3, 18, 30) and data.masks.dtype == np.uint8
    assert data.gaze is None
    h, w = first.image.shape[:2]
    expected = ((first.pupil_center[0] + 0.5) * 30 / w - 0.5, (first.pupil_center[1] + 0.5) * 18 / h - 0.5)
    np.testing.assert_allclose(data.pupil_center[0], expected, atol=1e-4)
    with pytest.raises(UserError, match="no gaze label"):
        require_labels(data, "gaze", "test")
    with pytest.raises(UserError, match=r"LPWReader\(.*segmenter"):
        reader_to_arrays(reader, size=(18, 30), limit=2, progress=False)
    assert reader_to_arrays(reader, size=(18, 30), limit=2, progress=False, need_masks=False).masks is None


def test_coco_source_is_refused_by_an_eye_trainer(tmp_path: Path) -> None:
    from test_formats_coco import write_coco

    from maskpurify.masks import EYE_LABELS

    with pytest.raises(UserError, match="background, attention"):
        source_arrays("coco", write_coco(tmp_path), {}, (36, 60), labels=EYE_LABELS, progress=False)


@pytest.mark.slow
def test_train_purifier_from_mpiigaze_and_unityeyes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    write_day(tmp_path / "mpii" / "p00", "day01", 3, 2)
    unityeyes_folder(tmp_path / "unity")
    seg = save_segmenter(tmp_path / "seg", build_segmenter())  # random init: masks are noise, shapes are real
    config_file = tmp_path / "purifier.yaml"
    config_file.write_text(yaml.safe_dump({"data": {
        "content": {"format": "mpiigaze", "path": str(tmp_path / "mpii"), "options": {"eyes": ["left", "right"]},
                    "limit": 4},
        "style": {"format": "unityeyes", "path": str(tmp_path / "unity")}}}))
    config = load_config(PurifierTrainConfig, config_file, [
        f"segmenter={seg}", "encoder.name=random", "steps=2", "batch_size=2", "log_every=1", "preview_every=2",
        "checkpoint_every=2", "device=cpu", "num_threads=1", "data.content.options.flip_right=false"])
    assert config.data.content.options == {"eyes": ["left", "right"], "flip_right": False}
    summary = train_purifier(config, tmp_path / "run", progress=False)
    assert summary["finished"] and (tmp_path / "run" / "purifier.safetensors").is_file()
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["data"]["content"]["format"] == "mpiigaze" and saved["data"]["content"]["limit"] == 4


@pytest.mark.slow
def test_train_gaze_from_unityeyes_folder(tmp_path: Path) -> None:
    torch.manual_seed(0)
    unityeyes_folder(tmp_path / "unity", n=3)
    config = load_config(GazeTrainConfig, CONFIGS / "gaze_unityeyes.yaml", [
        f"data.path={tmp_path / 'unity'}", "data.val_fraction=0.34", "steps=2", "batch_size=2", "log_every=1",
        "eval_every=2", "checkpoint_every=2", "device=cpu", "num_threads=1"])
    summary = train_gaze(config, tmp_path / "run", progress=False)
    assert summary["finished"] and np.isfinite(summary["val_mean_error_deg"])


def test_gaze_needs_gaze_labels(tmp_path: Path) -> None:
    write_video(tmp_path / "lpw")
    config = load_config(GazeTrainConfig, None, ["data.format=lpw", f"data.path={tmp_path / 'lpw'}", "steps=1",
                                                 "device=cpu"])
    with pytest.raises(UserError, match="no gaze label"):
        train_gaze(config, tmp_path / "run", progress=False)


def test_options_must_be_a_mapping() -> None:
    with pytest.raises(UserError, match="data.content.options' must be a mapping"):
        load_config(PurifierTrainConfig, None, ["data.content.options=[1, 2]"])


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path: Path) -> None:
    cls = GazeTrainConfig if path.name.startswith("gaze") else PurifierTrainConfig
    config = load_config(cls, path)
    sources = [config.data] if cls is GazeTrainConfig else [config.data.content, config.data.style]
    assert all(s.format and s.path for s in sources)


def test_configs_are_shipped() -> None:
    assert {"purifier_mpiigaze_unityeyes.yaml", "purifier_lpw_unityeyes.yaml", "gaze_unityeyes.yaml"} <= \
        {p.name for p in CONFIGS.glob("*.yaml")}


def _coco_purifier_config(tmp_path: Path, overrides: list[str]) -> PurifierTrainConfig:
    from test_formats_coco import write_coco

    annotations = write_coco(tmp_path / "coco")
    return load_config(PurifierTrainConfig, CONFIGS / "purifier_coco.yaml", [
        f"data.content.path={annotations}", f"data.content.options.images={tmp_path / 'coco' / 'images'}",
        f"data.style.path={annotations}", f"data.style.options.images={tmp_path / 'coco' / 'images'}",
        "data.size=32x32", "encoder.name=random", "steps=2", "batch_size=2", "log_every=1", "preview_every=2",
        "checkpoint_every=2", "device=cpu", "num_threads=1", *overrides])


def test_train_two_label_purifier_from_coco(tmp_path: Path) -> None:
    from maskpurify.purification import Purification

    torch.manual_seed(0)
    config = _coco_purifier_config(tmp_path, [])
    assert config.net.num_labels == 2 and config.net.attention_labels == (1,) and config.loss.task == 0
    summary = train_purifier(config, tmp_path / "run", progress=False)
    assert summary["finished"]
    path = tmp_path / "run" / "purifier"
    sidecar = yaml.safe_load((tmp_path / "run" / "purifier.json").read_text())
    assert sidecar["config"]["num_labels"] == 2 and list(sidecar["config"]["attention_labels"]) == [1]
    images = np.full((2, 32, 32, 3), 100, np.uint8)
    masks = np.zeros((2, 32, 32), np.uint8)
    masks[:, 8:20, 8:20] = 1
    out = Purification.load(path, False).purify_arrays(images, masks)
    assert out.shape == images.shape and out.dtype == np.uint8


def test_two_label_purifier_refuses_the_eye_segmenter_task_loss(tmp_path: Path) -> None:
    seg = save_segmenter(tmp_path / "seg", build_segmenter())  # 4 classes, like the shipped eye segmenter
    config = _coco_purifier_config(tmp_path, [f"segmenter={seg}", "loss.task=50"])
    with pytest.raises(UserError, match="loss.task=0"):
        train_purifier(config, tmp_path / "run", progress=False)


def test_two_label_purifier_refuses_the_eye_gaze_guide(tmp_path: Path) -> None:
    config = _coco_purifier_config(tmp_path, ["loss.gaze=10"])
    with pytest.raises(UserError, match="loss.gaze=0"):
        train_purifier(config, tmp_path / "run", progress=False)
