r"""Supervised pretraining of a per-frame trunk on still frames: the study's stand-in for ImageNet initialisation.

  python -m stpa.pretrain_backbone --backbone=tiny_deep \
      --output=experiments/weights/tiny_deep_stills.weights.h5

Du et al. and Meng et al. insert their attention into ImageNet-pretrained CNNs. No ImageNet network fits the study's
CPU budget, so this command makes the analogue: a supervised task on *still* frames of the synthetic generator
(`data.synthetic.render_stills`: another generation seed than any benchmark, grey distractors, the actor's colour
and shape drawn independently of its motion) whose labels are the actor's look, shape x colour (60 labels), not the
action classes. The trunk learns to find and describe the one coloured, outlined object of a cluttered, noisy frame,
as an ImageNet network learns objects; the action benchmarks then fine-tune it (`stpa.train --weights=PATH`; a flow
stream gets TSN's cross-modality initialisation from it, as the papers' flow networks do from ImageNet).

Training: Adam, learning rate divided by 10 at 75 % of the steps, random horizontal flips (the shapes are mirror
symmetric), deterministic TensorFlow ops and a fixed input order, so the same flags give the same weights.
Frames are resized from 72 x 72 to the input size and normalised as the backbone expects
(`stpa.blocks.preprocessing`).

Writes, each atomically (temporary file, then rename):
  <output>              the trunk's weights (Keras `.weights.h5`, the file `--weights=` loads)
  <output>.json         the flags, held-out top-1 on frames of another seed, the time taken and the sha256 of
                        <output>
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Sequence

from absl import app, flags

from data import files


def define_flags() -> None:
    """Defines the command's flags (only when it runs as a command, so importing `pretrain` defines none)."""
    global \
        _BACKBONE, \
        _OUTPUT, \
        _GENERATION_SEED, \
        _TRAIN_IMAGES, \
        _HELDOUT_IMAGES, \
        _STEPS, \
        _BATCH_SIZE, \
        _LEARNING_RATE, \
        _INPUT_SIZE, \
        _SEED, \
        _PROGRESS
    _BACKBONE = flags.DEFINE_string(
        "backbone", "tiny_deep", "Backbone whose trunk is pretrained (stpa.blocks.backbones)."
    )
    _OUTPUT = flags.DEFINE_string("output", None, "Where to write the trunk's weights (must end with .weights.h5).")
    _GENERATION_SEED = flags.DEFINE_integer(
        "generation_seed", 5000, "data.synthetic seed of the training frames (no benchmark of the studies uses it)."
    )
    _TRAIN_IMAGES = flags.DEFINE_integer(
        "train_images", 24000, "Training frames (two per generated video).", lower_bound=2
    )
    _HELDOUT_IMAGES = flags.DEFINE_integer(
        "heldout_images", 2000, "Held-out frames, generated at --generation_seed + 1.", lower_bound=2
    )
    _STEPS = flags.DEFINE_integer("steps", 3000, "Training steps.", lower_bound=1)
    _BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Frames per step.", lower_bound=1)
    _LEARNING_RATE = flags.DEFINE_float(
        "learning_rate", 1e-3, "Adam's learning rate (divided by 10 at 75 %).", lower_bound=0
    )
    _INPUT_SIZE = flags.DEFINE_integer("input_size", 64, "Square input size of the trunk.", lower_bound=16)
    _SEED = flags.DEFINE_integer("seed", 0, "Seed of the initialisation, the input order and the flips.")
    _PROGRESS = flags.DEFINE_boolean("progress", True, "Show a progress bar.")


WEIGHTS_SUFFIX = ".weights.h5"


