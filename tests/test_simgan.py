import dataclasses
import json

import numpy as np
import pytest
import torch

from maskpurify.batch import EyeBatch
from maskpurify.cli import main
from maskpurify.errors import UserError
from maskpurify.masks import EYE_LABELS
from maskpurify.nets.gaze import GazeNetConfig, build_gaze_net, load_gaze_net, save_gaze_net
from maskpurify.nets.purifier import load_purifier
from maskpurify.training.gaze import GazeTrainConfig
from maskpurify.training.refined_gaze import shipped_gaze_config, train_refined_gaze
from maskpurify.purification import Purification
from maskpurify.training.simgan import HistoryBuffer, RefinerNetConfig, SimGANTrainConfig, train_simgan

H, W = 16, 24


def _arrays(seed, n=48, bright=0):
    rng = np.random.default_rng(seed)
    images = np.clip(rng.integers(0, 200, size=(n, H, W, 3)) + bright, 0, 255).astype(np.uint8)
    masks = np.zeros((n, H, W), np.uint8)
    masks[:, 4:12, 6:18] = 1
    masks[:, 6:10, 9:15] = 2
    gaze = rng.uniform(-0.5, 0.5, size=(n, 2)).astype(np.float32)
    return EyeBatch(images, masks, EYE_LABELS, gaze=gaze)


@pytest.fixture
def config():
    return SimGANTrainConfig(steps=4, pretrain_r=2, pretrain_d=2, batch_size=8, history_size=20, log_every=2,
                             preview_every=4, checkpoint_every=3, net=RefinerNetConfig(8, 1, 8), device="cpu")


@pytest.mark.parametrize("direction", ["syn2real", "real2syn"])
def test_simgan_trains_both_directions_and_saves_refiner(tmp_path, config, direction):
    out = tmp_path / direction
    cfg = dataclasses.replace(config, direction=direction)
    summary = train_simgan(cfg, out, progress=False, arrays=(_arrays(0), _arrays(1, bright=50)))
    assert summary["finished"] and summary["steps_done"] == cfg.total_steps == 8
    model = load_purifier(out / "refiner")
    assert not model.config.use_mask
    y = model(torch.rand(2, 3, H, W), torch.zeros(2, H, W, dtype=torch.long))
    assert y.shape == (2, 3, H, W)
    sidecar = json.loads((out / "refiner.json").read_text())
    assert sidecar["direction"] == direction and sidecar["trained"]["k_g"] == 2
    header = (out / "log.csv").read_text().splitlines()[0].split(",")
    for term in ("d_loss", "adv", "self_reg", "d_acc_real", "d_acc_fake", "phase"):
        assert term in header
    assert (out / "previews" / "step_000008.png").is_file()
    refined = Purification(model, batch_size=2).purify_arrays(_arrays(2, n=5).images)  # no mask needed
    assert refined.shape == (5, H, W, 3) and refined.dtype == np.uint8


def test_history_buffer_mixes_old_and_new():
    buf = HistoryBuffer(6, (3, 2, 2))
    gen = torch.Generator().manual_seed(0)
    assert buf.draw(3, gen).shape == (0, 3, 2, 2)
    buf.push(torch.full((4, 3, 2, 2), 10 / 255), gen)
    assert len(buf) == 4 and buf.draw(8, gen).shape[0] == 4
    buf.push(torch.full((4, 3, 2, 2), 200 / 255), gen)  # 2 fill the free slots, 2 overwrite random old ones
    assert len(buf) == 6
    values = sorted(int(v) for v in buf.images[:, 0, 0, 0])
    assert values.count(200) == 4 and values.count(10) == 2  # old and new samples live side by side
    drawn = buf.draw(6, gen)[:, 0, 0, 0].mul(255).round()
    assert set(drawn.tolist()) == {10.0, 200.0}


