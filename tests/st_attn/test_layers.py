"""SpatialAttentionMask (Eq. 1, Table 1) and TemporalAttentionConvLSTM (Eq. 2-5) against float64 NumPy references."""

import numpy as np
import pytest
import tensorflow as tf

from st_attn import layers
from tests.st_attn import reference as ref

C, H, W = 6, 3, 4


def _randomise_batch_norms(layer, seed=0):
    """Non-trivial BN statistics so that the references test them too."""
    rng = np.random.default_rng(seed)
    for variable in layer.weights:
        if "moving_mean" in variable.path or "beta" in variable.path:
            variable.assign(rng.normal(0, 0.3, variable.shape))
        elif "moving_variance" in variable.path or "gamma" in variable.path:
            variable.assign(rng.uniform(0.5, 1.5, variable.shape))


def _features(batch, frames, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, frames, H, W, C)).astype(np.float32)


def _mask_reference(layer, x):
    """Table 1 in NumPy: (conv3x3 + BN + ReLU) x 2, conv3x3 + sigmoid; x (B, n, h, w, C)."""
    b, n = x.shape[:2]
    y = np.asarray(x, np.float64).reshape(b * n, *x.shape[2:])
    stack = layer._stack
    for index in range(len(layer.filters)):
        y = ref.conv_bn_relu(y, stack[3 * index], stack[3 * index + 1])
    last = stack[-1]
    y = ref.sigmoid(ref.conv2d_same(y, last.kernel.numpy().astype(np.float64), last.bias.numpy()))
    return y.reshape(b, n, *y.shape[1:])


def test_mask_matches_table1_reference_and_lies_in_unit_interval():
    layer = layers.SpatialAttentionMask(filters=(8, 5))
    x = _features(2, 3) * 4.0
    layer(x)
    _randomise_batch_norms(layer)
    mask = layer(x, training=False).numpy()
    assert mask.shape == (2, 3, H, W, 1)
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    np.testing.assert_allclose(mask, _mask_reference(layer, x), rtol=1e-4, atol=1e-5)
    # Eq. 1: X~ = X ⊙ M, the mask broadcast over the channels.
    np.testing.assert_allclose(layers.apply_spatial_mask(x, mask).numpy(), x * mask, rtol=1e-6)


def test_mask_layer_shares_weights_over_frames_and_any_n():
    layer = layers.SpatialAttentionMask(filters=(4, 4))
    x = _features(1, 5)
    full = layer(x).numpy()
    single = layer(x[:, 2:3]).numpy()
    np.testing.assert_allclose(full[:, 2:3], single, rtol=1e-5, atol=1e-6)


def _temporal_reference(layer, x):
    """Eq. 2-5 in float64 NumPy with the layer's weights (inference BN). Returns H_bar, weights (B, n, n), Y."""
    x = np.asarray(x, np.float64)
    b, n = x.shape[:2]
    mean_x = x.mean(axis=1)

    def g(stack, y):
        y = ref.conv_bn_relu(y, stack[0], stack[1])
        return ref.conv_bn_relu(y, stack[3], stack[4])

    hidden, cell = g(layer.init_hidden, mean_x), g(layer.init_cell, mean_x)
    kx = layer.input_conv.kernel.numpy().astype(np.float64)
    bx = layer.input_conv.bias.numpy().astype(np.float64)
    kh = layer.recurrent_conv.kernel.numpy().astype(np.float64)
    if layer.temporal_attention:
        phi_x = layer.phi_x.kernel.numpy().astype(np.float64)
        phi_h = layer.phi_h.kernel.numpy().astype(np.float64)
        keys = x.mean(axis=(2, 3)) @ phi_x  # (B, n, d)
    hiddens, all_weights, contexts = [], [], []
    for t in range(n):
        if layer.temporal_attention:
            energies = keys + (hidden.mean(axis=(1, 2)) @ phi_h)[:, None, :]
            if layer.energy == "tanh":
                energies = np.tanh(energies) @ layer.energy_projection.kernel.numpy().astype(np.float64)
            weights = ref.softmax(energies[..., 0], axis=-1)  # Eq. 3
            y = np.einsum("bn,bnhwc->bhwc", weights, x) / n  # Eq. 4
        else:
            weights = np.zeros((b, n))
            weights[:, t] = 1.0
            y = x[:, t]
        gates = ref.conv2d_same(y, kx, bx) + ref.conv2d_same(hidden, kh)
        i, f, gg, o = np.split(gates, 4, axis=-1)
        cell = ref.sigmoid(f) * cell + ref.sigmoid(i) * np.tanh(gg)
        hidden = ref.sigmoid(o) * np.tanh(cell)
        hiddens.append(hidden)
        all_weights.append(weights)
        contexts.append(y)
    return np.mean(hiddens, axis=0), np.stack(all_weights, axis=1), np.stack(contexts, axis=1)


def _temporal_layer(**kwargs):
    config = dict(units=5, init_filters=7, attention_units=4)
    config.update(kwargs)
    layer = layers.TemporalAttentionConvLSTM(**config)
    layer.build((None, None, H, W, C))
    _randomise_batch_norms(layer, seed=3)
    return layer


