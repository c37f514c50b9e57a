"""ONNX export and the ONNX Runtime backend: parity with PyTorch on real and rendered eyes, the export command, the
``--backend onnx`` CLI path and the export cache.

Tolerances (what was measured on the shipped networks is in brackets; README / benchmarks/onnx_speed.py):
segmenter logits within 1e-2 [<= 1.3e-3], argmax masks agree on >= 99.5% of pixels [100%]; purifier output
(float, same masks) within 1e-3 [<= 7e-5]; purified uint8 images within 1 grey level with the same masks (float
rounding at a .5 boundary) [1] and within 2 through the whole chain (automatic masks) for every image whose masks
agree [1]; eye-check verdicts identical.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="onnxruntime not installed (the optional 'onnx' extra: "
                    "pip install 'maskpurify[onnx]')")
pytest.importorskip("onnx", reason="onnx not installed (the torch exporter needs it; the optional 'onnx' extra)")

import onnxruntime as ort  # noqa: E402
from PIL import Image  # noqa: E402

from maskpurify.checkpoints import WEIGHTS_DIR  # noqa: E402
from maskpurify.errors import UserError  # noqa: E402
from maskpurify.evaluation.real_eyes import load_real_eyes  # noqa: E402
from maskpurify.fileio import sha256_file  # noqa: E402
from maskpurify.nets.gaze import load_gaze_net  # noqa: E402
from maskpurify.purification import Purification  # noqa: E402
from maskpurify.purification.engine import resolve_backend  # noqa: E402
from maskpurify.purification.onnx_backend import SHIPPED_DIR, OnnxNets, export_network, exported_matches  # noqa: E402
from maskpurify.world.renderer import render_samples  # noqa: E402

from _cli import run_cli  # noqa: E402

LOGIT_ATOL = 1e-2
PURIFIER_ATOL = 1e-3
MASK_AGREEMENT = 0.995
GREY_LEVELS_SAME_MASKS = 1
GREY_LEVELS_CHAIN = 2


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory) -> object:
    """Nothing in these tests writes the user's cache."""
    old = os.environ.get("MASKPURIFY_ONNX_CACHE")
    os.environ["MASKPURIFY_ONNX_CACHE"] = str(tmp_path_factory.mktemp("onnx_cache"))
    yield
    if old is None:
        os.environ.pop("MASKPURIFY_ONNX_CACHE", None)
    else:
        os.environ["MASKPURIFY_ONNX_CACHE"] = old


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> tuple[Purification, Purification]:
    folder = tmp_path_factory.mktemp("onnx_engine")
    return (Purification.load(backend="torch"), Purification.load(backend="onnx", onnx_dir=folder))


def _eye_sets() -> dict[str, np.ndarray]:
    return {"real": np.ascontiguousarray(load_real_eyes().images),
            "wild": render_samples("wild", 128, (36, 60), seed=11).images,
            "synthetic": render_samples("synthetic", 64, (36, 60), seed=12).images}


@pytest.fixture(scope="module")
def eye_sets() -> dict[str, np.ndarray]:
    return _eye_sets()


def _float(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)


@pytest.mark.parametrize("which", ["real", "wild", "synthetic"])
def test_segmenter_parity(engines, eye_sets, which):
    torch_engine, onnx_engine = engines
    images = eye_sets[which]
    x = _float(images)
    logits = onnx_engine._onnx.segmenter.session(images.shape[1:3]).run(None, {"image": x})[0]
    with torch.inference_mode():
        reference = torch_engine.segmenter(torch.from_numpy(x)).numpy()
    assert logits.shape == reference.shape
    assert np.abs(logits - reference).max() <= LOGIT_ATOL
    agreement = (onnx_engine.auto_masks(images) == torch_engine.auto_masks(images)).mean()
    assert agreement >= MASK_AGREEMENT


@pytest.mark.parametrize("which", ["real", "wild", "synthetic"])
def test_purifier_parity_same_masks(engines, eye_sets, which):
    torch_engine, onnx_engine = engines
    images = eye_sets[which]
    masks = torch_engine.auto_masks(images)
    x, m = _float(images), masks.astype(np.int64)
    out = onnx_engine._onnx.purify(x, m)
    with torch.inference_mode():
        reference = torch_engine.purifier(torch.from_numpy(x), torch.from_numpy(m)).numpy()
    assert np.abs(out - reference).max() <= PURIFIER_ATOL
    a, b = onnx_engine.purify_arrays(images, masks), torch_engine.purify_arrays(images, masks)
    assert a.dtype == np.uint8 and a.shape == images.shape
    assert np.abs(a.astype(int) - b.astype(int)).max() <= GREY_LEVELS_SAME_MASKS