def test_simgan_resume_matches_uninterrupted_run(tmp_path, config):
    arrays = (_arrays(0), _arrays(1, bright=50))
    train_simgan(config, tmp_path / "a", progress=False, arrays=arrays)
    # stop inside the adversarial phase, with a part-filled history buffer in the checkpoint
    train_simgan(config, tmp_path / "b", progress=False, arrays=arrays, stop_at=5)
    assert not (tmp_path / "b" / "refiner.safetensors").exists()
    train_simgan(config, tmp_path / "b", progress=False, arrays=arrays)
    a = load_purifier(tmp_path / "a" / "refiner").state_dict()
    b = load_purifier(tmp_path / "b" / "refiner").state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key])
    from maskpurify.checkpoints import load_checkpoint
    ta, _ = load_checkpoint(tmp_path / "a" / "last")
    tb, _ = load_checkpoint(tmp_path / "b" / "last")
    for key in ("model.history.images", "model.history.count", "model.disc.net.0.weight"):
        torch.testing.assert_close(ta[key], tb[key])
    rows = (tmp_path / "b" / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["2", "4", "6", "8"]


def test_resume_refuses_other_direction(tmp_path, config):
    arrays = (_arrays(0), _arrays(1))
    train_simgan(config, tmp_path / "r", progress=False, arrays=arrays, stop_at=2)
    with pytest.raises(UserError, match="direction"):
        train_simgan(dataclasses.replace(config, direction="real2syn"), tmp_path / "r", progress=False,
                     arrays=arrays)


def test_refined_gaze_step_trains_on_refined_images(tmp_path, config):
    train_simgan(config, tmp_path / "s", progress=False, arrays=(_arrays(0), _arrays(1, bright=50)))
    gaze_cfg = GazeTrainConfig(model=GazeNetConfig(arch="lenet", input_size=(H, W)), steps=3, batch_size=8,
                               log_every=1, eval_every=3, checkpoint_every=2, device="cpu")
    summary = train_refined_gaze(tmp_path / "s" / "refiner", tmp_path / "g", gaze_cfg, progress=False,
                                 arrays=_arrays(3, n=40))
    assert summary["finished"]
    net = load_gaze_net(tmp_path / "g" / "gaze")
    assert net.config.arch == "lenet"
    meta = json.loads((tmp_path / "g" / "gaze.json").read_text())
    assert meta["refined_by"]["direction"] == "syn2real"
    assert (tmp_path / "g" / "refined_preview.png").is_file()


def test_shipped_gaze_config_reads_sidecar(tmp_path):
    assert shipped_gaze_config(tmp_path / "missing") == (GazeTrainConfig(), False)
    net = build_gaze_net(GazeNetConfig(arch="lenet", base_channels=8))
    save_gaze_net(tmp_path / "gaze", net, {"trained": {
        "steps": 77, "seed": 5, "data": "rendered synthetic n=500 seed=7 size=36x60",
        "command": "maskpurify train-gaze --out x --set steps=77 --set batch_size=64 --set lr=0.01"}})
    cfg, found = shipped_gaze_config(tmp_path / "gaze")
    assert found and cfg.steps == 77 and cfg.seed == 5 and cfg.model.arch == "lenet"
    assert cfg.batch_size == 64 and cfg.lr == 0.01 and cfg.model.base_channels == 8
    assert (cfg.data.render_n, cfg.data.render_seed, cfg.data.size) == (500, 7, "36x60")


def test_refined_gaze_refuses_real2syn_refiner(tmp_path, config):
    cfg = dataclasses.replace(config, direction="real2syn")
    train_simgan(cfg, tmp_path / "r", progress=False, arrays=(_arrays(0), _arrays(1)))
    with pytest.raises(UserError, match="real2syn"):
        train_refined_gaze(tmp_path / "r" / "refiner", tmp_path / "g", GazeTrainConfig(), arrays=_arrays(3))


def test_cli_rejects_train_gaze_for_real2syn(tmp_path, capsys):
    assert main(["train-simgan", "--direction", "real2syn", "--train-gaze", "--out", str(tmp_path)]) == 2
    assert "--train-gaze" in capsys.readouterr().err


def test_refine_dataset_cli_writes_a_readable_refined_copy(tmp_path):
    from maskpurify.nets.purifier import save_purifier
    from maskpurify.training.simgan import RefinerNetConfig, build_refiner
    from maskpurify.world.dataset import load_arrays, write_dataset

    data = write_dataset(tmp_path / "wild", "wild", n=6, size=(36, 60), seed=1, progress=False)
    refiner = build_refiner(RefinerNetConfig(8, 1))
    with torch.no_grad():
        refiner.out.bias.fill_(0.5)  # visibly brightens
    save_purifier(tmp_path / "refiner", refiner, {"direction": "real2syn"})
    assert main(["simgan-refine", "--refiner", str(tmp_path / "refiner"), "--data", str(data),
                 "--out", str(tmp_path / "refined"), "--device", "cpu"]) == 0
    raw, refined = load_arrays(data), load_arrays(tmp_path / "refined")
    np.testing.assert_array_equal(raw["gaze"], refined["gaze"])
    np.testing.assert_array_equal(raw["masks"], refined["masks"])
    assert refined["images"].mean() > raw["images"].mean()
    meta = json.loads((tmp_path / "refined" / "meta.json").read_text())
    assert meta["refined_by"]["direction"] == "real2syn" and meta["complete"]
    before = (tmp_path / "refined" / "shard-00000.npz").stat().st_mtime_ns
    assert main(["simgan-refine", "--refiner", str(tmp_path / "refiner"), "--data", str(data),
                 "--out", str(tmp_path / "refined")]) == 0  # the same run again: resumed, nothing redone
    assert (tmp_path / "refined" / "shard-00000.npz").stat().st_mtime_ns == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert main(["simgan-refine", "--refiner", str(tmp_path / "refiner"), "--data", str(data),
                 "--out", str(tmp_path / "other")]) == 2  # not ours, no --overwrite
