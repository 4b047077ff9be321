"""Every registered Keras layer of the project follows Keras' layer contract (`run_layer_test`).

`CASES` holds, for every layer class registered with `keras.saving.register_keras_serializable` in the project's
packages, one or more small configurations: init kwargs, input shape(s), expected output shape(s) and the real
numbers of trainable / non-trainable weights. For each one Keras' own `run_layer_test` checks that `get_config`
round-trips, that building, symbolic and eager calls agree with the expected shapes and weight counts, that a
compiled training step runs (where the layer has weights to train), and the mixed-precision check: built with
`dtype="mixed_float16"` under a float32 global policy, the outputs have the dtypes `compute_output_spec` states and
every float variable stays float32. Two more checks hold the convention behind that: sublayers are created in
`build()` (an unbuilt layer owns none) and each one carries the parent's dtype policy.

`test_every_registered_layer_has_a_case` finds the registered layers itself (every project module that registers
something is imported, then the global custom-objects registry is read), so a new layer without a case fails here.
"""

from __future__ import annotations

import importlib
import inspect
import pathlib

import keras
import pytest
from keras.src import testing

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("stpa", "st_attn", "data")

# B = 2 clips of K = 3 frames; tiny maps and widths so that the whole module runs in seconds.
_CLIP = (2, 3, 4, 4, 5)
_PYRAMID = ((2, 3, 4, 4, 3), (2, 3, 2, 2, 5))  # bottom -> top; a tuple: tf.data (the training check) takes no lists
_TEMPORAL = dict(units=3, init_filters=4, attention_units=2)
# g_c and g_h: 2 x (conv kernel, BN gamma, beta) trainable and 2 x (moving mean, variance) each; W_x kernel + bias,
# W_h kernel.
_CONV_LSTM_TRAINABLE = 2 * 2 * 3 + 3
_CONV_LSTM_NON_TRAINABLE = 2 * 2 * 2

# id -> (class path, init kwargs, input shape(s), expected output shape(s), trainable, non-trainable weights).
CASES = {
    "PyramidAttention-mul": ("stpa.layers.PyramidAttention", {}, _PYRAMID, (2, 2, 2, 5), 4, 0),
    "PyramidAttention-max-one-scale": ("stpa.layers.PyramidAttention", {"fusion": "max"}, (_CLIP,), (2, 4, 4, 5), 2, 0),
    "UniformAttention": ("stpa.layers.UniformAttention", {}, _PYRAMID, (2, 2, 2, 5), 0, 0),
    "UniformAttention-list": ("stpa.layers.UniformAttention", {}, list(_PYRAMID), (2, 2, 2, 5), 0, 0),
    "UniformAttention-top-only": ("stpa.layers.UniformAttention", {}, _CLIP, (2, 4, 4, 5), 0, 0),
    "FoldTime": ("stpa.blocks.video_ops.FoldTime", {}, (2, 3, 4, 5), (6, 4, 5), 0, 0),
    "UnfoldTime": ("stpa.blocks.video_ops.UnfoldTime", {}, [(6, 4, 5), (2, 3, 7)], (2, 3, 4, 5), 0, 0),
    "FlattenPositions": ("stpa.blocks.video_ops.FlattenPositions", {}, (2, 3, 2, 2, 5), (2, 12, 5), 0, 0),
    # Table 1: (conv + BN + ReLU) x 2 without conv biases, then conv + bias + sigmoid.
    "SpatialAttentionMask": ("st_attn.layers.SpatialAttentionMask", {"filters": (4, 3)}, _CLIP, (2, 3, 4, 4, 1), 8, 4),
    "ApplySpatialMask": ("st_attn.layers.ApplySpatialMask", {}, [_CLIP, (2, 3, 4, 4, 1)], _CLIP, 0, 0),
    "FrameAndPositionAveragePooling": ("st_attn.layers.FrameAndPositionAveragePooling", {}, _CLIP, (2, 5), 0, 0),
    # + phi_x, phi_h (+ v for the tanh energy).
    "TemporalAttentionConvLSTM-tanh": (
        "st_attn.layers.TemporalAttentionConvLSTM",
        _TEMPORAL,
        _CLIP,
        ((2, 4, 4, 3), (2, 3, 3)),
        _CONV_LSTM_TRAINABLE + 3,
        _CONV_LSTM_NON_TRAINABLE,
    ),
    "TemporalAttentionConvLSTM-linear": (
        "st_attn.layers.TemporalAttentionConvLSTM",
        {**_TEMPORAL, "energy": "linear"},
        _CLIP,
        ((2, 4, 4, 3), (2, 3, 3)),
        _CONV_LSTM_TRAINABLE + 2,
        _CONV_LSTM_NON_TRAINABLE,
    ),
    "TemporalAttentionConvLSTM-per-step-input-conv": (
        "st_attn.layers.TemporalAttentionConvLSTM",
        {**_TEMPORAL, "project_frames": False},
        _CLIP,
        ((2, 4, 4, 3), (2, 3, 3)),
        _CONV_LSTM_TRAINABLE + 3,
        _CONV_LSTM_NON_TRAINABLE,
    ),
    "TemporalAttentionConvLSTM-no-temporal-attention": (
        "st_attn.layers.TemporalAttentionConvLSTM",
        {**_TEMPORAL, "temporal_attention": False},
        _CLIP,
        ((2, 4, 4, 3), (2, 3, 3)),
        _CONV_LSTM_TRAINABLE,
        _CONV_LSTM_NON_TRAINABLE,
    ),
}


