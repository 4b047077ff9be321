"""What a dataset parser returns: the videos of each split with labels and optional localisation ground truth.

Plain Python + NumPy (no TensorFlow): these objects travel to the `data.prepare` worker processes.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np


class DatasetLayoutError(ValueError):
    """The raw dataset is not where or not how its official layout says; the message says what to do."""


@dataclasses.dataclass
class VideoTask:
    """One video to turn into one record.

    Attributes:
      video_id: stable id, e.g. ``"ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01"`` (class folder / file stem).
      source: absolute path of the video file, or of the frame folder for rawframes.
      labels: class indices (one for single-label datasets; any number for multi-label ones).
      boxes: optional per-frame boxes, ``{source frame index (0-based): (boxes float32 (n, 4) normalised
        (x1, y1, x2, y2) in [0, 1], box labels int64 (n,))}``.
      segments: optional float32 (S, 2) temporal segments (start, end) in seconds.
      segment_labels: int64 (S,) class index of each segment.
      num_frames_hint: frame count announced by a list file (rawframes), checked against the folder.
    """

    video_id: str
    source: str
    labels: tuple[int, ...]
    boxes: dict[int, tuple[np.ndarray, np.ndarray]] | None = None
    segments: np.ndarray | None = None
    segment_labels: np.ndarray | None = None
    num_frames_hint: int | None = None


# A raw dataset's flip label map, picked up by data.prepare (written by data.synthetic).
FLIP_LABEL_MAP_FILE = "flip_label_map.json"


@dataclasses.dataclass
class DatasetSplits:
    """A parsed dataset: class names, and for each output split name ("train", "test") its videos in list order.

    ``flip_label_map`` ({class: mirrored class, or None: never mirrored}; `data.augment`) is recorded in the
    manifests for training's horizontal flip; None / empty: the identity (a mirrored clip keeps its class).
    """

    class_names: list[str]
    splits: dict[str, list[VideoTask]]
    multi_label: bool = False
    flip_label_map: dict[str, str | None] | None = None

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)


def check_unique_video_ids(split: str, tasks: list[VideoTask], root: str = "") -> None:
    """Refuses a split in which two videos get the same id (the id names the record: duplicates would collide).

    Args:
      split: the split's name, for the message.
      tasks: the split's videos.
      root: sources are shown relative to this folder (the raw dataset root) when given.

    Raises:
      DatasetLayoutError: naming the id and both sources (e.g. ``clip.avi`` and ``clip.mp4``, whose ids are both
        ``clip``: the id is the path without its extension), and what to do.
    """
    first_source: dict[str, str] = {}
    for task in tasks:
        if task.video_id not in first_source:
            first_source[task.video_id] = task.source
            continue
        earlier = first_source[task.video_id]
        shown = [os.path.relpath(p, root) if root else p for p in (earlier, task.source)]
        if earlier == task.source:
            raise DatasetLayoutError(
                f"{split}: {shown[0]} is listed twice (video id {task.video_id!r}): remove the repeated entry."
            )
        raise DatasetLayoutError(
            f"{split}: {shown[0]} and {shown[1]} both get video id {task.video_id!r} (a video's id is its path "
            "without the extension): keep one of them in the list, or rename one file."
        )


def read_lines(path: str, what: str) -> list[str]:
    """Non-empty, stripped lines of a text file.

    Raises:
      DatasetLayoutError: missing file, naming ``what`` it should be.
    """
    if not os.path.isfile(path):
        raise DatasetLayoutError(f"{what} not found: {path}")
    with open(path, encoding="utf-8-sig") as f:
        return [line.strip() for line in f if line.strip()]


def video_id_from_path(relative_path: str) -> str:
    """``"Class/v_x.avi"`` -> ``"Class/v_x"`` (forward slashes, no extension)."""
    return os.path.splitext(relative_path.replace("\\", "/"))[0]


def find_file(root: str, name: str, max_depth: int = 3) -> str | None:
    """First path of a file called ``name`` under ``root`` (breadth first, up to ``max_depth`` levels), or None."""
    level = [root]
    for _ in range(max_depth + 1):
        next_level = []
        for directory in sorted(level):
            candidate = os.path.join(directory, name)
            if os.path.isfile(candidate):
                return candidate
            try:
                entries = sorted(os.scandir(directory), key=lambda e: e.name)
            except OSError:
                continue
            next_level.extend(e.path for e in entries if e.is_dir())
        level = next_level
    return None


def parse_class_names_file(path: str) -> list[str]:
    """Class names, one per line: ``name`` or ``index name`` (as UCF101's classInd.txt; indices 0- or 1-based).

    Returns:
      names ordered by index (by line order when lines carry no index).
    """
    lines = read_lines(path, "class name file")
    parts = [line.split(maxsplit=1) for line in lines]
    if all(len(p) == 2 and p[0].isdigit() for p in parts):
        ordered = sorted(parts, key=lambda p: int(p[0]))
        return [p[1].strip() for p in ordered]
    return lines


VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".mpg", ".mpeg", ".flv", ".m4v", ".3gp")


def index_videos_by_stem(root: str) -> dict[str, str]:
    """Maps file stem -> path for every video file under ``root`` (recursive)."""
    found: dict[str, str] = {}
    for directory, _, files in os.walk(root):
        for name in sorted(files):
            stem, ext = os.path.splitext(name)
            if ext.lower() in VIDEO_EXTENSIONS:
                found.setdefault(stem, os.path.join(directory, name))
    return found
