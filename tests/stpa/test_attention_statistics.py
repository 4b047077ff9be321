"""stpa.attention_statistics and where the engine reports it: the training CSV/TensorBoard and stpa.evaluate's JSON.

The statistics of A (Eq. 3, rows L2-normalised) are checked against float64 NumPy written here; a uniform-attention
run must log exactly entropy 1 and L1 mass sqrt(n); the evaluation's means are recomputed from the outputs model.
"""

import csv
import glob
import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from data import pipeline
from stpa import attention_statistics, models
from stpa.engine import checkpoints, evaluation, trainer
from stpa.engine import config as config_lib
from stpa.layers import UniformAttention
from tests.stpa.cli_fixtures import make_run_dir, write_tiny_records

TRAIN_FRAMES = 2


@pytest.fixture(scope="session")
def records(tmp_path_factory):
    return write_tiny_records(str(tmp_path_factory.getbasetemp() / "stpa_cli_records"))


# --------------------------------------------------------------------------------------------- float64 references
def _entropy_reference(attention):
    """float64 H(p) / log(n) per row, p = a / sum(a), 0 log 0 = 0; 0 when n = 1."""
    a = np.asarray(attention, np.float64)
    p = a / a.sum(axis=-1, keepdims=True)
    plogp = np.zeros_like(p)
    positive = p > 0
    plogp[positive] = p[positive] * np.log(p[positive])
    n = a.shape[-1]
    return -plogp.sum(axis=-1) / np.log(n) if n > 1 else np.zeros(a.shape[:-1])


def _l1_reference(attention):
    return np.asarray(attention, np.float64).sum(axis=-1)


