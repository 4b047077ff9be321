"""Shared fixtures of the data-layer tests: a tiny synthetic raw dataset and its prepared records.

Both are session fixtures shared by many tests: treat them as read-only (copy them into ``tmp_path`` to change
anything). The dataset's settings and the preparation helper live in `tests.helpers.tiny_dataset`.
"""

import os

import pytest

from data import synthetic
from tests.helpers.tiny_dataset import TINY, prepare_tiny

__all__ = ["TINY", "prepare_tiny"]  # re-exported for modules that still import them from here


@pytest.fixture(scope="session")
def synthetic_raw(tmp_path_factory) -> str:
    """A UCF101-layout synthetic benchmark: 3 classes x (2 train + 1 test) videos of 14 frames, 48x48."""
    root = str(tmp_path_factory.mktemp("synthetic_raw"))
    synthetic.generate(root, TINY)
    return root


@pytest.fixture(scope="session")
def synthetic_records(synthetic_raw, tmp_path_factory) -> str:
    """The tiny synthetic set prepared: OUT/train (6 videos, 3 shards), OUT/test (3 videos, 2 shards)."""
    out_dir = str(tmp_path_factory.mktemp("synthetic_records"))
    prepare_tiny(synthetic_raw, out_dir)
    assert os.path.isfile(os.path.join(out_dir, "train", "manifest.json"))
    return out_dir
