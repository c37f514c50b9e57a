"""README promise: the commands take ``--config`` / ``--set`` and write a run record (``config.yaml`` +
``run.json``) next to their outputs; a flag given on the command line wins over the config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from _cli import assert_one_line_refusal, run_cli
from maskpurify.checkpoints import WEIGHTS_DIR
from maskpurify.fileio import save_image
from maskpurify.world.dataset import write_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("records") / "set", "synthetic", 6, seed=5, shard_size=4,
                         progress=False)


def _record(folder: Path, prefix: str = "") -> tuple[dict, dict]:
    config = yaml.safe_load((folder / f"{prefix}config.yaml").read_text())
    return config, json.loads((folder / f"{prefix}run.json").read_text())


def test_purify_folder_and_dataset_take_config_and_write_a_record(tmp_path, dataset, ckpts):
    src = tmp_path / "in"
    save_image(src / "a.png", np.random.default_rng(0).integers(0, 255, (36, 60, 3), dtype=np.uint8))
    (tmp_path / "p.yaml").write_text(f"checkpoint: {ckpts['p']}\nsegmenter: {ckpts['s']}\nbatch_size: 2\n")
    argv = ["purify", "--quiet", "--input", str(src), "--out", str(tmp_path / "out"), "--config",
            str(tmp_path / "p.yaml"), "--set", "eye_check=false", "--batch-size", "3"]
    code, _, err = run_cli(argv)
    assert code == 0, err
    config, run = _record(tmp_path / "out")
    assert config["batch_size"] == 3 and config["eye_check"] is False and config["checkpoint"] == str(ckpts["p"])
    assert run["command"].startswith("maskpurify purify --quiet") and run["kind"] == "folder" and run["purified"] == 1
    code, _, err = run_cli(["purify", "--quiet", "--input", str(dataset), "--out", str(tmp_path / "data_out"),
                            "--set", f"checkpoint={ckpts['p']}"])
    assert code == 0, err
    config, run = _record(tmp_path / "data_out")
    assert config["batch_size"] == 64 and run["kind"] == "dataset" and run["samples"] == 6


@pytest.mark.parametrize("setting", ["batch_size=0", "eye=up", "nope=1", "face_crop_size=3"])
def test_purify_refuses_bad_settings_in_one_line(tmp_path, dataset, setting):
    assert_one_line_refusal(["purify", "--quiet", "--input", str(dataset), "--out", str(tmp_path / "out"), "--set",
                             setting], tmp_path)


def test_evaluate_commands_write_a_named_record_beside_their_report(tmp_path, dataset):
    out = tmp_path / "eval"
    code, _, err = run_cli(["evaluate-gaze", "--model", str(WEIGHTS_DIR / "gaze"), "--data", str(dataset), "--out",
                            str(out), "--name", "g", "--set", "batch_size=4", "--set", "device=cpu"])
    assert code == 0, err
    config, run = _record(out, "g.")
    assert config == {"batch_size": 4, "device": "cpu"} and run["report"] == str(out / "g.json")
    code, _, err = run_cli(["evaluate-segmenter", "--model", str(WEIGHTS_DIR / "segmenter"), "--data", str(dataset),
                            "--out", str(out), "--batch-size", "5"])
    assert code == 0, err
    assert _record(out, "segmenter_eval.")[0]["batch_size"] == 5 and (out / "g.run.json").is_file()
    for command, model in (("evaluate-gaze", "gaze"), ("evaluate-segmenter", "segmenter")):
        assert_one_line_refusal([command, "--model", str(WEIGHTS_DIR / model), "--data", str(dataset), "--out",
                                 str(out), "--name", "../outside"], tmp_path, match="outside the output folder")
        assert_one_line_refusal([command, "--model", str(WEIGHTS_DIR / model), "--data", str(dataset), "--set",
                                 "batch_size=-1"], tmp_path)


def test_simgan_refine_takes_config_and_writes_a_record(tmp_path, dataset):
    out = tmp_path / "refined"
    code, _, err = run_cli(["simgan-refine", "--refiner", str(WEIGHTS_DIR / "simgan_real2syn"), "--data",
                            str(dataset), "--out", str(out), "--set", "batch_size=4", "--device", "cpu"])
    assert code == 0, err
    config, run = _record(out)
    assert config == {"batch_size": 4, "device": "cpu"} and run["data"] == str(dataset)
    assert json.loads((out / "meta.json").read_text())["complete"]


def test_evaluate_reports_are_not_replaced_without_overwrite(tmp_path, capsys):
    from maskpurify.cli import main
    from maskpurify.nets.segmenter import build_segmenter, save_segmenter
    from maskpurify.world.dataset import write_dataset

    data = write_dataset(tmp_path / "data", "synthetic", 8, (36, 60), seed=1, progress=False)
    model = save_segmenter(tmp_path / "seg", build_segmenter())
    args = ["evaluate-segmenter", "--model", str(model.with_suffix("")), "--data", str(data),
            "--out", str(tmp_path / "eval")]
    assert main(args) == 0
    first = (tmp_path / "eval" / "segmenter_eval.json").read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overwrite" in err[0]
    assert (tmp_path / "eval" / "segmenter_eval.json").read_bytes() == first
    assert main(args + ["--overwrite"]) == 0
