"""Benchmark: what PyramidAttention adds to an Inception-ResNet-V2 forward + backward pass, in time and memory.

At the paper's scale (3 scales 35x35x320, 17x17x1088, 8x8x2080; K = 25 frames; B = 1) it times the layer's forward
+ backward pass and that of Inception-ResNet-V2 (weights none) on the same 25 frames at 299x299, alternately in one
process (layer, backbone, layer, backbone, ...), and prints the median of the per-round ratios and their spread. The
layer with Eq. 1's earlier pooling backward (`segment_sum`, an element-wise `unsorted_segment_sum`) is timed in the
same rounds, as the reference for the pooling's speed-up. Goal: the layer adds <= 1.5 %.

Memory: the layer's TensorFlow allocator peak above its inputs at K = 30, forward + backward, in a fresh process
(`benchmarks/memory.py --child=stpa_layer`; on a CPU the BFC allocator is switched on to have the statistic).
Goal: <= 199 MiB, and as a ratio to IRv2's own kept activations for those 30 frames.

Prints one history line (`benchmarks/history.py`); `--record` appends it to
`benchmarks/history/pyramid_attention.jsonl`.

  python benchmarks/pyramid_attention.py [--frames=25] [--repeats=3] [--fusion=mul] [--record]
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

import stpa.layers  # noqa: E402
from benchmarks import history  # noqa: E402
from stpa.blocks.adaptive_pooling import POOLINGS  # noqa: E402
from stpa.layers import PyramidAttention  # noqa: E402

_FRAMES = flags.DEFINE_integer("frames", 25, "Frames K per clip.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed alternating rounds (after one warm-up each).")
_FUSION = flags.DEFINE_enum("fusion", "mul", ["max", "sum", "mul"], "Fusion function of Eq. 3.")
_MEMORY_FRAMES = flags.DEFINE_integer("memory_frames", 30, "K of the memory measurement (0: skip it).")
_THREADS = flags.DEFINE_integer("threads", 0, "TensorFlow intra-op threads (0: TensorFlow's default).")
_RECORD = flags.DEFINE_bool("record", False, "Append the history line to benchmarks/history/.")

PAPER_PYRAMID = ((35, 320), (17, 1088), (8, 2080))  # Inception-ResNet-A, B, C outputs at 299x299, bottom -> top.
GOAL_TIME_RATIO = 0.015  # the layer's forward + backward over IRv2's
GOAL_PEAK_MIB = 199.0  # the layer's allocator peak above its inputs at K = 30
MIB = 1024.0**2


def median_seconds(step, repeats: int) -> float:
    """Runs `step` once to warm up (trace/compile), then `repeats` times; returns the median wall time."""
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def _seconds(step) -> float:
    start = time.perf_counter()
    for tensor in tf.nest.flatten(step()):
        tensor.numpy()
    return time.perf_counter() - start


@contextlib.contextmanager
def pooling(name: str):
    """Traces PyramidAttention with Eq. 1's pooling `name` (of `POOLINGS`) inside the block."""
    saved = stpa.layers.adaptive_max_pool
    stpa.layers.adaptive_max_pool = POOLINGS[name]
    try:
        yield
    finally:
        stpa.layers.adaptive_max_pool = saved


