"""Video classification metrics (NumPy): top-k, per-class and mean class accuracy, confusion matrix, Charades mAP / wAP.

These are the numbers the papers report: UCF101 / HMDB51 top-1 (Tables 1-2 of Du et al.), mean class accuracy (what
TSN's `eval_scores.py` prints), and for the multi-label Charades dataset the per-class average precision of the
official `Charades_v1_classify.m` (via `THUMOSeventclspr.m`), averaged over classes (mAP) and weighted by the number
of positives of each class (wAP), as ActionVLAD and Table 2(b) of Du et al. report them.

All functions take plain NumPy arrays so they run on saved score files (`score_files`) as well as live outputs.
"""

from __future__ import annotations

import numpy as np


def _check_scores(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (N, C), got shape {scores.shape}.")
    return scores


def ranked_classes(scores: np.ndarray) -> np.ndarray:
    """Class indices sorted by descending score; ties keep the lower class index first (stable sort).

    Args:
      scores: (N, C) class scores (logits or probabilities).

    Returns:
      (N, C) int array; row i lists the classes of video i from most to least likely.
    """
    scores = _check_scores(scores)
    return np.argsort(-scores, axis=1, kind="stable")


def top_k_accuracy(scores: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Fraction of videos whose true class is among the k highest scores.

    Args:
      scores: (N, C) class scores.
      labels: (N,) int true classes.
      k: how many top classes count as a hit (clipped to C).

    Returns:
      Accuracy in [0, 1].
    """
    scores = _check_scores(scores)
    labels = np.asarray(labels).astype(np.int64)
    if labels.shape != (scores.shape[0],):
        raise ValueError(f"labels must be (N,) = ({scores.shape[0]},), got {labels.shape}.")
    if scores.shape[0] == 0:
        return float("nan")
    top = ranked_classes(scores)[:, : min(k, scores.shape[1])]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts of (true class, predicted class) pairs.

    Args:
      labels: (N,) int true classes.
      predictions: (N,) int predicted classes.
      num_classes: C.

    Returns:
      (C, C) int64 matrix; entry [t, p] counts videos of class t predicted as p.
    """
    labels = np.asarray(labels).astype(np.int64)
    predictions = np.asarray(predictions).astype(np.int64)
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Top-1 accuracy (recall) of each true class from a confusion matrix.

    Args:
      matrix: (C, C) counts from `confusion_matrix`.

    Returns:
      (C,) float64: diag / row sum; NaN for classes without videos.
    """
    matrix = np.asarray(matrix, np.float64)
    counts = matrix.sum(axis=1)  # (C,)
    return np.divide(np.diag(matrix), counts, out=np.full(counts.shape, np.nan), where=counts > 0)


def mean_class_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean over classes of the per-class top-1 accuracy (recall), as TSN's `eval_scores.py` reports it.

    Classes absent from `labels` are left out of the mean (TSN's version would return NaN for them).

    Args:
      scores: (N, C) class scores.
      labels: (N,) int true classes.

    Returns:
      Mean class accuracy in [0, 1].
    """
    scores = _check_scores(scores)
    labels = np.asarray(labels).astype(np.int64)
    accuracy = per_class_accuracy(confusion_matrix(labels, ranked_classes(scores)[:, 0], scores.shape[1]))
    if np.all(np.isnan(accuracy)):
        return float("nan")
    return float(np.nanmean(accuracy))


def average_precision(confidences: np.ndarray, positives: np.ndarray) -> float:
    """Average precision of one class, exactly as `THUMOSeventclspr.m` of the Charades evaluation code.

    Videos are ranked by descending confidence (stable for ties, like MATLAB's `sort(..., 'descend')`); AP is the
    mean of the precision at the rank of each positive video: AP = (1 / n_pos) * sum_{i positive} tp_i / i.

    Args:
      confidences: (N,) scores of the class for every video.
      positives: (N,) bool / {0, 1}: whether each video has the class.

    Returns:
      AP in [0, 1], or NaN when the class has no positive video.
    """
    confidences = np.asarray(confidences, np.float64)
    positives = np.asarray(positives).astype(bool)
    num_positive = int(positives.sum())
    if num_positive == 0:
        return float("nan")
    order = np.argsort(-confidences, kind="stable")
    hits = positives[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].sum() / num_positive)


def charades_map(scores: np.ndarray, targets: np.ndarray) -> dict[str, float | np.ndarray]:
    """Charades / ActionVLAD multi-label metrics: mAP and wAP (Table 2(b) of Du et al.).

    mAP is the mean of the per-class APs (`average_precision`) over classes with at least one positive video;
    wAP weights each class's AP by its number of positives, `sum_c AP_c n_c / sum_c n_c` (`Charades_v1_classify.m`).

    Args:
      scores: (N, C) class scores.
      targets: (N, C) multi-hot ground truth.

    Returns:
      {"mAP": float, "wAP": float, "per_class_ap": (C,) float64 with NaN for classes without positives}.
    """
    scores = _check_scores(scores)
    targets = np.asarray(targets)
    if targets.shape != scores.shape:
        raise ValueError(f"targets must have the shape of scores {scores.shape}, got {targets.shape}.")
    per_class = np.array([average_precision(scores[:, c], targets[:, c]) for c in range(scores.shape[1])])
    num_positive = (targets > 0).sum(axis=0).astype(np.float64)
    valid = num_positive > 0
    if not np.any(valid):
        return {"mAP": float("nan"), "wAP": float("nan"), "per_class_ap": per_class}
    return {
        "mAP": float(np.mean(per_class[valid])),
        "wAP": float(np.sum(per_class[valid] * num_positive[valid]) / np.sum(num_positive[valid])),
        "per_class_ap": per_class,
    }


def classification_report(scores: np.ndarray, labels: np.ndarray, *, multi_label: bool = False) -> dict[str, float]:
    """The metrics `stpa.evaluate` prints and writes.

    Args:
      scores: (N, C) class scores.
      labels: (N,) int classes, or (N, C) multi-hot targets when `multi_label`.
      multi_label: Charades-style data.

    Returns:
      Single-label: {"top1", "top5", "mean_class_accuracy", "num_videos"}; multi-label: {"mAP", "wAP",
      "num_videos"}.
    """
    scores = _check_scores(scores)
    if multi_label:
        result = charades_map(scores, labels)
        return {"mAP": result["mAP"], "wAP": result["wAP"], "num_videos": int(scores.shape[0])}
    return {
        "top1": top_k_accuracy(scores, labels, 1),
        "top5": top_k_accuracy(scores, labels, 5),
        "mean_class_accuracy": mean_class_accuracy(scores, labels),
        "num_videos": int(scores.shape[0]),
    }
