"""Tests of `stpa.losses` (Eq. 6-8) against the float64 NumPy reference."""

import numpy as np
import pytest
import tensorflow as tf

from stpa.layers import PyramidAttention, flatten_positions
from stpa.losses import attention_loss, interaction_loss
from tests.helpers.pyramid_inputs import make_inputs, randomise
from tests.stpa import pyramid_reference as ref


def test_interaction_loss_known_values():
    # Orthonormal attention rows: the off-diagonal term vanishes and the loss is minus the captured energy.
    attention = np.array([[[1.0, 0.0, 0.0], [0.0, 0.6, 0.8]]], np.float32)  # (1, d=2, n=3)
    values = np.array([[[1.0, 2.0], [3.0, 0.0], [0.0, 1.0]]], np.float32)  # (1, n=3, C=2)
    # A X = [[1, 2], [1.8, 0.8]] -> captured = 1 + 4 + 3.24 + 0.64 = 8.88.
    np.testing.assert_allclose(interaction_loss(attention, values).numpy(), -8.88, rtol=1e-6)
    # Two identical rows: (A A^T)_{01} = (A A^T)_{10} = 1, so the off-diagonal term adds 2.
    same = np.array([[[0.6, 0.8, 0.0], [0.6, 0.8, 0.0]]], np.float32)
    captured = 2 * np.sum((same[0, 0] @ values[0]) ** 2)
    np.testing.assert_allclose(interaction_loss(same, values).numpy(), -captured + 2.0, rtol=1e-6)


def test_attention_loss_known_value():
    # One scale whose softmax equals A exactly: delta = 0, so l_attn = sqrt(d * n).
    probabilities = np.array([[[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]]])
    attention = tf.constant(probabilities, tf.float32)
    logits = tf.constant(np.log(probabilities), tf.float32)
    np.testing.assert_allclose(attention_loss(attention, [logits]).numpy(), np.sqrt(6.0), rtol=1e-6)
    with pytest.raises(ValueError, match="at least one"):
        attention_loss(attention, [])


@pytest.mark.parametrize("fusion", ["max", "sum", "mul"])
@pytest.mark.parametrize("num_scales", [1, 2, 3, 4])
def test_losses_match_reference_end_to_end(fusion, num_scales):
    rng = np.random.default_rng(10 + num_scales)
    layer = PyramidAttention(fusion=fusion)
    for frames in (1, 3, 25):
        inputs = make_inputs(rng, num_scales, frames, batch=3)
        if not layer.built:
            layer(inputs)
            kernels, biases = randomise(layer, rng)
        _, attention, scale_logits = layer(inputs, return_attention=True)
        values = flatten_positions(tf.constant(inputs[-1]))
        _, expected_a, expected_y = ref.pyramid_attention(inputs, kernels, biases, fusion)
        expected_values = inputs[-1].reshape(3, -1, inputs[-1].shape[-1])
        np.testing.assert_allclose(
            interaction_loss(attention, values).numpy(), ref.interaction_loss(expected_a, expected_values), rtol=1e-4
        )
        np.testing.assert_allclose(
            attention_loss(attention, scale_logits).numpy(), ref.attention_loss(expected_a, expected_y), rtol=1e-4
        )


def test_losses_are_batch_means():
    rng = np.random.default_rng(20)
    attention = rng.uniform(size=(4, 3, 6))
    attention /= np.linalg.norm(attention, axis=-1, keepdims=True)
    values = rng.normal(size=(4, 6, 5))
    scores = [rng.normal(size=(4, 3, 6)) for _ in range(2)]
    per_sample = [ref.interaction_loss(attention[i : i + 1], values[i : i + 1]) for i in range(4)]
    np.testing.assert_allclose(
        interaction_loss(attention.astype(np.float32), values.astype(np.float32)).numpy(),
        np.mean(per_sample),
        rtol=1e-5,
    )
    per_sample = [ref.attention_loss(attention[i : i + 1], [y[i : i + 1] for y in scores]) for i in range(4)]
    np.testing.assert_allclose(
        attention_loss(attention.astype(np.float32), [y.astype(np.float32) for y in scores]).numpy(),
        np.mean(per_sample),
        rtol=1e-5,
    )


@pytest.mark.parametrize("fusion", ["max", "sum", "mul"])
def test_loss_gradients_reach_every_weight(fusion):
    rng = np.random.default_rng(30)
    layer = PyramidAttention(fusion=fusion)
    inputs = [tf.constant(x) for x in make_inputs(rng, 3, 3)]
    layer(inputs)
    randomise(layer, rng)
    with tf.GradientTape() as tape:
        _, attention, scale_logits = layer(inputs, return_attention=True)
        total = interaction_loss(attention, flatten_positions(inputs[-1])) + attention_loss(attention, scale_logits)
    for weight, grad in zip(layer.trainable_weights, tape.gradient(total, layer.trainable_weights)):
        assert grad is not None and np.all(np.isfinite(grad.numpy())), weight.name
        assert np.abs(grad.numpy()).max() > 0, weight.name


