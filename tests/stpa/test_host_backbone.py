"""The study's pretrained host: tiny_deep's taps and its learned stage after the top, the still-frame pretraining,
and STPA with zero-initialised scores, which starts exactly as the uniform-attention control."""

import json
import os

import keras
import numpy as np
import pytest

from data import synthetic
from stpa import layers, models, pretrain_backbone
from stpa.blocks import backbones

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMMITTED_WEIGHTS = os.path.join(REPO, "experiments", "weights", "tiny_deep_stills.weights.h5")


def test_tiny_deep_taps_and_the_learned_stage_after_the_top():
    deep = backbones.build_backbone("tiny_deep")
    shapes = {level: tuple(tensor.shape[1:]) for level, tensor in deep.taps.items()}
    assert shapes == {"S": (32, 32, 16), "A": (16, 16, 32), "B": (8, 8, 64), "C": (4, 4, 128), "fc": (256,)}
    assert tuple(deep.feature_map.shape[1:]) == (4, 4, 256)
    # Between the C tap and the pooling: ReLU, conv 3x3 (128), BN, ReLU, conv 1x1 (256), BN, ReLU -- learned
    # layers with their own weights, as conv_7b follows Inception-ResNet-V2's Block C.
    after = keras.Function(deep.taps["C"], deep.feature_map)
    kernels = [w.shape for op in after.operations for w in op.weights if w.path.endswith("kernel")]
    assert kernels == [(3, 3, 128, 128), (1, 1, 128, 256)]
    assert 450_000 < deep.trunk.count_params() < 500_000


def test_stpa_on_tiny_deep_runs_stage_d_on_the_attended_maps():
    rng = np.random.default_rng(0)
    model = models.build_model("stpa", "tiny_deep", num_classes=4, input_size=32, dropout=0.0)
    clip = rng.uniform(-1, 1, size=(2, 3, 32, 32, 3)).astype("float32")
    attended = keras.Model(model.input, model.get_layer(models.ATTENTION_LAYER).output[0])(clip)  # (2, 2, 2, 128)
    # Reference: the rest of the trunk applied by hand to M' (ReLU, convs, BNs in inference mode, pooling).
    x = np.maximum(attended.numpy().astype(np.float64), 0)
    for index in (1, 2):
        conv = model.get_layer(f"d_conv{index}")
        x = keras.ops.convert_to_numpy(keras.ops.conv(x, conv.kernel.numpy().astype(np.float64), padding="same"))
        bn = model.get_layer(f"d_bn{index}")
        gamma, beta, mean, var = (w.numpy().astype(np.float64) for w in bn.weights)
        x = np.maximum(gamma * (x - mean) / np.sqrt(var + bn.epsilon) + beta, 0)
    dense = model.get_layer("classifier")
    expected = x.mean(axis=(1, 2)) @ dense.kernel.numpy() + dense.bias.numpy()
    np.testing.assert_allclose(model(clip).numpy(), expected, rtol=1e-4, atol=1e-4)


def test_stills_are_deterministic_and_labelled_by_look():
    frames, labels = synthetic.render_stills(11, 8, frames_per_video=2)
    again, again_labels = synthetic.render_stills(11, 8, frames_per_video=2)
    np.testing.assert_array_equal(frames, again)
    np.testing.assert_array_equal(labels, again_labels)
    assert frames.shape == (8, 72, 72, 3) and frames.dtype == np.uint8
    assert np.all(labels[0::2] == labels[1::2])  # two frames per video, one label
    assert synthetic.NUM_STILL_LABELS == 60
    assert synthetic.still_label("square", synthetic.CLASSES[0][3]) == 0
    assert synthetic.still_label("cross", synthetic.CLASSES[11][3]) == 4 * 12 + 11


def _toy_pretrain(path):
    return pretrain_backbone.pretrain(
        backbone="tiny_deep",
        output=str(path),
        generation_seed=3,
        train_images=32,
        heldout_images=8,
        steps=3,
        batch_size=8,
        learning_rate=1e-3,
        input_size=32,
        seed=0,
    )


