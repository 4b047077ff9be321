"""TSN BN-Inception state dict -> Keras: the converted network computes what PyTorch's would (NumPy reference)."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from stpa import convert_weights
from stpa.blocks import backbones
from tests.helpers.bn_inception_state import tsn_state_dict

SIZE = 64  # Small frames: the conversion does not depend on the input size.


def torch_conv2d(x, weight, bias, stride, padding):
    """float64 NumPy `torch.nn.functional.conv2d`: x (H, W, Cin) channels last, weight (Cout, Cin, kh, kw)."""
    x = np.pad(x.astype(np.float64), ((padding, padding), (padding, padding), (0, 0)))
    cout, cin, kh, kw = weight.shape
    out_h = (x.shape[0] - kh) // stride + 1
    out_w = (x.shape[1] - kw) // stride + 1
    out = np.zeros((out_h, out_w, cout))
    for i in range(kh):
        for j in range(kw):
            patch = x[i : i + stride * out_h : stride, j : j + stride * out_w : stride]  # (out_h, out_w, Cin)
            out += patch @ weight[:, :, i, j].T.astype(np.float64)
    return out + bias


def torch_max_pool_ceil(x, size=3, stride=2):
    """float64 NumPy `MaxPool2d(size, stride, ceil_mode=True)` (windows clipped at the bottom/right edge)."""
    out_h = -(-(x.shape[0] - size) // stride) + 1
    out_w = -(-(x.shape[1] - size) // stride) + 1
    out = np.empty((out_h, out_w, x.shape[2]))
    for i in range(out_h):
        for j in range(out_w):
            out[i, j] = x[i * stride : i * stride + size, j * stride : j * stride + size].max(axis=(0, 1))
    return out


def batch_norm_relu(x, state, name, eps=1e-5):
    scale = state[f"{name}.weight"] / np.sqrt(state[f"{name}.running_var"].astype(np.float64) + eps)
    return np.maximum((x - state[f"{name}.running_mean"]) * scale + state[f"{name}.bias"], 0.0)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    state = tsn_state_dict(seed=1)
    directory = tmp_path_factory.mktemp("convert")
    npz = str(directory / "bn_inception.npz")
    np.savez(npz, **state)
    output = str(directory / "bn_inception.weights.h5")
    convert_weights.convert(npz, output)
    backbone = backbones.build_backbone("bn_inception", input_size=SIZE, weights=output)
    return state, backbone.trunk


def test_converted_convolutions_match_a_numpy_conv(converted):
    state, trunk = converted
    frames = np.random.default_rng(0).normal(size=(1, SIZE, SIZE, 3)).astype(np.float32)
    names = [
        "conv1_7x7_s2",
        "conv1_relu_7x7",
        "pool1_3x3_s2",
        "inception_3c_3x3_reduce",
        "inception_3c_relu_3x3_reduce",
        "inception_3c_3x3",
    ]
    probe = keras.Model(trunk.input, [trunk.get_layer(name).output for name in names])
    conv1, relu1, pool1, reduce_conv, reduce_relu, conv_s2 = [y.numpy()[0] for y in probe(frames)]

    # conv1: 7x7, stride 2, PyTorch padding 3 on every side.
    expected = torch_conv2d(frames[0], state["conv1_7x7_s2.weight"], state["conv1_7x7_s2.bias"], stride=2, padding=3)
    np.testing.assert_allclose(conv1, expected, rtol=1e-4, atol=1e-4)
    expected = batch_norm_relu(expected, state, "conv1_7x7_s2_bn")
    np.testing.assert_allclose(relu1, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pool1, torch_max_pool_ceil(expected), rtol=1e-4, atol=1e-4)
    # A 1x1 and a stride-2 3x3 convolution inside an inception module (padding 1 on every side).
    inputs = keras.Model(trunk.input, trunk.get_layer("inception_3c_3x3_reduce").input)(frames)[0].numpy()
    expected = torch_conv2d(
        inputs, state["inception_3c_3x3_reduce.weight"], state["inception_3c_3x3_reduce.bias"], stride=1, padding=0
    )
    np.testing.assert_allclose(reduce_conv, expected, rtol=1e-4, atol=1e-4)
    expected = torch_conv2d(
        reduce_relu, state["inception_3c_3x3.weight"], state["inception_3c_3x3.bias"], stride=2, padding=1
    )
    np.testing.assert_allclose(conv_s2, expected, rtol=1e-4, atol=1e-4)


def test_every_weight_is_the_transposed_state_dict_entry(converted):
    state, trunk = converted
    for layer in trunk.layers:
        if isinstance(layer, keras.layers.Conv2D):
            np.testing.assert_array_equal(layer.kernel.numpy(), state[f"{layer.name}.weight"].transpose(2, 3, 1, 0))
            np.testing.assert_array_equal(layer.bias.numpy(), state[f"{layer.name}.bias"])
        elif isinstance(layer, keras.layers.BatchNormalization):
            np.testing.assert_array_equal(layer.moving_variance.numpy(), state[f"{layer.name}.running_var"])
            np.testing.assert_array_equal(layer.gamma.numpy(), state[f"{layer.name}.weight"])


def test_flow_checkpoint_with_tsn_prefixes(tmp_path):
    # A TSN flow checkpoint: DataParallel + TSN wrapper prefixes, a 10-channel first convolution, a new classifier.
    state = tsn_state_dict(in_channels=10, include_fc=False, seed=2, prefix="module.base_model.")
    state["module.new_fc.weight"] = np.zeros((101, 1024), np.float32)
    npz = str(tmp_path / "flow.npz")
    np.savez(npz, **state)
    output = str(tmp_path / "flow.weights.h5")
    convert_weights.convert(npz, output)
    trunk = backbones.build_backbone(
        "bn_inception", input_size=SIZE, modality="flow", flow_length=5, weights=output
    ).trunk
    # Loaded as a flow network, not re-derived from RGB by cross-modality averaging.
    np.testing.assert_array_equal(
        trunk.get_layer("conv1_7x7_s2").kernel.numpy(),
        state["module.base_model.conv1_7x7_s2.weight"].transpose(2, 3, 1, 0),
    )


def test_missing_keys_and_shape_mismatches_are_reported(tmp_path):
    from stpa.blocks.backbones.bn_inception import build_bn_inception

    model = build_bn_inception((SIZE, SIZE, 3))
    state = tsn_state_dict(include_fc=False)
    del state["inception_4a_1x1.bias"]
    with pytest.raises(KeyError, match="inception_4a_1x1.bias"):
        convert_weights.assign_state_dict(model, state)
    state = tsn_state_dict(include_fc=False)
    state["inception_5b_3x3.weight"] = state["inception_5b_3x3.weight"][:, :10]
    with pytest.raises(ValueError, match="inception_5b_3x3"):
        convert_weights.assign_state_dict(model, state)
    unused = convert_weights.assign_state_dict(model, tsn_state_dict(include_fc=True))
    assert unused == ["fc.bias", "fc.weight"]
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        convert_weights.convert("x.npz", str(tmp_path / "out.h5"))


def test_pth_round_trip_with_torch(tmp_path):
    torch = pytest.importorskip("torch")
    state = tsn_state_dict(include_fc=True, seed=3)
    pth = str(tmp_path / "bn_inception-9f5701afb96c8044.pth")
    torch.save({key: torch.from_numpy(value) for key, value in state.items()}, pth)
    loaded = convert_weights.load_state_dict(pth)
    assert sorted(loaded) == sorted(state)
    for key, value in state.items():
        np.testing.assert_array_equal(loaded[key], value, err_msg=key)


def test_pth_without_torch_explains_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError, installed or not.
    path = tmp_path / "bn_inception.pth"
    path.write_bytes(b"not read")
    with pytest.raises(ImportError, match="pip install torch"):
        convert_weights.load_state_dict(str(path))


@pytest.mark.slow
def test_command_line(tmp_path):
    npz = str(tmp_path / "bn_inception.npz")
    np.savez(npz, **tsn_state_dict(include_fc=True))
    output = str(tmp_path / "bn_inception.weights.h5")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, "-m", "stpa.convert_weights", f"--input={npz}", f"--output={output}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert os.path.isfile(output) and "Not converted (2 keys): fc.bias, fc.weight" in result.stdout
