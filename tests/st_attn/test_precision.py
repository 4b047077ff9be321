"""ST-attn's faster and leaner paths against the float32 default: same function, stated tolerances.

- `project_frames` (the ConvLSTM input convolution once over all frames) vs per step: same outputs and gradients.
- `parallel_iterations` 1 vs 10: the loop's result does not depend on it.
- XLA (`jit_compile=True`) vs the graph: forward and gradients.
- `mixed_float16` / `mixed_bfloat16` vs float32 with the same weights: logits, mask and temporal weights within
  stated tolerances (bfloat16 is what runs fast on CPUs with AMX: see BUILD.md "Performance").
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from st_attn import layers, losses, models

TINY = dict(mask_filters=(6, 4), lstm_units=5, init_filters=6, attention_units=4, dropout=None)
FEATURES = (3, 3, 8)
CLASSES = 4


def _features(batch=2, frames=5, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, frames, *FEATURES)).astype(np.float32)


def _labels(batch=2):
    return np.arange(batch, dtype=np.int32) % CLASSES


def _model(seed=0, **options):
    keras.utils.set_random_seed(seed)
    return models.build_st_attn_network(CLASSES, feature_shape=FEATURES, **TINY, **options)


def _objective(outputs, labels, model):
    """Eq. 6 with the paper's λs plus 5e-5 Σ w² (what training minimises), float32."""
    logits = tf.cast(outputs["logits"], tf.float32)
    total = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    total += 5e-5 * tf.add_n([tf.reduce_sum(tf.square(w)) for w in model.trainable_weights if len(w.shape) > 1])
    if "mask" in outputs:
        total += 1e-5 * losses.total_variation_loss(outputs["mask"]) + 1e-4 * losses.contrast_loss(outputs["mask"])
    return total + losses.unimodality_loss(outputs["temporal_weights"])


def _loss_and_gradients(model, x, y, jit_compile=False):
    probe = models.attention_model(model)
    # n unknown at trace time, as in training (XLA then compiles per concrete shape).
    signature = [tf.TensorSpec((None, None, *FEATURES), tf.float32), tf.TensorSpec((None,), tf.int32)]

    @tf.function(jit_compile=jit_compile, input_signature=signature)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = _objective(probe(x, training=True), y, model)
        return loss, tape.gradient(loss, model.trainable_variables)

    loss, gradients = step(tf.constant(x), tf.constant(y))
    return float(loss), [g.numpy() for g in gradients]


def _assert_gradients_close(actual, expected, rtol, atol):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)


@pytest.mark.parametrize("temporal_attention", [True, False])
def test_project_frames_equals_per_step_convolution(temporal_attention):
    """Eq. 4 is linear: W_x * ((1/n) Σ w_i X~_i) + b = (1/n) Σ w_i (W_x * X~_i) + b; float32 rounding only."""
    per_step = _model(project_frames=False, temporal_attention=temporal_attention)
    projected = _model(project_frames=True, temporal_attention=temporal_attention)
    projected.set_weights(per_step.get_weights())
    x, y = _features(), _labels()
    np.testing.assert_allclose(projected(x).numpy(), per_step(x).numpy(), rtol=1e-5, atol=1e-6)
    loss_a, grads_a = _loss_and_gradients(projected, x, y)
    loss_b, grads_b = _loss_and_gradients(per_step, x, y)
    assert loss_a == pytest.approx(loss_b, rel=1e-6)
    _assert_gradients_close(grads_a, grads_b, rtol=1e-4, atol=1e-6)


def test_parallel_iterations_do_not_change_the_result():
    serial = _model(parallel_iterations=1)
    parallel = _model(parallel_iterations=10)
    parallel.set_weights(serial.get_weights())
    x, y = _features(seed=1), _labels()
    _, grads_a = _loss_and_gradients(serial, x, y)
    _, grads_b = _loss_and_gradients(parallel, x, y)
    _assert_gradients_close(grads_a, grads_b, rtol=1e-6, atol=1e-7)
    config = serial.get_layer(models.TEMPORAL_LAYER).get_config()
    assert config["parallel_iterations"] == 1 and config["project_frames"] is True
    rebuilt = layers.TemporalAttentionConvLSTM.from_config(config)
    assert rebuilt.parallel_iterations == 1 and rebuilt.project_frames


def test_xla_matches_graph_within_1e4():
    """jit_compile=True (XLA on the CPU) vs the graph: loss and every gradient, rtol 1e-4 / atol 1e-6."""
    model = _model(seed=2)
    x, y = _features(seed=2, frames=4), _labels()
    loss_graph, grads_graph = _loss_and_gradients(model, x, y)
    loss_xla, grads_xla = _loss_and_gradients(model, x, y, jit_compile=True)
    assert loss_xla == pytest.approx(loss_graph, rel=1e-5)
    _assert_gradients_close(grads_xla, grads_graph, rtol=1e-4, atol=1e-6)


# policy: (logits, relative to the largest float32 logit; mask, absolute; temporal weights, absolute). float16 keeps
# 11 mantissa bits, bfloat16 8; measured errors over 3 seeds were 1.7e-3 / 6e-4 / 9e-5 (float16) and
# 8e-3 / 4.8e-3 / 6e-4 (bfloat16): the bounds leave a factor of 3 or more.
TOLERANCES = {"mixed_float16": (5e-3, 2e-3, 5e-4), "mixed_bfloat16": (4e-2, 1.5e-2, 3e-3)}


@pytest.mark.parametrize("policy", sorted(TOLERANCES))
def test_mixed_precision_matches_float32_within_stated_tolerances(policy):
    """Same weights under a mixed policy vs float32: logits, the mask (Eq. 1) and the temporal weights (Eq. 3)."""
    logits_rtol, mask_atol, weights_atol = TOLERANCES[policy]
    reference = _model(seed=3)
    x = _features(seed=3)
    expected = models.attention_model(reference)(x, training=False)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        half = _model(seed=4)
        half.set_weights(reference.get_weights())
        actual = models.attention_model(half)(x, training=False)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert actual["logits"].dtype == policy.removeprefix("mixed_")
    assert actual["temporal_weights"].dtype == tf.float32  # Eq. 3's softmax stays in float32
    scale = np.abs(expected["logits"].numpy()).max()
    np.testing.assert_allclose(
        actual["logits"].numpy().astype(np.float32), expected["logits"].numpy(), atol=logits_rtol * scale
    )
    np.testing.assert_allclose(
        actual["temporal_weights"].numpy(), expected["temporal_weights"].numpy(), atol=weights_atol
    )
    np.testing.assert_allclose(actual["mask"].numpy().astype(np.float32), expected["mask"].numpy(), atol=mask_atol)
