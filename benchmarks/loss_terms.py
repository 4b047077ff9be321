"""Benchmark: every term of Eq. 9 at initialisation and over the first training steps, per Eq. 6 variant.

Issue #10 (5): at the paper's beta = 1e-4 the printed Eq. 6 (gradient into X, X X^T unnormalised) dwarfs the
cross-entropy on the real backbones. This script measures, for each backbone (random weights) and each reading of
Eq. 6 (`stpa.losses.interaction_loss`'s `gradient` x `normalization`), the weighted terms
CE, lambda sum w^2, beta l_interactive, gamma l_attn and their total at step 0 (before any update) and after each of
the first N SGD steps (the paper's optimiser: momentum 0.9, lr 0.001, beta = gamma = 1e-4, lambda = 4e-5) on one fixed
random batch, so a variant that "learns" shows a falling cross-entropy and finite terms.

  python benchmarks/loss_terms.py                                   # the real backbones, 3 steps, then tiny, 30 steps
  python benchmarks/loss_terms.py --backbones=tiny --tiny_steps=60
  python benchmarks/loss_terms.py --backbones=inception_resnet_v2 --input_size=149   # smaller frames (fewer positions)

Inputs are random frames in [0, 255] through the backbone's own preprocessing, K = 3 frames, 3-scale pyramid with
top "C" (Table 1(d)/(e)), `--batch` clips with random labels of `--classes` classes. One line per (backbone, variant,
step); a summary per (backbone, variant) gives beta * l_inter / CE at step 0 and whether every value stayed finite and
the cross-entropy fell. The control row ("-", "beta=0") trains without l_interactive: a backbone that diverges there too
(random VGG16, no batch normalisation, at lr 0.001) diverges for another reason than Eq. 6.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from stpa import models
from stpa.blocks.preprocessing import preprocess_for

REAL_BACKBONES = ("inception_resnet_v2", "bn_inception", "vgg16")
# (gradient, normalization); ("-", "beta=0") is the control without l_interactive (is a divergence the term's?).
VARIANTS = (("both", "none"), ("attention", "none"), ("attention", "covariance"), ("-", "beta=0"))

_BACKBONES = flags.DEFINE_list("backbones", [*REAL_BACKBONES, "tiny"], "Backbones to measure (random weights).")
_STEPS = flags.DEFINE_integer("steps", 3, "Training steps per real backbone and variant.")
_TINY_STEPS = flags.DEFINE_integer("tiny_steps", 30, "Training steps for `tiny`.")
_BATCH = flags.DEFINE_integer("batch", 2, "Clips per batch.")
_FRAMES = flags.DEFINE_integer("frames", 3, "Frames K per clip (Sec. 3.4 trains with K = 3).")
_CLASSES = flags.DEFINE_integer("classes", 101, "Number of classes (UCF101).")
_INPUT_SIZE = flags.DEFINE_integer("input_size", None, "Frame size (default: each backbone's default).")
_BETA = flags.DEFINE_float("beta", 1e-4, "beta of Eq. 9 (the paper's 1e-4).")
_GAMMA = flags.DEFINE_float("gamma", 1e-4, "gamma of Eq. 9 (the paper's 1e-4).")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 1e-3, "SGD learning rate (the paper's spatial stream: 0.001).")

TERMS = ("classification", "weight_decay", "interaction", "attention", "total")


def measure(backbone: str, gradient: str, normalization: str, steps: int, seed: int = 0) -> list[dict[str, float]]:
    """Builds a fresh STPA model (random weights) and returns the weighted Eq. 9 terms at steps 0..`steps`.

    Args:
      backbone: a key of `stpa.models.BACKBONES`.
      gradient: `interaction_loss`'s `gradient`.
      normalization: `interaction_loss`'s `normalization`.
      steps: SGD steps after the initial measurement.
      seed: seed of the weights, frames and labels (the same for every variant of a backbone).

    Returns:
      `steps + 1` dicts term -> float (row i: the loss evaluated before update i+1; row 0 is initialisation).
    """
    keras.utils.set_random_seed(seed)
    model = models.build_model(
        "stpa", backbone, num_classes=_CLASSES.value, scales=3, top="C", input_size=_INPUT_SIZE.value, weights=None
    )
    outputs_model = models.attention_outputs_model(model)
    size = int(model.input.shape[2])
    rng = np.random.default_rng(seed)
    raw = rng.uniform(0.0, 255.0, size=(_BATCH.value, _FRAMES.value, size, size, 3)).astype(np.float32)
    frames = preprocess_for(backbone, "rgb")(tf.constant(raw))  # (B, K, H, W, 3)
    labels = tf.constant(rng.integers(0, _CLASSES.value, size=_BATCH.value), tf.int32)  # (B,)
    optimizer = keras.optimizers.SGD(_LEARNING_RATE.value, momentum=0.9)
    beta = 0.0 if gradient == "-" else _BETA.value
    if gradient == "-":
        gradient, normalization = "attention", "covariance"  # Unused with beta = 0.

    @tf.function
    def step(apply: bool):
        with tf.GradientTape() as tape:
            outputs = outputs_model(frames, training=True)
            terms = models.loss_terms(
                outputs,
                labels,
                model,
                weight_decay=4e-5,
                beta=beta,
                gamma=_GAMMA.value,
                interaction_gradient=gradient,
                interaction_normalization=normalization,
            )
        if apply:
            grads = tape.gradient(terms["total"], model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return terms

    rows = []
    for index in range(steps + 1):
        terms = step(tf.constant(index < steps))
        rows.append({name: float(terms.get(name, 0.0)) for name in TERMS})
    return rows


def main(argv):
    del argv
    print(
        f"beta={_BETA.value} gamma={_GAMMA.value} lambda=4e-05 lr={_LEARNING_RATE.value} batch={_BATCH.value} "
        f"K={_FRAMES.value} input_size={_INPUT_SIZE.value or 'default'}"
    )
    print(f"{'backbone':<20} {'gradient':<9} {'norm':<10} {'step':>4} " + " ".join(f"{t:>14}" for t in TERMS))
    summary = []
    for backbone in _BACKBONES.value:
        steps = _TINY_STEPS.value if backbone == "tiny" else _STEPS.value
        for gradient, normalization in VARIANTS:
            rows = measure(backbone, gradient, normalization, steps)
            for index, row in enumerate(rows):
                print(
                    f"{backbone:<20} {gradient:<9} {normalization:<10} {index:>4} "
                    + " ".join(f"{row[t]:>14.5g}" for t in TERMS),
                    flush=True,
                )
            finite = all(math.isfinite(v) for row in rows for v in row.values())
            ratio = rows[0]["interaction"] / rows[0]["classification"]  # 0 for the beta = 0 control.
            summary.append(
                (
                    backbone,
                    gradient,
                    normalization,
                    ratio,
                    rows[0]["classification"],
                    rows[-1]["classification"],
                    finite,
                )
            )
    print("\nsummary: beta*l_inter / CE at init; CE at init -> after the last step; all terms finite")
    for backbone, gradient, normalization, ratio, first, last, finite in summary:
        print(
            f"{backbone:<20} {gradient:<9} {normalization:<10} ratio={ratio:>11.4g} CE {first:.4f} -> {last:.4f} "
            f"finite={finite}"
        )


if __name__ == "__main__":
    app.run(main)
