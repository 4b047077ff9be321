"""Tests of `stpa.layers.PyramidAttention` against the float64 NumPy reference of Eq. 1-4, and of its
uniform-attention control `UniformAttention` against average pooling."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from stpa.layers import PyramidAttention, UniformAttention, flatten_positions, pyramid_downsample
from tests.helpers.pyramid_inputs import SIZES, assert_close, make_inputs, randomise
from tests.stpa import pyramid_reference as ref


def test_downsample_matches_pytorch_adaptive_bins():
    # 5 -> 2 has overlapping bins [0, 3) and [2, 5): row 2 belongs to both.
    x = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5, 1)
    pooled = pyramid_downsample(tf.constant(x), 2, 2).numpy()[0, 0, ..., 0]
    np.testing.assert_array_equal(pooled, [[12, 14], [22, 24]])
    rng = np.random.default_rng(0)
    for size_in, size_out in [(35, 8), (17, 8), (11, 3), (71, 8), (2, 1), (5, 1), (3, 7), (8, 8)]:
        x = rng.normal(size=(1, 2, size_in, size_in, 3)).astype(np.float32)
        pooled = pyramid_downsample(tf.constant(x), size_out, size_out).numpy()
        expected = np.stack([ref.adaptive_max_pool(x[0, k], size_out, size_out) for k in range(2)])
        np.testing.assert_array_equal(pooled[0], expected.astype(np.float32))


def test_flatten_positions_order_is_k_h_w():
    x = np.arange(2 * 3 * 2 * 4 * 1).reshape(2, 3, 2, 4, 1).astype(np.float32)
    flat = flatten_positions(tf.constant(x)).numpy()
    k, h, w = 2, 1, 3
    np.testing.assert_array_equal(flat[1, k * 2 * 4 + h * 4 + w], x[1, k, h, w])


@pytest.mark.parametrize("fusion", ["max", "sum", "mul"])
@pytest.mark.parametrize("num_scales", [1, 2, 3, 4])
def test_matches_numpy_reference(fusion, num_scales):
    rng = np.random.default_rng(num_scales)
    layer = PyramidAttention(fusion=fusion)
    for frames in (1, 3, 25):  # one built layer, several K (Sec. 3.2: the parameters do not depend on K)
        inputs = make_inputs(rng, num_scales, frames)
        if not layer.built:
            layer([tf.constant(x) for x in inputs])
            kernels, biases = randomise(layer, rng)
        outputs, attention, scale_logits = layer([tf.constant(x) for x in inputs], return_attention=True)
        expected_m, expected_a, expected_y = ref.pyramid_attention(inputs, kernels, biases, fusion)
        assert_close(outputs, expected_m)
        assert_close(attention, expected_a)
        assert len(scale_logits) == num_scales
        for y, expected in zip(scale_logits, expected_y):
            assert_close(y, expected)
        np.testing.assert_allclose(np.linalg.norm(attention.numpy(), axis=-1), 1.0, rtol=1e-5)


def test_weights_layout_and_count():
    layer = PyramidAttention()
    layer(make_inputs(np.random.default_rng(0), 3, 2))
    shapes = [w.shape for w in layer.get_weights()]
    d = 3 * 3
    assert shapes == [(4, d), (d,), (5, d), (d,), (6, d), (d,)]
    assert layer.count_params() == sum(c * d + d for c in (4, 5, 6))


def test_uniform_scores_average_frames():
    # Zero weights: every score is 0, A = 1/sqrt(n) everywhere, so M' = sum over positions / sqrt(n).
    rng = np.random.default_rng(1)
    layer = PyramidAttention(fusion="sum", kernel_initializer="zeros")
    inputs = make_inputs(rng, 2, 3)
    outputs = layer(inputs).numpy()
    top = inputs[-1]
    n = 3 * 3 * 3
    expected = top.reshape(2, n, 6).sum(axis=1) / np.sqrt(n)
    np.testing.assert_allclose(outputs, np.broadcast_to(expected[:, None, None, :], outputs.shape), rtol=1e-5)


@pytest.mark.parametrize("fusion", ["max", "sum", "mul"])
def test_gradients_finite_and_nonzero(fusion):
    rng = np.random.default_rng(2)
    layer = PyramidAttention(fusion=fusion)
    inputs = [tf.constant(x) for x in make_inputs(rng, 3, 3)]
    layer(inputs)
    randomise(layer, rng)
    probe = tf.constant(rng.normal(size=(2, 3, 3, 6)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(inputs) * probe)
    grads = tape.gradient(loss, layer.trainable_weights)
    assert len(grads) == 6
    for weight, grad in zip(layer.trainable_weights, grads):
        assert grad is not None, weight.name
        assert np.all(np.isfinite(grad.numpy())), weight.name
        assert np.abs(grad.numpy()).max() > 0, weight.name


def test_tf_function_with_unknown_frames():
    rng = np.random.default_rng(3)
    layer = PyramidAttention()
    specs = [tf.TensorSpec((None, None, s, s, c), tf.float32) for s, c in SIZES[-3:]]
    run = tf.function(lambda xs: layer(xs, return_attention=True), input_signature=[specs])
    for frames in (1, 3):
        inputs = make_inputs(rng, 3, frames)
        outputs, attention, _ = run(inputs)
        kernels, biases = [w.numpy() for w in layer.kernels], [b.numpy() for b in layer.biases]
        expected_m, expected_a, _ = ref.pyramid_attention(inputs, kernels, biases, "mul")
        assert attention.shape == (2, 9, frames * 9)
        assert_close(outputs, expected_m)
        assert_close(attention, expected_a)


def test_mirrored_strategy_matches_reference():
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    strategy = tf.distribute.MirroredStrategy(devices)
    assert strategy.num_replicas_in_sync == 2
    rng = np.random.default_rng(4)
    inputs = make_inputs(rng, 3, 3, batch=4)
    with strategy.scope():
        layer = PyramidAttention(fusion="sum")
        layer([tf.constant(x[:1]) for x in inputs])
    kernels, biases = randomise(layer, rng)
    dataset = tf.data.Dataset.from_tensor_slices(tuple(inputs)).batch(4)
    batch = next(iter(strategy.experimental_distribute_dataset(dataset)))
    per_replica = strategy.run(tf.function(lambda *xs: layer(list(xs))), args=batch)
    outputs = np.concatenate([t.numpy() for t in strategy.experimental_local_results(per_replica)])
    expected_m, _, _ = ref.pyramid_attention(inputs, kernels, biases, "sum")
    assert_close(outputs, expected_m)


def test_mixed_float16_keeps_softmax_in_float32():
    rng = np.random.default_rng(5)
    layer = PyramidAttention(fusion="mul", dtype="mixed_float16")
    inputs = make_inputs(rng, 3, 3)
    layer(inputs)
    kernels, biases = randomise(layer, rng)
    outputs, attention, scale_logits = layer(inputs, return_attention=True)
    assert outputs.dtype == tf.float16
    assert attention.dtype == tf.float32 and scale_logits[0].dtype == tf.float32
    expected_m, expected_a, _ = ref.pyramid_attention(inputs, kernels, biases, "mul")
    assert_close(attention, expected_a, rtol=2e-2)
    assert_close(outputs, expected_m, rtol=2e-2)


def _functional_model(fusion="mul"):
    inputs = [keras.Input((None, s, s, c)) for s, c in SIZES[-3:]]
    return keras.Model(inputs, PyramidAttention(fusion=fusion, name="stpa")(inputs))


def test_keras_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(6)
    model = _functional_model("max")
    randomise(model.get_layer("stpa"), rng)
    inputs = make_inputs(rng, 3, 4)
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert restored.get_layer("stpa").get_config()["fusion"] == "max"
    np.testing.assert_array_equal(restored(inputs).numpy(), model(inputs).numpy())


@pytest.mark.slow
def test_saved_model_reloads_in_fresh_process_with_other_k(tmp_path):
    rng = np.random.default_rng(7)
    layer = PyramidAttention(fusion="mul", name="stpa")
    layer(make_inputs(rng, 3, 3))  # built with K = 3
    randomise(layer, rng)
    inputs = [keras.Input((None, s, s, c)) for s, c in SIZES[-3:]]
    model = keras.Model(inputs, layer(inputs))
    export_dir = str(tmp_path / "saved_model")
    model.export(export_dir, format="tf_saved_model")
    probe = make_inputs(rng, 3, 7)  # called with K = 7
    np.savez(tmp_path / "probe.npz", *probe, expected=model(probe).numpy())
    script = textwrap.dedent(
        f"""
        import json, numpy as np, tensorflow as tf
        data = np.load({str(tmp_path / "probe.npz")!r})
        restored = tf.saved_model.load({export_dir!r})
        out = restored.serve([tf.constant(data[f"arr_{{i}}"]) for i in range(3)]).numpy()
        print(json.dumps({{"max_abs_diff": float(np.abs(out - data["expected"]).max()), "shape": list(out.shape)}}))
        """
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["shape"] == [2, 3, 3, 6]
    assert report["max_abs_diff"] < 1e-5


def test_invalid_fusion_names_allowed_values():
    with pytest.raises(ValueError, match="max.*sum.*mul"):
        PyramidAttention(fusion="concat")


@pytest.mark.parametrize(
    "shapes, message",
    [
        ([], "non-empty"),
        ([(2, 3, 7, 7, 4), (2, 5, 3, 3, 6)], "number of frames K"),
        ([(2, 3, 7, 7, 4), (1, 3, 3, 3, 6)], "batch size"),
        ([(2, 7, 7, 4)], "rank 5"),
    ],
)
def test_bad_inputs_raise_value_error(shapes, message):
    inputs = [tf.zeros(shape) for shape in shapes]
    with pytest.raises(ValueError, match=message):
        PyramidAttention()(inputs)


def test_tf_train_checkpoint_tracks_every_weight(tmp_path):
    rng = np.random.default_rng(8)
    inputs = make_inputs(rng, 3, 2)
    layer = PyramidAttention()
    layer(inputs)
    saved = randomise(layer, rng)
    path = tf.train.Checkpoint(layer=layer).save(str(tmp_path / "ckpt"))
    restored = PyramidAttention()
    restored(inputs)
    tf.train.Checkpoint(layer=restored).restore(path).assert_existing_objects_matched()
    for expected, actual in zip(saved[0] + saved[1], restored.kernels + restored.biases):
        np.testing.assert_array_equal(actual.numpy(), expected)


@pytest.mark.parametrize("in_size,out_size", [(13, 7), (11, 3), (35, 8), (17, 8), (6, 6)])
def test_adaptive_row_pooling_equals_keras_values_and_gradients(in_size, out_size):
    """The lean pooling of Eq. 1 against keras.ops.adaptive_max_pool: same maxima, same gradient (no ties)."""
    from stpa.layers import adaptive_max_pool_rows

    rng = np.random.default_rng(in_size)
    x = tf.constant(rng.permutation(3 * in_size * 5 * 4).reshape(3, in_size, 5, 4).astype(np.float32))
    upstream = tf.constant(rng.normal(size=(3, out_size, 5, 4)).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        lean = adaptive_max_pool_rows(x, out_size)
        keras_pooled = keras.ops.adaptive_max_pool(x, (out_size, 5), data_format="channels_last")
    np.testing.assert_array_equal(lean.numpy(), keras_pooled.numpy())
    expected = np.stack(  # the NumPy reference of Eq. 1 along the rows
        [ref.adaptive_max_pool(frame, out_size, 5) for frame in x.numpy().astype(np.float64)]
    )
    np.testing.assert_array_equal(lean.numpy(), expected)
    lean_grad = tape.gradient(lean, x, output_gradients=upstream).numpy()
    keras_grad = tape.gradient(keras_pooled, x, output_gradients=upstream).numpy()
    np.testing.assert_allclose(lean_grad, keras_grad, rtol=1e-6, atol=1e-6)
    assert np.count_nonzero(lean_grad) > 0


# ---------------------------------------------------------------------------------------- the uniform control
def average_pooling_reference(top):
    """float64 M' of uniform attention: the mean of X over all K*H*W positions, times sqrt(n), at every (h, w)."""
    top = np.asarray(top, np.float64)
    batch, frames, height, width, channels = top.shape
    n = frames * height * width
    pooled = top.mean(axis=(1, 2, 3))  # average pooling over frames and positions: (B, C)
    return np.broadcast_to(pooled[:, None, None, :] * np.sqrt(n), (batch, height, width, channels)), n


