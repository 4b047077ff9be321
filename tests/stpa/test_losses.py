"""Tests of `stpa.losses` (Eq. 6-8) against the float64 NumPy reference."""

import numpy as np
import pytest
import tensorflow as tf

from stpa.layers import PyramidAttention, flatten_positions
from stpa.losses import attention_loss, interaction_loss
from tests.stpa import pyramid_reference as ref
from tests.stpa.test_layers import make_inputs, randomise


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
