"""Benchmark: what PyramidAttention adds to an Inception-ResNet-V2 forward + backward pass.

At the paper's scale (3 scales 35x35x320, 17x17x1088, 8x8x2080; K = 25 frames; B = 1) it times the layer's forward
+ backward pass next to that of Inception-ResNet-V2 (weights none) on the same 25 frames at 299x299 and prints the
ratio. Target: the layer adds <= 2 % (arithmetic says about 0.4 %).

  python benchmarks/pyramid_attention.py [--frames=25] [--repeats=3] [--fusion=mul]
"""

from __future__ import annotations

import time

import keras
import tensorflow as tf
from absl import app, flags

from stpa.layers import PyramidAttention

_FRAMES = flags.DEFINE_integer("frames", 25, "Frames K per clip.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed repetitions (after one warm-up); the median is reported.")
_FUSION = flags.DEFINE_enum("fusion", "mul", ["max", "sum", "mul"], "Fusion function of Eq. 3.")

PAPER_PYRAMID = ((35, 320), (17, 1088), (8, 2080))  # Inception-ResNet-A, B, C outputs at 299x299, bottom -> top.


def median_seconds(step, repeats: int) -> float:
    """Runs `step` once to warm up (trace/compile), then `repeats` times; returns the median wall time."""
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main(argv):
    del argv
    frames = _FRAMES.value
    layer = PyramidAttention(fusion=_FUSION.value)
    pyramid = [tf.random.normal((1, frames, size, size, channels)) for size, channels in PAPER_PYRAMID]
    layer(pyramid)

    @tf.function
    def attention_step():
        with tf.GradientTape() as tape:
            tape.watch(pyramid)
            loss = tf.reduce_sum(layer(pyramid))
        return tape.gradient(loss, layer.trainable_weights + pyramid)

    backbone = keras.applications.InceptionResNetV2(weights=None, include_top=False, input_shape=(299, 299, 3))
    images = tf.random.normal((frames, 299, 299, 3))

    @tf.function
    def backbone_step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(backbone(images, training=True))
        return tape.gradient(loss, backbone.trainable_weights)

    layer_time = median_seconds(attention_step, _REPEATS.value)
    backbone_time = median_seconds(backbone_step, _REPEATS.value)
    print(f"device: {tf.config.list_logical_devices()[-1].device_type}, K = {frames}, fusion = {_FUSION.value}")
    print(f"PyramidAttention forward+backward:      {layer_time * 1e3:9.1f} ms")
    print(f"Inception-ResNet-V2 forward+backward:   {backbone_time * 1e3:9.1f} ms")
    print(f"ratio (layer / backbone):               {layer_time / backbone_time:9.2%}  (target <= 2 %)")


if __name__ == "__main__":
    app.run(main)
