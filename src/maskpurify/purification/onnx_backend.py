"""ONNX export of the networks and an ONNX Runtime backend for :class:`maskpurify.purification.Purification`.

Optional: it needs the ``onnx`` extra (``pip install maskpurify[onnx]``: ``onnx``, which the exporter needs, and
``onnxruntime``). Nothing here is imported unless asked for.

Export: :func:`export_network` writes a network as ``NAME.onnx`` plus ``NAME.json``: the network's sidecar (kind,
config, data spec, what the checkpoint recorded) plus an ``onnx`` entry naming the inputs and outputs with their
dtypes and shapes, the opset, the exporter, the sha256 of the ``.onnx`` file and ``network_sha256`` (the hash of
the weights and config it was exported from, :func:`network_sha256`). Both files are written atomically, the
sidecar last. The exporter is torch's TorchScript one (``torch.onnx.export(..., dynamo=False)``), which needs only
the ``onnx`` package; the dynamo exporter would also need ``onnxscript``. Inputs, as the PyTorch modules take them:

- segmenter: ``image`` float32 (N,3,H,W) in [0,1] -> ``logits`` float32 (N,K,H,W)
- purifier: ``image`` float32 (N,3,H,W) in [0,1], ``mask`` int64 (N,H,W) labels -> ``purified`` float32
  (N,3,H,W) in (0,1)
- gaze estimator: ``image`` float32 (N,3,H,W) in [0,1] (label-map nets: the label image), plus ``head_pose``
  float32 (N,2) when it reads one -> ``gaze`` float32 (N,2) pitch/yaw

The batch axis is dynamic; height and width are fixed at export (the networks pad to their stride in Python, which
a trace freezes), so the backend exports one file per image size it meets.

Backend: :class:`OnnxNets` runs the segmenter and the purifier in ``onnxruntime.InferenceSession`` (CPU execution
provider, :func:`default_threads` intra-op threads). Files are looked up in the folder given, then among the
shipped exports (:data:`SHIPPED_DIR`, the shipped networks at their working size), then in the cache
(``$MASKPURIFY_ONNX_CACHE`` or ``~/.cache/maskpurify/onnx``, ``$XDG_CACHE_HOME`` honoured; a sub-folder per
network named by its :func:`network_sha256`). A file is used only when its sidecar says it was exported from this
very network, at this size, and the file's sha256 matches: for a network the engine read from a checkpoint, the
sidecar's record of the checkpoint's weights (:func:`exported_from`, no PyTorch needed), else its
:func:`network_sha256`. With ``export=True`` a missing file is exported (to the
folder given, else the cache); with ``export=False`` (the engine's ``auto`` backend) it is a UserError instead, so
that choosing a backend never writes anything.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import sys
import threading
import warnings
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from maskpurify.errors import UserError
from maskpurify.fileio import atomic_write_bytes, atomic_write_json, json_bytes, read_json, sha256_file
from maskpurify.purification.networks import NetworkCheckpoint

if TYPE_CHECKING:  # PyTorch is imported only to export or hash a network (see networks.py)
    from torch import nn

#: ONNX opset of the exported graphs (onnxruntime >= 1.13 runs it).
OPSET = 17
#: Bumped when what is exported changes, so cached files of an older recipe are not reused.
EXPORT_VERSION = 1
EXPORTER = "torch.onnx.export (TorchScript exporter, dynamo=False)"
KINDS = ("segmenter", "purifier", "gaze")
#: The shipped networks exported at their working size (``scripts/make_weights.sh`` writes them).
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "weights" / "onnx"
BACKENDS = ("auto", "torch", "onnx")


def onnx_available(modules: tuple[str, ...] = ("onnx", "onnxruntime")) -> str | None:
    """None when ``modules`` (exporting needs ``onnx``, running ``onnxruntime``) import here, else why not (the
    missing packages, how to install them)."""
    missing = []
    for module in modules:
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        return (f"{' and '.join(missing)} not installed (pip install 'maskpurify[onnx]', or "
                f".venv/bin/pip install {' '.join(missing)})")
    return None


def kind_of(model: nn.Module) -> str:
    """'segmenter', 'purifier' or 'gaze' for one of this package's networks."""
    from maskpurify.nets.gaze import LeNetGaze, ResNetPreactGaze
    from maskpurify.nets.purifier import Purifier
    from maskpurify.nets.segmenter import Segmenter

    if isinstance(model, Purifier):
        return "purifier"
    if isinstance(model, Segmenter):
        return "segmenter"
    if isinstance(model, (LeNetGaze, ResNetPreactGaze)):
        return "gaze"
    raise UserError(f"cannot export a {type(model).__name__} to ONNX (segmenter, purifier or gaze net only)")


