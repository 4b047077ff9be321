"""Charades (Sigurdsson et al. 2016): untrimmed, multi-label, with temporal segments.

    RAW/Charades_v1_train.csv, RAW/Charades_v1_test.csv   columns id, ..., actions, length; actions is
                                                           "c092 11.90 21.20;c147 0.00 12.60" (class, start, end s)
    RAW/Charades_v1_classes.txt                            "c000 Holding some clothes" (optional)
    RAW/Charades_v1_480/<id>.mp4 (or Charades_v1/, or RAW itself)

Labels are every class of the video's actions (multi-label); the actions also become the record's segments.
Videos without actions are kept with no label (an all-zero multi-hot target), as in the official evaluation.
"""

from __future__ import annotations

import csv
import os

import numpy as np

from data.datasets.base import DatasetLayoutError, DatasetSplits, VideoTask, find_file, read_lines

NUM_CLASSES = 157
VIDEO_FOLDERS = ("Charades_v1_480", "Charades_v1", "videos", "")


def parse_actions(actions: str) -> tuple[np.ndarray, np.ndarray]:
    """``"c092 11.90 21.20;c147 0.00 12.60"`` -> (float32 (S, 2) seconds, int64 (S,) class indices).

    Raises:
      ValueError: malformed field.
    """
    segments, labels = [], []
    for item in filter(None, (part.strip() for part in (actions or "").split(";"))):
        code, start, end = item.split()
        if not (code.startswith("c") and code[1:].isdigit()):
            raise ValueError(f"bad action class {code!r} in {actions!r}")
        segments.append((float(start), float(end)))
        labels.append(int(code[1:]))
    return np.array(segments, np.float32).reshape(-1, 2), np.array(labels, np.int64)


def load(raw_dir: str) -> DatasetSplits:
    """Parses Charades v1 into "train" and "test" (multi-label) video lists.

    Raises:
      DatasetLayoutError: missing csv files or a malformed row (file and row named).
    """
    csvs = {}
    for split_name in ("train", "test"):
        path = find_file(raw_dir, f"Charades_v1_{split_name}.csv", max_depth=2)
        if path is None:
            raise DatasetLayoutError(
                f"Charades_v1_{split_name}.csv not found under {raw_dir}: unzip Charades annotations "
                "(Charades.zip from https://prior.allenai.org/projects/charades) into --raw_dir."
            )
        csvs[split_name] = path
    classes_file = find_file(raw_dir, "Charades_v1_classes.txt", max_depth=2)
    if classes_file:
        lines = read_lines(classes_file, "Charades class list")
        class_names = [line.split(maxsplit=1)[1] if " " in line else line for line in lines]
    else:
        class_names = [f"c{i:03d}" for i in range(NUM_CLASSES)]
    video_dir = next(
        (os.path.join(raw_dir, d) for d in VIDEO_FOLDERS if d and os.path.isdir(os.path.join(raw_dir, d))), raw_dir
    )
    splits = {}
    for split_name, path in csvs.items():
        tasks = []
        with open(path, newline="", encoding="utf-8") as f:
            for row_number, row in enumerate(csv.DictReader(f), 2):
                try:
                    segments, labels = parse_actions(row.get("actions", ""))
                except ValueError as e:
                    raise DatasetLayoutError(f"{path}:{row_number}: {e}") from None
                if len(labels) and labels.max() >= len(class_names):
                    raise DatasetLayoutError(f"{path}:{row_number}: class c{labels.max():03d} out of range")
                video = row["id"]
                tasks.append(
                    VideoTask(
                        video_id=video,
                        source=os.path.join(video_dir, video + ".mp4"),
                        labels=tuple(sorted(set(int(v) for v in labels))),
                        segments=segments,
                        segment_labels=labels,
                    )
                )
        splits[split_name] = tasks
    return DatasetSplits(class_names=class_names, splits=splits, multi_label=True)