def _interaction_reference(a: np.ndarray, values: np.ndarray, normalization: str) -> float:
    """Eq. 6 in float64 with the covariance `X X^T / C` ("covariance") or the printed `X X^T` ("none")."""
    scale = values.shape[-1] if normalization == "covariance" else 1.0
    losses = []
    for ab, xb in zip(np.asarray(a, np.float64), np.asarray(values, np.float64)):
        captured = np.trace(ab @ (xb @ xb.T / scale) @ ab.T)
        gram = ab @ ab.T
        losses.append(-captured + np.sum((gram * (1 - np.eye(gram.shape[0]))) ** 2))
    return float(np.mean(losses))


def _interaction_gradient_reference(a: np.ndarray, values: np.ndarray, normalization: str) -> np.ndarray:
    """d l_interactive / dA in float64: `(-2 A X X^T / c + 4 (G o (1 - I)) A) / B` per sample, G = A A^T."""
    scale = values.shape[-1] if normalization == "covariance" else 1.0
    grads = []
    for ab, xb in zip(np.asarray(a, np.float64), np.asarray(values, np.float64)):
        gram = ab @ ab.T
        grads.append(-2.0 * ab @ xb @ xb.T / scale + 4.0 * (gram * (1 - np.eye(gram.shape[0]))) @ ab)
    return np.stack(grads) / a.shape[0]


def _random_attention(rng, shape):
    attention = rng.uniform(size=shape)
    return attention / np.linalg.norm(attention, axis=-1, keepdims=True)


@pytest.mark.parametrize("gradient", ["attention", "both"])
@pytest.mark.parametrize("normalization", ["none", "covariance"])
def test_interaction_loss_variants_match_reference(gradient, normalization):
    rng = np.random.default_rng(30)
    attention = _random_attention(rng, (3, 4, 12))  # (B, d, n)
    values = rng.normal(size=(3, 12, 7)) * 3.0  # (B, n, C)
    got = interaction_loss(
        attention.astype(np.float32), values.astype(np.float32), gradient=gradient, normalization=normalization
    ).numpy()
    np.testing.assert_allclose(got, _interaction_reference(attention, values, normalization), rtol=1e-5)


def test_interaction_loss_known_values_covariance():
    # The known-value case above with C = 2: the captured energy 8.88 is halved.
    attention = np.array([[[1.0, 0.0, 0.0], [0.0, 0.6, 0.8]]], np.float32)
    values = np.array([[[1.0, 2.0], [3.0, 0.0], [0.0, 1.0]]], np.float32)
    np.testing.assert_allclose(
        interaction_loss(attention, values, normalization="covariance").numpy(), -4.44, rtol=1e-6
    )


@pytest.mark.parametrize("normalization", ["none", "covariance"])
def test_interaction_loss_gradients(normalization):
    rng = np.random.default_rng(31)
    attention_np = _random_attention(rng, (2, 3, 8))
    values_np = rng.normal(size=(2, 8, 5))
    expected = _interaction_gradient_reference(attention_np, values_np, normalization)
    for gradient in ("attention", "both"):
        attention = tf.Variable(attention_np.astype(np.float32))
        values = tf.Variable(values_np.astype(np.float32))
        with tf.GradientTape() as tape:
            loss = interaction_loss(attention, values, gradient=gradient, normalization=normalization)
        grad_a, grad_x = tape.gradient(loss, [attention, values], unconnected_gradients=tf.UnconnectedGradients.ZERO)
        np.testing.assert_allclose(grad_a.numpy(), expected, rtol=1e-4, atol=1e-5)
        if gradient == "attention":  # X is data (Eq. 5's argmin is over A): nothing reaches X.
            np.testing.assert_array_equal(grad_x.numpy(), np.zeros_like(values_np))
        else:  # d/dX of -sum((A X)^2) / c is -2 A^T A X / c.
            scale = values_np.shape[-1] if normalization == "covariance" else 1.0
            expected_x = np.stack([-2.0 * a.T @ a @ x / scale for a, x in zip(attention_np, values_np)]) / 2
            np.testing.assert_allclose(grad_x.numpy(), expected_x, rtol=1e-4, atol=1e-5)


def test_interaction_loss_rejects_unknown_options():
    attention = tf.ones((1, 2, 3))
    values = tf.ones((1, 3, 2))
    with pytest.raises(ValueError, match=r"interaction gradient 'x' unknown; allowed: \['attention', 'both'\]"):
        interaction_loss(attention, values, gradient="x")
    with pytest.raises(ValueError, match="interaction normalization 'pca' unknown"):
        interaction_loss(attention, values, normalization="pca")
