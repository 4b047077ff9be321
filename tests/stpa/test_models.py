"""The STPA / TSN networks: any K, TSN consensus, the attention math end to end, parameters, Eq. 9's terms."""

import dataclasses
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from stpa import losses, models
from stpa.blocks import backbones
from stpa.layers import PyramidAttention, UniformAttention

SIZE = 32  # tiny backbone at 32 px: taps S 16x16x16, A 8x8x32, B 4x4x64, C 2x2x128.
CLASSES = 5


def make_clip(batch, frames, seed=0, channels=3):
    return np.random.default_rng(seed).uniform(-1, 1, size=(batch, frames, SIZE, SIZE, channels)).astype(np.float32)


def build_tiny(**kwargs):
    options = dict(backbone="tiny", num_classes=CLASSES, input_size=SIZE)
    options.update(kwargs)
    return models.build_model(**options)


def count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


@pytest.fixture(scope="module")
def stpa_tiny():
    keras.utils.set_random_seed(0)
    return build_tiny()


# ---------------------------------------------------------------------------------------------------- configuration
def test_validate_config_names_the_allowed_values():
    models.validate_config("stpa", "inception_resnet_v2", 3, "C", "rgb")
    models.validate_config("tsn", "tiny", 99, "Z", "flow")  # top / scales do not matter without the pyramid.
    with pytest.raises(ValueError, match=r"allowed: \['stpa', 'tsn'\]"):
        models.validate_config("i3d", "tiny", 3, "C", "rgb")
    with pytest.raises(ValueError, match=r"allowed: \['A', 'B', 'C', 'fc'\].*block35_10_ac"):
        models.validate_config("stpa", "inception_resnet_v2", 3, "D", "rgb")
    with pytest.raises(ValueError, match=r"allowed 1\.\.2"):
        models.validate_config("stpa", "tiny", 3, "A", "rgb")
    with pytest.raises(ValueError, match=r"allowed 1\.\.4"):
        models.validate_config("stpa", "tiny", 0, "C", "rgb")
    with pytest.raises(ValueError, match="Unknown backbone"):
        models.validate_config("stpa", "alexnet", 3, "C", "rgb")
    with pytest.raises(ValueError, match="modality"):
        models.validate_config("stpa", "tiny", 3, "C", "depth")
    with pytest.raises(ValueError, match="fusion"):
        models.validate_config("stpa", "tiny", 3, "C", "rgb", fusion="avg")
    with pytest.raises(ValueError, match="input_size=224"):
        models.validate_config("stpa", "vgg16", 3, "C", "rgb", input_size=112)
    with pytest.raises(ValueError, match="Unknown build_model arguments"):
        build_tiny(lstm_units=3)
    assert models.default_input_size("inception_resnet_v2") == 299 and models.default_input_size("vgg16") == 224
    assert set(models.TOPS) == set(models.BACKBONES)
    assert models.pyramid_levels("C", 3) == ("A", "B", "C") and models.pyramid_levels("fc", 2) == ("C", "fc")


# -------------------------------------------------------------------------------------------------- any K, TSN mean
def test_k_is_free_one_model_runs_k_1_3_25(stpa_tiny):
    assert stpa_tiny.input_shape == (None, None, SIZE, SIZE, 3)
    for frames in (1, 3, 25):
        logits = stpa_tiny(make_clip(2, frames), training=False).numpy()
        assert logits.shape == (2, CLASSES) and np.isfinite(logits).all()


def test_tsn_output_is_the_mean_of_per_frame_outputs():
    keras.utils.set_random_seed(1)
    tsn = build_tiny(model="tsn")
    clip = make_clip(2, 3)
    per_frame = [tsn(clip[:, k : k + 1], training=False).numpy() for k in range(3)]
    np.testing.assert_allclose(tsn(clip, training=False).numpy(), np.mean(per_frame, axis=0), rtol=1e-5, atol=1e-6)
    assert tsn(make_clip(1, 25), training=False).shape == (1, CLASSES)
    assert not any(isinstance(layer, PyramidAttention) for layer in tsn.layers)


