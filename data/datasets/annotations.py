"""Localisation ground truth in its public formats, attached to the videos of a parsed dataset.

* UCF101-24 boxes: ``UCF101v2-GT.pkl`` (Singh et al.'s corrected annotations, as used by ACT / MOC detectors), a dict
  with ``labels`` (24 class names), ``gttubes`` ({video: {label index: [float (n, 5) arrays: frame (1-based),
  x1, y1, x2, y2 in pixels]}}), ``nframes`` ({video: int}), ``resolution`` ({video: (height, width)}),
  ``train_videos`` / ``test_videos`` (one list of videos per split). Boxes are normalised by the video's resolution.
* THUMOS14 temporal segments: one file per class and subset, ``<Class>_val.txt`` / ``<Class>_test.txt``, with lines
  ``video_validation_0000051 67.5 75.9`` (video name, start and end in seconds). ``Ambiguous_*.txt`` is ignored.
"""

from __future__ import annotations

import collections
import glob
import logging
import os
import pickle
import re

import numpy as np

from data.datasets.base import DatasetLayoutError, DatasetSplits

SEGMENT_FILE = re.compile(r"^(?P<cls>.+)_(?P<subset>val|test|validation)\.txt$")
IGNORED_SEGMENT_CLASSES = ("Ambiguous",)

Boxes = dict[int, tuple[np.ndarray, np.ndarray]]


def load_ucf101_24_pickle(path: str) -> dict:
    """Loads ``UCF101v2-GT.pkl`` (a Python 2 pickle in the original release, hence ``encoding="latin1"``).

    Raises:
      DatasetLayoutError: missing file or missing keys.
    """
    if not os.path.isfile(path):
        raise DatasetLayoutError(f"UCF101-24 ground truth not found: {path} (UCF101v2-GT.pkl)")
    with open(path, "rb") as f:
        ground_truth = pickle.load(f, encoding="latin1")
    missing = [k for k in ("labels", "gttubes", "nframes", "resolution") if k not in ground_truth]
    if missing:
        raise DatasetLayoutError(f"{path} lacks keys {missing}: not a UCF101v2-GT.pkl file")
    return ground_truth


def boxes_from_ucf101_24(ground_truth: dict) -> dict[str, Boxes]:
    """Per video, per 0-based frame: boxes normalised to [0, 1] and their labels.

    Returns:
      ``{video: {frame index (0-based): (float32 (n, 4) x1, y1, x2, y2 / (width, height), int64 (n,) labels)}}``.
    """
    out: dict[str, Boxes] = {}
    for video, tubes in ground_truth["gttubes"].items():
        height, width = ground_truth["resolution"][video]
        scale = np.array([width, height, width, height], np.float64)
        per_frame: dict[int, list[tuple[np.ndarray, int]]] = collections.defaultdict(list)
        for label, tube_list in tubes.items():
            for tube in tube_list:
                for row in np.asarray(tube, np.float64).reshape(-1, 5):
                    box = np.clip(row[1:5] / scale, 0.0, 1.0)
                    per_frame[int(row[0]) - 1].append((box, int(label)))
        out[video] = {
            frame: (
                np.stack([b for b, _ in items]).astype(np.float32),
                np.array([lab for _, lab in items], np.int64),
            )
            for frame, items in sorted(per_frame.items())
        }
    return out


def read_segment_files(directory: str) -> list[tuple[str, str, str, float, float]]:
    """Every line of every THUMOS14-style ``<Class>_{val,test}.txt`` under ``directory`` (recursively).

    Returns:
      list of (class name, subset "val" | "test", video name, start seconds, end seconds), in file order.

    Raises:
      DatasetLayoutError: no annotation file, or a malformed line (file and line named).
    """
    rows = []
    found = 0
    for path in sorted(glob.glob(os.path.join(glob.escape(directory), "**", "*.txt"), recursive=True)):
        match = SEGMENT_FILE.match(os.path.basename(path))
        if not match:
            continue
        found += 1
        subset = "val" if match.group("subset") in ("val", "validation") else "test"
        with open(path) as f:
            for number, line in enumerate(f, 1):
                parts = line.split()
                if not parts:
                    continue
                try:
                    start, end = float(parts[1]), float(parts[2])
                except (IndexError, ValueError):
                    raise DatasetLayoutError(
                        f"{path}:{number}: expected 'video start end' (seconds), got {line.strip()!r}"
                    ) from None
                rows.append((match.group("cls"), subset, parts[0], start, end))
    if found == 0:
        raise DatasetLayoutError(f"No THUMOS-style segment files (<Class>_val.txt / <Class>_test.txt) in {directory}")
    return rows


def group_segments(
    rows: list[tuple[str, str, str, float, float]], class_names: list[str]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Groups `read_segment_files` rows by video.

    Args:
      rows: (class name, subset, video, start, end) rows.
      class_names: the dataset's classes; rows of other classes (e.g. ``Ambiguous``) are skipped (logged once).

    Returns:
      ``{video name: (float32 (S, 2) start, end seconds, int64 (S,) class indices)}``, sorted by start.
    """
    index_of = {name: i for i, name in enumerate(class_names)}
    per_video: dict[str, list[tuple[float, float, int]]] = collections.defaultdict(list)
    skipped = set()
    for class_name, _, video, start, end in rows:
        if class_name not in index_of:
            skipped.add(class_name)
            continue
        per_video[video].append((start, end, index_of[class_name]))
    unknown = sorted(skipped - set(IGNORED_SEGMENT_CLASSES))
    if unknown:
        logging.warning("Segment files of classes %s are not classes of the dataset; skipped.", unknown)
    out = {}
    for video, items in per_video.items():
        items.sort()
        out[video] = (
            np.array([(s, e) for s, e, _ in items], np.float32).reshape(-1, 2),
            np.array([c for _, _, c in items], np.int64),
        )
    return out


def load_segment_files(directory: str, class_names: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Segments of every video named in the THUMOS14-style files under ``directory``.

    Returns:
      ``{video name (file stem): (float32 (S, 2) start, end seconds, int64 (S,) class indices)}``.
    """
    return group_segments(read_segment_files(directory), class_names)


def attach(
    dataset: DatasetSplits,
    *,
    boxes: dict[str, Boxes] | None = None,
    segments: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> dict[str, int]:
    """Attaches boxes (by video id, else by file stem) and segments (by file stem) to the dataset's videos.

    Returns:
      counts of videos that received boxes / segments: {"boxes": n, "segments": m}.
    """
    boxes_by_stem = {os.path.basename(k): v for k, v in (boxes or {}).items()}
    counts = {"boxes": 0, "segments": 0}
    for tasks in dataset.splits.values():
        for task in tasks:
            stem = os.path.basename(task.video_id)
            if boxes is not None:
                found = boxes.get(task.video_id, boxes_by_stem.get(stem))
                if found is not None:
                    task.boxes = found
                    counts["boxes"] += 1
            if segments is not None and stem in segments:
                task.segments, task.segment_labels = segments[stem]
                counts["segments"] += 1
    return counts
