import csv

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from maskpurify.batch import EyeBatch
from maskpurify.config import from_dict
from maskpurify.masks import EYE_LABELS
from maskpurify.training.common import CSVLogger, Checkpointer, MinibatchSampler, init_distributed, lr_at, \
    seed_everything
from maskpurify.training.gaze import GazeTrainConfig, train_gaze
from maskpurify.training.segmenter import SegmenterTrainConfig, train_segmenter


def _arrays(n=160, seed=0):
    rng = np.random.default_rng(seed)
    gaze = rng.normal(0, 0.2, (n, 2)).astype(np.float32)
    images = rng.integers(0, 255, (n, 36, 60, 3), dtype=np.uint8)
    images[:, 10:20, 20:30] = (127 + 300 * gaze[:, :1, None]).clip(0, 255).astype(np.uint8)[..., None]
    masks = rng.integers(0, 4, (n, 36, 60), dtype=np.uint8)
    return EyeBatch(images, masks, EYE_LABELS, gaze=gaze, head_pose=rng.normal(0, 0.1, (n, 2)).astype(np.float32),
                    pupil_center=rng.uniform(10, 50, (n, 2)).astype(np.float32))


GAZE = {"steps": 12, "batch_size": 16, "log_every": 4, "eval_every": 8, "checkpoint_every": 3, "warmup": 2,
        "model": {"arch": "lenet", "hidden": 32, "use_head_pose": True, "dropout": 0.2}, "augment": 0.3}


def _rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_gaze_training_resumes_exactly(tmp_path):
    data = _arrays()
    config = from_dict(GazeTrainConfig, GAZE)
    full = train_gaze(config, tmp_path / "full", arrays=data, progress=False)
    assert full["finished"]
    part = train_gaze(config, tmp_path / "cut", arrays=data, progress=False, stop_at=7)
    assert part == {"steps_done": 7, "finished": False}
    assert not (tmp_path / "cut" / "gaze.safetensors").exists()
    assert Checkpointer(tmp_path / "cut").exists()
    resumed = train_gaze(config, tmp_path / "cut", arrays=data, progress=False)
    assert resumed["finished"]
    a = load_file(tmp_path / "full" / "gaze.safetensors")
    b = load_file(tmp_path / "cut" / "gaze.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    steps = [int(r["step"]) for r in _rows(tmp_path / "cut" / "log.csv")]
    assert steps == [4, 8, 12]
    full_rows, cut_rows = _rows(tmp_path / "full" / "log.csv"), _rows(tmp_path / "cut" / "log.csv")
    assert full_rows[-1]["val_err_deg"] == cut_rows[-1]["val_err_deg"]
    for name in ("config.yaml", "run.json", "gaze.json", "last.json"):
        assert (tmp_path / "cut" / name).is_file()


def test_segmenter_training_resumes_exactly(tmp_path):
    data = _arrays(64)
    config = from_dict(SegmenterTrainConfig, {"steps": 6, "batch_size": 8, "log_every": 2, "eval_every": 6,
                                              "checkpoint_every": 2, "model": {"base_channels": 4, "levels": 2}})
    train_segmenter(config, tmp_path / "full", arrays=data, progress=False)
    train_segmenter(config, tmp_path / "cut", arrays=data, progress=False, stop_at=3)
    train_segmenter(config, tmp_path / "cut", arrays=data, progress=False)
    a = load_file(tmp_path / "full" / "segmenter.safetensors")
    b = load_file(tmp_path / "cut" / "segmenter.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [int(r["step"]) for r in _rows(tmp_path / "cut" / "log.csv")] == [2, 4, 6]


def test_csv_logger_drops_rows_after_the_checkpoint_and_torn_lines(tmp_path):
    path = tmp_path / "log.csv"
    log = CSVLogger(path)
    for step in (10, 20, 30):
        log.log({"step": step, "loss": 1.0 / step})
    with open(path, "a") as handle:
        handle.write("40,0.0")  # torn by a kill
    log = CSVLogger(path, resume_step=20)
    log.log({"step": 30, "loss": 0.5, "new": 1})
    rows = _rows(path)
    assert [r["step"] for r in rows] == ["10", "20", "30"]
    assert rows[-1]["new"] == "1" and rows[0]["new"] == ""
    CSVLogger(path)  # a fresh (non-resumed) run starts a new log
    assert not path.exists()


def test_checkpointer_restores_models_optimizers_and_rng(tmp_path):
    seed_everything(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.rand(4, 3)).sum().backward()
    opt.step()
    ckpt = Checkpointer(tmp_path)
    ckpt.save(5, {"m": model}, {"o": opt}, {"note": "x"})
    expected = torch.rand(3)
    other = torch.nn.Linear(3, 2)
    opt2 = torch.optim.Adam(other.parameters(), lr=0.5)
    step, extra = ckpt.restore({"m": other}, {"o": opt2})
    assert step == 5 and extra == {"note": "x"}
    assert torch.equal(torch.rand(3), expected)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), other.parameters()))
    assert opt2.param_groups[0]["lr"] == 0.1
    assert torch.equal(opt2.state[opt2.param_groups[0]["params"][0]]["exp_avg"],
                       opt.state[opt.param_groups[0]["params"][0]]["exp_avg"])


def test_sampler_shards_and_is_a_function_of_the_step():
    a, b = MinibatchSampler(20, 3, seed=1, rank=0, world_size=2), MinibatchSampler(20, 3, seed=1, rank=1, world_size=2)
    first = torch.cat([a.indices(0), a.indices(1), a.indices(2)])
    second = torch.cat([b.indices(0), b.indices(1), b.indices(2)])
    assert len(set(first.tolist()) | set(second.tolist())) == 18  # disjoint shards within an epoch
    assert torch.equal(MinibatchSampler(20, 3, seed=1).indices(7), MinibatchSampler(20, 3, seed=1).indices(7))


def test_schedules_and_single_process_context():
    assert lr_at(0, 100, 1.0, "cosine", warmup=10) == pytest.approx(0.1)
    assert lr_at(10, 100, 1.0, "cosine", warmup=10) == pytest.approx(1.0)
    assert lr_at(100, 100, 1.0, "cosine") == pytest.approx(0.01)
    assert lr_at(80, 100, 1.0, "step") == pytest.approx(0.01)
    ctx = init_distributed("cpu")
    assert ctx.is_main and ctx.world_size == 1 and not ctx.distributed


def test_split_limits_and_holds_out_the_tail():
    from maskpurify.training.sources import split_train_val

    data = _arrays(100)
    train, val = split_train_val(data, 0.1, limit=50)
    assert len(train["images"]) == 45 and len(val["images"]) == 5
    assert np.array_equal(val["gaze"].numpy(), data.gaze[45:50])


def test_run_loop_refuses_non_positive_steps_instead_of_writing_an_untrained_model():
    from maskpurify.errors import UserError
    from maskpurify.training.common import DistContext
    from maskpurify.training.loop import run_loop

    saved = []
    for kwargs in ({"total": 0}, {"total": -5}, {"total": 3, "checkpoint_every": 0}, {"total": 3, "log_every": 0}):
        with pytest.raises(UserError, match="must be at least"):
            run_loop(lambda step: {}, start=0, save=saved.append, ctx=DistContext(), progress=False, **kwargs)
    assert saved == []
    assert run_loop(lambda step: {"x": 1.0}, start=0, total=2, save=saved.append, ctx=DistContext(),
                    progress=False) == 2 and saved == [2]
