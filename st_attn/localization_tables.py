"""Tables 5-6 of Meng et al. from a trained ST-attn model's attention: weakly-supervised localisation, scored.

The command line is `python -m st_attn.localize` (st_attn/localize.py); the model and data set-up it shares with
`st_attn.visualize` is `st_attn.attention_runs`.

Runs the model on the TSN test clips of every video of the split (n frames at the segment centres, centre crop),
turns each frame's mask into a box and each video's temporal attention into segments (`st_attn.localization`), and
scores them against the ground truth carried in the records (UCF101-24 boxes, THUMOS14 segments; whatever the split
has): frame-level box mAP at α ∈ {0.05, 0.1, 0.2, 0.3} (Table 5) and segment mAP at α ∈ {0.1, ..., 0.5} (Table 6),
next to two baselines on the same frames and videos (a centred box of the average ground-truth size; the whole clip
as one segment). Prints the tables in the paper's layout and writes them as JSON.

Detections carry the video's predicted class (argmax of the logits) and are scored by its probability times the
attention's confidence (the mean mask value over the selected cells; the mean normalised attention over a segment),
so mAP is per class as in the paper's benchmarks; a class-agnostic AP (where only the boxes matter) is reported too.
By default only annotated frames are scored spatially (the spatial question; when the action happens is Table 6's);
`--all_frames` also counts boxes on sampled frames without ground truth as false positives.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from st_attn import localization as loc
from st_attn.localization import Detection, GroundTruth


@dataclasses.dataclass
class VideoAttention:
    """The attention of one test clip.

    Attributes:
      video_id: the video's id.
      probabilities: (num_classes,) softmax of the logits.
      mask: (n, h, w) spatial attention, or None for a model without spatial attention.
      weights: (n_steps, n) temporal attention.
      frame_indices: (n,) 0-based indices of the attended frames in the stored video.
      num_frames: frames of the stored video.
      fps: its frame rate.
      height: stored frame height.
      width: stored frame width.
      label: the first ground-truth class (-1 if none).
    """

    video_id: str
    probabilities: np.ndarray
    mask: np.ndarray | None
    weights: np.ndarray
    frame_indices: np.ndarray
    num_frames: int
    fps: float
    height: int
    width: int
    label: int = -1

    @property
    def predicted(self) -> int:
        """The predicted class."""
        return int(np.argmax(self.probabilities))


def centre_crop_window(height: int, width: int, input_size: int) -> tuple[float, float, float, float]:
    """The normalised (x1, y1, x2, y2) region of a stored frame seen by the network at test time.

    Mirrors `data.augment.eval_crops` with one crop: the short side is resized to `input_size * 256 // 224`
    (rounded), then the centre `input_size` square is cropped.
    """
    from data.augment import eval_scale_size

    size = eval_scale_size(input_size)
    short = min(height, width)
    if short == size:
        new_h, new_w = height, width
    else:
        scale = size / short  # the same float64 arithmetic as data.augment.resize_short_side
        new_h, new_w = int(round(height * scale)), int(round(width * scale))
    top, left = (new_h - input_size) // 2, (new_w - input_size) // 2
    return left / new_w, top / new_h, (left + input_size) / new_w, (top + input_size) / new_h


def collect_attention(
    attention_model: Callable,
    dataset: Iterable,
    *,
    max_videos: int | None = None,
    progress: bool = True,
) -> list[VideoAttention]:
    """Runs an attention-outputs model over a test dataset (`stpa.engine.inference`'s loop).

    Args:
      attention_model: `st_attn.models.attention_model(model)` (dict outputs "logits", "temporal_weights", "mask").
      dataset: batches `(inputs, labels, metadata)` (`data.pipeline.build_dataset(..., with_metadata=True)` or
        `st_attn.feature_cache.feature_dataset(..., with_metadata=True)`), inputs already preprocessed.
      max_videos: stop after this many videos.
      progress: show a progress bar.

    Returns:
      One `VideoAttention` per video, in dataset order.
    """
    from stpa.engine import inference

    def batch_fn(inputs, labels) -> inference.BatchResult:
        outputs = attention_model(inputs, training=False)
        per_video = {"temporal_weights": np.asarray(outputs["temporal_weights"])}
        if "mask" in outputs:
            per_video["mask"] = np.asarray(outputs["mask"])[..., 0]  # (B, n, h, w)
        return inference.BatchResult(np.asarray(outputs["logits"], np.float64), per_video=per_video)

    result = inference.run_inference(
        batch_fn,
        dataset,
        max_videos=max_videos,
        progress=progress,
        description="attention",
        empty_message="no video to localise: the split is empty (or --video_ids matched none).",
        metadata_keys=("video_id", "frame_indices", "num_frames", "fps", "height", "width"),
    )
    logits = result.logits
    probabilities = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    masks, meta, labels = result.per_video.get("mask"), result.metadata, result.labels
    videos = []
    for i in range(result.num_videos):
        positives = np.flatnonzero(labels[i]) if labels.ndim == 2 else [labels[i]]
        videos.append(
            VideoAttention(
                video_id=str(result.video_ids[i]),
                probabilities=probabilities[i],
                mask=None if masks is None else masks[i],
                weights=result.per_video["temporal_weights"][i],
                frame_indices=meta["frame_indices"][i],
                num_frames=int(meta["num_frames"][i]),
                fps=float(meta["fps"][i]),
                height=int(meta["height"][i]),
                width=int(meta["width"][i]),
                label=int(positives[0]) if len(positives) else -1,
            )
        )
    return videos


def spatial_detections(
    videos: Sequence[VideoAttention],
    annotations: dict[str, dict],
    *,
    input_size: int,
    threshold: float = 0.5,
    all_frames: bool = False,
) -> tuple[list[Detection], list[Detection], list[GroundTruth]]:
    """Boxes from the masks of the sampled frames (Sec. 4.2.1), the centred-box baseline, and the ground truth.

    Args:
      videos: the collected attention.
      annotations: `data.records.read_annotations(split_dir)`.
      input_size: the network's input side (for the test crop geometry).
      threshold: mask threshold (0.5).
      all_frames: also score sampled frames without ground-truth boxes (their boxes are false positives).

    Returns:
      (ours, centred-box baseline, ground truth); keys are (video_id, frame_index).
    """
    ours: list[Detection] = []
    truths: list[GroundTruth] = []
    frames_for_baseline: list[tuple[tuple[str, int], VideoAttention]] = []
    for video in videos:
        if video.mask is None:
            raise ValueError("The model has no spatial attention (built with spatial_attention=False): no boxes.")
        entry = annotations.get(video.video_id, {})
        boxes = entry.get("boxes", {})
        box_labels = entry.get("box_labels", {})
        window = centre_crop_window(video.height, video.width, input_size)
        predicted = video.predicted
        probability = float(video.probabilities[predicted])
        for t, frame_index in enumerate(video.frame_indices):
            frame_index = int(frame_index)
            key = (video.video_id, frame_index)
            gt_boxes = boxes.get(frame_index)
            if gt_boxes is None and not all_frames:
                continue
            if gt_boxes is not None:
                labels = box_labels.get(frame_index, np.full(len(gt_boxes), video.label))
                truths.extend(GroundTruth(key, box, int(label)) for box, label in zip(gt_boxes, labels))
            frames_for_baseline.append((key, video))
            box = loc.box_from_mask(video.mask[t], (video.height, video.width), threshold, window)
            if box is None:
                continue
            confidence = float(video.mask[t][video.mask[t] > threshold].mean())
            ours.append(Detection(key, box, probability * confidence, predicted))
    baseline: list[Detection] = []
    if truths:
        centred = loc.centred_box(loc.average_box_size(truth.region for truth in truths))
        baseline = [
            Detection(key, centred, float(video.probabilities[video.predicted]), video.predicted)
            for key, video in frames_for_baseline
        ]
    return ours, baseline, truths


def temporal_detections(
    videos: Sequence[VideoAttention], annotations: dict[str, dict], *, threshold: float = 0.5
) -> tuple[list[Detection], list[Detection], list[GroundTruth]]:
    """Segments from the temporal attention (Sec. 4.2.2), the whole-clip baseline, and the ground truth.

    Returns:
      (ours, whole-clip baseline, ground truth); keys are video ids. Only videos with ground-truth segments count.
    """
    ours: list[Detection] = []
    baseline: list[Detection] = []
    truths: list[GroundTruth] = []
    for video in videos:
        entry = annotations.get(video.video_id, {})
        segments = np.asarray(entry.get("segments", np.zeros((0, 2))), np.float64).reshape(-1, 2)
        if not len(segments):
            continue
        segment_labels = np.asarray(entry.get("segment_labels", []), np.int64).reshape(-1)
        if len(segment_labels) != len(segments):
            segment_labels = np.full(len(segments), video.label)
        truths.extend(GroundTruth(video.video_id, s, int(c)) for s, c in zip(segments, segment_labels))
        predicted = video.predicted
        probability = float(video.probabilities[predicted])
        importance = loc.frame_importance(video.weights)
        for start, end, score in loc.segments_from_weights(
            importance, num_frames=video.num_frames, fps=video.fps, threshold=threshold
        ):
            ours.append(Detection(video.video_id, np.array([start, end]), probability * score, predicted))
        baseline.append(
            Detection(video.video_id, loc.whole_clip_segment(video.num_frames, video.fps), probability, predicted)
        )
    return ours, baseline, truths


def localize(
    videos: Sequence[VideoAttention],
    annotations: dict[str, dict],
    *,
    input_size: int,
    threshold: float = 0.5,
    all_frames: bool = False,
) -> dict:
    """Tables 5 and 6 (whichever the ground truth allows) for the collected attention.

    Returns:
      {"spatial": {...} or None, "temporal": {...} or None, "classification": {"top1", "videos"}}, each table
      {"thresholds": [...], "rows": {method: [mAP per α]}, "frames"/"videos": counts}.
    """
    result: dict = {
        "classification": {
            "videos": len(videos),
            "top1": float(np.mean([v.predicted == v.label for v in videos])) if videos else 0.0,
        },
        "spatial": None,
        "temporal": None,
    }
    if videos and videos[0].mask is not None:
        ours, baseline, truths = spatial_detections(
            videos, annotations, input_size=input_size, threshold=threshold, all_frames=all_frames
        )
        if truths:
            alphas = loc.SPATIAL_THRESHOLDS
            result["spatial"] = {
                "thresholds": list(alphas),
                "frames": len({t.key for t in truths}),
                "rows": {
                    "ST-attn (ours)": list(loc.frame_map(ours, truths, alphas).values()),
                    "Centred box of average GT size": list(loc.frame_map(baseline, truths, alphas).values()),
                    "ST-attn, class-agnostic AP": list(loc.frame_map(ours, truths, alphas, True).values()),
                    "Centred box, class-agnostic AP": list(loc.frame_map(baseline, truths, alphas, True).values()),
                },
            }
    ours, baseline, truths = temporal_detections(videos, annotations, threshold=threshold)
    if truths:
        alphas = loc.TEMPORAL_THRESHOLDS
        result["temporal"] = {
            "thresholds": list(alphas),
            "videos": len({t.key for t in truths}),
            "rows": {
                "ST-attn (ours)": list(loc.segment_map(ours, truths, alphas).values()),
                "Whole clip as one segment": list(loc.segment_map(baseline, truths, alphas).values()),
                "ST-attn, class-agnostic AP": list(loc.segment_map(ours, truths, alphas, True).values()),
                "Whole clip, class-agnostic AP": list(loc.segment_map(baseline, truths, alphas, True).values()),
            },
        }
    return result


def format_tables(result: dict) -> str:
    """The paper's layout: one row per method, one column per IoU threshold α, mAP in %."""
    lines = []
    titles = {
        "spatial": "Spatial action localisation (Table 5 of Meng et al.): frame mAP at IoU α",
        "temporal": "Temporal action localisation (Table 6 of Meng et al.): segment mAP at tIoU α",
    }
    for name in ("spatial", "temporal"):
        table = result.get(name)
        if not table:
            continue
        count = f"{table['frames']} annotated frames" if name == "spatial" else f"{table['videos']} videos"
        lines.append(f"{titles[name]} ({count})")
        width = max(len(method) for method in table["rows"]) + 2
        lines.append("Method".ljust(width) + "".join(f"α = {a:<6}" for a in table["thresholds"]))
        for method, values in table["rows"].items():
            lines.append(method.ljust(width) + "".join(f"{100 * v:6.1f}%   " for v in values))
        lines.append("")
    if not lines:
        lines.append("No localisation ground truth (boxes or segments) in this split.")
    return "\n".join(lines)
