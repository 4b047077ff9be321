"""BN-Inception against the published architecture (Ioffe & Szegedy 2015, Fig. 5; TSN's bn_inception.yaml).

The tables below are written from the paper, independently of `stpa.blocks.backbones.bn_inception`, and also generate
the TSN-format state dicts of test_convert_weights.py.
"""

import math

import numpy as np
import pytest

from stpa.blocks.backbones.bn_inception import build_bn_inception

# Inception modules: (name, #1x1, #3x3 reduce, #3x3, double #3x3 reduce, double #3x3, pool proj (0: pass through),
# stride). Fig. 5 of Ioffe & Szegedy.
PUBLISHED_MODULES = [
    ("inception_3a", 64, 64, 64, 64, 96, 32, 1),
    ("inception_3b", 64, 64, 96, 64, 96, 64, 1),
    ("inception_3c", 0, 128, 160, 64, 96, 0, 2),
    ("inception_4a", 224, 64, 96, 96, 128, 128, 1),
    ("inception_4b", 192, 96, 128, 96, 128, 128, 1),
    ("inception_4c", 160, 128, 160, 128, 160, 128, 1),
    ("inception_4d", 96, 128, 192, 160, 192, 128, 1),
    ("inception_4e", 0, 128, 192, 192, 256, 0, 2),
    ("inception_5a", 352, 192, 320, 160, 224, 128, 1),
    ("inception_5b", 352, 192, 320, 192, 224, 128, 1),
]
# Output (size, channels) of every module at 224 x 224 (Fig. 5).
PUBLISHED_OUTPUTS = {
    "inception_3a": (28, 256),
    "inception_3b": (28, 320),
    "inception_3c": (14, 576),
    "inception_4a": (14, 576),
    "inception_4b": (14, 576),
    "inception_4c": (14, 608),
    "inception_4d": (14, 608),
    "inception_4e": (7, 1056),
    "inception_5a": (7, 1024),
    "inception_5b": (7, 1024),
}


def published_convolutions(in_channels=3):
    """[(TSN module name, in channels, out channels, kernel size)] of every convolution, in network order."""
    convs = [("conv1_7x7_s2", in_channels, 64, 7), ("conv2_3x3_reduce", 64, 64, 1), ("conv2_3x3", 64, 192, 3)]
    channels = 192
    for name, c1, r3, c3, rd, cd, proj, _stride in PUBLISHED_MODULES:
        if c1:
            convs.append((f"{name}_1x1", channels, c1, 1))
        convs += [(f"{name}_3x3_reduce", channels, r3, 1), (f"{name}_3x3", r3, c3, 3)]
        convs += [
            (f"{name}_double_3x3_reduce", channels, rd, 1),
            (f"{name}_double_3x3_1", rd, cd, 3),
            (f"{name}_double_3x3_2", cd, cd, 3),
        ]
        if proj:
            convs.append((f"{name}_pool_proj", channels, proj, 1))
        channels = c1 + c3 + cd + (proj if proj else channels)
    assert channels == 1024
    return convs


def tsn_state_dict(in_channels=3, include_fc=True, seed=0, prefix=""):
    """A random state dict with the key names and shapes of TSN's bn_inception-9f5701afb96c8044.pth."""
    rng = np.random.default_rng(seed)
    state = {}
    for name, cin, cout, k in published_convolutions(in_channels):
        state[f"{prefix}{name}.weight"] = rng.normal(scale=math.sqrt(2.0 / (cin * k * k)), size=(cout, cin, k, k))
        state[f"{prefix}{name}.bias"] = rng.normal(scale=0.1, size=(cout,))
        state[f"{prefix}{name}_bn.weight"] = rng.uniform(0.5, 1.5, size=(cout,))
        state[f"{prefix}{name}_bn.bias"] = rng.normal(scale=0.1, size=(cout,))
        state[f"{prefix}{name}_bn.running_mean"] = rng.normal(scale=0.1, size=(cout,))
        state[f"{prefix}{name}_bn.running_var"] = rng.uniform(0.5, 2.0, size=(cout,))
    if include_fc:
        state[f"{prefix}fc.weight"] = rng.normal(scale=0.01, size=(1000, 1024))
        state[f"{prefix}fc.bias"] = np.zeros(1000)
    return {key: value.astype(np.float32) for key, value in state.items()}


@pytest.fixture(scope="module")
def bn_inception():
    return build_bn_inception((224, 224, 3), include_top=True)


def test_parameter_count_matches_the_published_architecture(bn_inception):
    convs = published_convolutions()
    conv_params = sum(k * k * cin * cout + cout for _, cin, cout, k in convs)  # Kernels + biases (Caffe convs).
    bn_channels = sum(cout for _, _, cout, _ in convs)
    fc_params = 1024 * 1000 + 1000
    trainable = conv_params + 2 * bn_channels + fc_params  # + BN gamma and beta.
    non_trainable = 2 * bn_channels  # BN moving mean and variance.
    assert sum(int(np.prod(w.shape)) for w in bn_inception.trainable_weights) == trainable
    assert sum(int(np.prod(w.shape)) for w in bn_inception.non_trainable_weights) == non_trainable
    assert trainable == 11_295_240  # The parameter count of the released PyTorch model.


def test_layer_output_shapes_match_the_published_architecture(bn_inception):
    for name, (size, channels) in PUBLISHED_OUTPUTS.items():
        assert tuple(bn_inception.get_layer(f"{name}_output").output.shape[1:]) == (size, size, channels), name
    assert tuple(bn_inception.get_layer("conv1_relu_7x7").output.shape[1:]) == (112, 112, 64)
    assert tuple(bn_inception.get_layer("pool1_3x3_s2").output.shape[1:]) == (56, 56, 64)
    assert tuple(bn_inception.get_layer("conv2_relu_3x3").output.shape[1:]) == (56, 56, 192)
    assert tuple(bn_inception.get_layer("pool2_3x3_s2").output.shape[1:]) == (28, 28, 192)
    assert tuple(bn_inception.output.shape[1:]) == (1000,)


def test_every_state_dict_module_is_a_keras_layer_of_the_same_name(bn_inception):
    names = {layer.name for layer in bn_inception.layers if layer.weights}
    modules = {key.rsplit(".", 1)[0] for key in tsn_state_dict()}
    assert names == modules


@pytest.mark.parametrize("size", [97, 100, 224])
def test_max_pooling_uses_caffe_ceil_mode(size):
    model = build_bn_inception((size, size, 3))

    def ceil_pool(n):
        return math.ceil((n - 3) / 2) + 1

    conv1 = (size + 2 * 3 - 7) // 2 + 1  # PyTorch conv arithmetic, padding 3.
    pool1 = ceil_pool(conv1)
    assert model.get_layer("conv1_7x7_s2").output.shape[1] == conv1
    assert model.get_layer("pool1_3x3_s2").output.shape[1] == pool1
    assert model.get_layer("pool2_3x3_s2").output.shape[1] == ceil_pool(pool1)