# ------------------------------------------------------------------------------------ the attention math end to end
def uniform_attention_model(**kwargs):
    keras.utils.set_random_seed(2)
    model = build_tiny(**kwargs)
    attention = model.get_layer(models.ATTENTION_LAYER)
    attention.set_weights([np.zeros_like(w) for w in attention.get_weights()])  # y^j = 0 -> a uniform softmax.
    for layer in model.layers:  # Non-trivial batch-norm statistics, so the tail's BN matters.
        if isinstance(layer, keras.layers.BatchNormalization):
            rng = np.random.default_rng(len(layer.name))
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, w.shape) if i in (0, 3) else rng.normal(0, 0.2, w.shape)
                    for i, w in enumerate(layer.get_weights())
                ]
            )
    return model


@pytest.mark.parametrize("fusion", ["mul", "sum"])
def test_uniform_attention_reduces_to_the_scaled_sum_of_all_positions(fusion):
    # With W_attn = 0 and b_attn = 0 every score is 0 (for any fusion), the softmax over n = K*H*W positions is 1/n,
    # and after L2 normalisation a = 1/sqrt(n): every output position m gets M_m = sum_(k,h,w) X_(k,h,w) / sqrt(n)
    # (Eq. 3-4). Top C's rest of the tiny backbone is ReLU -> global average pool, then the classifier.
    model = uniform_attention_model(fusion=fusion)
    attention_layer = model.get_layer(models.ATTENTION_LAYER)
    top_features = keras.Model(model.input, attention_layer.input[-1])  # (B, K, 2, 2, 128)
    clip = make_clip(2, 3, seed=5)
    x = top_features(clip, training=False).numpy().astype(np.float64)
    n = 3 * 2 * 2
    aggregated = x.sum(axis=(1, 2, 3)) / math.sqrt(n)  # (B, 128), the same at all d = 4 output positions.
    kernel, bias = [w.numpy().astype(np.float64) for w in model.get_layer("classifier").weights]
    expected = np.maximum(aggregated, 0.0) @ kernel + bias
    np.testing.assert_allclose(model(clip, training=False).numpy(), expected, rtol=1e-4, atol=1e-5)

    outputs = models.attention_outputs_model(model)(clip, training=False)
    np.testing.assert_allclose(outputs["attention"].numpy(), np.full((2, 4, n), 1 / math.sqrt(n)), rtol=1e-6)


def test_uniform_attention_feeds_the_rest_of_the_backbone_unchanged():
    # top="B": M' (4x4x64, all positions equal) goes through the tiny backbone's own stage C.
    model = uniform_attention_model(top="B", scales=2)
    attention_layer = model.get_layer(models.ATTENTION_LAYER)
    assert [tuple(t.shape[2:]) for t in attention_layer.input] == [(8, 8, 32), (4, 4, 64)]
    clip = make_clip(2, 4, seed=6)
    x = keras.Model(model.input, attention_layer.input[-1])(clip, training=False).numpy()  # (B, K, 4, 4, 64)
    aggregated = x.sum(axis=(1, 2, 3)) / math.sqrt(4 * 4 * 4)  # (B, 64)
    m_prime = np.broadcast_to(aggregated[:, None, None, :], (2, 4, 4, 64)).astype(np.float32)
    tail = keras.Sequential(
        [model.get_layer(name) for name in ("b_out", "c_conv1", "c_bn1", "c_out", "avg_pool", "classifier")]
    )
    np.testing.assert_allclose(
        model(clip, training=False).numpy(), tail(m_prime, training=False).numpy(), rtol=1e-4, atol=1e-5
    )


