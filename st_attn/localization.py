"""Weakly-supervised localisation from ST-attn's attention, and its detection metrics (pure NumPy).

Sec. 4.2 of Meng et al., 2019:
  - spatial (Sec. 4.2.1, Table 5): each frame's mask is upsampled to the frame size and thresholded at 0.5; the
    tightest box around the selected pixels is the frame's detection (`box_from_mask`); scored by frame-level
    average precision at IoU thresholds α ∈ {0.05, 0.1, 0.2, 0.3} (`frame_map`);
  - temporal (Sec. 4.2.2, Table 6): the video's temporal attention is normalised to [0, 1] and thresholded at 0.5;
    runs of selected frames are the detected segments (`segments_from_weights`); scored THUMOS14-style by
    detection mAP at temporal IoU α ∈ {0.1, ..., 0.5} (`segment_map`).
Baselines for context: a centred box of the average ground-truth size (`centred_box`) and the whole clip as one
segment (`whole_clip_segment`).

Average precision is the standard detection definition (PASCAL VOC 2010+ / ActivityNet): detections of a class
are ranked by score (ties keep their input order); going down the list, a detection is a true positive when some
still-unmatched ground truth of the same key (frame or video) and class has IoU >= α with it — it takes the one
with the highest IoU — and a false positive otherwise, so each ground truth is matched at most once; AP is the area
under the precision-recall curve with precision made monotonically non-increasing (all-point interpolation).
mAP averages AP over the classes that have ground truth. Boxes are (x1, y1, x2, y2) normalised to [0, 1] of the
frame; segments are (start, end) in seconds.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence

import numpy as np

from stpa.engine.pictures import upsample_bilinear

SPATIAL_THRESHOLDS = (0.05, 0.1, 0.2, 0.3)  # Table 5
TEMPORAL_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)  # Table 6


@dataclasses.dataclass(frozen=True)
class Detection:
    """One detection: a box (4,) or a segment (2,) in `key` (a frame `(video_id, frame_index)` or a video id)."""

    key: Hashable
    region: np.ndarray
    score: float
    label: int = 0


@dataclasses.dataclass(frozen=True)
class GroundTruth:
    """One ground-truth box (4,) or segment (2,) in `key`, of class `label`."""

    key: Hashable
    region: np.ndarray
    label: int = 0


# ----------------------------------------------------------------------------------------------------------------
# Spatial: mask -> box, box IoU.


def box_from_mask(
    mask: np.ndarray,
    frame_size: tuple[int, int],
    threshold: float = 0.5,
    crop_window: Sequence[float] = (0.0, 0.0, 1.0, 1.0),
) -> np.ndarray | None:
    """Sec. 4.2.1 of Meng et al.: the tightest box around the mask upsampled to the frame and thresholded.

    Args:
      mask: (h, w) or (h, w, 1) spatial attention of one frame, values in [0, 1].
      frame_size: (H, W) of the frame in pixels.
      threshold: entries strictly above it are selected (0.5 in the paper, as `B = 1{M > 0.5}` of Eq. 8).
      crop_window: (x1, y1, x2, y2), normalised to the frame, of the region the network saw (e.g. the centre crop);
        the mask covers this region.

    Returns:
      float64 (4,) box (x1, y1, x2, y2) normalised to the frame (pixel edges: a box around pixel columns a..b spans
      [a, b + 1) / W), or None when no entry exceeds the threshold.
    """
    mask = np.asarray(mask, np.float64)
    if mask.ndim == 3:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise ValueError(f"box_from_mask expects one frame's mask (h, w) or (h, w, 1); got shape {mask.shape}.")
    left, top, right, bottom = (float(v) for v in crop_window)
    crop_h = max(int(round((bottom - top) * frame_size[0])), 1)
    crop_w = max(int(round((right - left) * frame_size[1])), 1)
    selected = upsample_bilinear(mask, (crop_h, crop_w)) > threshold
    if not selected.any():
        return None
    rows = np.flatnonzero(selected.any(axis=1))
    cols = np.flatnonzero(selected.any(axis=0))
    box = np.array([cols[0] / crop_w, rows[0] / crop_h, (cols[-1] + 1) / crop_w, (rows[-1] + 1) / crop_h])
    scale = np.array([right - left, bottom - top, right - left, bottom - top])
    return np.array([left, top, left, top]) + box * scale


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box (4,) with boxes (M, 4), all (x1, y1, x2, y2). Returns (M,)."""
    box = np.asarray(box, np.float64)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    width = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0.0, None)
    height = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0.0, None)
    intersection = width * height
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


