"""Labelled result figures (matplotlib, Agg, no display): confusion matrix, per-class accuracy / AP, training curves.

Written by `stpa.evaluate` next to its score file and, for the training curves, by `stpa.train` at the end of a run:

- `confusion_figure`: class names on both axes, rows normalised to the fraction of each true class, a colour bar,
  the counts in the cells while they are legible (<= `ANNOTATE_MAX_CLASSES` classes). The figure grows with the
  number of classes so that 101 (UCF101) and 157 (Charades-sized) class names stay readable.
- `per_class_figure` / `write_per_class_table`: per-class accuracy (single-label) or average precision (multi-label)
  as sorted horizontal bars and as a CSV table.
- `read_scalars` / `training_curves_figure` / `write_training_curves`: the TensorBoard scalars of a run directory
  (`<model_dir>/train` and `<model_dir>/validation`: loss/*, top1, learning_rate, clips_per_second, validation top1 /
  top5 / mean_class_accuracy / mAP / wAP) as a PNG that can be read without TensorBoard.

Figures are `matplotlib.figure.Figure` objects on an Agg canvas (no pyplot state, no display); `save_figure` writes
them through `data.files.write_atomic` (folder created, atomic, failure raised naming the path). The format follows
the extension (.png, .pdf, .svg).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from data import files

# In-cell counts are drawn up to this many classes; beyond it the cells are too small for digits.
ANNOTATE_MAX_CLASSES = 30
DPI = 120
TRAINING_CURVES_NAME = "training_curves.png"


def class_labels(class_names: Sequence[str] | None, num_classes: int) -> list[str]:
    """`class_names` as a list of C strings, or "class i" when unknown.

    Raises:
      ValueError: the number of names is not C.
    """
    if class_names is None or len(class_names) == 0:
        return [f"class {i}" for i in range(num_classes)]
    names = [str(name) for name in class_names]
    if len(names) != num_classes:
        raise ValueError(
            f"{len(names)} class names for {num_classes} classes; the run's config.json and the score "
            "file must describe the same classes."
        )
    return names


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (rows without videos stay 0). (C, C) counts -> (C, C) float64 in [0, 1]."""
    matrix = np.asarray(matrix, np.float64)
    rows = matrix.sum(axis=1, keepdims=True)  # (C, 1)
    return np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)  # Agg canvas: renders without a display.
    return figure


def _label_font(num_labels: int) -> float:
    """Tick-label size (points) that fits one label per `_label_step(num_labels)` inches."""
    return float(np.clip(_label_step(num_labels) * 72 * 0.7, 6.0, 10.0))


def _label_step(num_labels: int) -> float:
    """Inches per class on an axis: 0.45 for a few classes, down to 0.13 (about 9 pt) for 40 and more."""
    return float(np.clip(5.0 / max(num_labels, 1), 0.13, 0.45))


def _text_inches(labels: Sequence[str], font: float) -> float:
    """Rough width of the longest label in inches (0.6 em per character)."""
    return max((len(label) for label in labels), default=1) * font * 0.6 / 72