@pytest.mark.parametrize("which", ["real", "wild", "synthetic"])
def test_chain_parity_and_eye_check(engines, eye_sets, which):
    """Automatic masks, eye check and purification, as ``maskpurify purify`` runs them."""
    torch_engine, onnx_engine = engines
    images = eye_sets[which]
    names = [f"{which}{i}" for i in range(len(images))]
    a, b = onnx_engine.purify_batch(images, None, names), torch_engine.purify_batch(images, None, names)
    assert a.problems == b.problems
    same = [i for i in range(len(images)) if np.array_equal(a.masks[i], b.masks[i])]
    assert len(same) >= 0.99 * len(images)
    assert np.abs(a.images[same].astype(int) - b.images[same].astype(int)).max() <= GREY_LEVELS_CHAIN


def test_any_size_grey_and_mirrored_eyes(ckpts, tmp_path):
    """A small random network at a size the networks pad (30x50), grey input, the other eye: the ONNX engine
    exports that size on first use and matches PyTorch."""
    torch.manual_seed(0)
    kwargs = dict(checkpoint=ckpts["p"], segmenter=ckpts["s"], check_eyes=False, batch_size=5)
    torch_engine = Purification.load(backend="torch", **kwargs)
    onnx_engine = Purification.load(backend="onnx", onnx_dir=tmp_path, **kwargs)
    images = np.random.default_rng(0).integers(0, 256, (7, 30, 50), dtype=np.uint8)
    a = onnx_engine.purify_arrays(images, eye="right")
    b = torch_engine.purify_arrays(images, eye="right")
    assert a.shape == images.shape and a.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).max() <= GREY_LEVELS_CHAIN
    assert onnx_engine.forward_passes == 2
    assert (tmp_path / "purifier_30x50.onnx").is_file() and (tmp_path / "segmenter_30x50.onnx").is_file()


def test_gaze_export_parity(tmp_path):
    net = load_gaze_net(WEIGHTS_DIR / "gaze")
    path = export_network(net, tmp_path / "gaze.onnx")
    images = _float(load_real_eyes().images)
    out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": images})[0]
    with torch.inference_mode():
        reference = net(torch.from_numpy(images)).numpy()
    assert np.abs(out - reference).max() <= 1e-3