def test_fc_top_reads_the_pooled_vector_as_positions_of_one_channel():
    # Table 1(a) "FC": X^{F x 1} is F positions of one channel: d = F, n = K*F, A (B, F, K*F), W_attn (F, 1).
    model = uniform_attention_model(top="fc", scales=1)
    attention_layer = model.get_layer(models.ATTENTION_LAYER)
    assert [tuple(t.shape[2:]) for t in keras.tree.flatten(attention_layer.input)] == [(128, 1, 1)]
    assert [tuple(w.shape) for w in attention_layer.weights] == [(1, 128), (128,)]  # W_attn^T (C=1, d), b (d,).
    frames = 5
    clip = make_clip(2, frames, seed=7)
    outputs = models.attention_outputs_model(model)(clip, training=False)
    assert outputs["attention"].shape == (2, 128, frames * 128) and outputs["values"].shape == (2, frames * 128, 1)
    pooled = keras.Model(model.input, model.get_layer("fc_map").input)(clip, training=False).numpy()  # (B*K, F)
    pooled = pooled.astype(np.float64).reshape(2, frames, 128)
    # Position k*F + f of X is frame k's pooled feature f.
    np.testing.assert_allclose(outputs["values"].numpy()[..., 0], pooled.reshape(2, frames * 128), rtol=1e-6)
    # Uniform attention (W = b = 0): every one of the d = F outputs is sum_(k, f) x_(k, f) / sqrt(K F).
    aggregated = pooled.sum(axis=(1, 2)) / math.sqrt(frames * 128)  # (B,)
    kernel, bias = [w.numpy().astype(np.float64) for w in model.get_layer("classifier").weights]
    expected = aggregated[:, None] * kernel.sum(axis=0)[None, :] + bias
    np.testing.assert_allclose(outputs["logits"].numpy(), expected, rtol=1e-4, atol=1e-5)


def test_fc_top_takes_one_scale_only():
    with pytest.raises(ValueError, match=r"scales=2 with top='fc': allowed 1 only.*use top in \['A', 'B', 'C'\]"):
        models.validate_config("stpa", "tiny", 2, "fc", "rgb")
    models.validate_config("stpa", "tiny", 1, "fc", "rgb")


# --------------------------------------------------------------------------------------------------- parameters
def test_trainable_parameters_are_backbone_plus_attention_plus_classifier(stpa_tiny):
    trunk = backbones.build_backbone("tiny", input_size=SIZE).trunk
    d = 2 * 2  # H*W of tap C.
    attention = sum(c * d + d for c in (32, 64, 128))  # Taps A, B, C: sum_j (C_j d + d).
    classifier = 128 * CLASSES + CLASSES
    assert count(stpa_tiny.trainable_weights) == count(trunk.trainable_weights) + attention + classifier
    assert count(stpa_tiny.non_trainable_weights) == count(trunk.non_trainable_weights)
    # Every backbone layer is in the STPA model exactly once (before or after the attention).
    names = [layer.name for layer in stpa_tiny.layers]
    assert set(layer.name for layer in trunk.layers if layer.weights) <= set(names)
    assert len(names) == len(set(names))


def test_inception_resnet_v2_stpa_has_the_papers_pyramid():
    model = models.build_model(backbone="inception_resnet_v2", num_classes=101)  # 299 x 299, 3 scales, top C.
    attention_layer = model.get_layer(models.ATTENTION_LAYER)
    assert [tuple(t.shape[2:]) for t in attention_layer.input] == [(35, 35, 320), (17, 17, 1088), (8, 8, 2080)]
    d = 8 * 8
    attention = (320 + 1088 + 2080) * d + 3 * d
    classifier = 1536 * 101 + 101
    irv2_trainable = 54_276_192  # keras.applications.InceptionResNetV2(include_top=False) trainable parameters.
    assert count(model.trainable_weights) == irv2_trainable + attention + classifier
    assert model.input_shape == (None, None, 299, 299, 3) and model.output_shape == (None, 101)
    # The rest of the network after Block C (conv_7b, 1x1 -> 1536) runs on M'.
    assert model.get_layer("conv_7b").input.shape[1:] == (8, 8, 2080)
    assert models.attention_outputs_model(model).output["attention"].shape[1] == d


