"""Benchmark: the cost of a training step on the study's pretrained host (`tiny_deep`) against `tiny`.

The hosts protocol (experiments/preregistration_hosts.md) trains every STPA / TSN study row on both hosts; its time
plan, and the goal of at most 3x tiny's cost per step, rest on this ratio. The step is the study rows' own: Adam,
batch 16 clips of K = 3 frames at 64 px, STPA (3 scales topped at C, mul fusion) or TSN, RGB (3 channels) or flow
(10 channels). The two hosts are timed alternately in the same process (so a loaded machine slows both alike), and
the ratio of the medians is printed per row.

  python benchmarks/host_cost.py [--repeats=5 --steps=20]
"""

from __future__ import annotations

import statistics
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from stpa import models

_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed rounds per host (alternating).")
_STEPS = flags.DEFINE_integer("steps", 20, "Training steps per round.")
_BATCH = flags.DEFINE_integer("batch", 16, "Clips per step (the study rows' batch).")
GOAL = 3.0  # at most 3x tiny's time per step


def _step_fn(model: keras.Model):
    optimizer = keras.optimizers.Adam(1e-3)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(clips, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(clips, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    return step


def main(argv):
    del argv
    rng = np.random.default_rng(0)
    print(f"{'row':<10} {'modality':<8} {'tiny ms/step':>13} {'tiny_deep ms/step':>18} {'ratio':>6} (goal <= {GOAL:g})")
    for model_name in ("stpa", "tsn"):
        for modality, channels in (("rgb", 3), ("flow", 10)):
            clips = tf.constant(rng.uniform(-1, 1, size=(_BATCH.value, 3, 64, 64, channels)).astype("float32"))
            labels = tf.constant(rng.integers(0, 6, size=_BATCH.value))
            steps = {}
            for backbone in ("tiny", "tiny_deep"):
                model = models.build_model(model_name, backbone, 6, modality, input_size=64, dropout=0.0)
                steps[backbone] = _step_fn(model)
                steps[backbone](clips, labels)  # trace and warm up
            times = {backbone: [] for backbone in steps}
            for _ in range(_REPEATS.value):
                for backbone, step in steps.items():
                    start = time.perf_counter()
                    for _ in range(_STEPS.value):
                        loss = step(clips, labels)
                    float(loss)
                    times[backbone].append((time.perf_counter() - start) / _STEPS.value * 1000)
            tiny, deep = (statistics.median(times[b]) for b in ("tiny", "tiny_deep"))
            print(f"{model_name:<10} {modality:<8} {tiny:13.1f} {deep:18.1f} {deep / tiny:6.2f}")


if __name__ == "__main__":
    app.run(main)
