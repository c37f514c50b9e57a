"""The tool as a new user gets it: a built wheel installed into a fresh virtual environment outside the checkout
purifies, reads gaze and serves the Python API with the weights inside the package (no environment variable)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from maskpurify.evaluation.real_eyes import load_real_eyes
from maskpurify.fileio import read_image, save_image

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{argv}: {done.stderr[-2000:]}"
    return done


def test_wheel_in_a_fresh_venv_purifies_and_reads_gaze(tmp_path: Path) -> None:
    # Build from a copy of the sources, so the checkout gets no build/ folder.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "logs"))
    env = {k: v for k, v in os.environ.items() if k not in ("MASKPURIFY_WEIGHTS", "PYTHONPATH", "VIRTUAL_ENV")}
    _run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
          "--disable-pip-version-check", "-w", str(tmp_path / "dist")], tmp_path, env)
    wheels = list((tmp_path / "dist").glob("maskpurify-*.whl"))
    assert len(wheels) == 1
    # A fresh venv; the wheel goes in with pip, its dependencies (torch and the rest, pinned in
    # requirements.lock) are borrowed from this environment's site-packages through a .pth line, so the test
    # runs offline and in seconds. Folders named in a .pth line are not scanned for .pth files, so this
    # environment's editable install of the checkout is not seen.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, env)
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path,
                     env).stdout.strip())
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--disable-pip-version-check",
          str(wheels[0])], tmp_path, env)
    work = tmp_path / "elsewhere"
    work.mkdir()
    crop = load_real_eyes().images[0]
    save_image(work / "eye.png", np.ascontiguousarray(np.repeat(np.repeat(crop, 2, 0), 2, 1)))  # 72x120
    maskpurify = str(venv / "bin" / "maskpurify")
    assert "0.2.0" in _run([maskpurify, "--version"], work, env).stdout
    out = _run([maskpurify, "purify", "--quiet", "--input", "eye.png", "--out", "purified.png"], work, env)
    assert "purified eye.png" in out.stdout
    assert read_image(work / "purified.png").shape == (72, 120, 3)
    _run([maskpurify, "gaze", "--quiet", "--input", "eye.png", "--out", "gaze"], work, env)
    assert (work / "gaze" / "gaze.csv").read_text().count("\n") == 2
    probe = ("import maskpurify, numpy as np; from PIL import Image; "
             "r = maskpurify.purify(np.asarray(Image.open('eye.png').convert('RGB'))); "
             "print(maskpurify.__file__, r.purified, r.image.shape)")
    printed = _run([str(python), "-c", probe], work, env).stdout.split()
    assert printed[0].startswith(str(venv)) and printed[1:] == ["True", "(72,", "120,", "3)"]
