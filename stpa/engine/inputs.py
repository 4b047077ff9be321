"""Input sources: where a run's clips come from, chosen once per run and stored as config.json's "input".

`RecordFrames` ("frames") reads the prepared video records through `data.pipeline.build_dataset` (TSN sampling,
augmentation, crops). A family may provide other sources (`ModelFamily.input_sources`, e.g. ST-attn's cached
backbone features); `choose` picks the source of a training run, `source_for` the one of a saved run.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable
from typing import Any

import tensorflow as tf
from typing_extensions import override

from data import records as record_format

FRAMES = "frames"


class InputSource(abc.ABC):
    """One kind of input. Subclasses implement `dataset` (abstract: without it, instantiation fails with TypeError).

    Attributes:
      name: stored in config.json's "input".
      root: the directory holding one sub-directory per split.
      frames_on_device: training clips arrive as uint8 frames that the step normalises on the device (False: the
        source yields the model's input as is).
      pictures: the clips can be drawn (attention summaries).
      crops: the crop counts evaluation may ask for.
      what_to_run: the command that writes a missing split (for error messages).
    """

    name = ""
    frames_on_device = False
    pictures = False
    crops: tuple[int, ...] = (1,)
    what_to_run = ""

    def __init__(self, root: str):
        self.root = root

    def split_dir(self, split: str) -> str:
        """The directory of one split."""
        return os.path.join(self.root, split)

    def read_manifest(self, split: str) -> dict:
        """The split's manifest.json (`data.records.read_manifest`)."""
        return record_format.read_manifest(self.split_dir(split))

    def video_count(self, split: str) -> int | None:
        """Number of videos of a split (None when unknown)."""
        try:
            return record_format.manifest_video_count(self.read_manifest(split))
        except (OSError, ValueError):
            return None

    def check_splits(self, splits: list[str], flags_hint: str = "set --train_split/--eval_split") -> None:
        """Raises ValueError naming a missing split, the command that writes it, and the flags that choose it."""
        for split in splits:
            manifest = os.path.join(self.split_dir(split), record_format.MANIFEST_NAME)
            if not os.path.exists(manifest):
                raise ValueError(
                    f"no prepared split {split!r} in {self.root!r} ({manifest} is missing); "
                    f"{self.what_to_run}{self.root} ...` first, or {flags_hint}."
                )

    def feature_shape(self, manifest: dict) -> list[int] | None:
        """The (h, w, C) the model reads when the source yields features (stored in config.json), else None."""
        del manifest
        return None

    def flip_label_map(self, manifest: dict) -> dict[str, str | None]:
        """The non-identity part of the flip label map training clips are mirrored with.

        Stored as config.json's "flip_label_map", which 10-crop testing reads; empty when no label changes.
        """
        del manifest
        return {}

    @abc.abstractmethod
    def dataset(
        self,
        split: str,
        *,
        training: bool,
        num_frames: int,
        batch_size: int,
        multi_label: bool,
        num_classes: int,
        seed: int | None = None,
        deterministic: bool = False,
        input_context: tf.distribute.InputContext | None = None,
        skip: int = 0,
        with_metadata: bool = False,
        preprocess: Callable | None = None,
        crops: int = 1,
        raw: bool = False,
    ) -> tf.data.Dataset:
        """Batches `(clips (B, K, ...), labels[, metadata])` of one split.

        Args:
          split: the split directory name.
          training: TSN training sampling + augmentation, repeated; else test sampling, one pass.
          num_frames: K.
          batch_size: the global batch (per pipeline under `input_context`).
          multi_label: multi-hot labels.
          num_classes: C.
          seed: stream seed (training).
          deterministic: fixed element order.
          input_context: tf.distribute input context (training).
          skip: clips already consumed (a resumed stream).
          with_metadata: also yield the metadata dict (video ids, ...).
          preprocess: the model's normalisation (applied in the pipeline); None for raw values.
          crops: test crops (1, 3, 10).
          raw: training clips as uint8 (normalised on the device).
        """


class RecordFrames(InputSource):
    """Frames (RGB or flow stacks) of prepared video records (`python -m data.prepare`)."""

    name = FRAMES
    frames_on_device = True
    pictures = True
    crops = (1, 3, 10)
    what_to_run = "run `python -m data.prepare --out_dir="

    def __init__(
        self,
        root: str,
        *,
        modality: str,
        flow_length: int,
        input_size: int,
        flip: bool = True,
        flip_label_map: str = "manifest",
    ):
        super().__init__(root)
        self.modality, self.flow_length, self.input_size = modality, flow_length, input_size
        self.flip, self.flip_map_spec = flip, flip_label_map  # training's mirror (`data.pipeline.build_dataset`)

    @override
    def flip_label_map(self, manifest: dict) -> dict[str, str | None]:
        from data import augment

        if not self.flip:  # never mirrored: 10-crop testing then takes no mirrored crop's score
            return {name: None for name in manifest.get("class_names") or []}
        return augment.resolve_flip_label_map(self.flip_map_spec, manifest.get("flip_label_map"))

    @override
    def dataset(
        self,
        split,
        *,
        training,
        num_frames,
        batch_size,
        multi_label,
        num_classes,
        seed=None,
        deterministic=False,
        input_context=None,
        skip=0,
        with_metadata=False,
        preprocess=None,
        crops=1,
        raw=False,
    ):
        from data import pipeline

        extra = {"crops": crops} if not training else {}
        if training:  # uint8 clips (a quarter of the host traffic); the step normalises them on the device.
            extra.update(
                frames_dtype=tf.uint8,
                seed=seed,
                deterministic=deterministic,
                input_context=input_context,
                skip=skip,
                flip=self.flip,
                flip_label_map=self.flip_map_spec,
            )
        else:
            extra["preprocess"] = preprocess
        return pipeline.build_dataset(
            self.split_dir(split),
            training=training,
            num_frames=num_frames,
            batch_size=batch_size,
            modality=self.modality,
            flow_length=self.flow_length,
            input_size=self.input_size,
            multi_label=multi_label,
            num_classes=num_classes,
            with_metadata=with_metadata,
            **extra,
        )


def choose(family: Any, config: Any, input_size: int) -> InputSource:
    """The input source of a training run: the one the family's options select, else frames from records."""
    provided = family.selected_input(config.family)
    if provided is not None:
        name, root = provided
        return family.input_sources()[name](root)
    return RecordFrames(
        config.data.records_dir,
        modality=config.data.modality,
        flow_length=config.data.flow_length,
        input_size=input_size,
        flip=config.data.flip,
        flip_label_map=config.data.flip_label_map,
    )


def source_for(family: Any, run_config: dict, root: str) -> InputSource:
    """The input source of a saved run (config.json) reading the splits under `root`.

    Raises:
      ValueError: config.json names an input the family does not provide.
    """
    name = run_config.get("input", FRAMES)
    if name == FRAMES:
        return RecordFrames(
            root,
            modality=run_config["modality"],
            flow_length=int(run_config["flow_length"]),
            input_size=int(run_config["input_size"]),
        )
    sources = family.input_sources()
    if name not in sources:
        raise ValueError(
            f"config.json's input {name!r} is not provided by --model={family.name}; allowed: {[FRAMES, *sources]}."
        )
    return sources[name](root)