def sha256(path: str) -> str:
    """The hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pretrain(
    *,
    backbone: str,
    output: str,
    generation_seed: int,
    train_images: int,
    heldout_images: int,
    steps: int,
    batch_size: int,
    learning_rate: float,
    input_size: int,
    seed: int,
    progress: bool = False,
) -> dict:
    """Pretrains `backbone`'s trunk on the still-frame task and writes its weights and their record.

    Args:
      backbone: a `stpa.blocks.backbones` name.
      output: the weights file to write (`*.weights.h5`).
      generation_seed: seed of the training frames; held-out frames use `generation_seed + 1`.
      train_images: number of training frames.
      heldout_images: number of held-out frames.
      steps: training steps.
      batch_size: frames per step.
      learning_rate: Adam's initial learning rate (divided by 10 at 75 % of the steps).
      input_size: square input size.
      seed: initialisation, input order and flip seed.
      progress: show a progress bar.

    Returns:
      The record written to `<output>.json`.
    """
    if not output.endswith(WEIGHTS_SUFFIX):
        raise ValueError(f"--output={output!r} must end with {WEIGHTS_SUFFIX} (a Keras weights file).")
    directory = files.make_parent(output)  # fails now, not after the training, when it cannot be written

    import keras
    import numpy as np
    import tensorflow as tf
    from tqdm import tqdm

    from data import synthetic
    from stpa.blocks import backbones, preprocessing

    start = time.perf_counter()
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    train_frames, train_labels = synthetic.render_stills(generation_seed, 2 * (train_images // 2))
    heldout_frames, heldout_labels = synthetic.render_stills(generation_seed + 1, 2 * (heldout_images // 2))
    normalize = preprocessing.preprocess_for(backbone, "rgb")

    def prepare(frames: np.ndarray) -> tf.Tensor:
        resized = tf.image.resize(tf.cast(frames, tf.float32), (input_size, input_size), antialias=True)
        return normalize(tf.clip_by_value(resized, 0.0, 255.0))  # (N, S, S, 3)

    train_inputs = prepare(train_frames).numpy()
    heldout_inputs = prepare(heldout_frames).numpy()
    trunk = backbones.build_backbone(backbone, input_size=input_size).trunk
    classifier = keras.layers.Dense(synthetic.NUM_STILL_LABELS, name="stills_classifier")
    model = keras.Sequential([trunk, classifier], name=f"{backbone}_stills")
    model.build((None, input_size, input_size, 3))
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
        [int(0.75 * steps)], [learning_rate, learning_rate / 10]
    )
    optimizer = keras.optimizers.Adam(schedule)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def train_step(images: tf.Tensor, labels: tf.Tensor, flips: tf.Tensor) -> tf.Tensor:
        images = tf.where(flips[:, None, None, None], tf.reverse(images, axis=[2]), images)  # (B, S, S, 3)
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(images, training=True))
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    order_rng = np.random.default_rng([seed, 1])
    order: list[int] = []
    losses = []
    bar = tqdm(range(steps), desc=f"pretrain {backbone}", unit="step", disable=not progress, file=sys.stdout)
    for _ in bar:
        if len(order) < batch_size:
            order.extend(order_rng.permutation(len(train_inputs)).tolist())
        batch, order = order[:batch_size], order[batch_size:]
        flips = order_rng.random(batch_size) < 0.5
        loss = train_step(train_inputs[batch], train_labels[batch], flips)
        losses.append(float(loss))
        if len(losses) % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
    logits = np.concatenate(
        [model(heldout_inputs[i : i + 256], training=False).numpy() for i in range(0, len(heldout_inputs), 256)]
    )  # (N, labels)
    heldout_top1 = float(np.mean(np.argmax(logits, axis=-1) == heldout_labels) * 100)

    # Keras needs the .weights.h5 suffix, so the temporary name keeps it (files.write_atomic keeps only ".h5").
    temporary = os.path.join(directory, f".tmp-{os.getpid()}-{os.path.basename(output)}")
    try:
        trunk.save_weights(temporary)
        os.replace(temporary, output)
    finally:
        if os.path.lexists(temporary):
            os.remove(temporary)
    record = {
        "backbone": backbone,
        "task": "data.synthetic.render_stills: actor shape x colour "
        f"({synthetic.NUM_STILL_LABELS} labels), not the action classes",
        "generation_seed": generation_seed,
        "train_images": int(len(train_inputs)),
        "heldout_images": int(len(heldout_inputs)),
        "heldout_seed": generation_seed + 1,
        "steps": steps,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "input_size": input_size,
        "seed": seed,
        "final_train_loss": round(float(np.mean(losses[-50:])), 4),
        "heldout_top1": round(heldout_top1, 2),
        "chance_top1": round(100 / synthetic.NUM_STILL_LABELS, 2),
        "seconds": round(time.perf_counter() - start, 1),
        "parameters": int(trunk.count_params()),
        "sha256": sha256(output),
    }
    files.write_json(output + ".json", record)
    return record


def main(argv: Sequence[str]) -> None:
    """Pretrains from the flags and prints where the weights are."""
    del argv
    if not _OUTPUT.value:
        raise app.UsageError("--output is required (the weights file to write, *.weights.h5).")
    from stpa.engine import flags as stpa_flags

    stpa_flags.quiet_logs()
    try:
        record = pretrain(
            backbone=_BACKBONE.value,
            output=_OUTPUT.value,
            generation_seed=_GENERATION_SEED.value,
            train_images=_TRAIN_IMAGES.value,
            heldout_images=_HELDOUT_IMAGES.value,
            steps=_STEPS.value,
            batch_size=_BATCH_SIZE.value,
            learning_rate=_LEARNING_RATE.value,
            input_size=_INPUT_SIZE.value,
            seed=_SEED.value,
            progress=_PROGRESS.value,
        )
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    except files.WriteError as error:
        sys.exit(f"stpa.pretrain_backbone: {error}")
    print(
        f"held-out top-1 {record['heldout_top1']:.1f} % (chance {record['chance_top1']:.1f} %) after "
        f"{record['steps']} steps, {record['seconds'] / 60:.1f} min\n"
        f"weights: {_OUTPUT.value} (sha256 {record['sha256'][:16]}...)\nrecord:  {_OUTPUT.value}.json"
    )


if __name__ == "__main__":
    define_flags()
    app.run(main)
