"""Shared absl flag definitions of the command lines (`stpa.train`, `stpa.evaluate`, ...).

Each `define_*_flags` function defines one group on `flag_values` (the global `absl.flags.FLAGS` by default); a
command line calls only the groups it uses, so a module knows no flag it does not use. Allowed values that depend on
other modules (backbones, tops per backbone, scales) are checked by `trainer.validate_config` before any work,
with the allowed values in the message.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence

from absl import flags

from stpa.engine.distribute import STRATEGIES

MODELS = ("stpa", "tsn", "st_attn")
MODALITIES = ("rgb", "flow")
FUSIONS = ("max", "sum", "mul")  # Table 1(c); the same tuple as stpa.layers.FUSIONS (checked by the tests).
OPTIMIZERS = ("sgd", "adam")
MIXED_PRECISION = ("none", "mixed_float16", "mixed_bfloat16")
CROPS = ("1", "3", "10")


def parse_options(items: Sequence[str] | None, flag_name: str) -> dict:
    """Parses `key=value` items (a list flag) into a dict; values are Python literals, else strings.

    Args:
      items: e.g. ["spatial_attention=False", "lstm_channels=512"].
      flag_name: for the error message.

    Returns:
      {"spatial_attention": False, "lstm_channels": 512}.
    """
    options = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--{flag_name} takes key=value items, got {item!r}.")
        value = value.strip()
        lowered = value.lower()
        if lowered in ("true", "false", "none"):
            options[key.strip()] = {"true": True, "false": False, "none": None}[lowered]
            continue
        try:
            options[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key.strip()] = value
    return options


def quiet_logs(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Shows warnings and errors only, unless the user passed absl's --verbosity (e.g. -v=0 for TF's INFO lines)."""
    from absl import logging

    if "verbosity" in flag_values and not flag_values["verbosity"].present:
        logging.set_verbosity(logging.WARNING)


