"""The real-data rule, kept in one place.

The ``wild`` domain stands in for a user's real images (MPIIGaze or LPW frames, photos). A user has those images
and nothing else, so a trainer may use wild renders only as **unlabelled images**: their exact masks, gaze,
landmarks and synthetic twins are test labels, never training signal. Masks of wild images come from the
project's own mask provider (the segmenter), at training and at test time. Trainers call these functions on
every source they read, so a labelled wild dataset can neither leak its labels nor serve as a supervised
training set.
"""

from __future__ import annotations

from pathlib import Path

from maskpurify.batch import EyeBatch
from maskpurify.errors import UserError

#: The domains whose renders stand in for real images (webcam eyes; LPW's near-IR frames).
REAL_STANDIN_DOMAINS = ("wild", "nir-wild")


def dataset_domain(path: str | Path) -> str | None:
    """The renderer domain of a rendered dataset folder, or None for anything else (real formats, folders)."""
    from maskpurify.world.dataset import read_meta

    try:
        meta = read_meta(path)
    except UserError:
        return None
    domain = meta.get("domain")
    return domain if isinstance(domain, str) else None


def is_real_standin(path: str | Path | None, rendered_domain: str | None = None) -> bool:
    """Whether a source holds stand-ins for real images: a dataset folder rendered in the wild domain, or a
    source about to be rendered in it."""
    if path is not None:
        return dataset_domain(path) in REAL_STANDIN_DOMAINS
    return rendered_domain in REAL_STANDIN_DOMAINS


def unlabelled(batch: EyeBatch) -> EyeBatch:
    """Only the images of a source: everything a real-image user would not have is dropped."""
    return EyeBatch(batch.images, None, batch.labels, source=batch.source)


def refuse_supervised_wild(path: str | Path | None, what: str) -> None:
    """A supervised trainer (gaze, segmenter) must not learn from wild labels."""
    if path is not None and is_real_standin(path):
        raise UserError(f"{what} {path}: a wild-domain dataset stands in for real images, so its labels are test "
                        "labels and cannot train a network (the real-data rule); train on synthetic renders")