def test_flow_stream_channels_dropout_and_partial_bn():
    flow = build_tiny(modality="flow", flow_length=5, partial_bn=True)
    assert flow.input_shape == (None, None, SIZE, SIZE, 10)
    assert flow.get_layer("dropout").rate == 0.7
    assert build_tiny().get_layer("dropout").rate == 0.5
    assert build_tiny(model="tsn", dropout=0.2).get_layer("dropout").rate == 0.2
    batch_norms = [layer for layer in flow.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert [layer.trainable for layer in batch_norms] == [True] + [False] * (len(batch_norms) - 1)
    assert flow(make_clip(1, 2, channels=10), training=False).shape == (1, CLASSES)


# ------------------------------------------------------------------------------------------------- serialisation
def test_keras_round_trip_keeps_outputs_and_attention(stpa_tiny, tmp_path):
    path = str(tmp_path / "stpa.keras")
    stpa_tiny.save(path)
    loaded = keras.models.load_model(path)
    for frames in (2, 5):
        clip = make_clip(2, frames, seed=frames)
        np.testing.assert_allclose(
            loaded(clip, training=False).numpy(), stpa_tiny(clip, training=False).numpy(), rtol=1e-6, atol=1e-6
        )
    expected = models.attention_outputs_model(stpa_tiny)(make_clip(1, 3), training=False)
    actual = models.attention_outputs_model(loaded)(make_clip(1, 3), training=False)
    assert sorted(actual) == ["attention", "logits", "scale_logits", "values"]
    np.testing.assert_allclose(actual["attention"].numpy(), expected["attention"].numpy(), rtol=1e-6)
    assert len(actual["scale_logits"]) == 3


@pytest.mark.slow
def test_saved_model_export_serves_any_k(stpa_tiny, tmp_path):
    path = str(tmp_path / "saved_model")
    stpa_tiny.export(path)
    served = tf.saved_model.load(path)
    for frames in (3, 25):
        clip = make_clip(1, frames, seed=frames)
        np.testing.assert_allclose(
            served.serve(clip).numpy(), stpa_tiny(clip, training=False).numpy(), rtol=1e-5, atol=1e-5
        )


# ---------------------------------------------------------------------------------------------------- Eq. 9 terms
def numpy_cross_entropy(logits, labels):
    logits = logits.astype(np.float64)
    log_probs = logits - logits.max(axis=1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(axis=1, keepdims=True))
    return -np.mean(log_probs[np.arange(len(labels)), labels])


def test_loss_terms_are_eq9_each_term_switchable(stpa_tiny):
    outputs = models.attention_outputs_model(stpa_tiny)(make_clip(2, 3), training=False)
    labels = np.array([1, 4])
    terms = {k: v.numpy() for k, v in models.loss_terms(outputs, labels, stpa_tiny).items()}
    assert sorted(terms) == ["attention", "classification", "interaction", "total", "weight_decay"]
    assert all(np.isfinite(v) for v in terms.values())
    np.testing.assert_allclose(
        terms["classification"], numpy_cross_entropy(outputs["logits"].numpy(), labels), rtol=1e-5
    )
    kernels = [w.numpy().astype(np.float64) for w in stpa_tiny.trainable_weights if w.ndim >= 2]
    assert len(kernels) == 7 + 3 + 1  # tiny's convolutions, the 3 W_attn_j, the classifier.
    np.testing.assert_allclose(terms["weight_decay"], 4e-5 * sum((k**2).sum() for k in kernels), rtol=1e-5)
    # Eq. 6 in float64: the default reads X X^T / C (covariance), the printed X X^T stays reachable.
    a = outputs["attention"].numpy().astype(np.float64)  # (B, d, n)
    x = outputs["values"].numpy().astype(np.float64)  # (B, n, C)
    captured = np.einsum("bdn,bnc->bdc", a, x)
    captured = np.sum(captured**2, axis=(1, 2))  # (B,)
    gram = np.einsum("bdn,ben->bde", a, a)
    off_diagonal = np.sum(gram**2, axis=(1, 2)) - np.sum(np.diagonal(gram, axis1=1, axis2=2) ** 2, axis=1)
    np.testing.assert_allclose(terms["interaction"], 1e-4 * np.mean(-captured / x.shape[-1] + off_diagonal), rtol=1e-4)
    printed = models.loss_terms(
        outputs, labels, stpa_tiny, interaction_gradient="both", interaction_normalization="none"
    )["interaction"].numpy()
    np.testing.assert_allclose(printed, 1e-4 * np.mean(-captured + off_diagonal), rtol=1e-4)
    np.testing.assert_allclose(
        terms["attention"],
        1e-4 * losses.attention_loss(outputs["attention"], outputs["scale_logits"]).numpy(),
        rtol=1e-5,
    )
    np.testing.assert_allclose(terms["total"], sum(v for k, v in terms.items() if k != "total"), rtol=1e-6)

    assert "interaction" not in models.loss_terms(outputs, labels, stpa_tiny, beta=0.0)
    assert "attention" not in models.loss_terms(outputs, labels, stpa_tiny, gamma=0.0)
    off = models.loss_terms(outputs, labels, stpa_tiny, weight_decay=0.0, beta=0.0, gamma=0.0)
    assert sorted(off) == ["classification", "total"]
    np.testing.assert_allclose(off["total"].numpy(), terms["classification"], rtol=1e-6)


def test_attention_terms_train_the_attention_weights(stpa_tiny):
    probe = models.attention_outputs_model(stpa_tiny)
    attention_kernels = stpa_tiny.get_layer(models.ATTENTION_LAYER).trainable_weights
    with tf.GradientTape() as tape:
        outputs = probe(make_clip(2, 3), training=True)
        terms = models.loss_terms(outputs, np.array([0, 1]), stpa_tiny, weight_decay=0.0)
        regulariser = terms["interaction"] + terms["attention"]
    gradients = tape.gradient(regulariser, attention_kernels)
    assert all(g is not None and np.abs(g.numpy()).sum() > 0 for g in gradients)


def test_tsn_and_multi_label_terms():
    tsn = build_tiny(model="tsn")
    outputs = models.attention_outputs_model(tsn)(make_clip(2, 2), training=False)
    assert sorted(outputs) == ["logits"]
    targets = np.array([[1, 0, 1, 0, 0], [0, 0, 0, 0, 1]], np.float32)
    terms = models.loss_terms(outputs, targets, tsn, multi_label=True)
    assert sorted(terms) == ["classification", "total", "weight_decay"]
    z = outputs["logits"].numpy().astype(np.float64)
    expected = np.mean(np.maximum(z, 0) - z * targets + np.log1p(np.exp(-np.abs(z))))  # Sigmoid cross-entropy.
    np.testing.assert_allclose(terms["classification"].numpy(), expected, rtol=1e-5)


# --------------------------------------------------------------------------------------------------------- ST-attn
ST_ATTN_SMALL = dict(mask_filters=(6, 4), lstm_units=5, init_filters=6, attention_units=4)


def test_st_attn_is_built_on_the_backbone_feature_map():
    from st_attn.family import ST_ATTN
    from stpa.engine import config as config_lib

    config = config_lib.from_values(
        dict(model_dir="x", model="st_attn", backbone="tiny", input_size=32, model_options=ST_ATTN_SMALL)
    )
    model = ST_ATTN.build(config.family, 3, config.data)
    clip = make_clip(2, 4)
    assert model(clip, training=False).shape == (2, 3)
    outputs = ST_ATTN.outputs_model(model)(clip, training=False)
    assert outputs["mask"].shape == (2, 4, 2, 2, 1)  # tiny's last feature map at 32 px is 2 x 2.
    assert outputs["temporal_weights"].shape[0] == 2 and outputs["temporal_weights"].shape[-1] == 4
    terms = ST_ATTN.loss_terms(config.family, outputs, np.array([0, 2]), model, multi_label=False, weight_decay=4e-5)
    assert {"tv", "contrast", "unimodal", "weight_decay", "classification"} <= set(terms)
    assert all(np.isfinite(v.numpy()) for v in terms.values())
    no_tv = dataclasses.replace(config.family, lambda_tv=0.0)
    assert "tv" not in ST_ATTN.loss_terms(no_tv, outputs, np.array([0, 2]), model, multi_label=False, weight_decay=4e-5)
    with pytest.raises(ValueError, match="lambda_tv"):  # an unknown option lists the allowed ones
        config_lib.from_values({"model_dir": "x", "model": "st_attn", "model_options": {"lambda_tvv": 1.0}})
    cached = ST_ATTN.build(config.family, 3, config.data, feature_shape=(7, 7, 16))
    assert cached.input_shape == (None, None, 7, 7, 16)
    with pytest.raises(ValueError, match="st_attn"):  # the STPA module builds STPA and TSN only
        build_tiny(model="st_attn", num_classes=3)


def test_attention_outputs_of_a_single_scale_model(tmp_path):
    # Keras unwraps a one-element input list, so a 1-scale pyramid's layer input is a single tensor.
    keras.utils.set_random_seed(3)
    model = build_tiny(scales=1)
    model.save(tmp_path / "one_scale.keras")
    for candidate in (model, keras.models.load_model(tmp_path / "one_scale.keras")):
        outputs = models.attention_outputs_model(candidate)(make_clip(1, 2), training=False)
        assert len(outputs["scale_logits"]) == 1
        assert outputs["values"].shape == (1, 2 * 2 * 2, 128)  # n = K*H*W positions of top C
        probabilities = np.exp(outputs["scale_logits"][0].numpy())
        probabilities /= probabilities.sum(axis=-1, keepdims=True)
        expected = probabilities / np.linalg.norm(probabilities, axis=-1, keepdims=True)  # Eq. 3 with N = 1
        np.testing.assert_allclose(outputs["attention"].numpy(), expected, rtol=1e-5)


def test_tiny_trains_at_the_papers_beta_with_finite_falling_loss():
    # Eq. 9 at the paper's beta = gamma = 1e-4, lambda = 4e-5 with the default Eq. 6 reading (X is data, X X^T / C):
    # SGD on one fixed batch stays finite, the cross-entropy falls and beta * l_inter stays far below it.
    keras.utils.set_random_seed(3)
    model = build_tiny()
    probe = models.attention_outputs_model(model)
    clip = tf.constant(make_clip(4, 3, seed=11))
    labels = tf.constant([0, 1, 2, 3])
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            terms = models.loss_terms(probe(clip, training=True), labels, model)
        grads = tape.gradient(terms["total"], model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return terms

    history = [{k: float(v) for k, v in step().items()} for _ in range(25)]
    assert all(np.isfinite(v) for row in history for v in row.values())
    first, last = history[0], history[-1]
    assert 1.0 < first["classification"] < 3.0, first  # Not solved at initialisation (chance: ln 5 = 1.61).
    assert last["classification"] < 0.5 * first["classification"], (first, last)
    assert last["total"] < first["total"]
    assert max(abs(row["interaction"]) for row in history) < 0.01 * first["classification"], history[-1]


# ------------------------------------------------------------------------------ the uniform-attention control
@pytest.fixture(scope="module")
def uniform_tiny():
    keras.utils.set_random_seed(0)
    return build_tiny(attention="uniform")


def test_attention_option_names_the_allowed_values():
    assert models.ATTENTIONS == ("learned", "uniform")
    with pytest.raises(ValueError, match=r"Unknown attention 'fixed'; allowed: \['learned', 'uniform'\]"):
        build_tiny(attention="fixed")
    with pytest.raises(ValueError, match="applies to model='stpa' only"):
        build_tiny(model="tsn", attention="uniform")
    models.validate_config("tsn", "tiny", 3, "C", "rgb", attention="learned")


@pytest.mark.parametrize("frames", [1, 3, 25])
def test_uniform_model_pools_the_top_tap_over_frames_and_positions(uniform_tiny, frames):
    # M' = sqrt(n) * mean of tap C over K*H*W positions at each of the d = 4 outputs; the rest of the tiny backbone
    # after C is ReLU -> global average pooling, then the classifier: logits = relu(sqrt(n) * mean X) W + b.
    attention_layer = uniform_tiny.get_layer(models.ATTENTION_LAYER)
    assert isinstance(attention_layer, UniformAttention)
    clip = make_clip(2, frames, seed=20 + frames)
    x = keras.Model(uniform_tiny.input, attention_layer.input[-1])(clip, training=False).numpy()  # (B, K, 2, 2, 128)
    x = x.astype(np.float64)
    n = frames * 2 * 2
    pooled = x.mean(axis=(1, 2, 3)) * math.sqrt(n)  # (B, 128)
    kernel, bias = [w.numpy().astype(np.float64) for w in uniform_tiny.get_layer("classifier").weights]
    np.testing.assert_allclose(
        uniform_tiny(clip, training=False).numpy(), np.maximum(pooled, 0.0) @ kernel + bias, rtol=1e-4, atol=1e-5
    )
    outputs = models.attention_outputs_model(uniform_tiny)(clip, training=False)
    np.testing.assert_allclose(outputs["attention"].numpy(), np.full((2, 4, n), 1 / math.sqrt(n)), rtol=1e-6)
    assert len(outputs["scale_logits"]) == 3 and not any(np.any(y.numpy()) for y in outputs["scale_logits"])
    np.testing.assert_allclose(outputs["values"].numpy(), x.reshape(2, n, 128), rtol=1e-6)


def test_uniform_fc_top_averages_the_pooled_vector():
    # top="fc": d = F = 128 positions of one channel; every output is sqrt(K F) * mean_(k, f) x_(k, f).
    keras.utils.set_random_seed(4)
    model = build_tiny(top="fc", scales=1, attention="uniform")
    frames = 4
    clip = make_clip(2, frames, seed=8)
    pooled = keras.Model(model.input, model.get_layer("fc_map").input)(clip, training=False).numpy()  # (B*K, F)
    aggregated = pooled.astype(np.float64).reshape(2, -1).mean(axis=1) * math.sqrt(frames * 128)  # (B,)
    kernel, bias = [w.numpy().astype(np.float64) for w in model.get_layer("classifier").weights]
    expected = aggregated[:, None] * kernel.sum(axis=0)[None, :] + bias
    np.testing.assert_allclose(model(clip, training=False).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_uniform_model_has_exactly_the_score_parameters_fewer(stpa_tiny, uniform_tiny):
    d = 2 * 2
    scores = sum(c * d + d for c in (32, 64, 128))  # W_attn_j (C_j, d) and b_attn_j (d,) for taps A, B, C.
    assert count(stpa_tiny.trainable_weights) - count(uniform_tiny.trainable_weights) == scores
    assert len(stpa_tiny.trainable_weights) - len(uniform_tiny.trainable_weights) == 2 * 3
    assert count(uniform_tiny.non_trainable_weights) == count(stpa_tiny.non_trainable_weights)
    assert uniform_tiny.get_layer(models.ATTENTION_LAYER).weights == []
    # Every other layer is the same, by name and weight shapes.
    shapes = {w.path: tuple(w.shape) for w in uniform_tiny.weights}
    assert shapes == {w.path: tuple(w.shape) for w in stpa_tiny.weights if not w.path.startswith("pyramid_attention")}
    assert [layer.name for layer in uniform_tiny.layers] == [layer.name for layer in stpa_tiny.layers]


def test_uniform_model_keras_round_trip_is_identical(uniform_tiny, tmp_path):
    path = str(tmp_path / "uniform.keras")
    uniform_tiny.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.get_layer(models.ATTENTION_LAYER), UniformAttention)
    assert loaded.input_shape == (None, None, SIZE, SIZE, 3)
    for frames in (2, 5):
        clip = make_clip(2, frames, seed=30 + frames)
        np.testing.assert_array_equal(loaded(clip, training=False).numpy(), uniform_tiny(clip, training=False).numpy())
        expected = models.attention_outputs_model(uniform_tiny)(clip, training=False)
        actual = models.attention_outputs_model(loaded)(clip, training=False)
        assert sorted(actual) == ["attention", "logits", "scale_logits", "values"]
        for key in ("attention", "values"):
            np.testing.assert_array_equal(actual[key].numpy(), expected[key].numpy())


def test_uniform_loss_terms_are_the_closed_forms_and_train_like_beta_gamma_zero(uniform_tiny):
    # Under A = 1/sqrt(n) (all d x n entries): A X has every row sqrt(n) * xbar, A A^T is all ones, so per sample
    # Eq. 6 = d (d - 1) - d n |xbar|^2 / C (covariance reading); softmax(y^j = 0) = 1/n, so Eq. 7-8 =
    # sqrt(N d n (1 - (1/sqrt(n) - 1/n)^2)), a constant.
    frames, d, scales = 3, 4, 3
    n = frames * d
    probe = models.attention_outputs_model(uniform_tiny)
    clip = tf.constant(make_clip(2, frames, seed=40))
    labels = tf.constant([1, 3])
    outputs = probe(clip, training=False)
    terms = {k: v.numpy() for k, v in models.loss_terms(outputs, labels, uniform_tiny).items()}
    x = outputs["values"].numpy().astype(np.float64)  # (B, n, C)
    xbar = x.mean(axis=1)  # (B, C)
    interaction = np.mean(d * (d - 1) - d * n * np.sum(xbar**2, axis=1) / x.shape[-1])
    np.testing.assert_allclose(terms["interaction"], 1e-4 * interaction, rtol=1e-4)
    attention = math.sqrt(scales * d * n * (1 - (1 / math.sqrt(n) - 1 / n) ** 2))
    np.testing.assert_allclose(terms["attention"], 1e-4 * attention, rtol=1e-5)

    def gradients(beta, gamma):
        with tf.GradientTape() as tape:
            total = models.loss_terms(probe(clip, training=False), labels, uniform_tiny, beta=beta, gamma=gamma)[
                "total"
            ]
        grads = tape.gradient(total, uniform_tiny.trainable_variables)
        return [np.zeros(v.shape) if g is None else g.numpy() for v, g in zip(uniform_tiny.trainable_variables, grads)]

    # beta, gamma > 0 change the logged total only: the gradients equal those of beta = gamma = 0.
    for with_terms, without in zip(gradients(1e-2, 1e-2), gradients(0.0, 0.0)):
        assert np.isfinite(with_terms).all()
        np.testing.assert_allclose(with_terms, without, rtol=1e-6, atol=1e-9)


def test_uniform_model_trains_at_the_papers_beta_with_finite_falling_loss():
    keras.utils.set_random_seed(5)
    model = build_tiny(attention="uniform")
    probe = models.attention_outputs_model(model)
    clip = tf.constant(make_clip(4, 3, seed=12))
    labels = tf.constant([0, 1, 2, 3])
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            terms = models.loss_terms(probe(clip, training=True), labels, model)  # beta = gamma = 1e-4
        grads = tape.gradient(terms["total"], model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return terms

    history = [{k: float(v) for k, v in step().items()} for _ in range(25)]
    assert all(np.isfinite(v) for row in history for v in row.values())
    assert history[-1]["classification"] < 0.5 * history[0]["classification"], (history[0], history[-1])
