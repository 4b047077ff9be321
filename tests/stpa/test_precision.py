"""STPA under XLA and mixed_float16 against float32 and the float64 reference, with stated tolerances.

- PyramidAttention under `jit_compile=True`: Eq. 1-4 against the float64 NumPy reference (rtol 1e-4), and its
  gradients against the graph's (rtol 1e-4).
- The whole STPA network (`tiny` backbone, K = 3): an XLA training-step gradient vs the graph's (rtol 1e-3, atol
  1e-3 x the tensor's largest entry; XLA fuses the reductions in another order), and `mixed_float16` logits vs
  float32 with the same weights (atol 5e-2 on logits of scale ~1: float16 keeps 11 bits, through ~10 layers).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from stpa import models
from stpa.layers import PyramidAttention
from tests.helpers.pyramid_inputs import assert_close, make_inputs, randomise
from tests.stpa import pyramid_reference as ref


def test_pyramid_attention_under_xla_matches_reference_and_graph_gradients():
    rng = np.random.default_rng(11)
    layer = PyramidAttention(fusion="mul")
    inputs = make_inputs(rng, 3, 4)
    layer(inputs)
    kernels, biases = randomise(layer, rng)
    tensors = [tf.constant(x) for x in inputs]

    def step(*pyramid):
        with tf.GradientTape() as tape:
            tape.watch(pyramid)
            outputs = layer(list(pyramid))
            loss = tf.reduce_sum(outputs * tf.range(1.0, 1.0 + outputs.shape[-1]))
        return outputs, tape.gradient(loss, layer.trainable_weights + list(pyramid))

    xla_outputs, xla_gradients = tf.function(step, jit_compile=True)(*tensors)
    graph_outputs, graph_gradients = tf.function(step)(*tensors)
    expected, _, _ = ref.pyramid_attention(inputs, kernels, biases, "mul")
    assert_close(xla_outputs, expected, rtol=1e-4)
    for actual, wanted in zip(xla_gradients, graph_gradients):
        assert_close(actual, wanted, rtol=1e-4)


def _tiny_stpa(seed):
    keras.utils.set_random_seed(seed)
    return models.build_model("stpa", "tiny", 5, scales=3, top="C", fusion="mul", dropout=0.0, input_size=32)


def _clips(seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, size=(2, 3, 32, 32, 3)).astype(np.float32)


def test_stpa_training_gradients_under_xla_match_the_graph():
    model = _tiny_stpa(0)
    probe = models.attention_outputs_model(model)
    clips, labels = tf.constant(_clips(1)), tf.constant([1, 3], tf.int32)

    def step(x, y):
        with tf.GradientTape() as tape:
            loss = models.loss_terms(probe(x, training=True), y, model)["total"]
        return loss, tape.gradient(loss, model.trainable_variables)

    loss_xla, grads_xla = tf.function(step, jit_compile=True)(clips, labels)
    loss_graph, grads_graph = tf.function(step)(clips, labels)
    assert float(loss_xla) == pytest.approx(float(loss_graph), rel=1e-5)
    for actual, wanted in zip(grads_xla, grads_graph):
        wanted = wanted.numpy()
        np.testing.assert_allclose(actual.numpy(), wanted, rtol=1e-3, atol=1e-3 * np.abs(wanted).max())


def test_stpa_mixed_float16_logits_match_float32():
    reference = _tiny_stpa(2)
    clips = _clips(3)
    expected = reference(clips, training=False).numpy()
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        half = _tiny_stpa(4)
        half.set_weights(reference.get_weights())
        actual = half(clips, training=False)
        attention_dtype = next(layer for layer in half.layers if isinstance(layer, PyramidAttention)).compute_dtype
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert attention_dtype == "float16"
    assert np.abs(expected).max() > 1e-3  # a real signal to compare
    np.testing.assert_allclose(actual.numpy().astype(np.float32), expected, atol=5e-2)