@pytest.mark.parametrize("num_scales", [1, 3])
def test_uniform_attention_is_average_pooling_over_frames_and_positions(num_scales):
    rng = np.random.default_rng(10 + num_scales)
    layer = UniformAttention()
    for frames in (1, 4):
        inputs = make_inputs(rng, num_scales, frames)
        outputs, attention, scale_logits = layer([tf.constant(x) for x in inputs], return_attention=True)
        expected, n = average_pooling_reference(inputs[-1])
        d = 3 * 3
        assert_close(outputs, expected, rtol=1e-5)
        np.testing.assert_allclose(attention.numpy(), np.full((2, d, n), 1 / np.sqrt(n)), rtol=1e-6)
        assert len(scale_logits) == num_scales
        assert all(y.shape == (2, d, n) and not np.any(y.numpy()) for y in scale_logits)
        # "A replaced by its uniform value under Eq. 3's normalisation": PyramidAttention's reference with all
        # scores y^j = 0 (W_attn = 0, b_attn = 0) gives the same M', A and y^j.
        zeros_w = [np.zeros((x.shape[-1], d)) for x in inputs]
        zeros_b = [np.zeros(d) for _ in inputs]
        ref_m, ref_a, ref_y = ref.pyramid_attention(inputs, zeros_w, zeros_b, "mul")
        assert_close(outputs, ref_m, rtol=1e-5)
        assert_close(attention, ref_a, rtol=1e-6)
        np.testing.assert_array_equal(np.stack([y.numpy() for y in scale_logits]), np.stack(ref_y))
    assert layer.weights == [] and layer.count_params() == 0


