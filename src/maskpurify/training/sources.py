"""Where every trainer's images come from: one source config and one loader, so the real-data rule and the
render-once cache are applied the same way by the gaze, segmenter, purifier and SimGAN trainers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from maskpurify.batch import LABEL_KEYS, EyeBatch
from maskpurify.errors import UserError
from maskpurify.masks import EYE_LABELS, LabelSet
from maskpurify.training.common import barrier
from maskpurify.training.loop import Run
from maskpurify.training.real_data import is_real_standin, refuse_supervised_wild, unlabelled
from maskpurify.world.dataset import load_arrays_checked, render_once


@dataclass
class SourceConfig:
    """One image source: a dataset folder (``path``), or rendered on the fly into the out dir.

    With ``format`` (a reader kind: unityeyes, mpiigaze, lpw, folder, ...) ``path`` is a dataset in that format,
    read by :func:`maskpurify.formats.open_reader` with ``options``; missing masks come from the segmenter.
    """

    path: str | None = None
    render_n: int = 12000
    render_seed: int = 2001
    format: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    #: use only the first ``limit`` samples (None = all); renders are deterministic per index, so the first N
    #: of a larger render with the same seed equal a render of N
    limit: int | None = None


def load_source(source: SourceConfig, domain: str, size: tuple[int, int], run: Run, what: str, *,
                supervised: bool = False, segmenter: str | None = None, labels: LabelSet | None = None,
                unlabelled_role: bool = False) -> EyeBatch:
    """The batch of ``source`` (rendered in ``domain`` when it has no path), checked and under the real-data rule.

    ``supervised``: the trainer learns from the labels, so a wild dataset is refused and a ``format`` source
    needs no masks but gaze labels. Otherwise a source that stands in for real images (or any source in an
    ``unlabelled_role``) keeps only its images; a ``format`` source's missing masks come from ``segmenter``.
    """
    ctx, progress = run.ctx, run.progress and run.ctx.is_main
    if source.format:
        from maskpurify.formats.arrays import SegmenterMasker, require_labels, source_arrays

        if not source.path:
            raise UserError(f"{what}: a '{source.format}' source needs a path")
        if supervised:  # gaze needs no masks: a format without them is read as is (no segmenter)
            data = source_arrays(source.format, source.path, source.options, size, source.limit,
                                 progress=progress, need_masks=False, what=what)
            require_labels(data, "gaze", f"{what} {source.path}")
            return data
        if unlabelled_role and segmenter is None:  # images only: no masks needed, none predicted
            return unlabelled(source_arrays(source.format, source.path, source.options, size, source.limit,
                                            progress=progress, need_masks=False, what=what))
        masker = SegmenterMasker(segmenter, ctx.device) if segmenter is not None else None
        return source_arrays(source.format, source.path, source.options, size, source.limit, masker,
                             progress=progress, labels=labels if labels is not None else EYE_LABELS, what=what)
    if source.path:
        if supervised:
            refuse_supervised_wild(source.path, what)
        batch = load_arrays_checked(source.path, what)
    else:
        folder = run.out / "data" / f"{domain}_n{source.render_n}_seed{source.render_seed}"
        if ctx.is_main:  # rank 0 renders, the others wait
            render_once(folder, domain, source.render_n, size, source.render_seed, progress)
        barrier(ctx)
        batch = load_arrays_checked(folder, f"rendered {domain} set")
    if supervised:
        return batch
    return unlabelled(batch) if unlabelled_role or is_real_standin(source.path, domain) else batch


def split_train_val(data: EyeBatch, val_fraction: float, limit: int | None = None
                    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The first ``limit`` samples as tensors (keyed by field name: images, masks and the labels present), the last
    ``val_fraction`` of them held out for validation."""
    n = len(data) if limit is None else min(limit, len(data))
    n_val = int(round(n * val_fraction)) if n > 1 else 0
    arrays = {"images": data.images, "masks": data.masks, **{k: getattr(data, k) for k in LABEL_KEYS}}
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items() if v is not None}
    train = {k: v[: n - n_val] for k, v in tensors.items()}
    val = {k: v[n - n_val:n] for k, v in tensors.items()}
    return train, val
