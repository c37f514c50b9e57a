"""Purification: the one inference engine (:mod:`.engine`), the face path (:mod:`.faces`), the resumable output
folder (:mod:`.output`) and the drivers behind ``maskpurify purify`` (:mod:`.drivers`).

Imports go one way: drivers -> faces -> engine; output stands alone. ``Purification`` is re-exported because it is
the library's entry point (``Purification.load().purify_arrays(images, masks)``).
"""

from maskpurify.purification.engine import Purification

__all__ = ["Purification"]
