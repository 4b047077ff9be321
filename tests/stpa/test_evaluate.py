"""stpa.evaluate: scores of a model whose outputs the test computes itself; metrics against NumPy."""

import csv
import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf

from data import pipeline
from stpa import models
from stpa.engine import checkpoints, evaluation, score_files
from tests.stpa.cli_fixtures import NUM_CLASSES, make_run_dir, write_tiny_records

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")


@pytest.fixture(scope="session")
def records(tmp_path_factory):
    return write_tiny_records(str(tmp_path_factory.getbasetemp() / "stpa_cli_records"))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run_dir(str(tmp_path_factory.mktemp("eval_run")), seed=3)


def _expected_scores(model_dir, records, test_frames, crops):
    """The model's logits on the test clips, computed here: the crops are run one by one and averaged."""
    model = checkpoints.load_model(model_dir, "best")
    preprocess = models.preprocess_for("tiny", "rgb")
    dataset = pipeline.build_dataset(
        os.path.join(records, "test"),
        training=False,
        num_frames=test_frames,
        batch_size=3,
        input_size=32,
        crops=crops,
        with_metadata=True,
    )
    scores, labels, ids = [], [], []
    for frames, batch_labels, metadata in dataset:
        frames = frames.numpy()
        if crops == 1:
            frames = frames[:, None]
        per_crop = [model(preprocess(tf.constant(frames[:, c])), training=False).numpy() for c in range(crops)]
        scores.append(np.mean(per_crop, axis=0))
        labels.append(batch_labels.numpy())
        ids.extend(v.decode() for v in metadata["video_id"].numpy())
    return np.concatenate(scores), np.concatenate(labels), np.array(ids)


def _numpy_metrics(scores, labels):
    order = np.argsort(-scores, axis=1, kind="stable")
    top1 = np.mean(order[:, 0] == labels)
    top5 = np.mean([labels[i] in order[i, :5] for i in range(len(labels))])
    per_class = [np.mean(order[labels == c, 0] == c) for c in np.unique(labels)]
    return top1, top5, np.mean(per_class)


@pytest.mark.parametrize("crops", [1, 3])
def test_evaluate_scores_and_metrics(records, run_dir, tmp_path, crops):
    output = str(tmp_path / f"scores_{crops}.npz")
    report = evaluation.evaluate(
        records_dir=records, model_dir=run_dir, test_frames=4, crops=crops, batch_size=4, output=output, progress=False
    )
    expected, labels, ids = _expected_scores(run_dir, records, 4, crops)
    saved = score_files.load_scores(output)
    np.testing.assert_array_equal(saved.video_ids, ids)
    np.testing.assert_array_equal(saved.labels, labels)
    np.testing.assert_allclose(saved.scores, expected, rtol=1e-4, atol=1e-5)
    assert saved.scores.shape == (NUM_CLASSES * 2, NUM_CLASSES)
    top1, top5, mca = _numpy_metrics(saved.scores.astype(np.float64), labels)
    assert report["top1"] == pytest.approx(top1) and report["top5"] == pytest.approx(top5)
    assert report["mean_class_accuracy"] == pytest.approx(mca)
    assert json.loads(open(report["metrics_file"]).read())["top1"] == pytest.approx(top1)
    _check_single_label_figures(report, saved.scores.astype(np.float64), labels)