def test_export_command_writes_sidecars_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "exported"
    code, stdout, err = run_cli(["export", "--format", "onnx", "--out", str(out)])
    assert code == 0, err
    for kind in ("segmenter", "purifier", "gaze"):
        meta = json.loads((out / f"{kind}.json").read_text())
        original = json.loads((WEIGHTS_DIR / f"{kind}.json").read_text())
        assert {k: meta[k] for k in original} == original  # the checkpoint's sidecar, whole
        entry = meta["onnx"]
        assert entry["sha256"] == sha256_file(out / f"{kind}.onnx") and entry["opset"] >= 13
        session = ort.InferenceSession(str(out / f"{kind}.onnx"), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == [i["name"] for i in entry["inputs"]]
        assert [o.name for o in session.get_outputs()] == [o["name"] for o in entry["outputs"]]
        assert session.get_inputs()[0].shape[0] == "batch"  # dynamic batch axis
    purifier_inputs = json.loads((out / "purifier.json").read_text())["onnx"]["inputs"]
    assert purifier_inputs[1] == {"name": "mask", "dtype": "int64", "shape": ["batch", 36, 60]}
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, _, err = run_cli(["export", "--out", str(out), "--gaze", "none"])
    assert code == 2 and "--overwrite" in err and err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    code, _, err = run_cli(["export", "--out", str(out), "--gaze", "none", "--segmenter", "none", "--overwrite"])
    assert code == 0, err
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_backend_uses_an_exported_folder_and_reexports_a_damaged_file(tmp_path, monkeypatch):
    out = tmp_path / "exported"
    assert run_cli(["export", "--out", str(out), "--gaze", "none"])[0] == 0
    engine = Purification.load(backend="onnx", onnx_dir=out)
    engine._onnx.warm_up((36, 60))
    assert sorted(p.name for p in out.iterdir()) == ["purifier.json", "purifier.onnx", "segmenter.json",
                                                      "segmenter.onnx"]
    # a damaged file is not used: the shipped export is, or (without one) it is exported again, size-named
    (out / "purifier.onnx").write_bytes(b"not onnx")
    nets = OnnxNets(engine.purifier, None, out)
    assert not exported_matches(out / "purifier.onnx", nets.purifier.sha, (36, 60))
    assert nets.purifier.path_for((36, 60)) == SHIPPED_DIR / "purifier.onnx"
    monkeypatch.setattr("maskpurify.purification.onnx_backend.SHIPPED_DIR", tmp_path / "nothing_shipped")
    assert OnnxNets(engine.purifier, None, out).purifier.path_for((36, 60)).name == "purifier_36x60.onnx"


def test_backend_choice():
    assert resolve_backend("torch") == "torch"
    assert resolve_backend("auto", "cpu") == "onnx"  # both packages are installed here
    assert resolve_backend("auto", "cuda") == "torch"
    with pytest.raises(UserError, match="CPU only"):
        resolve_backend("onnx", "cuda")
    with pytest.raises(UserError, match="auto, torch or onnx"):
        resolve_backend("tensorrt")


def test_cli_backend_onnx_purifies_a_folder(tmp_path):
    src = tmp_path / "eyes"
    src.mkdir()
    images = render_samples("wild", 6, (36, 60), seed=21).images
    for i, image in enumerate(images):
        Image.fromarray(image).save(src / f"eye{i}.png")
    outputs = {}
    for backend in ("onnx", "torch"):
        out = tmp_path / f"out_{backend}"
        code, stdout, err = run_cli(["purify", "--input", str(src), "--out", str(out), "--backend", backend,
                                     "--quiet"])
        assert code == 0, err
        assert "purified 6 images" in stdout
        outputs[backend] = {p.name: np.asarray(Image.open(p)) for p in sorted(out.glob("eye*.png"))}
    assert outputs["onnx"].keys() == outputs["torch"].keys() and len(outputs["onnx"]) == 6
    for name, image in outputs["onnx"].items():
        assert np.abs(image.astype(int) - outputs["torch"][name].astype(int)).max() <= GREY_LEVELS_CHAIN


def test_auto_backend_runs_the_shipped_exports_and_never_writes(ckpts, tmp_path, monkeypatch):
    """``auto`` (the CLI's and the pipeline's default) runs the shipped networks from their shipped ONNX files,
    networks without an export (a checkpoint of one's own, another image size) in PyTorch, and writes nothing."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("MASKPURIFY_ONNX_CACHE", str(cache))
    shipped = Purification.load(backend="auto")
    assert shipped.backend == "onnx" and shipped._onnx.purifier.path_for((36, 60)) == SHIPPED_DIR / "purifier.onnx"
    assert shipped._onnx.segmenter.path_for((36, 60)) == SHIPPED_DIR / "segmenter.onnx"
    torch_engine = Purification.load(backend="torch")
    eyes = render_samples("wild", 8, (48, 80), seed=31)
    assert not shipped._onnx_for((48, 80))  # no export at this size: PyTorch, the same pixels as the torch engine
    np.testing.assert_array_equal(shipped.purify_arrays(eyes.images, eyes.masks),
                                  torch_engine.purify_arrays(eyes.images, eyes.masks))
    own = Purification.load(backend="auto", checkpoint=ckpts["p"], segmenter=ckpts["s"], onnx_dir=tmp_path / "dir")
    assert own.backend == "torch" and own._onnx is None
    assert not cache.exists() and not (tmp_path / "dir").exists()
    monkeypatch.setattr("maskpurify.purification.onnx_backend.onnx_available", lambda modules=(): "not installed")
    assert Purification.load(backend="auto").backend == "torch"


def test_onnx_backend_fails_in_one_line_when_export_fails(ckpts, tmp_path, monkeypatch):
    kwargs = dict(checkpoint=ckpts["p"], segmenter=ckpts["s"], onnx_dir=tmp_path)

    def broken(*args, **kwargs):
        raise UserError("ONNX export of the purifier at 36x60 failed: no")

    monkeypatch.setattr("maskpurify.purification.onnx_backend.export_network", broken)
    with pytest.raises(UserError, match="export"):
        Purification.load(backend="onnx", **{**kwargs, "onnx_dir": tmp_path / "third"}).purify_arrays(
            np.zeros((1, 36, 60, 3), np.uint8), np.zeros((1, 36, 60), np.uint8))


def test_shipped_exports_are_found_by_their_checkpoints_weights_hash(ckpts, tmp_path):
    """The shipped exports are matched to the shipped checkpoints by kind, config and the weights' sha256, read
    from the sidecars without PyTorch; another checkpoint, another config, another size or a damaged file is no
    match."""
    import shutil

    from maskpurify.purification.networks import NetworkCheckpoint
    from maskpurify.purification.onnx_backend import exported_from

    shipped = NetworkCheckpoint.read(WEIGHTS_DIR / "purifier", "purifier")
    assert shipped is not None and shipped.spec.size == (36, 60) and shipped.config.num_labels == 4
    assert exported_from(SHIPPED_DIR / "purifier.onnx", shipped, (36, 60))
    assert not exported_from(SHIPPED_DIR / "purifier.onnx", shipped, (48, 80))
    segmenter = NetworkCheckpoint.read(WEIGHTS_DIR / "segmenter", "segmenter")
    assert not exported_from(SHIPPED_DIR / "purifier.onnx", segmenter, (36, 60))
    assert exported_from(SHIPPED_DIR / "segmenter.onnx", segmenter, (36, 60))
    own = NetworkCheckpoint.read(ckpts["p"], "purifier")
    assert own is not None and not exported_from(SHIPPED_DIR / "purifier.onnx", own, (36, 60))
    for part in ("onnx", "json"):
        shutil.copy(SHIPPED_DIR / f"purifier.{part}", tmp_path / f"purifier.{part}")
    sidecar = json.loads((tmp_path / "purifier.json").read_text())
    (tmp_path / "purifier.json").write_text(json.dumps({**sidecar, "config": {**sidecar["config"],
                                                                            "num_res_blocks": 2}}))
    assert not exported_from(tmp_path / "purifier.onnx", shipped, (36, 60))
    (tmp_path / "purifier.json").write_text(json.dumps(sidecar))
    assert exported_from(tmp_path / "purifier.onnx", shipped, (36, 60))
    (tmp_path / "purifier.onnx").write_bytes((tmp_path / "purifier.onnx").read_bytes()[:-1])
    assert not exported_from(tmp_path / "purifier.onnx", shipped, (36, 60))
    # a checkpoint whose weights no longer match its sidecar is refused, naming the file, as PyTorch's loader does
    for part in ("safetensors", "json"):
        shutil.copy(ckpts["p"].with_suffix(f".{part}"), tmp_path / f"mine.{part}")
    (tmp_path / "mine.safetensors").write_bytes((tmp_path / "mine.safetensors").read_bytes() + b" ")
    with pytest.raises(UserError, match="mine.safetensors: does not match its sidecar"):
        Purification.load(checkpoint=tmp_path / "mine", backend="auto")


def test_purifying_with_the_shipped_exports_never_imports_pytorch(tmp_path):
    """ONNX Runtime on the shipped exports purifies a folder of crops and a rendered dataset in a process that
    never imports PyTorch (about 2 s of start-up on 2 cores), with the same pixels as the PyTorch engine."""
    import subprocess
    import sys

    from maskpurify.world.dataset import render_once

    crops = tmp_path / "crops"
    crops.mkdir()
    eyes = render_samples("wild", 4, (36, 60), seed=41)
    for i, image in enumerate(eyes.images):
        Image.fromarray(image).save(crops / f"eye{i}.png")
    render_once(tmp_path / "data", "wild", 8, (36, 60), seed=42, progress=False)
    script = ("import sys\nfrom maskpurify.cli import main\n"
              f"codes = [main(['purify', '--input', {str(crops)!r}, '--out', {str(tmp_path / 'out')!r}, '--quiet']),"
              f" main(['purify', '--input', {str(tmp_path / 'data')!r}, '--out', {str(tmp_path / 'outd')!r},"
              " '--masks', 'auto', '--quiet'])]\n"
              "print(codes, 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[0, 0] False"
    reference = Purification.load(backend="torch").purify_arrays(eyes.images)
    for i in range(4):
        out = np.asarray(Image.open(tmp_path / "out" / f"eye{i}.png"))
        assert np.abs(out.astype(int) - reference[i].astype(int)).max() <= GREY_LEVELS_CHAIN


def test_a_sidecar_the_fast_path_cannot_read_falls_back_to_pytorchs_loader(ckpts, tmp_path):
    """A checkpoint without a weights hash, or whose config lacks what the engine reads, is built in PyTorch,
    whose loader accepts it or names the problem; one of another kind is refused in one line either way."""
    import shutil

    from maskpurify.purification.networks import NetworkCheckpoint

    for part in ("safetensors", "json"):
        shutil.copy(ckpts["p"].with_suffix(f".{part}"), tmp_path / f"nohash.{part}")
    sidecar = json.loads((tmp_path / "nohash.json").read_text())
    (tmp_path / "nohash.json").write_text(json.dumps({k: v for k, v in sidecar.items() if k != "weights_sha256"}))
    assert NetworkCheckpoint.read(tmp_path / "nohash", "purifier") is None
    assert Purification.load(checkpoint=tmp_path / "nohash", segmenter=False, backend="auto").backend == "torch"
    partial = {**sidecar, "config": {k: v for k, v in sidecar["config"].items() if k != "use_mask"}}
    (tmp_path / "nohash.json").write_text(json.dumps(partial))
    assert NetworkCheckpoint.read(tmp_path / "nohash", "purifier") is None
    with pytest.raises(UserError, match="missing keys"):
        Purification.load(checkpoint=tmp_path / "nohash", segmenter=False, backend="auto")
    with pytest.raises(UserError, match="not a purifier checkpoint"):
        Purification.load(checkpoint=ckpts["s"], segmenter=False, backend="auto")
