"""ST-attn's 'No attention (matched capacity)' control: the head of 'Ours' without the mask and without temporal
attention, against a float64 NumPy reference of the whole forward pass."""

import numpy as np

from st_attn import models
from tests.st_attn.test_layers import _features, _randomise_batch_norms, _temporal_reference


def test_matched_capacity_head_is_the_convlstm_reading_frame_t_at_step_t_then_the_classifier():
    model = models.build_st_attn_network(
        num_classes=4,
        feature_shape=(3, 4, 6),
        spatial_attention=False,
        temporal_attention=False,
        lstm_units=5,
        init_filters=7,
        attention_units=4,
        dropout=0.0,
    )
    names = {layer.name for layer in model.layers}
    assert models.MASK_LAYER not in names and models.TEMPORAL_LAYER in names
    temporal = model.get_layer(models.TEMPORAL_LAYER)
    _randomise_batch_norms(temporal, seed=5)
    assert not temporal.temporal_attention
    x = _features(2, 5, seed=8)
    hidden, weights, _ = _temporal_reference(temporal, x)  # H_bar (B, h, w, units): frame t at step t
    np.testing.assert_array_equal(weights, np.broadcast_to(np.eye(5), (2, 5, 5)))
    dense = model.get_layer("logits")
    expected = hidden.mean(axis=(1, 2)) @ dense.kernel.numpy().astype(np.float64) + dense.bias.numpy()
    np.testing.assert_allclose(model(x, training=False).numpy(), expected, rtol=1e-4, atol=1e-5)
    # The same head as 'Ours' but for the mask CNN and the temporal attention's Phi_X, Phi_H and v.
    ours = models.build_st_attn_network(
        num_classes=4, feature_shape=(3, 4, 6), lstm_units=5, init_filters=7, attention_units=4, dropout=0.0
    )
    shapes = {w.path: tuple(w.shape) for w in ours.weights}
    assert all(shapes.get(w.path) == tuple(w.shape) for w in model.weights)  # every weight of it is one of Ours'
    missing = sorted({path.split("/")[-2] for path in set(shapes) - {w.path for w in model.weights}})
    assert models.MASK_LAYER in {path.split("/")[0] for path in shapes}
    assert {"phi_x", "phi_h"} <= set(missing)