def _check_single_label_figures(report, scores, labels):
    """The labelled confusion matrix and the per-class table / figure agree with NumPy."""
    names = checkpoints.load_run_config(report["model_dir"])["class_names"]
    predictions = np.argsort(-scores, axis=1, kind="stable")[:, 0]
    with open(report["per_class_csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["class_name"] for row in rows] == names
    for c, row in enumerate(rows):
        hits = predictions[labels == c] == c
        assert int(row["videos"]) == np.sum(labels == c) and int(row["correct"]) == np.sum(hits)
        assert float(row["accuracy"]) == pytest.approx(np.mean(hits), abs=1e-6)
    for key in ("confusion_png", "per_class_png"):
        image = cv2.imread(report[key])
        assert image is not None and image.shape[0] > 200 and image.astype(np.float64).std() > 20, key


def test_evaluate_under_xla_equals_the_graph(records, run_dir, tmp_path):
    # XLA (--jit_compile) reorders float32 arithmetic, nothing else: the same scores to rounding, the same metrics.
    expected, labels, ids = _expected_scores(run_dir, records, 4, 1)
    report = evaluation.evaluate(
        records_dir=records,
        model_dir=run_dir,
        test_frames=4,
        batch_size=4,
        output=str(tmp_path / "xla.npz"),
        progress=False,
        jit_compile=True,
    )
    saved = score_files.load_scores(report["scores_file"])
    np.testing.assert_array_equal(saved.video_ids, ids)
    np.testing.assert_allclose(saved.scores, expected, rtol=1e-4, atol=1e-5)
    assert report["top1"] == pytest.approx(_numpy_metrics(saved.scores.astype(np.float64), labels)[0])
    with pytest.raises(ValueError, match="--jit_compile applies to --model_dir"):
        evaluation.evaluate(records_dir=records, saved_model=str(tmp_path), jit_compile=True, progress=False)


def test_evaluate_max_videos_and_bad_split(records, run_dir, tmp_path):
    report = evaluation.evaluate(
        records_dir=records,
        model_dir=run_dir,
        test_frames=2,
        max_videos=4,
        output=str(tmp_path / "s.npz"),
        progress=False,
    )
    assert report["num_videos"] == 4
    with pytest.raises(ValueError, match="no prepared split"):
        evaluation.evaluate(records_dir=records, model_dir=run_dir, split="validation", progress=False)
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        evaluation.evaluate(records_dir=records, model_dir=str(tmp_path), progress=False)


@pytest.mark.slow
def test_evaluate_command_line(records, run_dir, tmp_path):
    run = shutil.copytree(run_dir, tmp_path / "run")
    with tf.summary.create_file_writer(str(run / "train")).as_default():
        for step in (1, 2, 3):
            tf.summary.scalar("loss/total", 3.0 / step, step=step)
            tf.summary.scalar("learning_rate", 0.01, step=step)
    command = [
        sys.executable,
        "-m",
        "stpa.evaluate",
        f"--model_dir={run}",
        f"--records_dir={records}",
        "--test_frames=3",
    ]
    out = subprocess.run(
        command + [f"--output={tmp_path}/cli.npz"], capture_output=True, text=True, env=ENV, timeout=180
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "6 videos, K=3, crops=1: top1" in out.stdout
    printed = dict(line.split(": ", 1) for line in out.stdout.splitlines()[1:])
    assert printed == {
        "scores": f"{tmp_path}/cli.npz",
        "metrics": f"{tmp_path}/cli.json",
        "confusion matrix": f"{tmp_path}/cli_confusion.png",
        "per-class figure": f"{tmp_path}/cli_per_class.png",
        "per-class table": f"{tmp_path}/cli_per_class.csv",
        "training curves": f"{run}/training_curves.png",
    }
    assert all(os.path.getsize(path) > 0 for path in printed.values())
    assert cv2.imread(printed["training curves"]).astype(np.float64).std() > 20

    (tmp_path / "blocked").write_text("a file where the output folder should be")
    out = subprocess.run(
        command + [f"--output={tmp_path}/blocked/cli.npz"], capture_output=True, text=True, env=ENV, timeout=180
    )
    assert out.returncode != 0 and "scores:" not in out.stdout
    assert f"could not write {tmp_path}/blocked/cli.npz" in out.stderr and "Traceback" not in out.stderr


def _average_precision_loop(confidences, positives):
    order = sorted(range(len(confidences)), key=lambda i: (-confidences[i], i))
    hits, total = 0, 0.0
    for rank, i in enumerate(order, start=1):
        if positives[i]:
            hits += 1
            total += hits / rank
    return total / max(hits, 1)


def test_evaluate_multi_label_reports_charades_map_and_wap(tmp_path_factory, tmp_path):
    records = write_tiny_records(
        str(tmp_path_factory.getbasetemp() / "stpa_cli_records_multilabel"),
        train_per_class=1,
        test_per_class=2,
        multi_label=True,
    )
    run_dir = make_run_dir(str(tmp_path / "run"), seed=5, multi_label=True)
    report = evaluation.evaluate(
        records_dir=records, model_dir=run_dir, test_frames=3, output=str(tmp_path / "m.npz"), progress=False
    )
    saved = score_files.load_scores(report["scores_file"])
    assert saved.multi_label and saved.labels.shape == (6, NUM_CLASSES)
    assert saved.labels.sum() == 6 + 3  # the odd videos carry a second label
    model = checkpoints.load_model(run_dir)
    dataset = pipeline.build_dataset(
        os.path.join(records, "test"),
        training=False,
        num_frames=3,
        batch_size=6,
        input_size=32,
        preprocess=models.preprocess_for("tiny", "rgb"),
        multi_label=True,
    )
    frames, _ = next(iter(dataset))
    np.testing.assert_allclose(saved.scores, model(frames, training=False).numpy(), rtol=1e-4, atol=1e-5)
    aps = [
        _average_precision_loop(saved.scores[:, c].astype(np.float64), saved.labels[:, c] > 0)
        for c in range(NUM_CLASSES)
    ]
    positives = saved.labels.sum(axis=0)
    assert report["mAP"] == pytest.approx(np.mean(aps))
    assert report["wAP"] == pytest.approx(np.sum(np.array(aps) * positives) / positives.sum())
    assert "top1" not in report
    assert "confusion_png" not in report  # a multi-label video has several true classes: no confusion matrix
    with open(report["per_class_csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["positives"]) for row in rows] == positives.astype(int).tolist()
    np.testing.assert_allclose([float(row["average_precision"]) for row in rows], aps, atol=1e-6)
    assert cv2.imread(report["per_class_png"]).astype(np.float64).std() > 20
