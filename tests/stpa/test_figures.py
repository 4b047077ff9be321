"""stpa.engine.figures: labelled confusion matrix, per-class accuracy / table, training curves from real event files."""

import csv
import io
import os
import time

import cv2
import numpy as np
import pytest
import tensorflow as tf

from stpa.engine import figures, metrics

UCF_LIKE = [
    "ApplyEyeMakeup",
    "ApplyLipstick",
    "Archery",
    "BabyCrawling",
    "BalanceBeam",
    "BandMarching",
    "BaseballPitch",
    "Basketball",
]


def _matrix(num_classes, seed=0, per_class=6):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), per_class)
    predictions = np.where(rng.random(labels.size) < 0.6, labels, rng.integers(0, num_classes, labels.size))
    return metrics.confusion_matrix(labels, predictions, num_classes)


def _names(num_classes):
    return [f"{UCF_LIKE[c % len(UCF_LIKE)]}{c:03d}" for c in range(num_classes)]


def _decoded_variance(path):
    image = cv2.imread(path)
    assert image is not None, path
    return image, float(image.astype(np.float64).std())


def _assert_png_is_the_figure(path, figure):
    """The PNG on disk (lossless) holds exactly the figure as the in-process Agg renderer draws it.

    ``figure`` must be a fresh one, never drawn: constrained layout moves things by a pixel on a second drawing.
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="rgba", dpi=figure.dpi)  # the Agg renderer's raw pixels, no PNG encoding
    written = cv2.imread(path)[..., ::-1]  # BGR on disk -> RGB (H, W, 3)
    assert buffer.getbuffer().nbytes == written.shape[0] * written.shape[1] * 4
    rendered = np.frombuffer(buffer.getvalue(), np.uint8).reshape(*written.shape[:2], 4)[..., :3]  # (H, W, 3) RGB
    np.testing.assert_array_equal(written, rendered)


def _texts(figure):
    return [text.get_text() for text in figure.findobj(lambda artist: hasattr(artist, "get_text"))]


def test_confusion_figure_small_names_counts_normalisation(tmp_path):
    matrix = _matrix(8)
    figure = figures.confusion_figure(matrix, UCF_LIKE)
    axes, colour_bar = figure.axes
    assert [t.get_text() for t in axes.get_xticklabels()] == UCF_LIKE
    assert [t.get_text() for t in axes.get_yticklabels()] == UCF_LIKE
    assert axes.get_xlabel() == "predicted class" and axes.get_ylabel() == "true class"
    assert "fraction" in colour_bar.get_ylabel()
    reference = matrix / matrix.sum(axis=1, keepdims=True).astype(np.float64)
    np.testing.assert_allclose(np.asarray(axes.images[0].get_array()), reference, rtol=0, atol=1e-12)
    np.testing.assert_allclose(reference.sum(axis=1), 1.0)
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): int(t.get_text()) for t in axes.texts}
    assert cells == {(int(r), int(c)): int(matrix[r, c]) for r, c in zip(*np.nonzero(matrix))}
    path = figures.save_figure(figure, str(tmp_path / "eval" / "confusion.png"))
    image, spread = _decoded_variance(path)
    assert spread > 20 and image.shape[0] > 300  # not blank, not an 8x8-pixel thumbnail
    _assert_png_is_the_figure(path, figures.confusion_figure(matrix, UCF_LIKE))


def test_normalise_rows_leaves_empty_rows_at_zero():
    matrix = np.array([[2, 1, 1], [0, 0, 0], [0, 3, 1]])
    np.testing.assert_array_equal(figures.normalise_rows(matrix), [[0.5, 0.25, 0.25], [0, 0, 0], [0, 0.75, 0.25]])


def _overlaps(boxes, axis):
    """Whether consecutive tick-label boxes overlap along `axis` (0: x, 1: y), in pixels."""
    spans = sorted((b.x0, b.x1) if axis == 0 else (b.y0, b.y1) for b in boxes)
    return any(next_start < end - 0.5 for (_, end), (next_start, _) in zip(spans, spans[1:]))


@pytest.mark.parametrize("num_classes", [101, 157])
def test_confusion_figure_stays_legible_for_many_classes(tmp_path, num_classes):
    names = _names(num_classes)
    figure = figures.confusion_figure(_matrix(num_classes, seed=num_classes), names)
    axes = figure.axes[0]
    assert [t.get_text() for t in axes.get_yticklabels()] == names
    assert [t.get_text() for t in axes.get_xticklabels()] == names
    assert not axes.texts  # no in-cell counts above ANNOTATE_MAX_CLASSES
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    y_boxes = [t.get_window_extent(renderer) for t in axes.get_yticklabels()]
    x_boxes = [t.get_window_extent(renderer) for t in axes.get_xticklabels()]
    assert not _overlaps(y_boxes, 1) and not _overlaps(x_boxes, 0)
    canvas = figure.bbox
    assert all(
        canvas.x0 - 1 <= b.x0 and b.x1 <= canvas.x1 + 1 and canvas.y0 - 1 <= b.y0 and b.y1 <= canvas.y1 + 1
        for b in y_boxes + x_boxes
    )  # no name cut off by the figure edge
    assert min(t.get_fontsize() for t in axes.get_yticklabels()) >= 6
    path = figures.write_confusion_matrix(str(tmp_path / f"cm{num_classes}.png"), _matrix(num_classes), names)
    _, spread = _decoded_variance(path)
    assert spread > 5
    _assert_png_is_the_figure(path, figures.confusion_figure(_matrix(num_classes), names))


def test_confusion_figure_pdf_and_wrong_names(tmp_path):
    path = figures.write_confusion_matrix(str(tmp_path / "cm.pdf"), _matrix(3), ["a", "b", "c"])
    assert open(path, "rb").read(5) == b"%PDF-"
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        figures.confusion_figure(_matrix(3), ["a", "b"])
    assert [t.get_text() for t in figures.confusion_figure(_matrix(2)).axes[0].get_yticklabels()] == [
        "class 0",
        "class 1",
    ]


def test_per_class_accuracy_hand_computed():
    matrix = np.array([[3, 1, 0], [0, 0, 0], [2, 2, 4]])
    np.testing.assert_allclose(metrics.per_class_accuracy(matrix), [0.75, np.nan, 0.5])
    scores = np.array([[3, 1, 0], [0, 2, 1], [0, 1, 5], [4, 0, 1]], np.float32)
    labels = np.array([0, 0, 2, 2])
    assert metrics.mean_class_accuracy(scores, labels) == pytest.approx((0.5 + 0.5) / 2)


def test_per_class_figure_sorted_with_names_and_table(tmp_path):
    values = np.array([0.75, np.nan, 0.5, 1.0])
    names = ["Archery", "Bowling", "Diving", "Fencing"]
    figure = figures.per_class_figure(values, names)
    axes = figure.axes[0]
    assert [t.get_text() for t in axes.get_yticklabels()] == ["Diving", "Archery", "Fencing"]  # lowest first
    np.testing.assert_allclose([bar.get_width() for bar in axes.patches], [0.5, 0.75, 1.0])
    assert "mean 75.0%" in axes.get_title() and "1 classes without test videos" in axes.get_title()
    assert {"50%", "75%", "100%"} <= set(_texts(figure))
    path = figures.save_figure(figure, str(tmp_path / "per_class.png"))
    assert _decoded_variance(path)[1] > 20
    _assert_png_is_the_figure(path, figures.per_class_figure(values, names))
    table = figures.write_per_class_table(
        str(tmp_path / "per_class.csv"), values, names, np.array([4, 0, 8, 2]), np.array([3, 0, 4, 2])
    )
    with open(table, newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [
        ["class_index", "class_name", "videos", "correct", "accuracy"],
        ["0", "Archery", "4", "3", "0.750000"],
        ["1", "Bowling", "0", "0", ""],
        ["2", "Diving", "8", "4", "0.500000"],
        ["3", "Fencing", "2", "2", "1.000000"],
    ]


def _write_scalars(log_dir, points):
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        for step, values in points:
            for name, value in values.items():
                tf.summary.scalar(name, value, step=step)
    writer.close()


def _fake_run(model_dir):
    train = [
        (
            step,
            {
                "loss/total": 2.0 / step,
                "loss/classification": 1.5 / step,
                "top1": 0.1 * step,
                "learning_rate": 0.01 if step < 3 else 0.001,
                "clips_per_second": 40.0 + step,
            },
        )
        for step in (1, 2, 3, 4)
    ]
    validation = [
        (2, {"loss/total": 1.2, "top1": 0.25, "top5": 0.8, "mean_class_accuracy": 0.2}),
        (4, {"loss/total": 0.9, "top1": 0.5, "top5": 1.0, "mean_class_accuracy": 0.45}),
    ]
    _write_scalars(os.path.join(model_dir, "train"), train)
    _write_scalars(os.path.join(model_dir, "validation"), validation)


def test_read_scalars_reads_known_values_and_resumed_runs(tmp_path):
    _fake_run(str(tmp_path))
    train = figures.read_scalars(str(tmp_path / "train"))
    steps, values = train["loss/total"]
    np.testing.assert_array_equal(steps, [1, 2, 3, 4])
    np.testing.assert_allclose(values, [2.0, 1.0, 2 / 3, 0.5], rtol=1e-6)
    np.testing.assert_allclose(train["learning_rate"][1], [0.01, 0.01, 0.001, 0.001], rtol=1e-6)
    validation = figures.read_scalars(str(tmp_path / "validation"))
    np.testing.assert_array_equal(validation["top1"][0], [2, 4])
    np.testing.assert_allclose(validation["top1"][1], [0.25, 0.5])
    time.sleep(1.1)  # a resumed run: a second event file (later timestamp) rewrites step 4 and adds step 5
    _write_scalars(str(tmp_path / "validation"), [(4, {"top1": 0.55}), (6, {"top1": 0.6})])
    steps, values = figures.read_scalars(str(tmp_path / "validation"))["top1"]
    np.testing.assert_array_equal(steps, [2, 4, 6])
    np.testing.assert_allclose(values, [0.25, 0.55, 0.6], rtol=1e-6)
    assert figures.read_scalars(str(tmp_path / "nothing")) == {}


def test_training_curves_figure_and_file(tmp_path):
    model_dir = str(tmp_path / "run")
    _fake_run(model_dir)
    figure = figures.training_curves_figure(model_dir)
    titles = [axes.get_title() for axes in figure.axes]
    assert titles == ["Loss", "Accuracy", "Learning rate", "Throughput"]
    loss, accuracy, rate, _ = figure.axes
    assert [line.get_label() for line in loss.get_lines()] == [
        "train loss/classification",
        "train loss/total",
        "validation loss/total",
    ]
    validation_top1 = [line for line in accuracy.get_lines() if line.get_label() == "validation top1"][0]
    np.testing.assert_allclose(validation_top1.get_ydata(), [0.25, 0.5])
    assert rate.get_yscale() == "linear"  # 0.01 / 0.001 = 10: not more than a decade
    assert all(axes.get_xlabel() == "step" and axes.get_ylabel() and axes.get_legend() for axes in figure.axes)
    path = figures.write_training_curves(model_dir)
    assert path == os.path.join(model_dir, "training_curves.png")
    image, spread = _decoded_variance(path)
    assert spread > 20 and image.shape[1] > 1000
    _assert_png_is_the_figure(path, figures.training_curves_figure(model_dir))
    with pytest.raises(FileNotFoundError, match="no TensorBoard scalars"):
        figures.write_training_curves(str(tmp_path / "empty"))
    assert not os.path.exists(tmp_path / "empty" / "training_curves.png")
