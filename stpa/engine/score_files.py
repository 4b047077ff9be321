"""Per-video score files written by `stpa.evaluate` and read by `stpa.fuse`.

Format: one NumPy `.npz` per (model, test setting) with
  scores    float32 (N, C)  class scores of each video: the model's logits averaged over crops (TSN practice);
  labels    int64 (N,) true classes, or float32 (N, C) multi-hot targets (Charades);
  video_ids str (N,)        the record ids, used to align files from different streams;
and optional `class_names` str (C,) and `multi_label` bool.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from data import files


@dataclasses.dataclass
class ScoreSet:
    """The contents of one score file.

    Attributes:
      scores: (N, C) float class scores.
      labels: (N,) int or (N, C) multi-hot.
      video_ids: (N,) str.
      class_names: (C,) str or None.
      multi_label: whether `labels` is multi-hot.
    """

    scores: np.ndarray
    labels: np.ndarray
    video_ids: np.ndarray
    class_names: np.ndarray | None = None
    multi_label: bool = False

    def __post_init__(self):
        self.scores = np.asarray(self.scores, np.float32)
        self.video_ids = np.asarray(self.video_ids).astype(str)
        self.labels = np.asarray(self.labels)
        n = self.scores.shape[0]
        if self.scores.ndim != 2 or self.video_ids.shape != (n,) or self.labels.shape[0] != n:
            raise ValueError(
                f"inconsistent score set: scores {self.scores.shape}, labels {self.labels.shape}, "
                f"video_ids {self.video_ids.shape}; expected (N, C), (N,) or (N, C), (N,)."
            )

    def subset(self, order: np.ndarray) -> ScoreSet:
        """The rows `order` (an index array), in that order."""
        return dataclasses.replace(
            self, scores=self.scores[order], labels=self.labels[order], video_ids=self.video_ids[order]
        )


def save_scores(path: str, score_set: ScoreSet) -> str:
    """Writes `score_set` to `path` (`.npz`; folder created, written atomically). Returns the path.

    Raises:
      data.files.WriteError: naming `path`, when it cannot be written.
    """
    extra = {}
    if score_set.class_names is not None:
        extra["class_names"] = np.asarray(score_set.class_names).astype(str)
    arrays = dict(
        scores=score_set.scores,
        labels=score_set.labels,
        video_ids=score_set.video_ids,
        multi_label=np.asarray(score_set.multi_label),
        **extra,
    )
    with files.open_atomic(path, "wb") as f:  # a file object: np.savez would append ".npz" to a name without it
        np.savez(f, **arrays)
    return path


def load_scores(path: str) -> ScoreSet:
    """Reads a score file written by `save_scores` (or any `.npz` with `scores`, `labels`, `video_ids`).

    Raises:
      FileNotFoundError / ValueError naming the file and the missing keys.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"score file {path!r} does not exist; write it with `python -m stpa.evaluate`.")
    with np.load(path, allow_pickle=False) as data:
        missing = [key for key in ("scores", "labels", "video_ids") if key not in data]
        if missing:
            raise ValueError(f"score file {path!r} lacks {missing}; it needs scores (N, C), labels, video_ids (N,).")
        return ScoreSet(
            scores=data["scores"],
            labels=data["labels"],
            video_ids=data["video_ids"],
            class_names=data["class_names"] if "class_names" in data else None,
            multi_label=bool(data["multi_label"]) if "multi_label" in data else data["labels"].ndim == 2,
        )
