"""Late fusion of per-video score sets, the two-stream practice of Sec. 4.1 of Du et al.

"The prediction scores of the RGB and Flow streams are averaged."
`fuse_scores` is the weighted average; `tune_weights` searches the weights on a validation score set over a grid on
the simplex. The command line is `python -m stpa.fuse`.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence

import numpy as np

from data import files
from stpa.engine import metrics, score_files
from stpa.engine.score_files import ScoreSet

NORMALIZATIONS = ("none", "softmax")


def normalize_scores(scores: np.ndarray, normalize: str) -> np.ndarray:
    """Applies `normalize` ("none": raw scores as TSN fuses them, or "softmax") to (N, C) scores."""
    if normalize == "none":
        return np.asarray(scores, np.float64)
    if normalize == "softmax":
        shifted = np.asarray(scores, np.float64) - np.max(scores, axis=1, keepdims=True)
        exp = np.exp(shifted)
        return exp / exp.sum(axis=1, keepdims=True)
    raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}.")


def align(score_sets: Sequence[ScoreSet]) -> list[ScoreSet]:
    """Reorders every set to the video order of the first one.

    Raises:
      ValueError: the sets do not hold the same videos, or disagree on a video's label or on C.
    """
    if not score_sets:
        raise ValueError("no score sets to fuse.")
    reference = score_sets[0]
    aligned = [reference]
    for index, other in enumerate(score_sets[1:], start=1):
        if other.scores.shape[1] != reference.scores.shape[1]:
            raise ValueError(
                f"score set {index} has {other.scores.shape[1]} classes, set 0 has {reference.scores.shape[1]}."
            )
        position = {video_id: i for i, video_id in enumerate(other.video_ids)}
        missing = [v for v in reference.video_ids if v not in position]
        extra = sorted(set(other.video_ids) - set(reference.video_ids))
        if missing or extra:
            raise ValueError(
                f"score set {index} does not hold the same videos as set 0: missing {missing[:5]} "
                f"({len(missing)} in all), extra {extra[:5]} ({len(extra)} in all). Evaluate both streams on the "
                "same split."
            )
        other = other.subset(np.array([position[v] for v in reference.video_ids]))
        if not np.array_equal(other.labels, reference.labels):
            raise ValueError(f"score set {index} disagrees with set 0 on the labels of some videos.")
        aligned.append(other)
    return aligned


def fuse_scores(
    score_sets: Sequence[ScoreSet], weights: Sequence[float] | None = None, normalize: str = "none"
) -> ScoreSet:
    """Weighted average of aligned score sets: sum_i w_i s_i / sum_i w_i.

    Args:
      score_sets: S sets with the same videos (any order; aligned to the first).
      weights: S non-negative weights (default: all 1, the paper's plain average).
      normalize: "none" or "softmax", applied to each set before averaging.

    Returns:
      A ScoreSet with the fused (N, C) scores, in the first set's video order.
    """
    sets = align(score_sets)
    weights = np.ones(len(sets)) if weights is None else np.asarray(weights, np.float64)
    if weights.shape != (len(sets),) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(f"need {len(sets)} non-negative weights with a positive sum, got {weights.tolist()}.")
    fused = sum(w * normalize_scores(s.scores, normalize) for w, s in zip(weights, sets)) / weights.sum()
    return ScoreSet(fused, sets[0].labels, sets[0].video_ids, sets[0].class_names, sets[0].multi_label)


def score_metric(score_set: ScoreSet) -> float:
    """The number fusion weights are tuned for: top-1 accuracy, or mAP for multi-label sets."""
    report = metrics.classification_report(score_set.scores, score_set.labels, multi_label=score_set.multi_label)
    return report["mAP"] if score_set.multi_label else report["top1"]


def simplex_grid(num_streams: int, step: float) -> np.ndarray:
    """All weight vectors with entries in {0, step, 2 step, ..., 1} summing to 1; shape (G, num_streams)."""
    ticks = int(round(1.0 / step))
    if ticks < 1 or abs(ticks * step - 1.0) > 1e-9:
        raise ValueError(f"grid step must divide 1 (e.g. 0.05, 0.1), got {step}.")
    rows = [c for c in itertools.product(range(ticks + 1), repeat=num_streams - 1) if sum(c) <= ticks]
    return np.array([list(c) + [ticks - sum(c)] for c in rows], np.float64) / ticks


def tune_weights(
    score_sets: Sequence[ScoreSet], *, step: float = 0.05, normalize: str = "none"
) -> tuple[np.ndarray, float]:
    """Searches fusion weights on validation score sets.

    Every grid point of `simplex_grid` is scored with `score_metric`; among equally good weights the one closest
    to the plain average wins (so a search that cannot tell the streams apart returns the paper's average).

    Args:
      score_sets: S validation sets with the same videos.
      step: grid spacing.
      normalize: as in `fuse_scores`.

    Returns:
      (weights (S,) summing to 1, the validation metric with them).
    """
    sets = align(score_sets)
    uniform = np.full(len(sets), 1.0 / len(sets))
    best_key, best = None, None
    for weights in simplex_grid(len(sets), step):
        value = score_metric(fuse_scores(sets, weights, normalize))
        key = (round(value, 12), -float(np.sum((weights - uniform) ** 2)))
        if best_key is None or key > best_key:
            best_key, best = key, (weights, value)
    return best


def run_fusion(
    scores: Sequence[str],
    *,
    weights: Sequence[float] | None = None,
    normalize: str = "none",
    tune_on: Sequence[str] | None = None,
    grid_step: float = 0.05,
    output: str | None = None,
    metrics_output: str | None = None,
) -> dict:
    """Fuses score files and reports metrics (the body of the command; also used by `stpa.train --streams`).

    Args:
      scores: paths of S score files.
      weights: S weights, or None (equal weights, or tuned when `tune_on` is given).
      normalize: "none" or "softmax".
      tune_on: S validation score files to search the weights on.
      grid_step: spacing of the weight grid.
      output: optional path of the fused score file.
      metrics_output: optional JSON path.

    Returns:
      {"streams": [per-file metrics], "weights": [...], "fused": metrics, "tuned_on": {...} | None}.
    """
    sets = [score_files.load_scores(path) for path in scores]
    if len(sets) < 2:
        raise ValueError(f"--scores needs two or more files to fuse, got {list(scores)}.")
    tuned = None
    if tune_on:
        if weights:
            raise ValueError("give either --weights or --tune_on, not both.")
        if len(tune_on) != len(sets):
            raise ValueError(f"--tune_on needs one file per --scores file ({len(sets)}), got {len(tune_on)}.")
        weights, value = tune_weights(
            [score_files.load_scores(p) for p in tune_on], step=grid_step, normalize=normalize
        )
        tuned = {"files": list(tune_on), "metric": value}
    fused = fuse_scores(sets, weights, normalize)
    weights = [1.0] * len(sets) if weights is None else [float(w) for w in weights]
    result = {
        "streams": [
            {"file": path, **metrics.classification_report(s.scores, s.labels, multi_label=s.multi_label)}
            for path, s in zip(scores, sets)
        ],
        "weights": weights,
        "normalize": normalize,
        "fused": metrics.classification_report(fused.scores, fused.labels, multi_label=fused.multi_label),
        "tuned_on": tuned,
    }
    if output:
        score_files.save_scores(output, fused)
    if metrics_output:
        files.write_json(metrics_output, result)
    return result


def format_report(result: dict) -> str:
    """A small table of each stream's and the fused metrics."""
    keys = [k for k in ("top1", "top5", "mean_class_accuracy", "mAP", "wAP") if k in result["fused"]]
    lines = [f"{'stream':<40}" + "".join(f"{k:>22}" for k in keys)]
    for stream in result["streams"]:
        lines.append(
            f"{os.path.basename(os.path.dirname(stream['file'])) + '/' + os.path.basename(stream['file']):<40}"
            + "".join(f"{100 * stream[k]:>21.2f}%" for k in keys)
        )
    label = "fused (weights " + ",".join(f"{w:g}" for w in result["weights"]) + ")"
    lines.append(f"{label:<40}" + "".join(f"{100 * result['fused'][k]:>21.2f}%" for k in keys))
    if result["tuned_on"]:
        lines.append(
            f"weights tuned on {result['tuned_on']['files']} (validation metric "
            f"{100 * result['tuned_on']['metric']:.2f}%)"
        )
    return "\n".join(lines)
