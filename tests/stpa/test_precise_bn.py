"""stpa.engine.precise_bn and `--precise_bn_batches`: exact batch-norm statistics after training.

References: the float64 NumPy mean over batches of each batch's per-channel mean and biased variance, computed
here from the raw inputs; and, through the trainer, the identity "inference mode equals training mode on the batch
the statistics came from".
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from stpa.engine import checkpoints, precise_bn, trainer
from stpa.engine import config as config_lib
from tests.stpa.cli_fixtures import write_tiny_records


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return write_tiny_records(str(tmp_path_factory.mktemp("precise_bn_records")))


def _config(model_dir, records_dir, **overrides):
    """The tiny STPA run of tests/stpa/test_train.py: 32 px, K = 2, batch 4, 4 steps."""
    values = dict(
        model_dir=str(model_dir), records_dir=records_dir, backbone="tiny", input_size=32, train_frames=2,
        batch_size=4, learning_rate=0.01, max_steps=4, eval_every=0, eval_frames=3, eval_batch_size=6, log_every=2,
        progress=False, summary_images=False,
    )  # fmt: skip
    return config_lib.from_values({**values, **overrides})


@keras.saving.register_keras_serializable(package="tests")
class _Normalised(keras.layers.Layer):
    """A custom layer that builds its BatchNormalization in build(): precise BN must find it."""

    def build(self, input_shape):
        self.norm = keras.layers.BatchNormalization(name="inner_bn")
        self.norm.build(input_shape)

    def call(self, inputs, training=None):
        return self.norm(inputs, training=training)


def _model():
    """Input (3 channels) -> BN (trainable) -> custom layer's BN -> frozen BN -> Dense."""
    inputs = keras.Input((3,))
    first = keras.layers.BatchNormalization(name="first_bn")(inputs)
    inner = _Normalised(name="custom")(first)
    frozen_layer = keras.layers.BatchNormalization(name="frozen_bn")
    frozen_layer.trainable = False
    return keras.Model(inputs, keras.layers.Dense(2, name="dense")(frozen_layer(inner)))


def _batches(seed=0):
    rng = np.random.default_rng(seed)
    scales, offsets = np.array([1.0, 3.0, 0.5]), np.array([2.0, -1.0, 10.0])
    return [(rng.normal(size=(8, 3)) * scales + offsets).astype(np.float32) for _ in range(3)]


def _forward_over(model, batches):
    def make_forward():
        stream = iter(batches)

        @tf.function
        def forward(frames):
            model(frames, training=True)

        return lambda: forward(next(stream))

    return make_forward


def test_statistics_are_the_average_of_the_batches_statistics():
    model = _model()
    frozen = model.get_layer("frozen_bn")
    frozen.moving_mean.assign([5.0, 5.0, 5.0])
    dense_before = [w.copy() for w in model.get_layer("dense").get_weights()]
    layers = precise_bn.batch_norm_layers(model)
    assert [layer.name for layer in layers] == ["first_bn", "inner_bn"]  # the frozen one is left out
    batches = _batches()

    precise_bn.recompute_statistics(layers, _forward_over(model, batches), num_batches=3)

    as_float64 = [b.astype(np.float64) for b in batches]
    first = model.get_layer("first_bn")
    np.testing.assert_allclose(first.moving_mean.numpy(), np.mean([b.mean(0) for b in as_float64], 0), rtol=1e-5)
    np.testing.assert_allclose(first.moving_variance.numpy(), np.mean([b.var(0) for b in as_float64], 0), rtol=1e-5)
    # The second BN sees the first's training-mode output: each batch standardised, mean 0 and variance v / (v + eps).
    eps = first.epsilon
    inner = model.get_layer("custom").norm
    np.testing.assert_allclose(inner.moving_mean.numpy(), 0.0, atol=1e-5)
    expected = np.mean([b.var(0) / (b.var(0) + eps) for b in as_float64], 0)
    np.testing.assert_allclose(inner.moving_variance.numpy(), expected, rtol=1e-5)
    assert [layer.momentum for layer in (first, inner)] == [0.99, 0.99]  # restored
    np.testing.assert_array_equal(frozen.moving_mean.numpy(), [5.0, 5.0, 5.0])
    for before, after in zip(dense_before, model.get_layer("dense").get_weights()):
        np.testing.assert_array_equal(before, after)


def test_a_failed_pass_leaves_the_statistics_as_they_were():
    model = _model()
    layers = precise_bn.batch_norm_layers(model)
    before = [layer.moving_variance.numpy().copy() for layer in layers]
    with pytest.raises(StopIteration):  # two batches for three passes
        precise_bn.recompute_statistics(layers, _forward_over(model, _batches()[:2]), num_batches=3)
    for layer, variance in zip(layers, before):
        np.testing.assert_array_equal(layer.moving_variance.numpy(), variance)
        assert layer.momentum == 0.99
    with pytest.raises(ValueError, match="at least one batch"):
        precise_bn.recompute_statistics(layers, _forward_over(model, _batches()), num_batches=0)


def test_trainer_statistics_make_inference_mode_equal_training_mode(records, tmp_path):
    """After precise BN over one repeated batch, every BN's statistics are that batch's: in inference mode the
    model then computes on that batch what training mode computes (dropout 0, no random masks)."""
    run = trainer.Trainer(_config(tmp_path / "run", records, beta=1e-4, gamma=1e-4, dropout=0.0))
    frames, labels = next(iter(run.eval_dataset(2, 6)))[:2]
    step_fn = run.make_train_step()
    repeated = tf.data.Dataset.from_tensors((frames, labels)).repeat()
    iterator = iter(run.strategy.experimental_distribute_dataset(repeated))
    for _ in range(3):
        step_fn(iterator)
    training_logits = run.outputs_model(frames, training=True)["logits"].numpy()
    before = run.outputs_model(frames, training=False)["logits"].numpy()
    assert np.abs(before - training_logits).max() > 1e-2  # the moving averages are still far off

    assert run.recompute_bn_statistics(iterator, 2) > 0
    after = run.outputs_model(frames, training=False)["logits"].numpy()
    np.testing.assert_allclose(after, training_logits, rtol=1e-3, atol=1e-3)
    assert int(run.step.numpy()) == 3 and int(run.optimizer.iterations.numpy()) == 3


def test_flag_changes_only_the_statistics_of_the_final_checkpoint(records, tmp_path):
    """Two deterministic runs, with and without --precise_bn_batches: same trained weights, other BN statistics."""
    variables = {}
    for name, batches in (("plain", 0), ("precise", 2)):
        config = _config(tmp_path / name, records, max_steps=3, deterministic=True, precise_bn_batches=batches)
        assert trainer.train(config).step == 3
        model = checkpoints.load_model(config.model_dir, "last")
        trainable = {id(v) for v in model.trainable_variables}
        # By position: the two models are built alike (seed-generator names carry a process-wide counter).
        variables[name] = [(v.path, id(v) in trainable, v.numpy()) for v in model.variables]
    plain, precise = variables["plain"], variables["precise"]
    assert len(plain) == len(precise)
    statistics = [i for i, (path, _, _) in enumerate(plain) if path.endswith(("moving_mean", "moving_variance"))]
    changed = [i for i in statistics if not np.array_equal(plain[i][2], precise[i][2])]
    assert changed  # at least the trainable (first) BN was re-estimated
    for (path, is_trainable, value), (_, _, other) in zip(plain, precise):
        if is_trainable:
            np.testing.assert_array_equal(value, other, err_msg=path)
