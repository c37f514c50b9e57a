"""maskpurify: purify real images into the synthetic style with a mask-guided style transfer network.

Reconstruction of Zhao et al., "Mask-guided Style Transfer Network for Purifying Real Images" (arXiv 1903.08152).

The library in three calls (numpy in, numpy out; the shipped networks load once, on first use)::

    >>> import numpy as np, maskpurify
    >>> eye = np.full((36, 60, 3), 128, np.uint8)      # an eye crop of any size, or a face photo
    >>> result = maskpurify.purify(eye)                 # mask=None: automatic; eye="auto"
    >>> result.image.shape, result.mask.shape           # same size as the input; the label map used
    ((36, 60, 3), (36, 60))
    >>> [(e.purified, e.reason is not None) for e in result.eyes]   # a flat grey image is no plausible eye
    [(False, True)]
    >>> [g.purified for g in maskpurify.gaze(eye)]      # pitch/yaw in degrees per eye, image and mask alone
    [False]

For many images, keep a :class:`Pipeline` (``Pipeline.load()``) and call :meth:`Pipeline.run`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from maskpurify.version import __version__

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from maskpurify.purification.gaze import EyeGaze, GazeReader
    from maskpurify.purification.pipeline import EyeResult, Pipeline, Result

__all__ = ["__version__", "purify", "gaze", "Pipeline", "Result", "EyeResult", "EyeGaze", "GazeReader"]

_DEFAULT: dict[str, Any] = {}


def _default_pipeline() -> Pipeline:
    from maskpurify.purification.pipeline import Pipeline

    if "pipeline" not in _DEFAULT:
        _DEFAULT["pipeline"] = Pipeline.load(device="auto")
    return _DEFAULT["pipeline"]


def purify(image: np.ndarray, mask: np.ndarray | None = None, eye: str = "auto") -> Result:
    """Purify one image: an eye crop of any size (HxWx3 RGB or HxW grey uint8) or a face photo.

    mask: an HxW label map (0 skin, 1 sclera, 2 iris, 3 pupil) to use instead of the automatic one (trusted:
    no eye check). eye: ``left`` (the canonical side: inner corner on the image's left), ``right`` (mirrored for
    the networks and back) or ``auto`` (face photos: each eye's side from FaceMesh; eye crops: ``left``).
    Returns a :class:`~maskpurify.purification.pipeline.Result`: ``image`` (same size), ``mask`` (the label map
    used), ``eyes`` (box, side, ``purified``, ``reason`` it was passed through, working-size crops)."""
    return _default_pipeline().purify(image, mask, eye)


def gaze(image: np.ndarray, mask: np.ndarray | None = None, eye: str = "auto") -> list[EyeGaze]:
    """Purify ``image`` (as :func:`purify`) and read each eye's gaze with the shipped synthetic-trained estimator:
    pitch/yaw in degrees from the purified eye, and from the mask alone (the control)."""
    from maskpurify.purification.gaze import GazeReader

    if "gaze" not in _DEFAULT:
        _DEFAULT["gaze"] = GazeReader.load(device=str(_default_pipeline().engine.device))
    return _DEFAULT["gaze"].read([purify(image, mask, eye)])[0]


def __getattr__(name: str) -> Any:
    """The classes, imported on first use so that ``import maskpurify`` stays light."""
    if name in ("Pipeline", "Result", "EyeResult"):
        from maskpurify.purification import pipeline

        return getattr(pipeline, name)
    if name in ("EyeGaze", "GazeReader"):
        from maskpurify.purification import gaze as gaze_module

        return getattr(gaze_module, name)
    raise AttributeError(f"module 'maskpurify' has no attribute {name!r}")
