"""Running a model over a test split: per-video scores with TSN test sampling (Sec. 3.4: K = 25, 1/3/10 crops).

Used by `stpa.evaluate`, by validation inside `stpa.train`, and by `stpa.quickstart`. The dataset comes from
`data.pipeline.build_dataset(..., training=False, with_metadata=True)`; frames are `(B, K, S, S, C)` for one crop or
`(B, crops, K, S, S, C)`, and the scores of a video are its logits averaged over crops (TSN's test practice; a
10-crop test reads its mirrored crops through the run's flip label map, `data.augment.unmirror_crop_scores`).
`write_figures` draws the result figures of a score set with `stpa.engine.figures`. The family's attention
statistics (`ModelFamily.attention_scalars`) come from the same forward pass as the logits (`make_forward_fn`): each
video's value is its crops' mean, and the metrics JSON holds their mean over the videos ("attention_statistics").
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping

import numpy as np
import tensorflow as tf

from data import augment, files
from stpa.engine import family as family_lib
from stpa.engine import inference, inputs
from stpa.engine.score_files import ScoreSet


def fold_crops(frames: tf.Tensor) -> tuple[tf.Tensor, int]:
    """`(B, crops, K, S, S, C)` -> `(B*crops, K, S, S, C)`; rank-5 input is returned as is with crops = 1."""
    if frames.shape.rank == 5:
        return frames, 1
    crops = frames.shape[1]
    shape = tf.shape(frames)
    return tf.reshape(frames, tf.concat([[shape[0] * shape[1]], shape[2:]], axis=0)), crops  # (B*crops, K, S, S, C)


def average_crops(logits: tf.Tensor, crops: int, flip_targets: np.ndarray | None = None) -> tf.Tensor:
    """`(B*crops, C)` logits -> float32 `(B, C)`, each video's mean over its crops (10 crops: mirrored ones unmirrored).

    Args:
      logits: `(B*crops, C)`, the crops of a video consecutive (`fold_crops`).
      crops: 1, 3 or 10.
      flip_targets: the run's flip label map (`data.augment.flip_targets`), read for 10 crops; None: plain average.
    """
    logits = tf.cast(logits, tf.float32)  # (B*crops, C)
    if crops == 1:
        return logits
    logits = tf.reshape(logits, [-1, crops, logits.shape[-1]])  # (B, crops, C)
    if crops == 10:
        logits = augment.unmirror_crop_scores(logits, flip_targets)
    return tf.reduce_mean(logits, axis=1)  # (B, C)


def make_forward_fn(
    outputs_model: Callable[..., Mapping[str, tf.Tensor]],
    *,
    statistics: Callable[[Mapping[str, tf.Tensor]], Mapping[str, tf.Tensor]] | None = None,
    jit_compile: bool = False,
    flip_targets: np.ndarray | None = None,
) -> Callable[[tf.Tensor], tuple[tf.Tensor, dict[str, tf.Tensor]]]:
    """A tf.function mapping test frames (one or several crops) to crop-averaged logits and per-video statistics.

    One forward pass gives both: the statistics are read from the same outputs as the logits.

    Args:
      outputs_model: frames `(B, K, S, S, C)` -> {"logits": `(B, C)`, ...} (the family's `outputs_model`, or a
        SavedModel's `serve_frames`).
      statistics: outputs -> {name: `(B,)` per clip} (the family's `attention_scalars`); None: none.
      jit_compile: compile the forward pass with XLA.
      flip_targets: the run's flip label map (`data.augment.flip_targets`): 10-crop testing reads the mirrored crops'
        logits through it (`data.augment.unmirror_crop_scores`); None: TSN's plain average.

    Returns:
      `forward_fn(frames) -> (logits, {name: (B,)})`: float32 `(B, C)` logits averaged over crops, and each
      statistic as float32 `(B,)`, each video's mean over its crops.
    """

    @tf.function(reduce_retracing=True, jit_compile=jit_compile)
    def forward_fn(frames: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        folded, crops = fold_crops(frames)
        outputs = outputs_model(folded, training=False)
        logits = average_crops(outputs["logits"], crops, flip_targets)  # (B, C)
        per_video = {
            name: tf.reduce_mean(tf.reshape(tf.cast(values, tf.float32), [-1, crops]), axis=1)  # (B,)
            for name, values in (statistics(outputs) if statistics else {}).items()
        }
        return logits, per_video

    return forward_fn


def make_logits_fn(
    model: Callable[..., tf.Tensor], *, jit_compile: bool = False, flip_targets: np.ndarray | None = None
) -> Callable[[tf.Tensor], tf.Tensor]:
    """A tf.function mapping test frames (one or several crops) to crop-averaged float32 logits `(B, C)`.

    Args:
      model: the network, frames `(B, K, S, S, C)` -> logits `(B, C)`.
      jit_compile: compile the forward pass with XLA.
      flip_targets: the run's flip label map (`data.augment.flip_targets`): 10-crop testing reads the mirrored crops'
        logits through it (`data.augment.unmirror_crop_scores`); None: TSN's plain average.
    """

    @tf.function(reduce_retracing=True, jit_compile=jit_compile)
    def logits_fn(frames: tf.Tensor) -> tf.Tensor:
        folded, crops = fold_crops(frames)
        return average_crops(model(folded, training=False), crops, flip_targets)  # (B, C)

    return logits_fn


def run_flip_targets(run_config: dict) -> np.ndarray | None:
    """The flip label map a run trained with (config.json's "flip_label_map"; runs without it: identity)."""
    return augment.flip_targets(run_config.get("class_names") or [], run_config.get("flip_label_map"))


def predict_scores(
    logits_fn: Callable[[tf.Tensor], tf.Tensor],
    dataset: tf.data.Dataset,
    *,
    max_videos: int | None = None,
    total: int | None = None,
    progress: bool = True,
    description: str = "evaluate",
    class_names: list[str] | None = None,
    multi_label: bool = False,
) -> ScoreSet:
    """Runs `logits_fn` over a test dataset yielding `(frames, labels, metadata)` (`engine.inference`'s loop).

    Args:
      logits_fn: frames -> (B, C) logits (see `make_logits_fn`).
      dataset: finite test dataset with metadata (needs "video_id").
      max_videos: stop after this many videos.
      total: number of videos, for the progress bar.
      progress: show a tqdm progress bar.
      description: progress-bar label.
      class_names: stored in the score set.
      multi_label: labels are multi-hot.

    Returns:
      ScoreSet with scores (N, C), labels, video ids.
    """
    scores, _ = predict_scores_and_statistics(
        lambda frames: (logits_fn(frames), {}),
        dataset,
        max_videos=max_videos,
        total=total,
        progress=progress,
        description=description,
        class_names=class_names,
        multi_label=multi_label,
    )
    return scores


def predict_scores_and_statistics(
    forward_fn: Callable[[tf.Tensor], tuple[tf.Tensor, Mapping[str, tf.Tensor]]],
    dataset: tf.data.Dataset,
    *,
    max_videos: int | None = None,
    total: int | None = None,
    progress: bool = True,
    description: str = "evaluate",
    class_names: list[str] | None = None,
    multi_label: bool = False,
) -> tuple[ScoreSet, dict[str, float]]:
    """`predict_scores` with per-video statistics from the same forward pass, averaged over the videos.

    Args:
      forward_fn: frames -> `(logits (B, C), {name: (B,)})` (see `make_forward_fn`).
      dataset, max_videos, total, progress, description, class_names, multi_label: as for `predict_scores`.

    Returns:
      `(scores, statistics)`: the ScoreSet, and {name: the statistic's mean over the N videos} ({} without any).
    """

    def batch_fn(frames: tf.Tensor, labels: tf.Tensor) -> inference.BatchResult:
        del labels
        logits, per_video = forward_fn(frames)
        return inference.BatchResult(logits.numpy(), per_video={k: v.numpy() for k, v in per_video.items()})

    result = inference.run_inference(
        batch_fn,
        dataset,
        max_videos=max_videos,
        total=total,
        progress=progress,
        description=description,
        empty_message="the test dataset is empty; check --records_dir and --split.",
    )
    scores = ScoreSet(
        scores=result.logits,
        labels=result.labels,
        video_ids=result.video_ids,
        class_names=np.asarray(class_names) if class_names is not None else None,
        multi_label=multi_label,
    )
    # (N,) per statistic -> its mean over the videos (the max_videos cut already applied by run_inference).
    statistics = {name: float(np.mean(values, dtype=np.float64)) for name, values in result.per_video.items()}
    return scores, statistics


def write_figures(stem: str, score_set: ScoreSet, class_names: list[str] | None = None) -> dict[str, str]:
    """Writes the result figures and the per-class table of a score set next to its score file.

    Single-label: `<stem>_confusion.png` (labelled, row-normalised confusion matrix), `<stem>_per_class.png` and
    `<stem>_per_class.csv` (per-class top-1 accuracy). Multi-label (Charades): no confusion matrix (a video has
    several true classes), the per-class average precision instead of the accuracy.

    Args:
      stem: output path without extension.
      score_set: scores (N, C) and labels.
      class_names: C names (default: those of the score set, else "class i").

    Returns:
      {"confusion_png" (single-label only), "per_class_png", "per_class_csv": path}, each written when returned.
    """
    from stpa.engine import figures, metrics

    num_classes = score_set.scores.shape[1]
    if class_names is None and score_set.class_names is not None:
        class_names = list(score_set.class_names)
    names = figures.class_labels(class_names, num_classes)
    written = {}
    if score_set.multi_label:
        targets = np.asarray(score_set.labels) > 0  # (N, C)
        values = metrics.charades_map(score_set.scores, targets)["per_class_ap"]
        written["per_class_csv"] = figures.write_per_class_table(
            stem + "_per_class.csv", values, names, targets.sum(axis=0), metric="average precision"
        )
        written["per_class_png"] = figures.save_figure(
            figures.per_class_figure(values, names, metric="average precision"), stem + "_per_class.png"
        )
        return written
    matrix = metrics.confusion_matrix(score_set.labels, metrics.ranked_classes(score_set.scores)[:, 0], num_classes)
    written["confusion_png"] = figures.write_confusion_matrix(stem + "_confusion.png", matrix, names)
    values = metrics.per_class_accuracy(matrix)
    written["per_class_csv"] = figures.write_per_class_table(
        stem + "_per_class.csv", values, names, matrix.sum(axis=1), np.diag(matrix), metric="accuracy"
    )
    written["per_class_png"] = figures.save_figure(figures.per_class_figure(values, names), stem + "_per_class.png")
    return written


def default_output(model_dir: str | None, saved_model: str | None, split: str, test_frames: int, crops: int) -> str:
    """`<run>/eval/scores_<split>_K<K>_crops<c>.npz` (next to the SavedModel for --saved_model)."""
    base = model_dir if model_dir else os.path.dirname(os.path.abspath(saved_model))
    return os.path.join(base, "eval", f"scores_{split}_K{test_frames}_crops{crops}.npz")


@dataclasses.dataclass(frozen=True)
class _EvaluatedRun:
    """The one place that resolves what `evaluate` scores -- a run directory's checkpoint or a SavedModel.

    Attributes:
      model_dir: run directory of stpa.train, or None for a SavedModel.
      saved_model: SavedModel directory of stpa.export, or None for a run directory.
      which: "best" or "last" checkpoint of `model_dir`.
      config: the run's config.json dict (a SavedModel's export config).
    """

    model_dir: str | None
    saved_model: str | None
    which: str
    config: dict

    @classmethod
    def open(cls, model_dir: str | None, saved_model: str | None, which: str) -> _EvaluatedRun:
        """Reads the run's config (exactly one of `model_dir` / `saved_model` is given)."""
        if model_dir is not None:
            from stpa.engine import checkpoints

            return cls(model_dir, None, which, checkpoints.load_run_config(model_dir))
        from stpa.engine import serving

        return cls(None, saved_model, which, serving.read_export_config(saved_model))

    def forward(
        self, family: family_lib.ModelFamily, *, frames_on_device: bool, jit_compile: bool
    ) -> tuple[Callable[[tf.Tensor], tuple[tf.Tensor, dict[str, tf.Tensor]]], Callable[[tf.Tensor], tf.Tensor] | None]:
        """Loads the model.

        Args:
          family: the run's family (its `outputs_model` and `attention_scalars`).
          frames_on_device: the input source hands the model raw frames, to be preprocessed in the input pipeline.
          jit_compile: XLA-compile the forward pass (run directories only).

        Returns:
          `(forward_fn, preprocess)`: `make_forward_fn`'s [B, K, H, W, C] (or crops-folded) -> ([B, classes]
          logits with the run's flip label map, {name: [B]} the family's attention statistics), one forward pass
          of the family's outputs model (a SavedModel: `serve_frames`, which returns the attention outputs too);
          the input pipeline's preprocessing, or None (a SavedModel's serve_frames normalises in-graph; a features
          source needs none).
        """
        flip_targets = run_flip_targets(self.config)
        if self.model_dir is not None:
            from stpa.engine import checkpoints

            model = checkpoints.load_model(self.model_dir, self.which)
            preprocess = inference.run_preprocess(self.config) if frames_on_device else None
            forward_fn = make_forward_fn(
                family.outputs_model(model),
                statistics=family.attention_scalars,
                jit_compile=jit_compile,
                flip_targets=flip_targets,
            )
            return forward_fn, preprocess
        # The closure holds the loaded object itself: a signature alone does not keep its variables alive.
        loaded = tf.saved_model.load(self.saved_model)
        return make_forward_fn(
            lambda frames, training=False: loaded.signatures["serve_frames"](frames=frames),
            statistics=family.attention_scalars,
            flip_targets=flip_targets,
        ), None


def evaluate(
    *,
    records_dir: str,
    model_dir: str | None = None,
    saved_model: str | None = None,
    which: str = "last",
    split: str = "test",
    test_frames: int = 25,
    crops: int = 1,
    batch_size: int = 4,
    max_videos: int | None = None,
    output: str | None = None,
    progress: bool = True,
    jit_compile: bool = False,
) -> dict:
    """Evaluates a run directory or a SavedModel on a prepared split.

    Args:
      records_dir: the prepared dataset (data.prepare --out_dir).
      model_dir: run directory of stpa.train (exclusive with `saved_model`).
      saved_model: SavedModel directory of stpa.export.
      which: "best" or "last" checkpoint of `model_dir`.
      split: split directory under `records_dir`.
      test_frames: K.
      crops: 1, 3 or 10.
      batch_size: videos per batch.
      max_videos: evaluate at most this many videos.
      output: score-file path (default `default_output`).
      progress: show a progress bar.
      jit_compile: compile the model's forward pass with XLA (`model_dir` only: a SavedModel's signature is run as
        exported).

    Returns:
      The metrics dict (also written as JSON); for a family with attention statistics (`ModelFamily.
      attention_scalars`, e.g. STPA's), "attention_statistics": {name: mean over the test videos of each video's
      crop-averaged value, ..., "test_frames": K}. With the paths it wrote: "scores_file", "metrics_file",
      "per_class_png", "per_class_csv", "confusion_png" (single-label only) and "training_curves_png" (`model_dir`
      runs with TensorBoard summaries; None otherwise).
    """
    from stpa.engine import metrics, score_files

    if jit_compile and saved_model is not None:
        raise ValueError("--jit_compile applies to --model_dir runs; a SavedModel's signature runs as exported.")
    if (model_dir is None) == (saved_model is None):
        raise ValueError("give exactly one of --model_dir or --saved_model.")
    if crops not in (1, 3, 10):
        raise ValueError(f"--crops must be one of [1, 3, 10], got {crops}.")
    run = _EvaluatedRun.open(model_dir, saved_model, which)
    config = run.config
    family = family_lib.get_family(config["build"]["model"])
    source = inputs.source_for(family, config, records_dir)  # The run's input: frames, or a family's (features).
    if crops not in source.crops:
        raise ValueError(f"--crops={crops}: this run's input ({source.name}) allows {list(source.crops)}.")
    source.check_splits([split], flags_hint="pass --split")
    manifest = source.read_manifest(split)
    forward_fn, preprocess = run.forward(family, frames_on_device=source.frames_on_device, jit_compile=jit_compile)
    multi_label = bool(config.get("multi_label", False))
    dataset = source.dataset(
        split,
        training=False,
        num_frames=test_frames,
        batch_size=batch_size,
        multi_label=multi_label,
        num_classes=config["build"]["num_classes"],
        with_metadata=True,
        preprocess=preprocess,
        crops=crops,
    )
    total = source.video_count(split)
    scores, statistics = predict_scores_and_statistics(
        forward_fn,
        dataset,
        max_videos=max_videos,
        total=total,
        progress=progress,
        description=f"evaluate K={test_frames} crops={crops}",
        class_names=config.get("class_names") or None,
        multi_label=multi_label,
    )
    output = output or default_output(model_dir, saved_model, split, test_frames, crops)
    score_files.save_scores(output, scores)
    report = metrics.classification_report(scores.scores, scores.labels, multi_label=multi_label)
    stem = os.path.splitext(output)[0]
    report.update(
        {
            "test_frames": test_frames,
            "crops": crops,
            "split": split,
            "scores_file": output,
            "metrics_file": stem + ".json",
            "model_dir": model_dir,
            "saved_model": saved_model,
        }
    )
    if statistics:  # families with attention statistics: their means over the test videos, at this K
        report["attention_statistics"] = {**statistics, "test_frames": test_frames}
    class_names = config.get("class_names") or manifest.get("class_names") or None
    report.update(write_figures(stem, scores, class_names))
    if run.model_dir is not None:
        from stpa.engine import figures

        try:
            report["training_curves_png"] = figures.write_training_curves(model_dir)
        except FileNotFoundError:  # a run without summaries (e.g. --summaries off): nothing to draw
            report["training_curves_png"] = None
    files.write_json(stem + ".json", report)
    return report


def format_report(report: dict) -> str:
    """Human-readable summary of `evaluate`'s result: the metrics, then every file it wrote."""
    keys = [k for k in ("top1", "top5", "mean_class_accuracy", "mAP", "wAP") if k in report]
    numbers = ", ".join(f"{k} {100 * report[k]:.2f}%" for k in keys)
    lines = [
        f"{report['num_videos']} videos, K={report['test_frames']}, crops={report['crops']}: {numbers}",
        f"scores: {report['scores_file']}",
        f"metrics: {report['metrics_file']}",
    ]
    for key, label in (
        ("confusion_png", "confusion matrix"),
        ("per_class_png", "per-class figure"),
        ("per_class_csv", "per-class table"),
        ("training_curves_png", "training curves"),
    ):
        if report.get(key):
            lines.append(f"{label}: {report[key]}")
    return "\n".join(lines)