def average_box_size(boxes: Iterable[np.ndarray]) -> tuple[float, float]:
    """Mean (width, height) of normalised boxes (any number of (4,) or (M, 4) arrays)."""
    stacked = np.concatenate([np.asarray(b, np.float64).reshape(-1, 4) for b in boxes])
    if not len(stacked):
        raise ValueError("average_box_size needs at least one ground-truth box.")
    return float(np.mean(stacked[:, 2] - stacked[:, 0])), float(np.mean(stacked[:, 3] - stacked[:, 1]))


def centred_box(size: tuple[float, float]) -> np.ndarray:
    """Baseline: the box of normalised (width, height) `size` centred in the frame."""
    width, height = size
    return np.array([0.5 - width / 2, 0.5 - height / 2, 0.5 + width / 2, 0.5 + height / 2])


# ----------------------------------------------------------------------------------------------------------------
# Temporal: weights -> segments, temporal IoU.


def frame_importance(weights: np.ndarray) -> np.ndarray:
    """The importance of each frame: its attention weight averaged over the ConvLSTM steps, (n_steps, n) -> (n,).

    `(1/n) Σ_t w_ti` is the total weight with which frame i enters the ConvLSTM through Eq. 4.
    """
    weights = np.asarray(weights, np.float64)
    if weights.ndim != 2:
        raise ValueError(f"temporal weights of one video are (n_steps, n); got shape {weights.shape}.")
    return weights.mean(axis=0)


def normalize_unit_interval(values: np.ndarray) -> np.ndarray:
    """Min-max normalisation to [0, 1]; a constant sequence maps to all ones (every frame equally important)."""
    values = np.asarray(values, np.float64)
    low, high = values.min(), values.max()
    if high - low <= 1e-12 * max(abs(high), 1.0):
        return np.ones_like(values)
    return (values - low) / (high - low)


def segments_from_weights(
    importance: np.ndarray, *, num_frames: int, fps: float, threshold: float = 0.5
) -> list[tuple[float, float, float]]:
    """Sec. 4.2.2 of Meng et al.: normalise to [0, 1], threshold at 0.5, runs of selected frames -> segments.

    The n attended frames are the TSN test samples (one per segment of the video), so frame i stands for the time
    span [i, i + 1) * num_frames / n of the video; a run of selected frames i..j is the segment
    [i * num_frames / n, (j + 1) * num_frames / n) / fps seconds.

    Args:
      importance: (n,) per-frame attention (e.g. `frame_importance(weights)`).
      num_frames: number of frames of the video.
      fps: its frame rate.
      threshold: normalised values >= threshold are selected (0.5 in the paper).

    Returns:
      [(start_seconds, end_seconds, score)] in time order, score = mean normalised importance over the run.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive to convert frames to seconds; got {fps}.")
    normalised = normalize_unit_interval(importance)
    selected = normalised >= threshold
    span = num_frames / len(normalised) / fps  # seconds per attended frame
    segments = []
    start = None
    for index, flag in enumerate([*selected, False]):
        if flag and start is None:
            start = index
        elif not flag and start is not None:
            segments.append((start * span, index * span, float(normalised[start:index].mean())))
            start = None
    return segments


def whole_clip_segment(num_frames: int, fps: float) -> np.ndarray:
    """Baseline: the whole video as one segment (start, end) in seconds."""
    return np.array([0.0, num_frames / fps])


def temporal_iou(segment: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Intersection over union of one segment (2,) with segments (M, 2), all (start, end). Returns (M,)."""
    segment = np.asarray(segment, np.float64)
    segments = np.asarray(segments, np.float64).reshape(-1, 2)
    intersection = np.clip(np.minimum(segment[1], segments[:, 1]) - np.maximum(segment[0], segments[:, 0]), 0, None)
    union = (segment[1] - segment[0]) + (segments[:, 1] - segments[:, 0]) - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


# ----------------------------------------------------------------------------------------------------------------
# Average precision.