def _config_dict(model: nn.Module) -> dict[str, Any]:
    if hasattr(model, "config_dict"):
        return model.config_dict()  # type: ignore[no-any-return, operator]
    from maskpurify.nets.gaze import GazeNetConfig, gaze_config_dict

    config = model.config  # type: ignore[attr-defined]
    if isinstance(config, GazeNetConfig):
        return gaze_config_dict(config)
    return asdict(config) if is_dataclass(config) else dict(config)


def network_meta(model: nn.Module) -> dict[str, Any]:
    """A sidecar for a network in memory: its kind, config and data spec (what a checkpoint's sidecar holds)."""
    meta: dict[str, Any] = {"kind": kind_of(model), "config": _config_dict(model)}
    spec = getattr(model, "spec", None)
    if spec is not None:
        meta.update(spec.to_meta())
    return meta


def network_sha256(model: nn.Module) -> str:
    """sha256 of what the exported graph depends on: the weights (safetensors bytes of the state dict), the
    config, the torch version and the export recipe. Names the network's cache folder."""
    import torch
    from safetensors.torch import save as save_tensors

    digest = hashlib.sha256()
    digest.update(save_tensors({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}))
    digest.update(json_bytes({"kind": kind_of(model), "config": _config_dict(model), "torch": torch.__version__,
                              "opset": OPSET, "export_version": EXPORT_VERSION}))
    return digest.hexdigest()


