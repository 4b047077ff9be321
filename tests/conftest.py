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