@pytest.mark.parametrize("project_frames", [True, False])
@pytest.mark.parametrize("energy", ["tanh", "linear"])
def test_temporal_attention_matches_numpy_for_several_n(energy, project_frames):
    """One built layer, n = 3 and n = 7 (K-invariance), against the float64 reference; both input-conv orders."""
    layer = _temporal_layer(energy=energy, project_frames=project_frames)
    for frames in (3, 7):
        x = _features(2, frames, seed=frames)
        mean_hidden, weights, contexts = layer(x, training=False, return_contexts=True)
        expected_hidden, expected_weights, expected_contexts = _temporal_reference(layer, x)
        assert weights.shape == (2, frames, frames)
        np.testing.assert_allclose(weights.numpy().sum(axis=-1), 1.0, rtol=1e-5)  # Eq. 3
        np.testing.assert_allclose(weights.numpy(), expected_weights, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(contexts.numpy(), expected_contexts, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(mean_hidden.numpy(), expected_hidden, rtol=1e-4, atol=1e-5)


def test_context_is_the_weighted_mean_of_eq4_for_the_layer_weights():
    layer = _temporal_layer()
    x = _features(2, 4, seed=9)
    _, weights, contexts = layer(x, training=False, return_contexts=True)
    expected = np.einsum("btn,bnhwc->bthwc", weights.numpy().astype(np.float64), x.astype(np.float64)) / 4
    np.testing.assert_allclose(contexts.numpy(), expected, rtol=1e-5, atol=1e-6)
    # And the named Eq. 4 function on hand-made weights.
    hand = np.array([[0.1, 0.2, 0.3, 0.4], [1.0, 0.0, 0.0, 0.0]], np.float32)
    np.testing.assert_allclose(
        layers.temporal_context(hand, x).numpy(), np.einsum("bn,bnhwc->bhwc", hand, x) / 4, rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("project_frames", [True, False])
def test_without_temporal_attention_reads_frame_t_at_step_t(project_frames):
    layer = _temporal_layer(temporal_attention=False, project_frames=project_frames)
    x = _features(1, 4, seed=2)
    mean_hidden, weights, contexts = layer(x, training=False, return_contexts=True)
    np.testing.assert_array_equal(weights.numpy()[0], np.eye(4))
    np.testing.assert_allclose(contexts.numpy(), x)
    np.testing.assert_allclose(mean_hidden.numpy(), _temporal_reference(layer, x)[0], rtol=1e-4, atol=1e-5)


def _attention_gradients(layer, x):
    with tf.GradientTape() as tape:
        mean_hidden, weights = layer(x, training=True)
        # The class score depends on the weights only through H_bar; weight the steps to break symmetries.
        loss = tf.reduce_sum(mean_hidden * tf.range(1.0, 1.0 + layer.units)) + tf.reduce_sum(weights[..., 0])
    variables = [layer.phi_x.kernel, layer.phi_h.kernel]
    return [g.numpy() if g is not None else None for g in tape.gradient(loss, variables)]


def test_phi_x_and_phi_h_receive_gradients():
    """The released code detaches the energies (NumPy round trip); here both Φ get a real, non-zero gradient."""
    layer = _temporal_layer()
    grad_x, grad_h = _attention_gradients(layer, _features(2, 4, seed=5))
    assert grad_x is not None and np.abs(grad_x).max() > 1e-6
    assert grad_h is not None and np.abs(grad_h).max() > 1e-6
    assert np.all(np.isfinite(grad_x)) and np.all(np.isfinite(grad_h))


def test_literal_linear_energy_leaves_phi_h_without_gradient():
    """Why the default energy has a tanh: scalar Φ_H(H) is constant over frames and cancels in the softmax."""
    layer = _temporal_layer(energy="linear")
    grad_x, grad_h = _attention_gradients(layer, _features(2, 4, seed=5))
    assert np.abs(grad_x).max() > 1e-6
    assert grad_h is None or np.abs(grad_h).max() < 1e-7


def test_bad_configuration_is_named():
    with pytest.raises(ValueError, match="energy"):
        layers.TemporalAttentionConvLSTM(energy="dot")
    with pytest.raises(ValueError, match=r"\(B, n, h, w, C\)"):
        layers.SpatialAttentionMask()(np.zeros((2, 3, 4, 5), np.float32))
    with pytest.raises(ValueError, match="parallel_iterations"):
        layers.TemporalAttentionConvLSTM(parallel_iterations=0)


def test_initial_mask_level():
    layer = layers.SpatialAttentionMask(filters=(4,), initial_mask=0.2)
    # Zero features: every convolution gives 0 and BN (fresh statistics) keeps 0, so the mask is sigmoid(bias).
    mask = layer(np.zeros((1, 2, 3, 3, 5), np.float32), training=False).numpy()
    np.testing.assert_allclose(mask, 0.2, rtol=1e-5)
    assert layers.SpatialAttentionMask.from_config(layer.get_config()).initial_mask == 0.2
    with pytest.raises(ValueError, match="initial_mask"):
        layers.SpatialAttentionMask(initial_mask=1.0)
