"""The tiny synthetic raw dataset of the data-layer tests and how it is prepared (used by tests/data/conftest.py)."""

from data import extract, preparation, synthetic

TINY = synthetic.SyntheticConfig(
    seed=3, num_classes=3, train_per_class=2, test_per_class=1, num_frames=14, width=48, height=48, num_distractors=1
)


def prepare_tiny(raw_dir: str, out_dir: str, **kwargs) -> dict:
    """Prepares the tiny synthetic set in this process (DIS flow, frames as they are, 2 videos per shard).

    Returns:
      {split: `data.preparation.prepare_split`'s summary}.
    """
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
