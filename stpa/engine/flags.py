"""Shared absl flag definitions of the command lines (`stpa.train`, `stpa.evaluate`, ...).

Each `define_*_flags` function defines one group on `flag_values` (the global `absl.flags.FLAGS` by default); a
command line calls only the groups it uses, so a module knows no flag it does not use. Allowed values that depend on
other modules (backbones, tops per backbone, scales) are checked by `trainer.validate_config` before any work,
with the allowed values in the message.
"""

from __future__ import annotations

from absl import flags

from stpa.engine import config as config_lib

CROPS = ("1", "3", "10")


def quiet_logs(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Shows warnings and errors only, unless the user passed absl's --verbosity (e.g. -v=0 for TF's INFO lines)."""
    from absl import logging

    if "verbosity" in flag_values and not flag_values["verbosity"].present:
        logging.set_verbosity(logging.WARNING)


def define_train_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """The flags of `stpa.train`: derived from the one configuration definition (`engine.config.define_flags`)."""
    config_lib.define_flags(flag_values)
    flags.DEFINE_list(
        "streams",
        None,
        "Train, evaluate and fuse several streams in one command, e.g. rgb,flow: "
        "each goes to --model_dir/<stream> with --modality set to it.",
        flag_values=flag_values,
    )


def define_eval_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Test-time protocol of Sec. 3.4 (K = 25 frames, centre / 3 / 10 crops)."""
    fv = flag_values
    flags.DEFINE_string("model_dir", None, "Run directory written by stpa.train.", flag_values=fv)
    flags.DEFINE_enum(
        "checkpoint",
        "last",
        ["best", "last"],
        "Which weights of --model_dir: the last checkpoint, or "
        "the best on validation (chosen on training's --eval_split, by default the test split, so "
        "report test numbers with 'last').",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "saved_model", None, "Evaluate an exported SavedModel (stpa.export) instead of --model_dir.", flag_values=fv
    )
    flags.DEFINE_string("records_dir", None, "Prepared dataset (data.prepare --out_dir).", flag_values=fv)
    flags.DEFINE_string("split", "test", "Split directory under --records_dir.", flag_values=fv)
    flags.DEFINE_integer(
        "test_frames", 25, "K, frames per video at test time (Sec. 3.4).", lower_bound=1, flag_values=fv
    )
    flags.DEFINE_enum(
        "crops",
        "1",
        list(CROPS),
        "Centre crop, 3 crops, or 10 crops (4 corners + centre, and their flips); scores are averaged over crops.",
        flag_values=fv,
    )
    flags.DEFINE_integer("batch_size", 4, "Videos per batch.", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("max_videos", None, "Evaluate at most this many videos.", lower_bound=1, flag_values=fv)
    flags.DEFINE_string(
        "output",
        None,
        "Score file (.npz; default <model_dir>/eval/scores_<split>_K<K>_"
        "crops<crops>.npz); metrics JSON and confusion-matrix PNG are written next to it.",
        flag_values=fv,
    )
    flags.DEFINE_boolean(
        "jit_compile",
        False,
        "Compile the model's test forward pass with XLA (--model_dir only). "
        "On a CPU it takes ~0.6x the CPU time of the graph for ST-attn (BUILD.md, Performance); "
        "scores equal the graph's to float32 rounding.",
        flag_values=fv,
    )