def confusion_figure(
    matrix: np.ndarray,
    class_names: Sequence[str] | None = None,
    *,
    title: str | None = None,
    annotate_max: int = ANNOTATE_MAX_CLASSES,
) -> Figure:
    """A labelled, row-normalised confusion matrix.

    Args:
      matrix: (C, C) counts; entry [t, p] counts videos of true class t predicted as p
        (`stpa.engine.metrics.confusion_matrix`).
      class_names: C names (default "class i").
      title: figure title (default: the number of videos and classes).
      annotate_max: write the count in each non-empty cell when C <= this.

    Returns:
      The figure; its axes are `figure.axes[0]` (matrix) and `figure.axes[1]` (colour bar).
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"a confusion matrix is (C, C), got shape {matrix.shape}.")
    num_classes = matrix.shape[0]
    names = class_labels(class_names, num_classes)
    normalised = normalise_rows(matrix)  # (C, C)
    font = _label_font(num_classes)
    side = max(3.5, num_classes * _label_step(num_classes))  # inches of the matrix
    labels = _text_inches(names, font) + 0.5
    figure = _new_figure(max(6.5, side + labels + 1.6), side + labels + 1.0)
    axes = figure.add_subplot()
    image = axes.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="equal")
    ticks = np.arange(num_classes)
    axes.set_xticks(ticks, names, rotation=90, fontsize=font)
    axes.set_yticks(ticks, names, fontsize=font)
    axes.tick_params(length=2)
    axes.set_xlabel("predicted class", fontsize=max(font, 9))
    axes.set_ylabel("true class", fontsize=max(font, 9))
    if title is None:
        title = (
            f"Confusion matrix (rows normalised)\n{int(matrix.sum())} videos, {num_classes} classes, "
            f"top-1 {np.trace(matrix) / max(matrix.sum(), 1):.1%}"
        )
    axes.set_title(title, fontsize=max(font, 9) + 1)
    colour_bar = figure.colorbar(image, ax=axes, fraction=0.05, pad=0.02, shrink=min(1.0, 4.0 / max(side, 1e-3) + 0.3))
    colour_bar.set_label("fraction of the true class", fontsize=9)
    if num_classes <= annotate_max:
        count_font = min(9.0, font)
        for t, p in zip(*np.nonzero(matrix)):
            axes.text(
                p,
                t,
                str(int(matrix[t, p])),
                ha="center",
                va="center",
                fontsize=count_font,
                color="white" if normalised[t, p] > 0.5 else "black",
            )
    return figure


def per_class_figure(
    values: np.ndarray, class_names: Sequence[str] | None = None, *, metric: str = "accuracy", title: str | None = None
) -> Figure:
    """Per-class accuracy (or AP) as horizontal bars sorted from the lowest (top) to the highest.

    Args:
      values: (C,) per-class values in [0, 1]; NaN for classes without test videos (left out, said in the title).
      class_names: C names.
      metric: the axis label ("accuracy" or "average precision").
      title: figure title (default: the mean over classes).

    Returns:
      The figure; `figure.axes[0]`'s y tick labels are the class names in drawing order.
    """
    values = np.asarray(values, np.float64)
    names = class_labels(class_names, len(values))
    present = np.flatnonzero(~np.isnan(values))
    order = present[np.argsort(values[present], kind="stable")]  # lowest first
    font = _label_font(len(order))
    step = _label_step(len(order))
    figure = _new_figure(max(6.0, _text_inches(names, font) + 5.5), max(3.0, len(order) * step + 1.4))
    axes = figure.add_subplot()
    rows = np.arange(len(order))
    axes.barh(rows, values[order], height=0.8, color="tab:blue")
    axes.set_yticks(rows, [names[c] for c in order], fontsize=font)
    axes.invert_yaxis()  # lowest value at the top
    axes.set_ylim(len(order) - 0.5, -0.5)
    axes.set_xlim(0.0, 1.12)
    axes.set_xlabel(metric)
    for row, c in enumerate(order):
        axes.text(values[c] + 0.01, row, f"{values[c]:.0%}", va="center", fontsize=font)
    mean = float(np.mean(values[order])) if len(order) else float("nan")
    axes.axvline(mean, color="tab:red", linestyle="--", linewidth=1)
    if title is None:
        missing = len(values) - len(order)
        title = f"Per-class {metric}, {len(order)} classes, mean {mean:.1%} (dashed)" + (
            f"\n{missing} classes without test videos left out" if missing else ""
        )
    axes.set_title(title, fontsize=11)
    return figure


def save_figure(figure: Figure, path: str) -> str:
    """Writes `figure` to `path` (format from the extension), atomically, folder created. Returns `path`."""
    return files.write_atomic(path, lambda temporary: figure.savefig(temporary, dpi=figure.dpi))


def write_confusion_matrix(path: str, matrix: np.ndarray, class_names: Sequence[str] | None = None, **kwargs) -> str:
    """`confusion_figure` saved to `path` (.png, .pdf or .svg). Returns `path`."""
    return save_figure(confusion_figure(matrix, class_names, **kwargs), path)


def write_per_class_table(
    path: str,
    values: np.ndarray,
    class_names: Sequence[str] | None,
    support: np.ndarray,
    correct: np.ndarray | None = None,
    *,
    metric: str = "accuracy",
) -> str:
    """Writes the per-class numbers as CSV, one row per class in class order. Returns `path`.

    Columns: class_index, class_name, videos (or positives for AP), [correct,] `metric` (empty for NaN).

    Args:
      path: output .csv.
      values: (C,) per-class values.
      class_names: C names.
      support: (C,) test videos of each class (positives for multi-label).
      correct: (C,) correctly classified videos (single-label), or None.
      metric: the value column's name.
    """
    values = np.asarray(values, np.float64)
    names = class_labels(class_names, len(values))
    header = ["class_index", "class_name", "videos" if correct is not None else "positives"]
    header += (["correct"] if correct is not None else []) + [metric.replace(" ", "_")]
    with files.open_atomic(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for c, name in enumerate(names):
            row = [c, name, int(support[c])] + ([int(correct[c])] if correct is not None else [])
            writer.writerow(row + ["" if np.isnan(values[c]) else f"{values[c]:.6f}"])
    return path


# ------------------------------------------------------------------------------------------------- training curves


def _event_files(log_dir: str) -> list[str]:
    import tensorflow as tf  # tf.io.gfile: local folders and gs:// run directories alike

    return sorted(tf.io.gfile.glob(os.path.join(log_dir, "events.out.tfevents.*")))


def read_scalars(log_dir: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The scalar summaries of one TensorBoard log folder.

    Reads every event file in `log_dir` (in name order, i.e. by start time: a resumed run adds a file, and its
    values replace those of earlier files at the same step). Reads both TF2 (`tf.summary.scalar`, tensor values) and
    TF1 (`simple_value`) scalars; a truncated last record (a run still writing) ends that file's reading.

    Args:
      log_dir: a folder holding `events.out.tfevents.*` files.

    Returns:
      {tag: (steps int64 (T,), values float64 (T,))} sorted by step; {} when there are no event files.
    """
    import tensorflow as tf

    by_tag: dict[str, dict[int, float]] = {}
    for path in _event_files(log_dir):
        try:
            for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
                event = tf.compat.v1.Event.FromString(record)
                for value in event.summary.value:
                    kind = value.WhichOneof("value")
                    if kind == "simple_value":
                        number = float(value.simple_value)
                    elif kind == "tensor" and value.metadata.plugin_data.plugin_name in ("scalars", ""):
                        array = tf.make_ndarray(value.tensor)
                        if array.size != 1 or not np.issubdtype(array.dtype, np.number):
                            continue
                        number = float(array.reshape(()))
                    else:
                        continue
                    by_tag.setdefault(value.tag, {})[int(event.step)] = number
        except tf.errors.DataLossError:
            continue  # a truncated record at the end of a file being written
    scalars = {}
    for tag, points in by_tag.items():
        steps = np.array(sorted(points), np.int64)
        scalars[tag] = (steps, np.array([points[s] for s in steps], np.float64))
    return scalars


