"""The purification engine: the one inference path from uint8 images (and label maps) to uint8 purified images.

A loaded purifier (and optionally a segmenter for automatic masks) runs batched, in ``torch.inference_mode``, on
any device. Everything that turns uint8 images into purified uint8 images goes through :class:`Purification`:
the pipeline (:mod:`maskpurify.purification.pipeline`, behind the library call, ``maskpurify purify``, ``gaze`` and
the web page), the experiment, the benchmarks and SimGAN's refiner. It knows nothing about files, crops or faces.

Two rules hold everywhere. The networks know one eye, the canonical side the renderer draws
(:data:`maskpurify.masks.CANONICAL_EYE`); a crop of the other eye (``eye="right"``) is mirrored before the
segmenter and the purifier and mirrored back after. An automatic mask that is no plausible eye
(:func:`eye_check`) is never used by :meth:`Purification.purify_batch`: that image passes through unchanged and
its reason is returned, so each caller can say so.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from maskpurify.checkpoints import WEIGHTS_DIR, checkpoint_paths
from maskpurify.errors import UserError
from maskpurify.masks import (BINARY_LABELS, CANONICAL_EYE, EYE_LABELS, EYE_PALETTE, LabelSet, eye_problems,
                              mirror_eyes, mirror_flags, validate_mask)
from maskpurify.purification.networks import NetworkCheckpoint, open_network

if TYPE_CHECKING:
    import torch

    from maskpurify.nets.purifier import Purifier
    from maskpurify.nets.segmenter import Segmenter

#: The shipped purifier and segmenter (see :data:`maskpurify.checkpoints.WEIGHTS_DIR`).
DEFAULT_PURIFIER = WEIGHTS_DIR / "purifier"
DEFAULT_SEGMENTER = WEIGHTS_DIR / "segmenter"
#: Palette for colourising masks of an arbitrary label set (eye palette first).
_PALETTE = EYE_PALETTE + ((240, 200, 40), (60, 200, 90), (170, 80, 200), (250, 130, 30))


def checkpoint_exists(path: str | Path) -> bool:
    """Whether the weights file is there (a missing sidecar is then reported by the loader, naming it)."""
    return checkpoint_paths(path)[0].is_file()


def palette_for(labels: LabelSet) -> tuple[tuple[int, int, int], ...]:
    """Colours for writing masks of ``labels`` (its own palette, black/white for binary, else a fixed cycle)."""
    if labels.palette is not None:
        return labels.palette
    if labels is BINARY_LABELS or labels.names == BINARY_LABELS.names:
        return ((0, 0, 0), (255, 255, 255))
    return tuple(_PALETTE[i % len(_PALETTE)] for i in range(labels.num_labels))


def eye_check(masks: np.ndarray | Sequence[np.ndarray], labels: LabelSet = EYE_LABELS) -> list[str | None]:
    """Per automatic mask, why it is no plausible eye (:func:`maskpurify.masks.eye_problem`) or None: the policy
    that keeps a closed eye or a blank frame from being painted over. Only eye label sets are checked (the check
    knows only eyes)."""
    if labels is not EYE_LABELS:
        return [None] * len(masks)
    return eye_problems(np.asarray(masks)) if len(masks) else []


def _no_gpu_here() -> bool:
    """True when this Linux machine has no NVIDIA or AMD GPU device node, so CUDA cannot be available: ``auto`` is
    then the CPU without importing PyTorch (about 2 s) to ask."""
    return sys.platform.startswith("linux") and not any(os.path.exists(node) for node in ("/dev/nvidiactl", "/dev/kfd"))


def on_cpu(device: object) -> bool:
    """Whether a torch device ('cpu', 'cuda:1', a ``torch.device``) is the CPU, read without importing PyTorch."""
    return str(device).split(":")[0] == "cpu"


def resolve_device(device: str) -> str:
    """``auto`` -> cuda when available, else cpu; an unusable device is a UserError naming the flag."""
    if device == "cpu" or (device == "auto" and _no_gpu_here()):
        return "cpu"
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: CUDA is not available on this machine")
    try:
        torch.device(device)
    except RuntimeError:
        raise UserError(f"--device {device}: not a torch device (use cpu, cuda, cuda:1, auto)") from None
    return device


def resolve_backend(backend: str, device: str | torch.device = "cpu") -> str:
    """'torch' or 'onnx' for ``backend`` 'torch', 'onnx' or 'auto'. 'onnx' runs on the CPU only (a UserError on
    another device, or without onnxruntime installed). 'auto' is 'onnx' on the CPU when onnxruntime is installed
    (ONNX Runtime was faster in every round of benchmarks/onnx_speed.py, 36x60, batch 256, 2 threads: median
    1.3-1.45x for the networks, 1.25x for this engine's uint8-to-uint8 path), else 'torch'; the engine then runs
    in PyTorch after all when the networks have no ONNX export (the shipped ones do, at their working size)."""
    if backend not in ("auto", "torch", "onnx"):
        raise UserError(f"--backend {backend}: expected auto, torch or onnx")
    if backend == "torch":
        return "torch"
    from maskpurify.purification.onnx_backend import onnx_available

    cpu = on_cpu(device)
    if backend == "auto":
        return "onnx" if cpu and onnx_available(("onnxruntime",)) is None else "torch"
    if not cpu:
        raise UserError(f"--backend onnx runs on the CPU only (onnxruntime's CPU provider), not --device {device}")
    return "onnx"


def _to_float_nchw(rgb: np.ndarray) -> np.ndarray:
    """uint8 (N,H,W,3) -> contiguous float32 (N,3,H,W) in [0,1], as the torch path divides (float32 / 255)."""
    x = np.ascontiguousarray(rgb.transpose(0, 3, 1, 2), dtype=np.float32)
    x /= np.float32(255.0)
    return x


@dataclass
class Purified:
    """What :meth:`Purification.purify_batch` returns: the output images (an image whose automatic mask failed
    the eye check is its input, unchanged), the masks used and, per image, why it was left or None."""

    images: np.ndarray
    masks: np.ndarray
    problems: list[str | None]


def _as_rgb(images: np.ndarray) -> tuple[np.ndarray, bool]:
    """uint8 (N,H,W,3), (N,H,W,1) or (N,H,W) -> writable (N,H,W,3) and whether the input was grey."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise UserError(f"images must be uint8, got {images.dtype}")
    grey = images.ndim == 3 or (images.ndim == 4 and images.shape[-1] == 1)
    rgb = images.reshape(*images.shape[:3], 1) if images.ndim == 3 else images
    if rgb.ndim != 4 or rgb.shape[-1] not in (1, 3):
        raise UserError(f"images must be (N,H,W,3) RGB or (N,H,W) grey, got shape {tuple(images.shape)}")
    if grey:
        rgb = np.repeat(rgb, 3, axis=-1)
    if not rgb.flags.writeable:
        rgb = rgb.copy()
    return rgb, grey


def _like_input(out: np.ndarray, images: np.ndarray, grey: bool) -> np.ndarray:
    """RGB outputs back in the input's layout (grey inputs get the channel mean)."""
    if not grey:
        return out
    grey_out = np.round(out.astype(np.float32).mean(-1)).astype(np.uint8)
    return grey_out if np.asarray(images).ndim == 3 else grey_out[..., None]


class Purification:
    """A purifier (+ optional segmenter) ready to purify uint8 images in batches.

    purifier: the network (moved to ``device`` and put in eval mode). segmenter: the automatic masker, or None.
    batch_size: images per forward pass. The label set masks are validated against and the working size (what
    face crops are cut at) are the purifier's ``spec``, read from its checkpoint; the network itself takes images
    of any size. check_eyes: :meth:`purify_batch` leaves an image unpurified when its automatic mask is no
    plausible eye (:func:`eye_check`); masks a user gives are trusted.
    """

    def __init__(self, purifier: Purifier | NetworkCheckpoint, segmenter: Segmenter | NetworkCheckpoint | None = None,
                 device: str | torch.device = "cpu", batch_size: int = 64, check_eyes: bool = True,
                 backend: str = "torch", onnx_dir: str | Path | None = None) -> None:
        if batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {batch_size}")
        #: the torch device the PyTorch backend runs on, as a string ('cpu', 'cuda:1')
        self.device = str(device)
        # a NetworkCheckpoint stays one until PyTorch has to run it (:attr:`purifier`, :attr:`segmenter`)
        self._nets: dict[str, Any] = {"purifier": self._on_device(purifier),
                                      "segmenter": self._on_device(segmenter) if segmenter is not None else None}
        self.batch_size = batch_size
        config = purifier.config
        self.labels = purifier.spec.labels
        #: (height, width) the purifier was trained at
        self.working_size = purifier.spec.size
        #: whether the purifier reads a mask at all (the no-mask ablation does not)
        self.reads_masks = bool(config.use_mask)
        if self.labels.num_labels != config.num_labels:
            raise UserError(f"the purifier's checkpoint names {self.labels.num_labels} labels but its network "
                            f"reads {config.num_labels}")
        if segmenter is not None and segmenter.config.num_classes != config.num_labels:
            raise UserError(f"the segmenter predicts {segmenter.config.num_classes} labels but the purifier "
                            f"expects {config.num_labels}; use a matching segmenter or give masks")
        #: Number of purifier forward passes so far (for progress reporting and tests).
        self.forward_passes = 0
        self.check_eyes = check_eyes
        #: 'torch' or 'onnx' (:func:`resolve_backend`); with 'onnx' the segmenter and purifier run in ONNX Runtime
        #: (:class:`maskpurify.purification.onnx_backend.OnnxNets`), the modules stay for their config and spec
        self.backend = resolve_backend(backend, self.device)
        self._onnx = None
        if self.backend == "onnx":
            from maskpurify.purification.onnx_backend import OnnxNets

            automatic = backend == "auto"
            self._onnx = OnnxNets(self._nets["purifier"], self._nets["segmenter"], onnx_dir, export=not automatic)
            if automatic:  # only networks exported already (the shipped ones): choosing writes nothing
                try:
                    self._onnx.warm_up(self.working_size)
                except UserError:
                    self.backend, self._onnx = "torch", None

    def _on_device(self, net: Any) -> Any:
        return net if isinstance(net, NetworkCheckpoint) else net.to(self.device).eval()

    def _module(self, kind: str) -> Any:
        net = self._nets[kind]
        if isinstance(net, NetworkCheckpoint):
            net = self._nets[kind] = net.build(self.device)
        return net

    @property
    def purifier(self) -> Purifier:
        """The purifier as a PyTorch module (built from its checkpoint on first use: the ONNX backend needs none)."""
        return self._module("purifier")  # type: ignore[no-any-return]

    @property
    def segmenter(self) -> Segmenter | None:
        """The segmenter as a PyTorch module, or None (built from its checkpoint on first use, as :attr:`purifier`)."""
        return self._module("segmenter") if self._nets["segmenter"] is not None else None

    @property
    def has_segmenter(self) -> bool:
        """Whether automatic masks can be made (without building a PyTorch module to find out)."""
        return self._nets["segmenter"] is not None

    @classmethod
    def load(cls, checkpoint: str | Path | None = None, segmenter: str | Path | None | bool = None,
             device: str = "cpu", batch_size: int = 64, check_eyes: bool = True, backend: str = "torch",
             onnx_dir: str | Path | None = None) -> Purification:
        """Load checkpoints. checkpoint None: the shipped ``weights/purifier``. segmenter None: the shipped
        ``weights/segmenter`` when present (else no segmenter); False: none; a path: that checkpoint.
        backend: 'torch', 'onnx' (ONNX Runtime, CPU; networks exported to ``onnx_dir`` or the cache on first use)
        or 'auto' (:func:`resolve_backend`). With ONNX Runtime, PyTorch is imported only when a network has no
        export yet (:mod:`maskpurify.purification.networks`)."""
        device = resolve_device(device)
        lazy = resolve_backend(backend, device) == "onnx"
        if checkpoint is None:
            if not checkpoint_exists(DEFAULT_PURIFIER):
                raise UserError(f"no purifier checkpoint given and none shipped at {DEFAULT_PURIFIER}.safetensors; "
                                "give --checkpoint CKPT")
            checkpoint = DEFAULT_PURIFIER
        purifier = open_network(checkpoint, "purifier", device, lazy)
        seg = None
        if segmenter is None:
            if checkpoint_exists(DEFAULT_SEGMENTER):
                candidate = open_network(DEFAULT_SEGMENTER, "segmenter", device, lazy)
                # The shipped eye segmenter only serves purifiers with the same label count.
                if candidate.config.num_classes == purifier.config.num_labels:
                    seg = candidate
        elif segmenter is not False:
            seg = open_network(segmenter, "segmenter", device, lazy)
        return cls(purifier, seg, device, batch_size, check_eyes, backend, onnx_dir)

    # -- masks ---------------------------------------------------------------------------------------------
    def auto_masks(self, images: np.ndarray, names: Sequence[str] | None = None,
                   eye: str | Sequence[str] = CANONICAL_EYE) -> np.ndarray:
        """Label maps (N,H,W) uint8 from the segmenter, in the images' own orientation; UserError without one.

        eye: which eye each image shows (``left``/``right``, see :data:`maskpurify.masks.CANONICAL_EYE`); crops
        of the other eye are segmented mirrored (the segmenter only knows the canonical side) and the masks
        mirrored back."""
        if not self.has_segmenter:
            what = names[0] if names else "the input"
            raise UserError(f"no mask for {what} and no segmenter; give --masks DIR or --segmenter")
        flags = mirror_flags(eye, len(images))
        images = mirror_eyes(images, flags, channels=True) if flags.any() else np.ascontiguousarray(images)
        if not images.flags.writeable:
            images = images.copy()
        if self._onnx_for(images.shape[1:3]):
            masks = np.concatenate([self._onnx.segment(_to_float_nchw(images[start:start + self.batch_size]))
                                    for start in range(0, len(images), self.batch_size)]) \
                if len(images) else np.zeros(images.shape[:3], np.uint8)
        else:
            from maskpurify.nets.segmenter import predict_masks

            masks = predict_masks(self.segmenter, images, batch_size=self.batch_size)
        return mirror_eyes(masks, flags) if flags.any() else masks

    def mask_problems(self, masks: np.ndarray | Sequence[np.ndarray]) -> list[str | None]:
        """:func:`eye_check` of automatic masks for this purifier; all None when ``check_eyes`` is off."""
        return eye_check(masks, self.labels) if self.check_eyes else [None] * len(masks)

    def check_mask(self, mask: np.ndarray, image_shape: Sequence[int], source: str) -> np.ndarray:
        """Validate one mask against the purifier's label set (an empty attention region is allowed)."""
        return validate_mask(mask, image_shape, self.labels, source=source, require_attention=False)

    def masks_for(self, images: np.ndarray, names: Sequence[str] | None = None,
                  eye: str | Sequence[str] = CANONICAL_EYE) -> np.ndarray:
        """Automatic masks, validated (used when the caller also wants to save them)."""
        masks = self.auto_masks(images, names, eye)
        return np.stack([self.check_mask(m, images.shape[1:3], f"segmenter output for "
                                         f"{names[i] if names else i}") for i, m in enumerate(masks)])

    def _onnx_for(self, size: Sequence[int]) -> bool:
        """Whether images of ``size`` run in ONNX Runtime: always with the ``onnx`` backend (exported on first
        use); with ``auto``, only at sizes the networks have exports for (a scene purifier's own image sizes
        run in PyTorch)."""
        return self._onnx is not None and self._onnx.has(tuple(size))

    # -- purification --------------------------------------------------------------------------------------
    def _forward(self, rgb: np.ndarray, masks: np.ndarray, flags: np.ndarray) -> np.ndarray:
        """The network on trusted (N,H,W,3) uint8 images and valid label maps, ``batch_size`` at a time."""
        if flags.any():
            rgb, masks = mirror_eyes(rgb, flags, channels=True), mirror_eyes(masks, flags)
        out = np.empty_like(rgb)
        if self._onnx_for(rgb.shape[1:3]):
            for start in range(0, len(rgb), self.batch_size):
                stop = min(len(rgb), start + self.batch_size)
                y = self._onnx.purify(_to_float_nchw(rgb[start:stop]), masks[start:stop].astype(np.int64))
                self.forward_passes += 1
                # the same float32 steps as the torch path below: clamp, * 255, round half to even
                np.clip(y, 0.0, 1.0, out=y)
                y *= np.float32(255.0)
                out[start:stop] = np.rint(y, out=y).astype(np.uint8).transpose(0, 2, 3, 1)
            return mirror_eyes(out, flags, channels=True) if flags.any() else out
        import torch

        with torch.inference_mode():
            for start in range(0, len(rgb), self.batch_size):
                stop = min(len(rgb), start + self.batch_size)
                # contiguous (N,C,H,W): the purifier runs about 10% faster than on the permuted channels-last view
                # (the segmenter is the other way round, see predict_masks; README, Speed)
                x = (torch.from_numpy(rgb[start:stop]).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
                     .contiguous())
                m = torch.from_numpy(masks[start:stop].astype(np.int64)).to(self.device)
                y = self.purifier(x, m)
                self.forward_passes += 1
                out[start:stop] = (y.clamp_(0, 1).mul_(255.0).round_().to(torch.uint8)
                                   .permute(0, 2, 3, 1).cpu().numpy())
        return mirror_eyes(out, flags, channels=True) if flags.any() else out

    def purify_arrays(self, images: np.ndarray, masks: np.ndarray | None = None,
                      names: Sequence[str] | None = None, eye: str | Sequence[str] = CANONICAL_EYE) -> np.ndarray:
        """Purify uint8 images (N,H,W,3) (or (N,H,W,1) / (N,H,W) grey) with label maps (N,H,W) -> same shape.

        Every image is purified (no eye check: the library call). masks None: automatic masks from the segmenter
        (UserError without one), or none at all for a purifier that reads no mask. Images of any size are
        purified at their own size. eye: ``left`` (the canonical side, default) or ``right``, for all images or
        one per image; images and masks (given in the images' own orientation) of the other eye are mirrored
        before the networks and the outputs mirrored back.
        """
        rgb, grey = _as_rgb(images)
        n, h, w = rgb.shape[:3]

        def label(i: int) -> str:
            return names[i] if names is not None else f"image {i}"

        if masks is None and not self.reads_masks:
            masks = np.zeros((n, h, w), np.uint8)
        elif masks is None:
            masks = self.auto_masks(rgb, names, eye)
            masks = np.stack([self.check_mask(m, (h, w), f"segmenter output for {label(i)}")
                              for i, m in enumerate(masks)]) if n else np.zeros((0, h, w), np.uint8)
        else:
            masks = np.asarray(masks)
            if masks.ndim == 4 and masks.shape[-1] == 3:
                raise UserError(f"{label(0)}: mask must be a single-channel label map, got shape "
                                f"{tuple(masks.shape[1:])} (a 3-channel mask needs a palette)")
            if len(masks) != n:
                raise UserError(f"got {len(masks)} masks for {n} images")
            masks = np.stack([self.check_mask(m, (h, w), f"mask of {label(i)}")
                              for i, m in enumerate(masks)]) if n else np.zeros((0, h, w), np.uint8)
        return _like_input(self._forward(rgb, masks, mirror_flags(eye, n)), images, grey)

    def purify_batch(self, images: np.ndarray, masks: Sequence[np.ndarray | None] | None, names: Sequence[str],
                     eye: str | Sequence[str] = CANONICAL_EYE, automatic: bool | Sequence[bool] = False
                     ) -> Purified:
        """The drivers' call: purify images of one size with the eye check on automatic masks.

        masks: one per image, already validated (:func:`maskpurify.masks.load_mask`, or made here); None (for
        all, or for one image) -> the segmenter's mask. Masks made here, and all masks when ``automatic`` (the
        caller's own automatic masks, e.g. FaceMesh's; a bool for all images or one per image), go through
        :meth:`mask_problems`: an image whose mask is no plausible eye is returned unchanged, with the reason in
        ``problems``.
        """
        rgb, grey = _as_rgb(images)
        n = len(rgb)
        given: list[np.ndarray | None] = list(masks) if masks is not None else [None] * n
        flags = mirror_flags(eye, n)
        auto = [i for i, m in enumerate(given) if m is None]
        made_elsewhere = [automatic] * n if isinstance(automatic, bool) else list(automatic)
        checked = [i for i in range(n) if made_elsewhere[i] or given[i] is None]
        if auto:
            sides = eye if isinstance(eye, str) else [eye[i] for i in auto]
            made = self.masks_for(rgb[auto], [names[i] for i in auto], sides)
            for j, i in enumerate(auto):
                given[i] = made[j]
        mask_arr = np.stack(given) if n else np.zeros((0, *rgb.shape[1:3]), np.uint8)  # type: ignore[arg-type]
        problems: list[str | None] = [None] * n
        for i, problem in zip(checked, self.mask_problems(mask_arr[checked])):
            problems[i] = problem
        keep = [i for i in range(n) if problems[i] is None]
        out = rgb.copy()
        if keep:
            out[keep] = self._forward(rgb[keep], mask_arr[keep], flags[keep])
        return Purified(_like_input(out, images, grey), mask_arr, problems)