def average_precision(true_positive: Sequence[bool], num_ground_truth: int) -> float:
    """All-point interpolated AP of a ranked detection list (PASCAL VOC 2010+, ActivityNet).

    Args:
      true_positive: (D,) flags of the detections in rank order.
      num_ground_truth: number of ground-truth instances (> 0).

    Returns:
      AP in [0, 1].
    """
    if num_ground_truth <= 0:
        raise ValueError("average_precision needs at least one ground truth.")
    flags = np.asarray(true_positive, bool)
    if not len(flags):
        return 0.0
    tp = np.cumsum(flags)
    fp = np.cumsum(~flags)
    recall = np.concatenate([[0.0], tp / num_ground_truth, [1.0]])
    precision = np.concatenate([[0.0], tp / np.maximum(tp + fp, 1), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # monotone envelope
    changes = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[changes + 1] - recall[changes]) * precision[changes + 1]))


def _match(
    detections: Sequence[Detection],
    ground_truths: Sequence[GroundTruth],
    iou_threshold: float,
    iou: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> list[bool]:
    """True/false positive flags of score-ranked detections (one class); each ground truth matched once."""
    by_key: dict[Hashable, list[np.ndarray]] = defaultdict(list)
    for truth in ground_truths:
        by_key[truth.key].append(np.asarray(truth.region, np.float64))
    regions = {key: np.stack(values) for key, values in by_key.items()}
    matched = {key: np.zeros(len(values), bool) for key, values in regions.items()}
    flags = []
    for detection in detections:
        if detection.key not in regions:
            flags.append(False)
            continue
        overlaps = iou(np.asarray(detection.region, np.float64), regions[detection.key])
        overlaps = np.where(matched[detection.key], -1.0, overlaps)
        best = int(np.argmax(overlaps))
        if overlaps[best] >= iou_threshold:
            matched[detection.key][best] = True
            flags.append(True)
        else:
            flags.append(False)
    return flags


def detection_map(
    detections: Sequence[Detection],
    ground_truths: Sequence[GroundTruth],
    iou_threshold: float,
    iou: Callable[[np.ndarray, np.ndarray], np.ndarray],
    class_agnostic: bool = False,
) -> tuple[float, dict[int, float]]:
    """Mean over classes (with ground truth) of the detection AP at one IoU threshold.

    Args:
      detections: all detections (any order; ranked here by score, stable).
      ground_truths: all ground-truth instances.
      iou_threshold: α.
      iou: `box_iou` or `temporal_iou`.
      class_agnostic: ignore the labels (one class).

    Returns:
      (mAP, {label: AP}). A class with ground truth and no detection has AP 0.
    """
    if not ground_truths:
        raise ValueError("detection_map needs ground truth: none was found for the evaluated videos.")
    label_of = (lambda item: 0) if class_agnostic else (lambda item: int(item.label))
    truths_by_label: dict[int, list[GroundTruth]] = defaultdict(list)
    for truth in ground_truths:
        truths_by_label[label_of(truth)].append(truth)
    detections_by_label: dict[int, list[Detection]] = defaultdict(list)
    for detection in detections:
        detections_by_label[label_of(detection)].append(detection)
    per_class = {}
    for label, truths in sorted(truths_by_label.items()):
        ranked = sorted(detections_by_label.get(label, []), key=lambda d: -d.score)
        per_class[label] = average_precision(_match(ranked, truths, iou_threshold, iou), len(truths))
    return float(np.mean(list(per_class.values()))), per_class


def frame_map(
    detections: Sequence[Detection],
    ground_truths: Sequence[GroundTruth],
    thresholds: Sequence[float] = SPATIAL_THRESHOLDS,
    class_agnostic: bool = False,
) -> dict[float, float]:
    """Table 5: frame-level box detection mAP at each IoU threshold α. Keys are frames. Returns {α: mAP}."""
    return {alpha: detection_map(detections, ground_truths, alpha, box_iou, class_agnostic)[0] for alpha in thresholds}


def segment_map(
    detections: Sequence[Detection],
    ground_truths: Sequence[GroundTruth],
    thresholds: Sequence[float] = TEMPORAL_THRESHOLDS,
    class_agnostic: bool = False,
) -> dict[float, float]:
    """Table 6: THUMOS14-style temporal detection mAP at each tIoU threshold α. Keys are videos. Returns {α: mAP}."""
    return {
        alpha: detection_map(detections, ground_truths, alpha, temporal_iou, class_agnostic)[0] for alpha in thresholds
    }