_ACCURACY_TAGS = ("top1", "top5", "mean_class_accuracy", "mAP", "wAP")


def training_curves_figure(model_dir: str) -> Figure:
    """Loss, accuracy, learning rate and throughput of a run against the step.

    Training scalars are solid lines, validation scalars dashed with markers, one colour per quantity.

    Args:
      model_dir: a run directory of `stpa.train` (reads `<model_dir>/train` and `<model_dir>/validation`).

    Returns:
      The figure, one axes per panel that has data ("loss", "accuracy", "learning rate", "clips / second").

    Raises:
      FileNotFoundError: neither folder holds a scalar.
    """
    train = read_scalars(os.path.join(model_dir, "train"))
    validation = read_scalars(os.path.join(model_dir, "validation"))
    if not train and not validation:
        raise FileNotFoundError(
            f"no TensorBoard scalars in {os.path.join(model_dir, 'train')} or "
            f"{os.path.join(model_dir, 'validation')}; is {model_dir} a run directory of "
            "`python -m stpa.train`?"
        )
    panels = []  # (title, y label, [(series label, steps, values, validation?)], log y)
    losses = [(f"train {t}", *train[t], False) for t in sorted(train) if t.startswith("loss/")]
    losses += [(f"validation {t}", *validation[t], True) for t in sorted(validation) if t.startswith("loss/")]
    if losses:
        panels.append(("Loss", "loss", losses, False))
    accuracy = [(f"train {t} (clips)", *train[t], False) for t in _ACCURACY_TAGS if t in train]
    accuracy += [(f"validation {t}", *validation[t], True) for t in _ACCURACY_TAGS if t in validation]
    if accuracy:
        panels.append(("Accuracy", "accuracy / AP", accuracy, False))
    if "learning_rate" in train:
        rate = train["learning_rate"][1]
        positive = rate[rate > 0]
        log_scale = bool(len(positive) == len(rate) and positive.max() / positive.min() > 10)
        panels.append(
            ("Learning rate", "learning rate", [("learning rate", *train["learning_rate"], False)], log_scale)
        )
    if "clips_per_second" in train:
        panels.append(("Throughput", "clips / second", [("training", *train["clips_per_second"], False)], False))
    if not panels:
        raise FileNotFoundError(
            f"the event files of {model_dir} hold none of loss/*, {', '.join(_ACCURACY_TAGS)}, "
            "learning_rate, clips_per_second."
        )
    columns = 1 if len(panels) == 1 else 2
    rows = (len(panels) + columns - 1) // columns
    figure = _new_figure(6.0 * columns, 3.6 * rows)
    figure.suptitle(f"Training curves: {os.path.basename(os.path.normpath(model_dir))}")
    for index, (title, y_label, series, log_scale) in enumerate(panels):
        axes = figure.add_subplot(rows, columns, index + 1)
        colours = {}
        for label, steps, values, is_validation in series:
            key = label.split(" ", 1)[-1].replace(" (clips)", "")  # train and validation share a colour
            colour = colours.setdefault(key, f"C{len(colours)}")
            if is_validation:
                axes.plot(steps, values, linestyle="--", marker="o", markersize=3, color=colour, label=label)
            else:
                axes.plot(steps, values, color=colour, label=label)
        if log_scale:
            axes.set_yscale("log")
        axes.set_title(title)
        axes.set_xlabel("step")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel(y_label)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    return figure


def write_training_curves(model_dir: str, path: str | None = None) -> str:
    """Draws the training curves of a run and writes them as PNG (or .pdf / .svg by extension).

    Args:
      model_dir: a run directory of `stpa.train`.
      path: output file (default `<model_dir>/training_curves.png`).

    Returns:
      The path written.

    Raises:
      FileNotFoundError: the run has no scalar summaries yet.
      data.files.WriteError: the file cannot be written.
    """
    path = path or os.path.join(model_dir, TRAINING_CURVES_NAME)
    return save_figure(training_curves_figure(model_dir), path)