def test_uniform_attention_takes_the_top_tensor_alone_and_ignores_the_lower_ones():
    rng = np.random.default_rng(20)
    inputs = make_inputs(rng, 3, 2)
    alone = UniformAttention()(tf.constant(inputs[-1])).numpy()
    other_lower = [x + 5.0 for x in inputs[:-1]] + [inputs[-1]]
    np.testing.assert_array_equal(UniformAttention()(other_lower).numpy(), alone)
    assert_close(alone, average_pooling_reference(inputs[-1])[0], rtol=1e-5)


def test_uniform_attention_with_unknown_frames_and_keras_round_trip(tmp_path):
    rng = np.random.default_rng(21)
    inputs = [keras.Input((None, s, s, c)) for s, c in SIZES[-3:]]  # K unknown at build
    model = keras.Model(inputs, UniformAttention(name="uniform")(inputs, return_attention=True))
    path = tmp_path / "uniform.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored.get_layer("uniform"), UniformAttention) and restored.count_params() == 0
    for frames in (1, 3, 7):
        probe = make_inputs(rng, 3, frames)
        expected, n = average_pooling_reference(probe[-1])
        for candidate in (model, restored):
            outputs, attention, scale_logits = candidate(probe)
            assert_close(outputs, expected, rtol=1e-5)
            assert attention.shape == (2, 9, n) and len(scale_logits) == 3
        for actual, original in zip(keras.tree.flatten(restored(probe)), keras.tree.flatten(model(probe))):
            np.testing.assert_array_equal(actual.numpy(), original.numpy())


def test_uniform_attention_mixed_float16_averages_in_float32():
    # 10 frames x 7 x 7 positions of features near 200: their sum (about 1e5) overflows float16 (max 65504), their
    # average times sqrt(490) (about 4.4e3) does not.
    rng = np.random.default_rng(22)
    top = (200.0 + rng.normal(size=(2, 10, 7, 7, 5))).astype(np.float32)
    outputs, attention, _ = UniformAttention(dtype="mixed_float16")(top, return_attention=True)
    assert outputs.dtype == tf.float16 and attention.dtype == tf.float32
    assert np.isfinite(outputs.numpy()).all()
    assert_close(outputs, average_pooling_reference(top)[0], rtol=2e-3)


@pytest.mark.parametrize(
    "shapes, message",
    [
        ([], "UniformAttention needs a non-empty"),
        ([(2, 7, 7, 4)], "rank 5"),
        ([(2, 3, 7, 7, 4), (2, 5, 3, 3, 6)], "number of frames K"),
    ],
)
def test_uniform_attention_bad_inputs_raise_value_error(shapes, message):
    with pytest.raises(ValueError, match=message):
        UniformAttention()([tf.zeros(shape) for shape in shapes])
