"""The purifier trainer runs unchanged under torchrun: two CPU processes (gloo), one shared result."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from maskpurify.nets.purifier import load_purifier


@pytest.mark.slow
def test_two_process_torchrun_trains_the_purifier(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        torchrun = shutil.which("torchrun")
    assert torchrun, "torchrun is installed with torch"
    out = tmp_path / "ddp"
    command = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "maskpurify",
               "train-purifier", "--out", str(out), "--quiet", "--device", "cpu",
               "--set", "steps=4", "--set", "batch_size=4", "--set", "log_every=2", "--set", "checkpoint_every=2",
               "--set", "preview_every=4", "--set", "encoder.name=random", "--set", "num_threads=1",
               "--set", "data.content.render_n=32", "--set", "data.style.render_n=32"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    run = json.loads((out / "run.json").read_text())
    assert run["world_size"] == 2
    model = load_purifier(out / "purifier")
    assert model.config.use_mask
    rows = (out / "log.csv").read_text().strip().splitlines()
    assert len(rows) == 3  # header + steps 2 and 4, written once (rank 0 only)
