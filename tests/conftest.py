"""Shared pytest configuration: quiet TensorFlow, CPU only, two logical CPU devices.

The CPU is split into two logical devices before TensorFlow initialises, so `tf.distribute.MirroredStrategy` tests
run real multi-replica code on a machine without GPUs.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
except RuntimeError:  # TensorFlow was initialised before this conftest ran; keep its devices.
    pass


import keras  # noqa: E402
import pytest  # noqa: E402

import stpa.families  # noqa: E402,F401 - the composition root's registrations are the baseline of the guard below
from stpa.engine import family as _family_lib  # noqa: E402


@pytest.fixture(autouse=True)
def _no_global_state_left_changed():
    """Fails a test that leaves the family registry or Keras' global dtype policy changed (register test families
    in a fixture that removes them, and set policies in a `with` block that restores them)."""
    families, policy = _family_lib.family_names(), keras.mixed_precision.global_policy().name
    yield
    assert _family_lib.family_names() == families, (
        f"the test left the family registry changed: {families} -> {_family_lib.family_names()}"
    )
    assert keras.mixed_precision.global_policy().name == policy, "the test left the Keras dtype policy changed"
