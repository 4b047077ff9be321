"""Eq. 1's adaptive max pooling (stpa.blocks.adaptive_pooling): values and gradients against three references.

References: the previous segment-sum backward (`POOLINGS["segment_sum"]`), `keras.ops.adaptive_max_pool`, and a
float64 NumPy loop over the PyTorch bins that routes each upstream value to the first maximum of its bin.
Inputs are permutations (no ties), at Inception-ResNet-V2's bin shapes 35 -> 8 and 17 -> 8 and a regular 16 -> 8.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from stpa.blocks.adaptive_pooling import POOLINGS, adaptive_max_pool, bin_rows, selection_matrix
from tests.stpa import pyramid_reference as ref

SHAPES = [(35, 8), (17, 8), (16, 8)]


def numpy_pool_and_grad(x: np.ndarray, out: int, upstream: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 adaptive max pooling of `(N, H, W, C)` to `(N, out, out, C)` and its gradient (first maximum)."""
    n, height, width, channels = x.shape
    pooled = np.stack([ref.adaptive_max_pool(frame, out, out) for frame in x])
    grad = np.zeros_like(x)
    for b in range(n):
        for i in range(out):
            h0, h1 = (i * height) // out, -(-((i + 1) * height) // out)
            for j in range(out):
                w0, w1 = (j * width) // out, -(-((j + 1) * width) // out)
                for c in range(channels):
                    window = x[b, h0:h1, w0:w1, c]
                    r, s = np.unravel_index(np.argmax(window), window.shape)
                    grad[b, h0 + r, w0 + s, c] += upstream[b, i, j, c]
    return pooled, grad


def _inputs(size: int, out: int, dtype=np.float32, seed: int = 0):
    rng = np.random.default_rng(seed + size)
    x = rng.permutation(2 * size * size * 3).reshape(2, size, size, 3).astype(dtype) / 7.0
    upstream = rng.normal(size=(2, out, out, 3)).astype(dtype)
    return x, upstream


def _value_and_grad(pool, x, out, upstream):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        pooled = pool(x, out, out)
    return pooled.numpy(), tape.gradient(pooled, x, output_gradients=tf.constant(upstream)).numpy()


@pytest.mark.parametrize("size,out", SHAPES)
def test_values_and_gradients_equal_segment_sum_keras_and_numpy(size, out):
    x, upstream = _inputs(size, out)
    pooled, grad = _value_and_grad(adaptive_max_pool, x, out, upstream)
    old_pooled, old_grad = _value_and_grad(POOLINGS["segment_sum"], x, out, upstream)
    keras_pooled, keras_grad = _value_and_grad(
        lambda t, h, w: keras.ops.adaptive_max_pool(t, (h, w), data_format="channels_last"), x, out, upstream
    )
    expected, expected_grad = numpy_pool_and_grad(x.astype(np.float64), out, upstream.astype(np.float64))
    for other in (old_pooled, keras_pooled, expected):
        np.testing.assert_array_equal(pooled, other)
    # Each input gets the same upstream values (up to 4 where bins overlap; summed in another order: float32).
    np.testing.assert_allclose(grad, old_grad, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(grad, keras_grad, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-6, atol=1e-6)
    assert np.count_nonzero(grad) == np.count_nonzero(expected_grad) > 0


@pytest.mark.parametrize("size,out", SHAPES)
def test_float64_and_float16_match_the_numpy_reference(size, out):
    x, upstream = _inputs(size, out, np.float64, seed=1)
    pooled, grad = _value_and_grad(adaptive_max_pool, x, out, upstream)
    expected, expected_grad = numpy_pool_and_grad(x, out, upstream)
    np.testing.assert_array_equal(pooled, expected)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-12)
    # float16 (mixed precision): the maxima are exact, the gradient is the rounded upstream at the same positions.
    x16 = np.round(x * 7.0).astype(np.float16)[:, :, :, :1]  # integers < 2048: exact and still distinct
    up16 = upstream.astype(np.float16)[:, :, :, :1]
    pooled16, grad16 = _value_and_grad(adaptive_max_pool, x16, out, up16)
    expected16, expected_grad16 = numpy_pool_and_grad(x16.astype(np.float64), out, up16.astype(np.float64))
    np.testing.assert_array_equal(pooled16.astype(np.float64), expected16)
    np.testing.assert_allclose(grad16.astype(np.float64), expected_grad16, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("jit", [False, True])
def test_graph_and_xla_with_unknown_batch_equal_eager(jit):
    size, out = 35, 8
    x, upstream = _inputs(size, out, seed=2)

    @tf.function(jit_compile=jit, input_signature=[tf.TensorSpec([None, size, size, 3]), tf.TensorSpec(None)])
    def step(t, up):
        with tf.GradientTape() as tape:
            tape.watch(t)
            pooled = adaptive_max_pool(t, out, out)
        return pooled, tape.gradient(pooled, t, output_gradients=up)

    pooled, grad = step(tf.constant(x), tf.constant(upstream))
    eager_pooled, eager_grad = _value_and_grad(adaptive_max_pool, x, out, upstream)
    np.testing.assert_array_equal(pooled.numpy(), eager_pooled)
    np.testing.assert_allclose(grad.numpy(), eager_grad, rtol=1e-6, atol=1e-6)


def test_ties_go_to_the_first_maximum_like_max_pooling():
    x = np.zeros((1, 4, 4, 1), np.float32)  # every bin a tie (ReLU zeros)
    upstream = np.arange(1, 5, dtype=np.float32).reshape(1, 2, 2, 1)
    _, grad = _value_and_grad(adaptive_max_pool, x, 2, upstream)
    expected = np.zeros_like(x)
    expected[0, [0, 0, 2, 2], [0, 2, 0, 2], 0] = [1, 2, 3, 4]  # the top-left corner of each 2x2 bin
    np.testing.assert_array_equal(grad, expected)


def test_bins_and_selection_matrix():
    assert bin_rows(35, 8)[:3] == [[0, 1, 2, 3, 4, 4], [4, 5, 6, 7, 8, 8], [8, 9, 10, 11, 12, 13]]
    assert bin_rows(16, 8) == [[2 * i, 2 * i + 1] for i in range(8)]
    selection = selection_matrix(17, 8)  # (in, out * window): one 1 per column, every row covered
    assert selection.shape == (17, 24)
    np.testing.assert_array_equal(selection.sum(axis=0), np.ones(24))
    assert (selection.sum(axis=1) >= 1).all()


@pytest.mark.parametrize("name", ["matmul", "segment_sum"])
def test_alternatives_equal_the_default(name):
    x, upstream = _inputs(17, 8, seed=3)
    pooled, grad = _value_and_grad(adaptive_max_pool, x, 8, upstream)
    other_pooled, other_grad = _value_and_grad(POOLINGS[name], x, 8, upstream)
    np.testing.assert_array_equal(pooled, other_pooled)
    np.testing.assert_allclose(grad, other_grad, rtol=1e-6, atol=1e-6)
