"""THUMOS14 temporal action detection (Jiang et al. 2014): untrimmed videos with per-class segment files.

    RAW/**/video_validation_0000051.mp4, RAW/**/video_test_0000004.mp4     (validation and TH14 test videos)
    RAW/**/<Class>_val.txt, RAW/**/<Class>_test.txt                          "video_validation_0000051 67.5 75.9"

Following the standard practice (Meng et al. Sec. 4.2.2) the validation videos are the training split ("train")
and the test videos the "test" split; a video's labels are the classes of its segments, and videos with more than
one class are dropped when ``drop_multi_label`` (as Meng et al. do). Class indices follow ``class_names`` (e.g. a
``--class_names`` file) or the alphabetical order of the annotated classes. Meng et al. extract frames at 10 fps
(``--fps=10``).
"""

from __future__ import annotations

import logging
import os

import numpy as np

from data.datasets import annotations
from data.datasets.base import DatasetSplits, VideoTask, index_videos_by_stem

SUBSET_TO_SPLIT = {"val": "train", "test": "test"}


def load(
    raw_dir: str,
    *,
    segments_dir: str | None = None,
    class_names: list[str] | None = None,
    drop_multi_label: bool = True,
) -> DatasetSplits:
    """Parses THUMOS14 (or any video folder with THUMOS-style segment files) into "train" / "test".

    Raises:
      DatasetLayoutError: no segment files.
    """
    rows = annotations.read_segment_files(segments_dir or raw_dir)
    if class_names is None:
        class_names = sorted({row[0] for row in rows} - set(annotations.IGNORED_SEGMENT_CLASSES))
    videos = index_videos_by_stem(raw_dir)
    splits: dict[str, list[VideoTask]] = {"train": [], "test": []}
    dropped = 0
    for subset, split_name in SUBSET_TO_SPLIT.items():
        grouped = annotations.group_segments([r for r in rows if r[1] == subset], class_names)
        for video in sorted(grouped):
            segments, labels = grouped[video]
            classes = tuple(sorted(set(int(v) for v in labels)))
            if drop_multi_label and len(classes) > 1:
                dropped += 1
                continue
            splits[split_name].append(
                VideoTask(
                    video_id=video,
                    source=videos.get(video, os.path.join(raw_dir, video + ".mp4")),
                    labels=classes,
                    segments=segments,
                    segment_labels=np.asarray(labels, np.int64),
                )
            )
    if dropped:
        logging.info("THUMOS14: dropped %d videos with more than one class (drop_multi_label).", dropped)
    multi_label = any(len(t.labels) > 1 for tasks in splits.values() for t in tasks)
    return DatasetSplits(class_names=class_names, splits=splits, multi_label=multi_label)
