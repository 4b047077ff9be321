"""Per-backbone input normalisation: values against Keras' own preprocess_input and TSN's means."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from stpa.blocks.preprocessing import preprocess_for

RGB = np.array([[10.0, 20.0, 30.0], [0.0, 127.5, 255.0]], np.float32)  # Two (R, G, B) pixels.


def test_inception_resnet_v2_and_tiny_map_to_minus_one_one():
    for backbone in ("inception_resnet_v2", "tiny"):
        out = preprocess_for(backbone, "rgb")(tf.constant(RGB)).numpy()
        np.testing.assert_allclose(out[1], [-1.0, 0.0, 1.0])
        expected = keras.applications.inception_resnet_v2.preprocess_input(RGB.copy())
        np.testing.assert_allclose(out, expected, rtol=1e-6)


@pytest.mark.parametrize(
    "backbone, application",
    [
        ("vgg16", keras.applications.vgg16),
        ("resnet50", keras.applications.resnet50),
        ("resnet152", keras.applications.resnet),
    ],
)
def test_caffe_style_backbones_match_keras(backbone, application):
    out = preprocess_for(backbone, "rgb")(tf.constant(RGB)).numpy()
    np.testing.assert_allclose(out, application.preprocess_input(RGB.copy()), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(out[0], [30 - 103.939, 20 - 116.779, 10 - 123.68], rtol=1e-5)


def test_bn_inception_is_bgr_minus_tsn_mean():
    out = preprocess_for("bn_inception", "rgb")(tf.constant(RGB)).numpy()
    np.testing.assert_allclose(out[0], [30 - 104, 20 - 117, 10 - 128])


def test_flow_keeps_zero_motion_near_zero_and_any_leading_dims():
    flow = np.full((2, 3, 4, 4, 10), 127.5, np.float32)  # (B, K, H, W, 2 * flow_length), zero motion.
    flow[0, 0, 0, 0, 0] = 255.0
    tf_style = preprocess_for("inception_resnet_v2", "flow")(tf.constant(flow)).numpy()
    assert tf_style.shape == flow.shape
    assert tf_style[0, 0, 0, 0, 0] == 1.0 and tf_style[1, 2, 3, 3, 9] == 0.0
    for backbone in ("bn_inception", "vgg16"):
        caffe_style = preprocess_for(backbone, "flow")(tf.constant(flow)).numpy()
        assert caffe_style[0, 0, 0, 0, 0] == 127.0 and caffe_style[1, 0, 0, 0, 1] == -0.5  # x - 128 (TSN).


def test_runs_inside_tf_data_on_uint8():
    dataset = tf.data.Dataset.from_tensors(tf.constant(RGB.astype(np.uint8)[None]))  # (1, 2, 3) uint8
    out = next(iter(dataset.map(preprocess_for("bn_inception", "rgb")))).numpy()
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], [30 - 104, 20 - 117, 10 - 128])


def test_errors_name_the_allowed_values():
    with pytest.raises(ValueError, match="allowed"):
        preprocess_for("alexnet", "rgb")
    with pytest.raises(ValueError, match="allowed"):
        preprocess_for("tiny", "depth")
    with pytest.raises(ValueError, match="3 channels"):
        preprocess_for("tiny", "rgb")(tf.zeros((2, 4)))
