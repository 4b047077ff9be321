"""The run directory (`--model_dir`) of `stpa.train` and reloading a trained model from it.

Layout:
  model_dir/
    flags.txt          the effective flags; `python -m stpa.train --flagfile=model_dir/flags.txt` reproduces the run
    config.json        what the model is: build_model arguments, classes, input size, train K (written once)
    ckpt/              tf.train.CheckpointManager: the last --keep_checkpoints checkpoints (model, optimizer slots,
                       step, best validation metric, the random-number state of the model's layers and the
                       number of training clips consumed); a re-run resumes from the newest, exactly
    best/              one checkpoint: the weights with the best validation top-1 (mAP for multi-label data)
    best.keras         the same weights as a Keras model file (`keras.models.load_model`)
    train/, validation/  TensorBoard event files

`load_model(model_dir)` rebuilds the network from config.json and restores the best (or last) weights; it needs no
flags and never downloads anything (backbone weights come from the checkpoint).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import keras
import tensorflow as tf

from data import files

CONFIG_FILE = "config.json"
FLAGS_FILE = "flags.txt"
CHECKPOINT_DIR = "ckpt"
BEST_DIR = "best"
BEST_KERAS = "best.keras"

# config.json keys that define the network; a resumed run must agree on them.
ARCHITECTURE_KEYS = ("build",)
# Training-checkpoint objects that make a resume exact (checkpoints written before them resume inexactly).
INPUT_POSITION = "input_clips"
RNG_STATES = "rng_states"


def run_config_dict(
    *,
    build: dict,
    input_name: str,
    multi_label: bool,
    class_names: list,
    train_frames: int,
    data,
    input_size: int,
    model: str,
    family_entries: Mapping[str, Any] | None = None,
) -> dict:
    """config.json's content (the layout of format 1, which every run directory has).

    Args:
      build: the family's `build_kwargs` (rebuilds the network with `build_from_config`).
      input_name: the input source ("frames", or a family's, e.g. "features").
      multi_label: multi-hot labels.
      class_names: the class names of the records.
      train_frames: K of training.
      data: the run's `engine.config.DataConfig` (modality, flow_length).
      input_size: the resolved frame size.
      model: the family name.
      family_entries: the family's own top-level entries (`ModelFamily.run_config_entries`, e.g. its backbone).
    """
    return {
        "build": build,
        "input": input_name,
        "multi_label": multi_label,
        "class_names": class_names,
        "train_frames": train_frames,
        **(family_entries or {}),
        "modality": data.modality,
        "flow_length": data.flow_length,
        "input_size": input_size,
        "model": model,
    }


def save_run_config(model_dir: str, config: dict) -> None:
    """Writes config.json atomically (directories created; a crash never leaves a half-written file)."""
    files.write_json(os.path.join(model_dir, CONFIG_FILE), config, sort_keys=True)


def load_run_config(model_dir: str) -> dict:
    """Reads config.json of a run.

    Raises:
      FileNotFoundError naming the directory and what to do.
    """
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found: {model_dir!r} is not a run directory of `python -m stpa.train` "
            "(or the run has not started yet)."
        )
    with open(path) as f:
        return json.load(f)


def check_same_architecture(model_dir: str, config: dict) -> None:
    """Raises ValueError when `config` builds another network than the run already in `model_dir`."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(path):
        return
    from stpa.engine import family as family_lib

    previous = load_run_config(model_dir)
    for key in ARCHITECTURE_KEYS:
        old, new = previous.get(key, {}), config.get(key, {})
        ignored: set[str] = set()  # What a rebuild overrides (e.g. the initial weights) defines no network.
        if old.get("model") == new.get("model") and old.get("model") in family_lib.family_names():
            family = family_lib.get_family(old["model"])
            old, new = family.canonical_build(old), family.canonical_build(new)  # Defaults filled in on both sides.
            ignored = set(family.rebuild_overrides())
        differing = sorted(k for k in set(old) | set(new) if k not in ignored and old.get(k) != new.get(k))
        if differing:
            details = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in differing)
            raise ValueError(
                f"--model_dir {model_dir!r} holds a run of another network ({details}); resuming it "
                "would fail. Use a new --model_dir, or the flags of that run "
                f"(--flagfile={os.path.join(model_dir, FLAGS_FILE)})."
            )


def build_from_config(config: dict) -> keras.Model:
    """Builds the (untrained) network described by a config.json dict, without downloading weights.

    The family is config["build"]["model"] (a registered `engine.family.ModelFamily`); its `from_build_kwargs`
    applies what a rebuild overrides (`ModelFamily.rebuild_overrides`, e.g. no weight download).
    """
    from stpa.engine import family as family_lib

    build = dict(config["build"])
    return family_lib.get_family(build["model"]).from_build_kwargs(build)