def layer_memory(frames: int) -> dict:
    """The memory benchmark's `stpa_layer` child in a fresh process: its RESULT dict."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=root, TF_CPU_ALLOCATOR_USE_BFC="true")
    command = [
        sys.executable,
        os.path.join(root, "benchmarks", "memory.py"),
        "--child=stpa_layer",
        "--steps=1",
        f"--stpa_test_frames={frames}",
    ]
    finished = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    for line in finished.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"memory child failed (exit {finished.returncode}):\n{finished.stderr[-3000:]}")


def main(argv):
    del argv
    if _THREADS.value:
        tf.config.threading.set_intra_op_parallelism_threads(_THREADS.value)
    frames = _FRAMES.value
    memory = layer_memory(_MEMORY_FRAMES.value) if _MEMORY_FRAMES.value else None

    layer = PyramidAttention(fusion=_FUSION.value)
    pyramid = [tf.random.normal((1, frames, size, size, channels)) for size, channels in PAPER_PYRAMID]
    layer(pyramid)

    def attention_step():
        with tf.GradientTape() as tape:
            tape.watch(pyramid)
            loss = tf.reduce_sum(layer(pyramid))
        return tape.gradient(loss, layer.trainable_weights + pyramid)

    project_step = tf.function(attention_step)
    project_step.get_concrete_function()
    segment_step = tf.function(attention_step)
    with pooling("segment_sum"):
        segment_step.get_concrete_function()

    backbone = keras.applications.InceptionResNetV2(weights=None, include_top=False, input_shape=(299, 299, 3))
    images = tf.random.normal((frames, 299, 299, 3))

    @tf.function
    def backbone_step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(backbone(images, training=True))
        return tape.gradient(loss, backbone.trainable_weights)

    steps = {"layer": project_step, "layer_segment_sum": segment_step, "backbone": backbone_step}
    for step in steps.values():
        _seconds(step)  # warm-up
    times = {name: [] for name in steps}
    for _ in range(_REPEATS.value):
        for name, step in steps.items():
            times[name].append(_seconds(step))
    layer_ratios = [a / b for a, b in zip(times["layer"], times["backbone"])]
    speed_ratios = [a / b for a, b in zip(times["layer"], times["layer_segment_sum"])]
    figures = {f"{name} forward+backward ms (median)": statistics.median(t) * 1e3 for name, t in times.items()}
    ratios = {
        "layer / IRv2, forward+backward": history.ratio(layer_ratios, GOAL_TIME_RATIO),
        "layer / layer with the segment-sum pooling backward": history.ratio(speed_ratios),
    }
    print(f"device: {tf.config.list_logical_devices()[-1].device_type}, K = {frames}, fusion = {_FUSION.value}")
    for name, t in times.items():
        print(
            f"{name + ' forward+backward':45s} {statistics.median(t) * 1e3:9.1f} ms  (rounds: "
            + ", ".join(f"{x * 1e3:.0f}" for x in t)
            + ")"
        )
    print(
        f"ratio layer / IRv2:                            {statistics.median(layer_ratios):9.2%}  "
        f"(rounds {min(layer_ratios):.2%} - {max(layer_ratios):.2%}; goal <= {GOAL_TIME_RATIO:.1%})"
    )
    print(f"ratio layer / layer with segment-sum backward: {statistics.median(speed_ratios):9.2f}")
    if memory is not None:
        from benchmarks.activations import keras_activation_bytes

        kept, _ = keras_activation_bytes(backbone)
        peak = memory["layer_peak_above_inputs"]
        activations = kept * _MEMORY_FRAMES.value
        figures[f"layer allocator peak above inputs at K = {_MEMORY_FRAMES.value}, MiB"] = peak / MIB
        figures[f"IRv2 kept activations at K = {_MEMORY_FRAMES.value}, MiB"] = activations / MIB
        ratios[f"layer peak / IRv2 kept activations at K = {_MEMORY_FRAMES.value}"] = history.ratio(
            [peak / activations], GOAL_PEAK_MIB * MIB / activations
        )
        print(
            f"layer allocator peak above inputs, K = {_MEMORY_FRAMES.value}:  {peak / MIB:9.1f} MiB  "
            f"(goal <= {GOAL_PEAK_MIB:.0f} MiB; {peak / activations:.2%} of IRv2's kept activations)"
        )
    settings = {
        "frames": frames,
        "repeats": _REPEATS.value,
        "fusion": _FUSION.value,
        "memory_frames": _MEMORY_FRAMES.value,
        "threads": _THREADS.value,
    }
    history.write(history.make_line("pyramid_attention", figures, ratios, settings=settings), record=_RECORD.value)


if __name__ == "__main__":
    app.run(main)
