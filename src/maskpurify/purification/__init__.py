"""Purification: the one pipeline (:mod:`.pipeline`: an image and optional mask in, the purified image, the mask
used and one record per eye out), what the user gave (:mod:`.inputs`), the networks on arrays (:mod:`.engine`, and
:mod:`.onnx_backend`), eyes in face photos (:mod:`.faces`) and faces tracked through video (:mod:`.tracking`), gaze
from the purified eyes (:mod:`.gaze`), the resumable output folder (:mod:`.output`) and the thin drivers behind
``maskpurify purify`` (:mod:`.drivers`; videos and cameras: :mod:`.video`).

Imports go one way: video -> drivers -> pipeline -> tracking -> faces, engine; gaze -> pipeline; output and inputs
stand alone.
``Purification`` is re-exported for the experiment, the benchmarks and the trainers (``Purification.load()
.purify_arrays(images, masks)``); users call :func:`maskpurify.purify` or :class:`.pipeline.Pipeline`.
"""

from maskpurify.purification.engine import Purification

__all__ = ["Purification"]