def _io_spec(model: nn.Module, size: tuple[int, int]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    h, w = size
    kind = kind_of(model)
    if kind == "segmenter":
        classes = model.config.num_classes  # type: ignore[attr-defined]
        return ([{"name": "image", "dtype": "float32", "shape": ["batch", 3, h, w]}],
                [{"name": "logits", "dtype": "float32", "shape": ["batch", classes, h, w]}])
    if kind == "purifier":
        return ([{"name": "image", "dtype": "float32", "shape": ["batch", 3, h, w]},
                 {"name": "mask", "dtype": "int64", "shape": ["batch", h, w]}],
                [{"name": "purified", "dtype": "float32", "shape": ["batch", 3, h, w]}])
    inputs = [{"name": "image", "dtype": "float32", "shape": ["batch", 3, h, w]}]
    if model.config.use_head_pose:  # type: ignore[attr-defined]
        inputs.append({"name": "head_pose", "dtype": "float32", "shape": ["batch", 2]})
    return inputs, [{"name": "gaze", "dtype": "float32", "shape": ["batch", 2]}]


def _gaze_with_pose(gaze_net: nn.Module) -> nn.Module:
    """A gaze net whose head pose is a positional input (the exporter passes positional arguments)."""
    import torch
    from torch import nn

    class GazeWithPose(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = gaze_net

        def forward(self, image: torch.Tensor, head_pose: torch.Tensor) -> torch.Tensor:
            return self.net(image, head_pose)  # type: ignore[no-any-return]

    return GazeWithPose()


def onnx_bytes(model: nn.Module, size: tuple[int, int]) -> tuple[bytes, list[dict[str, Any]], list[dict[str, Any]]]:
    """The network as an ONNX graph (bytes) for images of ``size`` (H, W) and any batch, with its inputs and
    outputs (name, dtype, shape)."""
    reason = onnx_available(("onnx",))
    if reason is not None:
        raise UserError(f"ONNX export: {reason}")
    h, w = (int(v) for v in size)
    if h < 1 or w < 1:
        raise UserError(f"ONNX export: size must be positive, got {h}x{w}")
    import torch

    inputs, outputs = _io_spec(model, (h, w))
    example: list[torch.Tensor] = []
    for spec in inputs:
        shape = [2 if d == "batch" else d for d in spec["shape"]]
        if spec["dtype"] == "int64":
            example.append(torch.zeros(shape, dtype=torch.int64))
        else:
            example.append(torch.rand(shape))
    net: nn.Module = model
    if kind_of(model) == "gaze" and len(inputs) == 2:
        net = _gaze_with_pose(model)
    was_training, device = model.training, next(model.parameters()).device
    buffer = io.BytesIO()
    try:
        model.to("cpu").eval()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about the (frozen) padding branch; the deprecation
            torch.onnx.export(net, tuple(example), buffer, dynamo=False, opset_version=OPSET,
                              input_names=[i["name"] for i in inputs], output_names=[o["name"] for o in outputs],
                              dynamic_axes={s["name"]: {0: "batch"} for s in (*inputs, *outputs)},
                              do_constant_folding=True, keep_initializers_as_inputs=True)
    except (RuntimeError, ValueError, TypeError, torch.onnx.errors.OnnxExporterError) as exc:
        raise UserError(f"ONNX export of the {kind_of(model)} at {h}x{w} failed: "
                        f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None
    finally:
        model.to(device).train(was_training)
    return _initializers_not_inputs(buffer.getvalue()), inputs, outputs


def _initializers_not_inputs(data: bytes) -> bytes:
    """The graph with its weights as initializers only, not also graph inputs.

    The export keeps them as inputs because the TorchScript exporter's pass that merges equal initializers
    (taken otherwise) leaves dangling names when two weights are equal (e.g. the ones and zeros of untrained
    norms); as plain initializers onnxruntime may fold them as constants."""
    import onnx

    model = onnx.load_from_string(data)
    weights = {init.name for init in model.graph.initializer}
    keep = [value for value in model.graph.input if value.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    onnx.checker.check_model(model)
    return model.SerializeToString()  # type: ignore[no-any-return]


def export_network(model: nn.Module, path: str | Path, size: tuple[int, int] | None = None,
                   meta: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` as ``path`` (``.onnx``) and its sidecar ``path`` with ``.json``, each atomically, the sidecar
    last. size: (H, W), default the network's working size. meta: the original checkpoint sidecar (default:
    :func:`network_meta`). Returns the ``.onnx`` path. Overwrites: the caller decides whether it may."""
    import torch

    path = Path(path).with_suffix(".onnx")
    size = tuple(size) if size is not None else tuple(model.spec.size)  # type: ignore[attr-defined, assignment]
    data, inputs, outputs = onnx_bytes(model, size)  # type: ignore[arg-type]
    onnx_meta = {"file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "opset": OPSET,
                 "exporter": EXPORTER, "torch": torch.__version__, "export_version": EXPORT_VERSION,
                 "size": [int(size[0]), int(size[1])], "inputs": inputs, "outputs": outputs,
                 "network_sha256": network_sha256(model)}
    sidecar = {**dict(meta if meta is not None else network_meta(model)), "onnx": onnx_meta}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    atomic_write_json(path.with_suffix(".json"), sidecar)
    return path


def _export_sidecar(path: str | Path, size: tuple[int, int]) -> dict[str, Any] | None:
    """The sidecar of the export ``path`` (.onnx) when it is for ``size`` and the file is intact (its sha256 as
    recorded), else None."""
    path = Path(path)
    sidecar = path.with_suffix(".json")
    if not (path.is_file() and sidecar.is_file()):
        return None
    try:
        meta = read_json(sidecar)
    except UserError:
        return None
    entry = meta.get("onnx") if isinstance(meta, dict) else None
    if not (isinstance(entry, dict) and entry.get("size") == [int(size[0]), int(size[1])]
            and entry.get("sha256") == sha256_file(path)):
        return None
    return meta  # type: ignore[no-any-return]


def exported_matches(path: str | Path, network: str, size: tuple[int, int]) -> bool:
    """Whether ``path`` (.onnx) and its sidecar hold the network hashed ``network`` at ``size``, intact."""
    meta = _export_sidecar(path, size)
    return meta is not None and meta["onnx"].get("network_sha256") == network


def default_cache_dir() -> Path:
    """``$MASKPURIFY_ONNX_CACHE``, else ``$XDG_CACHE_HOME/maskpurify/onnx`` (``~/.cache/maskpurify/onnx``)."""
    if os.environ.get("MASKPURIFY_ONNX_CACHE"):
        return Path(os.environ["MASKPURIFY_ONNX_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "maskpurify" / "onnx"


def exported_from(path: str | Path, checkpoint: NetworkCheckpoint, size: tuple[int, int]) -> bool:
    """Whether ``path`` (.onnx) and its sidecar hold ``checkpoint``'s network at ``size``, intact: the sidecar
    names the same kind, config and weights (the sha256 both sidecars record for the weights file). The check
    that needs no PyTorch, so the shipped exports start without it."""
    meta = _export_sidecar(path, size)
    return (meta is not None and meta.get("kind") == checkpoint.kind
            and meta.get("config") == checkpoint.meta["config"]
            and meta.get("weights_sha256") == checkpoint.weights_sha256
            and meta["onnx"].get("export_version") == EXPORT_VERSION)


class _Network:
    """One network's ONNX sessions, one per image size, exported on first use.

    net: a PyTorch network, or a :class:`NetworkCheckpoint` (built in PyTorch only when no export is found by its
    weights' hash: to be hashed, looked up in the cache and exported)."""

    def __init__(self, net: nn.Module | NetworkCheckpoint, folder: Path | None, threads: int,
                 export: bool = True) -> None:
        self.net = net
        self.export = export
        self.kind = net.kind if isinstance(net, NetworkCheckpoint) else kind_of(net)
        self.given = folder
        self.threads = threads
        self.sessions: dict[tuple[int, int], Any] = {}
        self.paths: dict[tuple[int, int], Path | None] = {}  # what path_for found (None: nothing, no export)
        self.lock = threading.Lock()

    @functools.cached_property
    def model(self) -> nn.Module:
        """The PyTorch network (built from the checkpoint when it is one)."""
        return self.net.build("cpu") if isinstance(self.net, NetworkCheckpoint) else self.net

    @functools.cached_property
    def sha(self) -> str:
        return network_sha256(self.model)

    @property
    def folder(self) -> Path:
        """A given folder holds every network (the sidecars tell them apart); the cache, one folder per network."""
        return self.given if self.given is not None else default_cache_dir() / self.sha

    def path_for(self, size: tuple[int, int]) -> Path:
        """The file for ``size``: ``KIND.onnx`` (what ``maskpurify export`` writes) in the folder given, then the
        shipped one, when it matches; else ``KIND_HxW.onnx`` in the folder (exported now, when ``export``, if it
        does not exist or does not match)."""
        if size not in self.paths:
            self.paths[size] = self._find(size)
        found = self.paths[size]
        if found is None:
            raise UserError(f"no ONNX export of this {self.kind} at {size[0]}x{size[1]} (shipped or cached)")
        return found

    def _find(self, size: tuple[int, int]) -> Path | None:
        """The matching file for ``size``, exported now when allowed; None when there is none (no export)."""
        plain = [p for p in (self.given, SHIPPED_DIR) if p is not None]
        if isinstance(self.net, NetworkCheckpoint):
            for folder in plain:
                if exported_from(folder / f"{self.kind}.onnx", self.net, size):
                    return folder / f"{self.kind}.onnx"
        for folder in plain:
            if exported_matches(folder / f"{self.kind}.onnx", self.sha, size):
                return folder / f"{self.kind}.onnx"
        sized = self.folder / f"{self.kind}_{size[0]}x{size[1]}.onnx"
        if not exported_matches(sized, self.sha, size):
            if not self.export:
                return None
            export_network(self.model, sized, size)
        return sized

    def session(self, size: tuple[int, int]) -> Any:
        with self.lock:
            if size not in self.sessions:
                import onnxruntime as ort

                path = self.path_for(size)
                try:
                    self.sessions[size] = ort.InferenceSession(str(path), session_options(self.threads),
                                                               providers=["CPUExecutionProvider"])
                except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
                    raise UserError(f"{path}: onnxruntime cannot load it ({str(exc).splitlines()[0]})") from None
            return self.sessions[size]


def default_threads() -> int:
    """PyTorch's intra-op threads when PyTorch is loaded (a caller may have set them), else 0: ONNX Runtime's own
    default, one per physical core, which is PyTorch's default too."""
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else 0


def session_options(threads: int) -> Any:
    """The ONNX Runtime session options of the engine: ``threads`` intra-op threads, sequential, and no spinning
    (spinning threads compete with the drivers' reader and writer threads, docs/results.md, Speed)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class OnnxNets:
    """The engine's ONNX Runtime backend: the purifier and (optional) segmenter as InferenceSessions.

    folder: where exported files are looked up and written (None: the shipped exports, then the per-network
    cache, see the module docstring). threads: intra-op threads (default :func:`default_threads`). export:
    export a network that has no file yet (False: a UserError instead; nothing is written)."""

    def __init__(self, purifier: nn.Module | NetworkCheckpoint,
                 segmenter: nn.Module | NetworkCheckpoint | None = None, folder: str | Path | None = None, threads: int | None = None, export: bool = True) -> None:
        reason = onnx_available(("onnxruntime",))  # exporting (on first use) also needs onnx; it says so then
        if reason is not None:
            raise UserError(f"--backend onnx: {reason}")
        threads = threads or default_threads()
        where = Path(folder).expanduser() if folder is not None else None
        self.purifier = _Network(purifier, where, threads, export)
        self.segmenter = _Network(segmenter, where, threads, export) if segmenter is not None else None

    def purify(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """float32 (N,3,H,W) in [0,1] and int64 (N,H,W) -> float32 (N,3,H,W), as ``Purifier.forward``."""
        session = self.purifier.session(tuple(image.shape[-2:]))
        # a purifier that reads no mask is exported without the (unused) mask input
        feeds = {"image": image, "mask": mask}
        return session.run(["purified"], {i.name: feeds[i.name] for i in session.get_inputs()})[0]  # type: ignore[no-any-return]

    def segment(self, image: np.ndarray) -> np.ndarray:
        """float32 (N,3,H,W) in [0,1] -> label maps uint8 (N,H,W), as :func:`predict_masks`."""
        if self.segmenter is None:
            raise UserError("no segmenter")
        session = self.segmenter.session(tuple(image.shape[-2:]))
        logits = session.run(["logits"], {"image": image})[0]
        return logits.argmax(1).astype(np.uint8)  # type: ignore[no-any-return]

    def has(self, size: tuple[int, int]) -> bool:
        """Whether ``size`` can run: always when exporting is allowed, else when every network has a file."""
        nets = [n for n in (self.purifier, self.segmenter) if n is not None]
        if all(n.export for n in nets):
            return True
        try:
            for net in nets:
                net.path_for(size)
        except UserError:
            return False
        return True

    def warm_up(self, size: tuple[int, int]) -> None:
        """Export (if needed) and load the sessions for ``size`` now rather than on the first batch."""
        self.purifier.session(tuple(size))  # type: ignore[arg-type]
        if self.segmenter is not None:
            self.segmenter.session(tuple(size))  # type: ignore[arg-type]


def export_checkpoints(checkpoints: Mapping[str, str | Path | None], out: str | Path,
                       size: tuple[int, int] | None = None, overwrite: bool = False) -> dict[str, Path]:
    """``maskpurify export --format onnx``: each of ``checkpoints`` (kind -> checkpoint; None skips it) as
    ``out/KIND.onnx`` + ``out/KIND.json`` (the checkpoint's sidecar plus the ``onnx`` entry), at ``size`` or each
    network's working size. Refuses, before writing anything, when an output exists and not ``overwrite``; each
    file is written atomically. Returns kind -> the .onnx path."""
    from maskpurify.checkpoints import load_checkpoint
    from maskpurify.nets.gaze import load_gaze_net
    from maskpurify.nets.purifier import load_purifier
    from maskpurify.nets.segmenter import load_segmenter

    reason = onnx_available(("onnx",))
    if reason is not None:
        raise UserError(f"--format onnx: {reason}")
    loaders = {"segmenter": load_segmenter, "purifier": load_purifier, "gaze": load_gaze_net}
    out = Path(out)
    wanted = {kind: path for kind, path in checkpoints.items() if path is not None}
    if not wanted:
        raise UserError("nothing to export")
    existing = [str(p) for kind in wanted for p in (out / f"{kind}.onnx", out / f"{kind}.json") if os.path.lexists(p)]
    if existing and not overwrite:
        raise UserError(f"{', '.join(existing)} exist(s); give --overwrite to replace")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: not a folder")
    models = {kind: (loaders[kind](path), load_checkpoint(path)[1]) for kind, path in wanted.items()}
    written = {}
    for kind, (model, meta) in models.items():
        written[kind] = export_network(model, out / f"{kind}.onnx", size, meta)
    return written
