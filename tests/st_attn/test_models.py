"""The ST-attn network: both input modes, the Table 2 ablation switches, endpoints, `.keras` round trip."""

import keras
import numpy as np
import pytest

from st_attn import models

TINY = dict(mask_filters=(6, 4), lstm_units=5, init_filters=6, attention_units=4, dropout=0.5)
FEATURES = (3, 3, 8)


def _features(batch, frames, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, frames, *FEATURES)).astype(np.float32)


def _tiny_extractor():
    frames = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(8, 3, strides=4, padding="same", activation="relu")(frames)  # (B', 3, 3, 8)
    return keras.Model(frames, x, name="tiny_extractor")


def test_cached_feature_model_any_n_and_endpoints():
    model = models.build_st_attn_network(4, feature_shape=FEATURES, **TINY)
    assert model.input_shape == (None, None, *FEATURES)
    probe = models.attention_model(model)
    for frames in (3, 6):
        outputs = probe(_features(2, frames), training=False)
        assert outputs["logits"].shape == (2, 4)
        assert outputs["mask"].shape == (2, frames, 3, 3, 1)
        np.testing.assert_allclose(outputs["temporal_weights"].numpy().sum(-1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(outputs["logits"].numpy(), model(_features(2, frames)).numpy(), rtol=1e-5)


def test_frames_mode_equals_extractor_then_cached_head():
    extractor = _tiny_extractor()
    frames_model = models.build_st_attn_network(4, feature_extractor=extractor, **TINY)
    head = models.build_st_attn_network(4, feature_shape=FEATURES, **TINY)
    head.set_weights([w for w in frames_model.get_weights()[len(extractor.get_weights()) :]])
    frames = np.random.default_rng(1).uniform(size=(2, 5, 12, 12, 3)).astype(np.float32)
    per_frame = np.stack([extractor(frames[:, t]).numpy() for t in range(5)], axis=1)  # (B, n, 3, 3, 8)
    np.testing.assert_allclose(frames_model(frames).numpy(), head(per_frame).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("spatial,temporal", [(False, True), (True, False), (False, False)])
def test_ablation_switches(spatial, temporal):
    model = models.build_st_attn_network(
        3, feature_shape=FEATURES, spatial_attention=spatial, temporal_attention=temporal, **TINY
    )
    endpoints = models.attention_endpoints(model)
    assert ("mask" in endpoints) == spatial
    weights = models.attention_model(model)(_features(1, 4))["temporal_weights"].numpy()
    if not temporal:
        np.testing.assert_array_equal(weights[0], np.eye(4))
    names = [layer.name for layer in model.layers]
    assert ("spatial_attention_mask" in names) == spatial


def test_keras_round_trip(tmp_path):
    model = models.build_st_attn_network(4, feature_shape=FEATURES, **TINY)
    x = _features(2, 5)
    path = tmp_path / "st_attn.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-6)
    original = models.attention_model(model)(x)
    reloaded = models.attention_model(loaded)(x)
    for key in ("mask", "temporal_weights"):
        np.testing.assert_allclose(reloaded[key].numpy(), original[key].numpy(), rtol=1e-6)
    # And a different n with the same reloaded weights.
    assert loaded(_features(1, 9)).shape == (1, 4)


def test_exactly_one_input_mode():
    with pytest.raises(ValueError, match="exactly one"):
        models.build_st_attn_network(3)
    with pytest.raises(ValueError, match="exactly one"):
        models.build_st_attn_network(3, feature_shape=FEATURES, feature_extractor=_tiny_extractor())


def test_saved_model_export_serves_any_n(tmp_path):
    import tensorflow as tf

    model = models.build_st_attn_network(4, feature_shape=FEATURES, **TINY)
    path = str(tmp_path / "saved_model")
    model.export(path, verbose=False)
    served = tf.saved_model.load(path)  # the graph from disk, no Python layer classes involved
    for frames in (3, 5):
        x = _features(2, frames, seed=frames)
        np.testing.assert_allclose(served.serve(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)


def test_mixed_float16_forward_and_gradients():
    import tensorflow as tf

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = models.build_st_attn_network(3, feature_shape=FEATURES, **TINY)
        probe = models.attention_model(model)
        x = _features(2, 4)
        with tf.GradientTape() as tape:
            outputs = probe(x, training=True)
            loss = tf.reduce_sum(tf.cast(outputs["logits"], tf.float32))
        gradients = tape.gradient(loss, model.trainable_variables)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert outputs["temporal_weights"].dtype == tf.float32
    np.testing.assert_allclose(outputs["temporal_weights"].numpy().sum(-1), 1.0, rtol=1e-5)
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in gradients)