def _class(path: str) -> type:
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def _registering_modules() -> list[str]:
    """The project modules whose source registers a serialisable object (found by reading the files)."""
    modules = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "register_keras_serializable" in path.read_text(encoding="utf-8"):
                parts = path.relative_to(ROOT).with_suffix("").parts
                modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def registered_project_objects() -> dict[str, type]:
    """`{registered name: class}` of every object of the project's packages in Keras' custom-objects registry."""
    for module in _registering_modules():
        importlib.import_module(module)
    return {
        name: obj
        for name, obj in keras.saving.get_custom_objects().items()
        if inspect.isclass(obj) and obj.__module__.split(".")[0] in PACKAGES
    }


def _registered_layers() -> dict[str, type]:
    return {name: cls for name, cls in registered_project_objects().items() if issubclass(cls, keras.layers.Layer)}


def _sublayers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    return list(layer._flatten_layers(include_self=False, recursive=True))


class LayerContractTest(testing.TestCase):
    def test_every_registered_layer_has_a_case(self):
        layers = _registered_layers()
        # The registry really is read: the layers known today are all there.
        self.assertIn("st_attn>TemporalAttentionConvLSTM", layers)
        self.assertIn("stpa>PyramidAttention", layers)
        covered = {_class(case[0]) for case in CASES.values()}
        missing = sorted(name for name, cls in layers.items() if cls not in covered)
        self.assertEqual(missing, [], msg=f"registered layers without a case in CASES: {missing}")
        for case_id, case in CASES.items():
            self.assertIn(_class(case[0]), layers.values(), msg=f"{case_id} names a layer that is not registered")

    def test_registered_objects_that_are_not_layers_round_trip(self):
        others = {name: cls for name, cls in registered_project_objects().items() if name not in _registered_layers()}
        self.assertIn("st_attn>UnitForgetBias", others)
        for name, cls in others.items():
            self.assertTrue(issubclass(cls, keras.initializers.Initializer), msg=f"{name}: no contract test for it")
        initializer = _class("st_attn.layers.UnitForgetBias")(3)
        restored = keras.initializers.deserialize(keras.initializers.serialize(initializer))
        self.assertEqual(restored.get_config(), initializer.get_config())
        self.assertAllClose(restored((12,)), initializer((12,)))

    @pytest.mark.filterwarnings("ignore::UserWarning")
    def test_run_layer_test(self):
        for case_id, (path, init_kwargs, input_shape, output_shape, trainable, non_trainable) in CASES.items():
            with self.subTest(case_id):
                self.run_layer_test(
                    _class(path),
                    init_kwargs=dict(init_kwargs),
                    input_shape=input_shape,
                    expected_output_shape=output_shape,
                    expected_num_trainable_weights=trainable,
                    expected_num_non_trainable_weights=non_trainable,
                    # A training step needs something to train.
                    run_training_check=trainable > 0,
                    run_mixed_precision_check=True,
                )

    def test_sublayers_are_created_in_build_with_the_parents_dtype_policy(self):
        for case_id, (path, init_kwargs, input_shape, *_) in CASES.items():
            with self.subTest(case_id):
                layer = _class(path)(**init_kwargs, dtype="mixed_bfloat16")
                self.assertEqual(_sublayers(layer), [], msg="sublayers must be created in build()")
                layer.build(input_shape)
                for sublayer in _sublayers(layer):
                    self.assertEqual(sublayer.dtype_policy.name, "mixed_bfloat16", msg=sublayer.name)
