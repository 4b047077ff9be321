"""Generic layouts: a folder of videos or of TSN/mmaction2 rawframe folders, with one list file per split.

    videos:     "<path relative to RAW> <label> [<label> ...]"                  e.g. "jump/clip_001.mp4 3"
    rawframes:  "<frame folder relative to RAW> <num_frames> <label> [...]"     e.g. "jump/clip_001 120 3"

Labels are 0-based class indices; lines with several labels make a multi-label dataset. Rawframe folders hold
``img_{:05d}.jpg`` and ``flow_x_{:05d}.jpg`` / ``flow_y_{:05d}.jpg`` from 1 (TSN's dense_flow; mmaction2 1.x writes
``x_{:05d}.jpg`` / ``y_{:05d}.jpg``: set the templates).
"""

from __future__ import annotations

import os

from data.datasets.base import (
    DatasetLayoutError,
    DatasetSplits,
    VideoTask,
    parse_class_names_file,
    read_lines,
    video_id_from_path,
)


def parse_list_file(path: str, *, with_num_frames: bool) -> list[tuple[str, int | None, tuple[int, ...]]]:
    """Parses a list file into (relative path, num_frames or None, labels) rows.

    Raises:
      DatasetLayoutError: missing file or malformed line (file and line number named).
    """
    rows = []
    for number, line in enumerate(read_lines(path, "list file"), 1):
        parts = line.split()
        needed = 3 if with_num_frames else 2
        try:
            if len(parts) < needed:
                raise ValueError
            num_frames = int(parts[1]) if with_num_frames else None
            labels = tuple(int(v) for v in parts[needed - 1 :])
            if any(v < 0 for v in labels):
                raise ValueError
        except ValueError:
            layout = "<folder> <num_frames> <label> [<label> ...]" if with_num_frames else "<path> <label> [...]"
            raise DatasetLayoutError(f"{path}:{number}: expected '{layout}' (0-based labels), got {line!r}") from None
        rows.append((parts[0], num_frames, labels))
    return rows


def load(
    raw_dir: str,
    *,
    kind: str,
    train_list: str | None,
    test_list: str | None,
    class_names_file: str | None = None,
    multi_label: bool | None = None,
) -> DatasetSplits:
    """Parses a video folder (``kind="videos"``) or rawframe folder (``kind="rawframes"``) with its list files.

    Args:
      raw_dir: the root the list paths are relative to.
      kind: "videos" or "rawframes".
      train_list: list file of the "train" split (absolute, or relative to raw_dir); None to skip the split.
      test_list: list file of the "test" split.
      class_names_file: class names, one per line (or "index name"); default "class_0", "class_1", ...
      multi_label: force multi-label; default: multi-label iff some line has several labels.

    Raises:
      DatasetLayoutError: no list file, bad lines, or labels beyond the class names.
    """
    if kind not in ("videos", "rawframes"):
        raise ValueError(f"kind must be 'videos' or 'rawframes', got {kind!r}")
    lists = {name: path for name, path in (("train", train_list), ("test", test_list)) if path}
    if not lists:
        raise DatasetLayoutError(f"--dataset={kind} needs --train_list and/or --test_list (list files).")
    parsed = {}
    for split_name, path in lists.items():
        resolved = path if os.path.isabs(path) or os.path.isfile(path) else os.path.join(raw_dir, path)
        parsed[split_name] = parse_list_file(resolved, with_num_frames=kind == "rawframes")
    largest = max((max(labels) for rows in parsed.values() for _, _, labels in rows if labels), default=-1)
    if class_names_file:
        class_names = parse_class_names_file(class_names_file)
        if largest >= len(class_names):
            raise DatasetLayoutError(f"label {largest} in the lists, but {class_names_file} has {len(class_names)}")
    else:
        class_names = [f"class_{i}" for i in range(largest + 1)]
    if multi_label is None:
        multi_label = any(len(labels) != 1 for rows in parsed.values() for _, _, labels in rows)
    splits = {}
    for split_name, rows in parsed.items():
        splits[split_name] = [
            VideoTask(
                video_id=video_id_from_path(relative) if kind == "videos" else relative.rstrip("/"),
                source=os.path.join(raw_dir, relative),
                labels=labels,
                num_frames_hint=num_frames,
            )
            for relative, num_frames, labels in rows
        ]
    return DatasetSplits(class_names=class_names, splits=splits, multi_label=multi_label)
