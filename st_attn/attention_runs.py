"""The set-up `st_attn.localize` and `st_attn.visualize` share: a trained model's attention probe and its test clips.

`define_run_flags` defines the flags (which model, which data, how many frames); `open_attention_run` opens the model
(a `stpa.train` run directory -- its family must be registered: the command lines import `stpa.families` -- or a
.keras file) and the test clips of a split (or their cached features, `st_attn.feature_cache`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any


def define_run_flags(*, records_required: bool = False) -> None:
    """The flags `st_attn.localize` and `st_attn.visualize` share: which model, which data, how many frames."""
    from absl import flags

    flags.DEFINE_string("model_dir", None, "Run directory of `python -m stpa.train` (config.json + checkpoints).")
    flags.DEFINE_string("model_path", None, "Or: a saved .keras ST-attn model (then give --backbone, --input_size).")
    flags.DEFINE_string(
        "records_dir",
        None,
        "Prepared dataset (data.prepare --out_dir): frames and ground truth.",
        required=records_required,
    )
    flags.DEFINE_string(
        "features_dir",
        None,
        "Cached features (st_attn.features --out_dir) for a model trained on "
        "them; ground truth from --records_dir or the records the features came from.",
    )
    flags.DEFINE_string("split", "test", "Split directory to use.")
    flags.DEFINE_integer("num_frames", 25, "n, frames per test clip (segment centres).", lower_bound=1)
    flags.DEFINE_string("backbone", None, "With --model_path: the backbone (for the input normalisation).")
    flags.DEFINE_enum("modality", "rgb", ["rgb", "flow"], "With --model_path: the stream.")
    flags.DEFINE_integer("input_size", None, "With --model_path: the input size.")


@dataclasses.dataclass
class AttentionRun:
    """What `open_attention_run` sets up for a command line.

    Attributes:
      probe: the attention-outputs model (logits, mask, temporal weights).
      build: the model's build arguments (`load_trained`).
      dataset: test batches `(inputs, labels, metadata)` as the model reads them.
      input_size: side of the square crop the model saw.
      records_split: the prepared split holding the frames and ground truth.
    """

    probe: Any
    build: dict
    dataset: Any
    input_size: int
    records_split: str


def open_attention_run(flag_values, *, batch_size: int) -> AttentionRun:
    """The set-up `st_attn.localize` and `st_attn.visualize` share: model, test clips (or features), ground truth.

    Args:
      flag_values: parsed flags of `define_run_flags`.
      batch_size: clips per forward pass.

    The run directory's family must be registered (a command line's `main` imports `stpa.families` first).

    Raises:
      ValueError: neither --records_dir nor --features_dir.
    """
    from st_attn import feature_cache as features

    config = flag_values
    probe, build = load_trained(
        config.model_dir, config.model_path, backbone=config.backbone, modality=config.modality,
        input_size=config.input_size,
    )  # fmt: skip
    if not config.records_dir and not config.features_dir:
        raise ValueError("--records_dir is required (or --features_dir for a model trained on cached features).")
    features_split = os.path.join(config.features_dir, config.split) if config.features_dir else None
    records_split = os.path.join(config.records_dir, config.split) if config.records_dir else None
    dataset, input_size = attention_dataset(
        build,
        records_split=records_split,
        features_split=features_split,
        num_frames=config.num_frames,
        batch_size=batch_size,
    )
    if records_split is None:
        records_split = features.read_feature_manifest(features_split)["source_records"]
    return AttentionRun(probe, build, dataset, input_size, records_split)


def load_trained(model_dir: str | None, model_path: str | None, *, backbone=None, modality="rgb", input_size=None):
    """The attention probe of a trained model and its build arguments.

    The model comes from a run directory (`stpa.engine.checkpoints.load_model`) or a .keras file; the probe
    (`st_attn.models.attention_model`) shares its weights and returns the logits, mask and temporal weights.

    Returns:
      (probe keras.Model, {"backbone", "modality", "flow_length", "input_size", "feature_shape"}).
    """
    import keras

    if bool(model_dir) == bool(model_path):
        raise ValueError("Pass exactly one of --model_dir (a stpa.train run) or --model_path (a .keras file).")
    if model_dir:
        from stpa.engine import checkpoints

        model = checkpoints.load_model(model_dir)
        build = checkpoints.load_run_config(model_dir)["build"]
    else:
        if not os.path.exists(model_path):
            raise FileNotFoundError(f"--model_path={model_path} does not exist.")
        import st_attn.layers  # noqa: F401 - registers the layers for deserialisation.

        model = keras.models.load_model(model_path)
        build = {"backbone": backbone, "modality": modality, "input_size": input_size}
    build.setdefault("flow_length", 5)
    build.setdefault("feature_shape", None)
    from st_attn import models

    models.require_attention(model)
    return models.attention_model(model), build


def attention_dataset(
    build: dict,
    *,
    records_split: str | None,
    features_split: str | None,
    num_frames: int,
    batch_size: int,
):
    """The test clips of a split (or their cached features) with metadata, as the trained model reads them.

    Args:
      build: the model's build arguments (`load_trained`): backbone, modality, flow_length, input_size.
      records_split: a prepared split directory (`data.prepare`), read when `features_split` is None.
      features_split: a cached-feature split directory (`st_attn.features`), for models trained on features.
      num_frames: n, frames per video (at most the stored number for cached features).
      batch_size: videos per batch.

    Returns:
      `(dataset, input_size)`: the dataset yields `(inputs, labels, metadata)` (`data.pipeline.build_dataset` /
      `st_attn.feature_cache.feature_dataset` with metadata); `input_size` is the side of the square crop the model saw.
    """
    from st_attn import feature_cache as features

    if features_split:
        manifest = features.read_feature_manifest(features_split)
        dataset = features.feature_dataset(
            features_split,
            training=False,
            batch_size=batch_size,
            num_frames=min(num_frames, manifest["num_frames"]),
            with_metadata=True,
        )
        return dataset, int(manifest["input_size"])
    from data import pipeline
    from stpa.blocks.preprocessing import preprocess_for

    if not build.get("backbone") or not build.get("input_size"):
        raise ValueError("With --model_path give --backbone and --input_size (the input normalisation and size).")
    input_size = int(build["input_size"])
    dataset = pipeline.build_dataset(
        records_split,
        training=False,
        num_frames=num_frames,
        batch_size=batch_size,
        modality=build["modality"],
        flow_length=int(build["flow_length"]),
        input_size=input_size,
        preprocess=preprocess_for(build["backbone"], build["modality"]),
        with_metadata=True,
    )
    return dataset, input_size