def test_pretraining_at_toy_size_is_deterministic_and_loads_as_weights(tmp_path):
    first = _toy_pretrain(tmp_path / "a.weights.h5")
    second = _toy_pretrain(tmp_path / "b.weights.h5")
    assert first["sha256"] == second["sha256"] == pretrain_backbone.sha256(str(tmp_path / "a.weights.h5"))
    with open(tmp_path / "a.weights.h5.json") as f:
        assert json.load(f)["sha256"] == first["sha256"]
    assert sorted(os.listdir(tmp_path)) == ["a.weights.h5", "a.weights.h5.json", "b.weights.h5", "b.weights.h5.json"]
    loaded = backbones.build_backbone("tiny_deep", input_size=32, weights=str(tmp_path / "a.weights.h5")).trunk
    fresh = backbones.build_backbone("tiny_deep", input_size=32).trunk
    assert not np.allclose(loaded.get_layer("d_conv2").kernel.numpy(), fresh.get_layer("d_conv2").kernel.numpy())
    # A flow stream starts from the same file through TSN's cross-modality initialisation.
    flow = backbones.build_backbone(
        "tiny_deep", input_size=32, modality="flow", flow_length=5, weights=str(tmp_path / "a.weights.h5")
    ).trunk
    rgb_first = loaded.get_layer("s_conv1").kernel.numpy()
    np.testing.assert_allclose(
        flow.get_layer("s_conv1").kernel.numpy(), np.repeat(rgb_first.mean(axis=2, keepdims=True), 10, axis=2)
    )
    np.testing.assert_array_equal(flow.get_layer("d_conv2").kernel.numpy(), loaded.get_layer("d_conv2").kernel)


def test_pretraining_refuses_a_name_keras_cannot_write(tmp_path):
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        _toy_pretrain(tmp_path / "trunk.h5")


def test_committed_host_weights_match_their_record():
    with open(COMMITTED_WEIGHTS + ".json") as f:
        record = json.load(f)
    assert pretrain_backbone.sha256(COMMITTED_WEIGHTS) == record["sha256"]
    assert os.path.getsize(COMMITTED_WEIGHTS) < 5 * 2**20
    assert record["backbone"] == "tiny_deep" and record["heldout_top1"] > 5 * record["chance_top1"]


def test_zero_initialised_sum_scores_equal_the_uniform_control_at_step_0():
    rng = np.random.default_rng(3)
    shapes = [(2, 3, 8, 8, 5), (2, 3, 4, 4, 6), (2, 3, 2, 2, 7)]
    pyramid = [rng.normal(size=shape).astype("float32") for shape in shapes]
    zero = layers.PyramidAttention(fusion="sum", kernel_initializer="zeros")
    outputs, attention, _ = zero(pyramid, return_attention=True)
    uniform, uniform_attention, _ = layers.UniformAttention()(pyramid, return_attention=True)
    top = pyramid[-1].astype(np.float64).reshape(2, -1, 7)  # (B, n, C), n = K*H*W = 12
    expected = np.sqrt(12) * top.mean(axis=1)  # A = 1/sqrt(n): sqrt(n) * mean at every output position
    np.testing.assert_allclose(outputs.numpy(), np.broadcast_to(expected[:, None, None], (2, 2, 2, 7)), atol=1e-5)
    np.testing.assert_allclose(outputs.numpy(), uniform.numpy(), atol=1e-5)
    np.testing.assert_allclose(attention.numpy(), uniform_attention.numpy(), atol=1e-7)


def test_zero_initialised_model_equals_the_uniform_model_and_moves_away_from_it():
    clip = np.random.default_rng(4).uniform(-1, 1, size=(2, 3, 32, 32, 3)).astype("float32")
    kwargs = dict(num_classes=5, input_size=32, dropout=0.0, fusion="sum")
    zero = models.build_model("stpa", "tiny", score_init="zeros", **kwargs)
    uniform = models.build_model("stpa", "tiny", attention="uniform", **kwargs)
    for layer in uniform.layers:
        if layer.weights:
            zero.get_layer(layer.name).set_weights(layer.get_weights())
    np.testing.assert_allclose(zero(clip).numpy(), uniform(clip).numpy(), rtol=1e-5, atol=1e-5)
    # The scores get a gradient with sum fusion (one step of SGD changes A), unlike a product of zeros.
    attention_layer = zero.get_layer(models.ATTENTION_LAYER)
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(zero(clip) * np.arange(5, dtype="float32"))
    gradients = tape.gradient(loss, attention_layer.kernels)
    assert all(float(tf.reduce_max(tf.abs(g))) > 0 for g in gradients)


def test_zero_init_with_mul_fusion_is_refused():
    with pytest.raises(ValueError, match="fusion 'sum' or 'max'"):
        models.build_model("stpa", "tiny", num_classes=3, input_size=32, score_init="zeros", fusion="mul")
    with pytest.raises(ValueError, match="score_init"):
        models.build_model("tsn", "tiny", num_classes=3, input_size=32, score_init="zeros", fusion="sum")
