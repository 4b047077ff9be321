"""Shared fixtures of the data-layer tests: a tiny synthetic raw dataset and its prepared records."""

import os

import pytest

from data import extract, preparation, synthetic

TINY = synthetic.SyntheticConfig(
    seed=3, num_classes=3, train_per_class=2, test_per_class=1, num_frames=14, width=48, height=48, num_distractors=1
)


@pytest.fixture(scope="session")
def synthetic_raw(tmp_path_factory) -> str:
    """A UCF101-layout synthetic benchmark: 3 classes x (2 train + 1 test) videos of 14 frames, 48x48."""
    root = str(tmp_path_factory.mktemp("synthetic_raw"))
    synthetic.generate(root, TINY)
    return root


def prepare_tiny(raw_dir: str, out_dir: str, **kwargs) -> dict:
    """Prepares the tiny synthetic set in this process (DIS flow, frames as they are, 2 videos per shard)."""
    dataset = preparation.load_dataset("ucf101", raw_dir)
    options = extract.ExtractOptions(flow=kwargs.pop("flow", "dis"), frame_size=None)
    summaries = {}
    for split, tasks in dataset.splits.items():
        summaries[split] = preparation.prepare_split(
            tasks, split=split, out_dir=out_dir, dataset_name="ucf101", class_names=dataset.class_names,
            multi_label=False, options=options, raw_dir=raw_dir, workers=0, videos_per_shard=2, progress=False,
            **kwargs,
        )  # fmt: skip
    return summaries


@pytest.fixture(scope="session")
def synthetic_records(synthetic_raw, tmp_path_factory) -> str:
    """The tiny synthetic set prepared: OUT/train (6 videos, 3 shards), OUT/test (3 videos, 2 shards)."""
    out_dir = str(tmp_path_factory.mktemp("synthetic_records"))
    prepare_tiny(synthetic_raw, out_dir)
    assert os.path.isfile(os.path.join(out_dir, "train", "manifest.json"))
    return out_dir