def _eq3_rows(scores):
    """float64 Eq. 3: softmax over the last axis, then each row L2-normalised."""
    scores = np.asarray(scores, np.float64)
    p = np.exp(scores - scores.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return p / np.linalg.norm(p, axis=-1, keepdims=True)


# ------------------------------------------------------------------------------------------------- the statistics
@pytest.mark.parametrize("n", [1, 2, 7, 48])
def test_statistics_of_random_rows_match_float64_numpy(n):
    rng = np.random.default_rng(n)
    # Scales from flat to very peaked: at scale 60 many float32 entries underflow to exactly 0 (0 log 0 = 0).
    scales = np.array([0.1, 1.0, 5.0, 60.0])[None, :, None]  # (1, d=4, 1)
    attention = _eq3_rows(rng.normal(size=(3, 4, n)) * scales).astype(np.float32)  # (B=3, d=4, n)
    entropy = attention_statistics.normalized_entropy(tf.constant(attention)).numpy()
    mass = attention_statistics.l1_mass(tf.constant(attention)).numpy()
    assert entropy.shape == mass.shape == (3, 4) and entropy.dtype == mass.dtype == np.float32
    np.testing.assert_allclose(entropy, _entropy_reference(attention), rtol=0, atol=2e-6)
    np.testing.assert_allclose(mass, _l1_reference(attention), rtol=2e-6, atol=0)
    assert np.all(np.isfinite(entropy)) and np.all((entropy >= 0) & (entropy <= 1))
    assert np.all((mass >= 1 - 1e-6) & (mass <= math.sqrt(n) * (1 + 1e-6)))

    summary = attention_statistics.summarize(tf.constant(attention))
    assert set(summary) == {"entropy", "l1_mass"}
    np.testing.assert_allclose(float(summary["entropy"]), _entropy_reference(attention).mean(), atol=2e-6)
    np.testing.assert_allclose(float(summary["l1_mass"]), _l1_reference(attention).mean(), rtol=2e-6)
    per_clip = attention_statistics.per_clip(tf.constant(attention))
    np.testing.assert_allclose(per_clip["entropy"].numpy(), _entropy_reference(attention).mean(axis=1), atol=2e-6)
    np.testing.assert_allclose(per_clip["l1_mass"].numpy(), _l1_reference(attention).mean(axis=1), rtol=2e-6)


@pytest.mark.parametrize("n", [1, 5, 36])
def test_one_hot_rows_have_entropy_0_and_l1_mass_1_uniform_rows_1_and_sqrt_n(n):
    one_hot = np.zeros((2, 3, n), np.float32)
    for b in range(2):
        for m in range(3):
            one_hot[b, m, (b + 2 * m) % n] = 1.0
    np.testing.assert_array_equal(attention_statistics.normalized_entropy(one_hot).numpy(), np.zeros((2, 3)))
    np.testing.assert_array_equal(attention_statistics.l1_mass(one_hot).numpy(), np.ones((2, 3)))

    uniform = np.full((2, 3, n), 1.0 / np.sqrt(n), np.float32)  # Eq. 3 with equal scores
    np.testing.assert_allclose(
        attention_statistics.normalized_entropy(uniform).numpy(), np.full((2, 3), 1.0 if n > 1 else 0.0), atol=1e-6
    )
    np.testing.assert_allclose(attention_statistics.l1_mass(uniform).numpy(), np.full((2, 3), np.sqrt(n)), rtol=1e-6)


def test_uniform_attention_layer_gives_entropy_1_and_l1_mass_sqrt_n():
    top = tf.constant(np.random.default_rng(0).normal(size=(2, 3, 4, 5, 6)).astype(np.float32))  # (B, K, H, W, C)
    _, attention, _ = UniformAttention()(top, return_attention=True)
    n = 3 * 4 * 5
    assert attention.shape == (2, 4 * 5, n)
    summary = attention_statistics.summarize(attention)
    np.testing.assert_allclose(attention_statistics.normalized_entropy(attention).numpy(), 1.0, atol=1e-6)
    np.testing.assert_allclose(attention_statistics.l1_mass(attention).numpy(), np.sqrt(n), rtol=1e-6)
    np.testing.assert_allclose(float(summary["entropy"]), 1.0, atol=1e-6)
    np.testing.assert_allclose(float(summary["l1_mass"]), np.sqrt(n), rtol=1e-6)


# ------------------------------------------------------------------------------------------------------ training
def _config(model_dir, records_dir, **overrides):
    values = dict(
        model_dir=str(model_dir),
        records_dir=records_dir,
        backbone="tiny",
        input_size=32,
        train_frames=TRAIN_FRAMES,
        batch_size=4,
        learning_rate=0.01,
        max_steps=4,
        eval_split=None,
        log_every=2,
        checkpoint_every=2,
        progress=False,
        summary_images=False,
    )
    values.update(overrides)
    return config_lib.from_values(values)


def _read_csv(model_dir):
    with open(os.path.join(model_dir, trainer.ATTENTION_CSV), newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], [(int(row[0]), float(row[1]), float(row[2])) for row in rows[1:]]


def _logged_scalars(model_dir, tag):
    """{step: value} of one scalar tag in model_dir/train's event files."""
    values = {}
    for event_file in sorted(glob.glob(os.path.join(model_dir, "train", "events.*"))):
        for record in tf.data.TFRecordDataset(event_file):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.tag == tag:
                    values[event.step] = float(tf.make_ndarray(value.tensor))
    return values


def _positions(run):
    """n = K*H*W of the run's attention at the training K."""
    shape = run.outputs_model.output["attention"].shape  # (B, d, n) with K unknown: n may be None
    frames = tf.zeros([1, TRAIN_FRAMES, run.input_size, run.input_size, 3])
    return int(run.outputs_model(frames, training=False)["attention"].shape[-1]) if shape[-1] is None else shape[-1]


def test_training_logs_attention_statistics_to_csv_and_tensorboard_and_resume_drops_later_rows(records, tmp_path):
    model_dir = tmp_path / "run"
    run = trainer.Trainer(_config(model_dir, records))
    result = run.train()
    n = _positions(run)
    header, rows = _read_csv(model_dir)
    assert header == ["step", "entropy", "l1_mass"]
    assert [step for step, _, _ in rows] == [2, 4]
    for _, entropy, mass in rows:
        assert 0.0 <= entropy <= 1.0 and 1.0 <= mass <= math.sqrt(n) * (1 + 1e-6)
    assert result.train_metrics["attention/entropy"] == pytest.approx(rows[-1][1], rel=1e-12)
    for column, tag in ((1, "attention/entropy"), (2, "attention/l1_mass")):
        logged = _logged_scalars(model_dir, tag)
        assert sorted(logged) == [2, 4]
        for row in rows:
            assert logged[row[0]] == pytest.approx(row[column], rel=1e-6)  # TensorBoard stores float32

    # A run killed after its checkpoint at step 4 had logged steps 6 and 8: the resumed run drops them and logs 6.
    path = os.path.join(model_dir, trainer.ATTENTION_CSV)
    with open(path, "a") as f:
        f.write("6,0.5,2.0\n8,0.5,2.0\n10,0.5")  # the last row half-written
    resumed = trainer.Trainer(_config(model_dir, records, max_steps=6))
    assert resumed.start_step == 4
    resumed.train()
    header, rows_after = _read_csv(model_dir)
    assert header == ["step", "entropy", "l1_mass"]
    assert [step for step, _, _ in rows_after] == [2, 4, 6]
    assert rows_after[:2] == rows
    assert rows_after[2][1:] != (0.5, 2.0)
    assert not [name for name in os.listdir(model_dir) if name.startswith(".attention_statistics")]  # no temporary


def test_uniform_attention_training_logs_entropy_1_and_l1_mass_sqrt_n(records, tmp_path):
    model_dir = tmp_path / "uniform"
    run = trainer.Trainer(_config(model_dir, records, attention="uniform", max_steps=2))
    run.train()
    n = _positions(run)
    _, rows = _read_csv(model_dir)
    assert [step for step, _, _ in rows] == [2]
    assert rows[0][1] == pytest.approx(1.0, abs=1e-6)
    assert rows[0][2] == pytest.approx(math.sqrt(n), rel=1e-6)


def test_training_a_family_without_attention_writes_no_csv(records, tmp_path):
    model_dir = tmp_path / "tsn"
    run = trainer.Trainer(_config(model_dir, records, model="tsn", max_steps=2))
    result = run.train()
    assert not os.path.exists(os.path.join(model_dir, trainer.ATTENTION_CSV))
    assert not [name for name in result.train_metrics if name.startswith("attention/")]


# ---------------------------------------------------------------------------------------------------- evaluation
def _expected_statistics(model_dir, records, test_frames, crops):
    """float64 means over the test videos of each video's crop-averaged row statistics, from the outputs model."""
    outputs_model = models.attention_outputs_model(checkpoints.load_model(model_dir, "last"))
    preprocess = models.preprocess_for("tiny", "rgb")
    dataset = pipeline.build_dataset(
        os.path.join(records, "test"), training=False, num_frames=test_frames, batch_size=3, input_size=32, crops=crops
    )
    entropy, mass, n = [], [], None
    for frames, _ in dataset:
        frames = frames.numpy() if crops > 1 else frames.numpy()[:, None]
        per_crop = [
            outputs_model(preprocess(tf.constant(frames[:, c])), training=False)["attention"].numpy()
            for c in range(crops)
        ]  # crops x (B, d, n)
        n = per_crop[0].shape[-1]
        entropy.append(np.mean([_entropy_reference(a).mean(axis=-1) for a in per_crop], axis=0))  # (B,)
        mass.append(np.mean([_l1_reference(a).mean(axis=-1) for a in per_crop], axis=0))  # (B,)
    return np.concatenate(entropy).mean(), np.concatenate(mass).mean(), n


def _peaked_run_dir(model_dir):
    """`make_run_dir`'s STPA run with larger random W_attn_j (saved as step 2): its A is far from uniform.

    (At the glorot initialisation the product fusion of three small scores leaves A almost uniform.)
    """
    run_dir = make_run_dir(model_dir, seed=3)
    model = checkpoints.load_model(run_dir, "last")
    layer = model.get_layer(models.ATTENTION_LAYER)
    rng = np.random.default_rng(0)
    layer.set_weights([rng.normal(scale=2.0, size=w.shape).astype(np.float32) for w in layer.get_weights()])
    tf.train.CheckpointManager(
        checkpoints.weights_checkpoint(model, step=tf.Variable(2, dtype=tf.int64)),
        os.path.join(run_dir, checkpoints.CHECKPOINT_DIR),
        max_to_keep=1,
    ).save(2)
    return run_dir


@pytest.mark.parametrize("crops", [1, 3])
def test_evaluate_writes_attention_statistics_of_the_test_videos(records, tmp_path, crops):
    run_dir = _peaked_run_dir(str(tmp_path / "run"))
    report = evaluation.evaluate(
        records_dir=records, model_dir=run_dir, test_frames=4, crops=crops, batch_size=4, progress=False
    )
    written = json.loads(open(report["metrics_file"]).read())["attention_statistics"]
    assert written == report["attention_statistics"]
    assert set(written) == {"entropy", "l1_mass", "test_frames"} and written["test_frames"] == 4
    entropy, mass, n = _expected_statistics(run_dir, records, 4, crops)
    assert written["entropy"] == pytest.approx(entropy, abs=2e-6)
    assert written["l1_mass"] == pytest.approx(mass, rel=2e-6)
    assert 0.0 < written["entropy"] < 0.95 and 1.0 < written["l1_mass"] < 0.95 * math.sqrt(n)  # far from uniform


def test_evaluate_of_a_family_without_attention_has_no_attention_statistics(records, tmp_path):
    run_dir = make_run_dir(str(tmp_path / "tsn"), model="tsn", seed=3)
    report = evaluation.evaluate(records_dir=records, model_dir=run_dir, test_frames=2, batch_size=6, progress=False)
    assert "attention_statistics" not in report
    assert "attention_statistics" not in json.loads(open(report["metrics_file"]).read())
