"""Backbone trunks: the paper's tap shapes, cross-modality flow init, partial BN, weight loading and its errors."""

import keras
import numpy as np
import pytest

from stpa.blocks import backbones
from stpa.blocks.backbones import weights


def tap_shapes(backbone):
    return {level: tuple(tensor.shape[1:]) for level, tensor in backbone.taps.items()}


@pytest.fixture(scope="module")
def irv2():
    return backbones.build_backbone("inception_resnet_v2")  # 299 x 299, random weights.


def test_inception_resnet_v2_taps_are_the_papers(irv2):
    # Sec. 4.1: 35x35x320, 17x17x1088, 8x8x2080 (Blocks A, B, C) and Conv2d_4a_3x3 71x71x192 (Table 1(b)).
    assert tap_shapes(irv2) == {
        "S": (71, 71, 192),
        "A": (35, 35, 320),
        "B": (17, 17, 1088),
        "C": (8, 8, 2080),
        "fc": (1536,),
    }
    # "Without activation": A and B are the residual sums feeding the block's ReLU, C feeds conv_7b directly.
    for level, consumer in (("A", "block35_10_ac"), ("B", "block17_20_ac"), ("C", "conv_7b")):
        producer = irv2.taps[level]._keras_history.operation
        assert not isinstance(producer, (keras.layers.Activation, keras.layers.ReLU)), level
        assert irv2.trunk.get_layer(consumer).input is irv2.taps[level]
    # Conv2d_4a_3x3 is the TF-slim end point (after BN + ReLU) that feeds the second stem max pool.
    assert isinstance(irv2.taps["S"]._keras_history.operation, keras.layers.Activation)
    assert tuple(irv2.feature_map.shape[1:]) == (8, 8, 1536)


def test_vgg16_taps_keep_fc6_fc7():
    vgg = backbones.build_backbone("vgg16")
    assert tap_shapes(vgg) == {
        "S": (112, 112, 128),
        "A": (56, 56, 256),
        "B": (28, 28, 512),
        "C": (14, 14, 512),
        "fc": (4096,),
    }
    names = [layer.name for layer in vgg.trunk.layers]
    assert names[-3:] == ["flatten", "fc1", "fc2"] and "predictions" not in names
    assert tuple(vgg.feature_map.shape[1:]) == (7, 7, 512)
    with pytest.raises(ValueError, match="input_size=224"):
        backbones.build_backbone("vgg16", input_size=112)


@pytest.mark.parametrize("name, stage_blocks", [("resnet50", (3, 4, 6, 3)), ("resnet101", (3, 4, 23, 3))])
def test_resnet_taps_are_the_last_block_of_each_stage(name, stage_blocks):
    resnet = backbones.build_backbone(name, input_size=64)
    assert tap_shapes(resnet) == {
        "S": (16, 16, 256),
        "A": (8, 8, 512),
        "B": (4, 4, 1024),
        "C": (2, 2, 2048),
        "fc": (2048,),
    }
    for level, stage, blocks in zip("SABC", (2, 3, 4, 5), stage_blocks):
        assert resnet.taps[level]._keras_history.operation.name == f"conv{stage}_block{blocks}_add"
    assert tuple(resnet.feature_map.shape[1:]) == (2, 2, 2048)  # The 7x7x2048 last block of ST-attn at 224.


def test_tiny_taps_and_size():
    tiny = backbones.build_backbone("tiny")
    assert tap_shapes(tiny) == {"S": (32, 32, 16), "A": (16, 16, 32), "B": (8, 8, 64), "C": (4, 4, 128), "fc": (128,)}
    assert 100_000 < tiny.trunk.count_params() < 200_000


def test_every_spec_documents_every_level():
    for spec in backbones.BACKBONES.values():
        assert set(spec.tap_table) == set(backbones.LEVELS), spec.name


def test_cross_modality_kernel_is_the_rgb_channel_mean_replicated():
    rgb = np.random.default_rng(0).normal(size=(7, 7, 3, 4)).astype(np.float32)
    flow = weights.cross_modality_kernel(rgb, 10)
    assert flow.shape == (7, 7, 10, 4)
    expected = (rgb[:, :, 0] + rgb[:, :, 1] + rgb[:, :, 2]) / 3.0
    for channel in range(10):
        np.testing.assert_allclose(flow[:, :, channel], expected, rtol=1e-6)


