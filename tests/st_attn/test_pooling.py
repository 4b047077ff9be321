"""The average-pooling baseline of Meng et al. (Table 2 "w/o attention"): `--pooling=average` of the ST-attn family."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from st_attn import layers as st_layers
from st_attn import models
from st_attn.family import StAttnConfig, StAttnFamily
from stpa.engine.config import DataConfig

FEATURES = (3, 4, 5)  # (h, w, C) of cached features


def _features(batch: int, frames: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, frames, *FEATURES))


def test_pooling_is_the_float64_mean_over_frames_and_positions():
    x = _features(2, 6)
    pooled = st_layers.FrameAndPositionAveragePooling(dtype="float64")(tf.constant(x))
    expected = np.array([[x[b, :, :, :, c].sum() / (6 * 3 * 4) for c in range(5)] for b in range(2)])
    np.testing.assert_allclose(pooled.numpy(), expected, rtol=0, atol=1e-12)


def test_pooling_refuses_features_that_are_not_five_dimensional():
    with pytest.raises(ValueError, match=r"\(B, n, h, w, C\)"):
        st_layers.FrameAndPositionAveragePooling().compute_output_shape((2, 4, 5))


def test_average_model_logits_are_the_mean_times_the_classifier_for_any_n():
    model = models.build_st_attn_network(3, feature_shape=FEATURES, pooling="average", dropout=0.5)
    weights, bias = model.get_layer("logits").get_weights()  # (5, 3), (3,)
    assert {layer.name for layer in model.layers} >= {models.AVERAGE_LAYER, "dropout", "logits"}
    assert models.TEMPORAL_LAYER not in {layer.name for layer in model.layers}
    for frames in (1, 4, 7):  # n is None in the model
        x = _features(2, frames, seed=frames).astype("float32")
        expected = x.astype(np.float64).mean(axis=(1, 2, 3)) @ weights.astype(np.float64) + bias
        np.testing.assert_allclose(model(x, training=False).numpy(), expected, rtol=1e-5, atol=1e-5)
    assert models.attention_endpoints(model) == {}


def test_average_model_survives_keras_round_trip(tmp_path):
    model = models.build_st_attn_network(3, feature_shape=FEATURES, pooling="average", dropout=None)
    model.get_layer("logits").set_weights([np.arange(15, dtype="float32").reshape(5, 3) / 10, np.ones(3, "float32")])
    path = tmp_path / "average.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = _features(1, 3).astype("float32")
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
    with pytest.raises(ValueError, match="average-pooling baseline"):
        models.require_attention(loaded)


def test_unknown_pooling_is_refused():
    with pytest.raises(ValueError, match="pooling must be one of"):
        models.build_st_attn_network(3, feature_shape=FEATURES, pooling="max")


def test_family_builds_average_pooling_without_attention_loss_terms():
    family = StAttnFamily()
    config = StAttnConfig(backbone="tiny", pooling="average", lambda_unimodal=1.0, lambda_tv=1e-5)
    model = family.build(config, 3, DataConfig(), feature_shape=FEATURES)
    outputs = family.outputs_model(model)(_features(2, 4).astype("float32"))
    assert sorted(outputs) == ["logits"]
    labels = tf.constant([0, 2])
    terms = family.loss_terms(config, outputs, labels, model, multi_label=False, weight_decay=0.0)
    logits = outputs["logits"].numpy().astype(np.float64)
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected_ce = -np.mean(log_softmax[[0, 1], [0, 2]])
    assert sorted(terms) == ["classification"]  # no tv / contrast / unimodal term: nothing to regularise
    np.testing.assert_allclose(float(terms["classification"]), expected_ce, rtol=1e-5)
    assert family.summary_images(outputs, np.zeros((4, 8, 8, 3))) == {}


def test_a_config_written_before_pooling_existed_builds_the_attention_model():
    old = {f: v for f, v in json.loads(json.dumps(StAttnConfig(backbone="tiny").__dict__, default=list)).items()}
    old.pop("pooling")
    config = StAttnConfig(**{**old, "mask_filters": tuple(old["mask_filters"])})
    model = StAttnFamily().build(config, 3, DataConfig(), feature_shape=FEATURES)
    assert models.TEMPORAL_LAYER in {layer.name for layer in model.layers}