def define_data_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Where the prepared records are (written by `python -m data.prepare`)."""
    flags.DEFINE_string("records_dir", None, "Prepared dataset: the --out_dir of data.prepare, holding one "
                        "directory per split (train/, test/) with *.tfrecord shards and manifest.json.",
                        flag_values=flag_values)
    flags.DEFINE_string("train_split", "train", "Split directory under --records_dir to train on.",
                        flag_values=flag_values)
    flags.DEFINE_string("eval_split", "test", "Split directory under --records_dir to validate / evaluate on "
                        "('' for none).", flag_values=flag_values)


def define_model_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """The arguments of `stpa.models.build_model` (Sec. 3.4, Table 1)."""
    flags.DEFINE_enum("model", "stpa", list(MODELS), "Network: STPA (Du et al.), the TSN baseline of Table 1(e), "
                      "or ST-attn (Meng et al.).", flag_values=flag_values)
    flags.DEFINE_string("backbone", "inception_resnet_v2", "Backbone CNN (see stpa.models.BACKBONES).",
                        flag_values=flag_values)
    flags.DEFINE_integer("num_classes", None, "Number of classes (default: from the records' manifest).",
                         lower_bound=1, flag_values=flag_values)
    flags.DEFINE_enum("modality", "rgb", list(MODALITIES), "Stream: RGB frames or stacked optical flow.",
                      flag_values=flag_values)
    flags.DEFINE_integer("scales", 3, "Number of pyramid layers N (Table 1(b)).", lower_bound=1,
                         flag_values=flag_values)
    flags.DEFINE_string("top", "C", "Top layer of the pyramid (Table 1(a); per backbone, see stpa.models.TOPS).",
                        flag_values=flag_values)
    flags.DEFINE_enum("fusion", "mul", list(FUSIONS), "Fusion F of the per-scale scores (Eq. 3, Table 1(c)).",
                      flag_values=flag_values)
    flags.DEFINE_integer("flow_length", 5, "Optical-flow frames per stack (2*flow_length input channels).",
                         lower_bound=1, flag_values=flag_values)
    flags.DEFINE_float("dropout", None, "Dropout before the classifier (default: 0.5 RGB, 0.7 flow, Sec. 3.4).",
                       lower_bound=0.0, upper_bound=1.0, flag_values=flag_values)
    flags.DEFINE_string("weights", None, "Backbone initialisation: 'imagenet', a local weights file, or none.",
                        flag_values=flag_values)
    flags.DEFINE_integer("input_size", None, "Square input size (default: the backbone's, e.g. 299 for "
                         "Inception-ResNet-V2).", lower_bound=8, flag_values=flag_values)
    flags.DEFINE_boolean("partial_bn", False, "Freeze every batch normalisation of the backbone but the first "
                         "(TSN's partial BN).", flag_values=flag_values)
    flags.DEFINE_list("model_options", [], "Extra build_model keyword arguments as key=value (e.g. for ST-attn: "
                      "spatial_attention=False).", flag_values=flag_values)


def define_train_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Optimisation, the Eq. 9 coefficients, checkpoints, logging and distribution."""
    fv = flag_values
    flags.DEFINE_string("model_dir", None, "Run directory: checkpoints (ckpt/, best/), best.keras, TensorBoard "
                        "logs (train/, validation/), flags.txt, config.json. Re-running resumes.", flag_values=fv)
    flags.DEFINE_list("streams", None, "Train, evaluate and fuse several streams in one command, e.g. rgb,flow: "
                      "each goes to --model_dir/<stream> with --modality set to it.", flag_values=fv)
    flags.DEFINE_integer("train_frames", 3, "K, frames (segments) per training clip (Sec. 3.4).", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_integer("batch_size", 64, "Global batch size (split over the replicas).", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_enum("optimizer", "sgd", list(OPTIMIZERS), "Optimizer (paper: SGD, momentum 0.9).",
                      flag_values=fv)
    flags.DEFINE_float("momentum", 0.9, "SGD momentum.", lower_bound=0.0, flag_values=fv)
    flags.DEFINE_float("learning_rate", None, "Initial learning rate (default: 0.001 RGB, 0.005 flow).",
                       lower_bound=0.0, flag_values=fv)
    flags.DEFINE_list("lr_boundaries", None, "Steps at which the learning rate is divided by 10 (default: "
                      "4000,8000 RGB; 12000,24000 flow).", flag_values=fv)
    flags.DEFINE_list("lr_values", None, "Learning rate of each piece (one more than --lr_boundaries); "
                      "overrides --learning_rate.", flag_values=fv)
    flags.DEFINE_integer("max_steps", None, "Training steps (default: 12000 RGB, 30000 flow).", lower_bound=0,
                         flag_values=fv)
    flags.DEFINE_float("weight_decay", 4e-5, "lambda of Eq. 9 (L2 term on trainable kernels).", lower_bound=0.0,
                       flag_values=fv)
    flags.DEFINE_float("beta", 1e-4, "beta of Eq. 9 (interaction-aware loss, Eq. 6); 0 switches it off.",
                       lower_bound=0.0, flag_values=fv)
    flags.DEFINE_float("gamma", 1e-4, "gamma of Eq. 9 (attention loss, Eq. 7-8); 0 switches it off.",
                       lower_bound=0.0, flag_values=fv)
    flags.DEFINE_float("lambda_tv", 1e-5, "ST-attn: weight of the total-variation mask loss (Eq. 7 of Meng et al.).",
                       lower_bound=0.0, flag_values=fv)
    flags.DEFINE_float("lambda_contrast", 1e-4, "ST-attn: weight of the contrast mask loss (Eq. 8 of Meng et al.).",
                       lower_bound=0.0, flag_values=fv)
    flags.DEFINE_float("lambda_unimodal", 1.0, "ST-attn: weight of the unimodality loss (Eq. 9 of Meng et al.).",
                       lower_bound=0.0, flag_values=fv)
    flags.DEFINE_string("features_dir", None, "ST-attn cached-feature mode: records of backbone features "
                        "(st_attn.features); the attention head is trained on them instead of on frames.",
                        flag_values=fv)
    flags.DEFINE_integer("eval_every", 1000, "Validate, write attention images and keep the best model every this "
                         "many steps (0: only at the end).", lower_bound=0, flag_values=fv)
    flags.DEFINE_integer("eval_frames", 25, "K of validation during training (Sec. 3.4 tests with 25).",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("eval_batch_size", 8, "Validation batch size.", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("max_eval_videos", None, "Validate on at most this many videos (default: all).",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("log_every", 10, "Write training scalars every this many steps.", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_integer("checkpoint_every", None, "Save a checkpoint every this many steps (default: "
                         "--eval_every, or 500).", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("keep_checkpoints", 3, "How many recent checkpoints to keep (plus the best).",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_enum("strategy", "default", list(STRATEGIES), "tf.distribute strategy: one device, all GPUs of "
                      "this machine (mirrored), or several machines (multi_worker, configured by TF_CONFIG).",
                      flag_values=fv)
    flags.DEFINE_enum("mixed_precision", "none", list(MIXED_PRECISION), "Keras mixed-precision policy "
                      "(mixed_float16 adds dynamic loss scaling).", flag_values=fv)
    flags.DEFINE_boolean("jit_compile", False, "Compile the training step with XLA.", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Random seed (weights, sampling, augmentation).", flag_values=fv)
    flags.DEFINE_boolean("deterministic", False, "Deterministic ops and input order (slower).", flag_values=fv)
    flags.DEFINE_boolean("progress", True, "Show a progress bar.", flag_values=fv)


def define_eval_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Test-time protocol of Sec. 3.4 (K = 25 frames, centre / 3 / 10 crops)."""
    fv = flag_values
    flags.DEFINE_string("model_dir", None, "Run directory written by stpa.train.", flag_values=fv)
    flags.DEFINE_enum("checkpoint", "last", ["best", "last"], "Which weights of --model_dir: the last checkpoint, or "
                      "the best on validation (chosen on training's --eval_split, by default the test split, so "
                      "report test numbers with 'last').", flag_values=fv)
    flags.DEFINE_string("saved_model", None, "Evaluate an exported SavedModel (stpa.export) instead of "
                        "--model_dir.", flag_values=fv)
    flags.DEFINE_string("records_dir", None, "Prepared dataset (data.prepare --out_dir).", flag_values=fv)
    flags.DEFINE_string("split", "test", "Split directory under --records_dir.", flag_values=fv)
    flags.DEFINE_integer("test_frames", 25, "K, frames per video at test time (Sec. 3.4).", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_enum("crops", "1", list(CROPS), "Centre crop, 3 crops, or 10 crops (4 corners + centre, and "
                      "their flips); scores are averaged over crops.", flag_values=fv)
    flags.DEFINE_integer("batch_size", 4, "Videos per batch.", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("max_videos", None, "Evaluate at most this many videos.", lower_bound=1, flag_values=fv)
    flags.DEFINE_string("output", None, "Score file (.npz; default <model_dir>/eval/scores_<split>_K<K>_"
                        "crops<crops>.npz); metrics JSON and confusion-matrix PNG are written next to it.",
                        flag_values=fv)