def test_flow_trunk_from_rgb_weights_file(tmp_path):
    rgb = backbones.build_backbone("tiny", input_size=32)
    rgb.trunk.set_weights([np.random.default_rng(i).normal(size=w.shape) for i, w in enumerate(rgb.trunk.weights)])
    path = str(tmp_path / "tiny_rgb.weights.h5")
    rgb.trunk.save_weights(path)

    flow = backbones.build_backbone("tiny", input_size=32, modality="flow", flow_length=5, weights=path)
    assert flow.trunk.input.shape[-1] == 10
    rgb_kernel = rgb.trunk.get_layer("s_conv1").kernel.numpy()
    flow_kernel = flow.trunk.get_layer("s_conv1").kernel.numpy()
    np.testing.assert_allclose(flow_kernel, np.repeat(rgb_kernel.mean(axis=2, keepdims=True), 10, axis=2), rtol=1e-6)
    for rgb_weight, flow_weight in zip(rgb.trunk.weights[1:], flow.trunk.weights[1:]):
        np.testing.assert_array_equal(rgb_weight.numpy(), flow_weight.numpy())

    # A file written from a flow trunk is loaded as it is (no second cross-modality averaging).
    flow_path = str(tmp_path / "tiny_flow.weights.h5")
    flow.trunk.get_layer("s_conv1").kernel.assign(np.arange(3 * 3 * 10 * 16, dtype=np.float32).reshape(3, 3, 10, 16))
    flow.trunk.save_weights(flow_path)
    again = backbones.build_backbone("tiny", input_size=32, modality="flow", flow_length=5, weights=flow_path)
    np.testing.assert_array_equal(
        again.trunk.get_layer("s_conv1").kernel.numpy(), flow.trunk.get_layer("s_conv1").kernel.numpy()
    )


def test_feature_extractor_is_the_trunk_up_to_its_last_feature_map(tmp_path):
    tiny = backbones.build_backbone("tiny", input_size=32)
    tiny.trunk.set_weights([np.random.default_rng(i).normal(size=w.shape) for i, w in enumerate(tiny.trunk.weights)])
    path = str(tmp_path / "tiny.weights.h5")
    tiny.trunk.save_weights(path)

    extractor = backbones.feature_extractor("tiny", input_size=32, weights=path, partial_bn=True)
    frames = np.random.default_rng(7).uniform(0, 1, size=(2, 32, 32, 3)).astype(np.float32)
    maps = extractor(frames).numpy().astype(np.float64)  # (2, h, w, C)
    assert extractor.name == "tiny_features" and maps.shape[1:] == tuple(tiny.feature_map.shape[1:])
    # The trunk is global average pooling of that map: its mean over positions is the trunk's pooled output.
    np.testing.assert_allclose(maps.mean(axis=(1, 2)), tiny.trunk(frames).numpy(), rtol=1e-4, atol=1e-5)
    batch_norms = [layer for layer in extractor.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert [layer.trainable for layer in batch_norms] == [True] + [False] * (len(batch_norms) - 1)


def test_partial_bn_freezes_every_batch_norm_but_the_first():
    trunk = backbones.build_backbone("tiny", input_size=32, partial_bn=True).trunk
    batch_norms = [layer for layer in trunk.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert [layer.trainable for layer in batch_norms] == [True] + [False] * (len(batch_norms) - 1)
    # A frozen BN runs in inference mode even when training: its moving statistics do not move.
    frozen = batch_norms[1]
    before = [w.numpy().copy() for w in frozen.weights]
    trunk(np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32), training=True)
    for old, new in zip(before, frozen.weights):
        np.testing.assert_array_equal(old, new.numpy())


def test_weights_argument_errors(tmp_path):
    assert weights.normalize_weights(None) is None
    assert weights.normalize_weights("None") is None
    assert weights.normalize_weights("ImageNet") == "imagenet"
    with pytest.raises(FileNotFoundError, match="no such file"):
        backbones.build_backbone("tiny", weights=str(tmp_path / "missing.weights.h5"))
    with pytest.raises(backbones.WeightsUnavailableError, match="weights=None"):
        backbones.build_backbone("tiny", weights="imagenet")
    with pytest.raises(backbones.WeightsUnavailableError, match="convert_weights"):
        backbones.build_backbone("bn_inception", weights="imagenet")
    with pytest.raises(ValueError, match="Unknown backbone"):
        backbones.build_backbone("alexnet")


def test_offline_imagenet_download_gives_a_clear_error(monkeypatch):
    from keras.src.utils import file_utils

    def offline_get_file(fname=None, origin=None, **kwargs):
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "get_file", offline_get_file)
    with pytest.raises(backbones.WeightsUnavailableError) as error:
        backbones.build_backbone("resnet50", input_size=32, weights="imagenet")
    message = str(error.value)
    assert "resnet50" in message and "weights=PATH" in message and "URL fetch failure" in message
