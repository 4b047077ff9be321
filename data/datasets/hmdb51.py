"""HMDB51 (Kuehne et al. 2011) in its official layout.

    RAW/<class>/<video>.avi                                   (hmdb51_org.rar, each class rar unpacked)
    RAW/testTrainMulti_7030_splits/<class>_test_split<N>.txt  "<video>.avi 1" (1 train, 2 test, 0 unused)

Class indices follow the alphabetical order of the class names (as mmaction2). Video ids are ``<class>/<stem>``.
"""

from __future__ import annotations

import glob
import os
import re

from data.datasets.base import DatasetLayoutError, DatasetSplits, VideoTask, find_file, read_lines, video_id_from_path

SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<split>[123])\.txt$")
TAG_TO_SPLIT = {"1": "train", "2": "test"}


def load(raw_dir: str, split: int = 1) -> DatasetSplits:
    """Parses HMDB51 split ``split`` (1-3) into "train" and "test" video lists.

    Raises:
      DatasetLayoutError: missing split files or an unknown tag.
    """
    if split not in (1, 2, 3):
        raise ValueError(f"HMDB51 has splits 1, 2, 3; got --split={split}")
    anchor = find_file(raw_dir, f"brush_hair_test_split{split}.txt", max_depth=2)
    split_dir = os.path.dirname(anchor) if anchor else os.path.join(raw_dir, "testTrainMulti_7030_splits")
    files = {}
    for path in glob.glob(os.path.join(glob.escape(split_dir), f"*_test_split{split}.txt")):
        match = SPLIT_FILE.match(os.path.basename(path))
        if match:
            files[match.group("cls")] = path
    if not files:
        raise DatasetLayoutError(
            "HMDB51 split files not found: expected "
            f"{raw_dir}/testTrainMulti_7030_splits/<class>_test_split{split}.txt "
            "(unrar test_train_splits.rar from https://serre-lab.clps.brown.edu/resource/hmdb-a-large-human-motion-"
            "database/ into --raw_dir)."
        )
    class_names = sorted(files)
    video_root = raw_dir
    if not os.path.isdir(os.path.join(raw_dir, class_names[0])):
        for name in ("hmdb51_org", "hmdb51", "videos"):
            if os.path.isdir(os.path.join(raw_dir, name, class_names[0])):
                video_root = os.path.join(raw_dir, name)
                break
    splits: dict[str, list[VideoTask]] = {"train": [], "test": []}
    for index, class_name in enumerate(class_names):
        for line in read_lines(files[class_name], "HMDB51 split file"):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise DatasetLayoutError(f"{files[class_name]}: expected '<video>.avi 0|1|2', got {line!r}")
            if parts[1] == "0":
                continue
            relative = f"{class_name}/{parts[0]}"
            splits[TAG_TO_SPLIT[parts[1]]].append(
                VideoTask(
                    video_id=video_id_from_path(relative), source=os.path.join(video_root, relative), labels=(index,)
                )
            )
    return DatasetSplits(class_names=class_names, splits=splits)