def latest_checkpoint(model_dir: str, which: str = "last") -> str | None:
    """Path prefix of the newest checkpoint in ckpt/ ("last") or best/ ("best"), or None."""
    directory = os.path.join(model_dir, BEST_DIR if which == "best" else CHECKPOINT_DIR)
    return tf.train.latest_checkpoint(directory)


def weights_checkpoint(model: keras.Model, **others) -> tf.train.Checkpoint:
    """A `tf.train.Checkpoint` holding every variable of `model`, keyed by its position in `model.weights`.

    Why not `tf.train.Checkpoint(model=model)`: TensorFlow's object graph only sees the variables and sub-layers a
    Keras 3 layer holds as attributes; those a layer keeps in a Python list (e.g. the sub-layer stacks of
    `st_attn.layers`) are not reachable through it, so they would be silently left out of the checkpoint.
    `model.weights` lists every variable in an order fixed by the architecture, so positions identify them for any
    model rebuilt from the same config.json (as Keras' own `.weights.h5` files do).

    Args:
      model: the network.
      **others: further objects to save with it (optimizer, step, ...).
    """
    return tf.train.Checkpoint(model_weights=list(model.weights), **others)


def rng_state_variables(model: keras.Model) -> list:
    """The random-number state of `model`'s layers: the `keras.random.SeedGenerator` states (dropout, ...).

    They are the variables of `model.variables` that are not weights; their order is fixed by the architecture, as
    that of `model.weights`. A resumed run restores them so its dropout masks continue the uninterrupted run's.
    """
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


def missing_resume_state(checkpoint_path: str) -> list[str]:
    """Names of the exact-resume objects a training checkpoint lacks (written before they were saved); [] if none.

    `INPUT_POSITION` marks a checkpoint of the current layout (`RNG_STATES` has no entries for a model without random
    layers, so it cannot).
    """
    names = {name.split("/", 1)[0] for name, _ in tf.train.list_variables(checkpoint_path)}
    return [name for name in (INPUT_POSITION,) if name not in names]


def restore_weights(model: keras.Model, checkpoint_path: str) -> None:
    """Restores the model's variables from a training checkpoint (the optimizer state is ignored).

    Raises:
      AssertionError (from TensorFlow) when a variable of `model` has no value in the checkpoint.
    """
    status = weights_checkpoint(model).restore(checkpoint_path).expect_partial()
    status.assert_existing_objects_matched()


def load_model(model_dir: str, which: str = "last") -> keras.Model:
    """Reloads a trained model from a run directory.

    Args:
      model_dir: the --model_dir of `stpa.train`.
      which: "last" (the newest checkpoint) or "best" (best on the validation split; falls back to the last one
        when the run has none). Note that `stpa.train` validates on --eval_split, the test split by default (UCF101
        and HMDB51 have no other): report test numbers with "last", not with weights selected on the test set.

    Returns:
      The keras.Model (inputs (B, K, H, W, C) preprocessed frames, K free; output logits (B, num_classes)).

    Raises:
      FileNotFoundError: no config.json or no checkpoint.
      ValueError: the checkpoint's variables do not fit the rebuilt network (one line naming the migration).
    """
    if which not in ("best", "last"):
        raise ValueError(f"which must be 'best' or 'last', got {which!r}.")
    config = load_run_config(model_dir)
    path = latest_checkpoint(model_dir, which)
    if path is None and which == "best":
        path = latest_checkpoint(model_dir, "last")
    if path is None:
        raise FileNotFoundError(
            f"no checkpoint in {model_dir!r}/{CHECKPOINT_DIR}: train first "
            f"(python -m stpa.train --model_dir={model_dir} ...)."
        )
    model = build_from_config(config)
    try:
        restore_weights(model, path)
    except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"the checkpoint {path} does not fit the network that {model_dir}/{CONFIG_FILE} rebuilds ({first_line}); "
            "a run whose network changed between versions must be retrained (BUILD.md, 'Migration')."
        ) from error
    return model


def write_flags_file(model_dir: str, flag_lines: list[str]) -> str:
    """Writes flags.txt (one `--name=value` per line). Returns its path."""
    path = os.path.join(model_dir, FLAGS_FILE)
    header = "# Effective flags of this run; reproduce it with: python -m stpa.train --flagfile=" + path + "\n"
    return files.write_text(path, header + "\n".join(flag_lines) + "\n")
