"""Fixtures shared by the purification tests: tiny random-init checkpoints and one intra-op thread."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from maskpurify.nets.purifier import Purifier, PurifierConfig, save_purifier
from maskpurify.nets.segmenter import Segmenter, SegmenterConfig, save_segmenter


@pytest.fixture(scope="module")
def one_thread() -> object:
    """Tiny tensors: one intra-op thread is faster, and much faster on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small random-init purifier (eye labels), segmenter and 2-label (binary) purifier checkpoints."""
    root = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    small = {"base_channels": 8, "num_res_blocks": 1, "head": "subpixel", "gaze_prior": None}
    save_purifier(root / "purifier", Purifier(PurifierConfig(**small)))
    save_segmenter(root / "segmenter", Segmenter(SegmenterConfig(base_channels=4, levels=2)))
    save_purifier(root / "binary", Purifier(PurifierConfig(**small, num_labels=2, attention_labels=(1,))))
    return {"p": root / "purifier", "s": root / "segmenter", "b": root / "binary"}
