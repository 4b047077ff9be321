"""BN-Inception against the published architecture (Ioffe & Szegedy 2015, Fig. 5; TSN's bn_inception.yaml).

The tables (here and in tests/helpers/bn_inception_state.py) are written from the paper, independently of
`stpa.blocks.backbones.bn_inception`.
"""

import math

import numpy as np
import pytest

from stpa.blocks.backbones.bn_inception import build_bn_inception
from tests.helpers.bn_inception_state import published_convolutions, tsn_state_dict

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
