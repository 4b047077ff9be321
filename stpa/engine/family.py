"""The model-family interface and its registry: everything the engine asks of a network family.

A family (STPA, TSN, ST-attn, or a third paper's network) is one registered `ModelFamily` object. The engine
(training loop, inference loop, serving, summaries, flags) only talks to this interface, so it never names a family
and a new family needs no change to it:

  class ToyFamily(ModelFamily):
      name = "toy"
      config_class = ToyConfig                                  # typed dataclass of its options (become flags)
      def build(self, config, num_classes, data): ...           # -> keras.Model, frames (B, K, S, S, C) -> logits
      def loss_terms(self, config, outputs, labels, model, *, multi_label): ...  # weighted terms, CE included

  register_family(ToyFamily())

The command lines register the project's families in one place (`stpa.families`); a family is looked up by the
name stored in the run's config (`--model`, config.json's build["model"]).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

_REGISTRY: dict[str, ModelFamily] = {}


def classification_loss(labels: tf.Tensor, logits: tf.Tensor, multi_label: bool = False) -> tf.Tensor:
    """Cross-entropy, mean over the batch: softmax over classes, or sigmoid averaged over classes (multi-label).

    Args:
      labels: int `(B,)` class indices, or float `(B, num_classes)` multi-hot targets when `multi_label`.
      logits: `(B, num_classes)`.
      multi_label: sigmoid cross-entropy (Charades) instead of softmax cross-entropy.

    Returns:
      float32 scalar.
    """
    logits = tf.cast(logits, tf.float32)
    if multi_label:
        targets = tf.cast(labels, tf.float32)
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits))
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))


def total_loss(terms: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """The one sum of an objective: the weighted terms as float32, with "total", their sum.

    Args:
      terms: {name: scalar}, each term already multiplied by its coefficient (e.g. Eq. 9's).

    Returns:
      {name: float32 scalar} with "total" added.
    """
    terms = {name: tf.cast(value, tf.float32) for name, value in terms.items()}
    terms["total"] = tf.add_n(list(terms.values()))
    return terms


def weight_decay_loss(model: keras.Model) -> tf.Tensor:
    """The sum of w^2 over the trainable kernels (rank >= 2: conv, dense, attention; no biases or BN), float32."""
    kernels = [weight for weight in model.trainable_weights if len(weight.shape) >= 2]
    if not kernels:
        return tf.constant(0.0)
    return tf.add_n([tf.reduce_sum(tf.square(tf.cast(kernel, tf.float32))) for kernel in kernels])


@dataclasses.dataclass(frozen=True)
class ScheduleGroup:
    """Families whose study rows train on one schedule (`ModelFamily.schedule_group`; the engine never reads it).

    A study schedule (`experiments.runner.Options.steps`, a pre-registration's `schedule:` line such as
    "stpa=1500, st_attn=1000") gives the steps per group by `name`; `experiments.reproduce --quick` gives every row
    of the group `quick_steps`. Families that train alike share one group object (TSN and STPA).

    Attributes:
      name: the group's name in a study schedule.
      quick_steps: the steps of the group's rows in a `--quick` study.
    """

    name: str
    quick_steps: int


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """What a built model takes: `(B, K, size, size, channels)` clips after `preprocess` (float32 [0, 255] in)."""

    size: int
    channels: int
    preprocess: Callable[[tf.Tensor], tf.Tensor]


class ModelFamily(abc.ABC):
    """One network family: subclasses set `name` and `config_class` and implement `build`.

    `build` is abstract: a subclass without it fails at instantiation (TypeError). Everything else has a default that
    fits a frame-input classifier without attention outputs (`loss_terms`: cross-entropy + weight decay; override it
    for more terms).

    Attributes:
      name: the registered name (`--model`, config.json build["model"]).
      config_class: the typed dataclass of the family's options; each field with `engine.config.option` metadata is
        a flag of `stpa.train` (and is written to flags.txt) when this family is chosen.
      attention_outputs: names of the outputs model's attention tensors that serving returns and pictures draw.
      old_shared_flags: options of this family that flagfiles of the other families, written before each family had
        its own flags (their flags.txt holds every option), carry at this family's default: accepted there at that
        default (and ignored); any other value fails (`engine.config.check_family_options`). Default: none.
      schedule_group: the `ScheduleGroup` whose steps the family's rows take in a study schedule (experiments/);
        None (default): the family's rows keep their flagfiles' steps and a study that sets steps refuses them.

    Every typed field is also a `--model_options=key=value` key (old flagfiles).
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type] = type(None)
    attention_outputs: ClassVar[tuple[str, ...]] = ()
    old_shared_flags: ClassVar[tuple[str, ...]] = ()
    schedule_group: ClassVar[ScheduleGroup | None] = None

    # --------------------------------------------------------------------------------------------------- config
    def make_config(self, values: Mapping[str, Any], model_options: Mapping[str, Any] | None = None) -> Any:
        """The family's typed config from flat values (flag names), with `--model_options` items on top.

        Raises:
          ValueError: a `model_options` key that is not a field, listing the allowed ones.
        """
        fields = {f.name: f for f in dataclasses.fields(self.config_class)}
        chosen = {name: values[name] for name in fields if name in values}
        unknown = sorted(set(model_options or {}) - set(fields))
        if unknown:
            raise ValueError(
                f"--model_options {unknown} are not options of --model={self.name}; allowed: {sorted(fields)}."
            )
        for key, value in (model_options or {}).items():
            chosen[key] = tuple(value) if isinstance(value, list) else value
        return self.config_class(**chosen)

    def validate(self, config: Any, data: Any) -> None:
        """Fails fast (ValueError listing allowed values) on options `build` cannot build. Default: no checks."""
        del config, data

    def default_input_size(self, config: Any) -> int:
        """The frame size when `--input_size` is not given."""
        raise ValueError(f"--model={self.name} has no default input size; pass --input_size.")

    def input_spec(self, config: Any, data: Any) -> InputSpec:
        """Frame size, channels and normalisation of the model's input (default: RGB or 2 x flow_length, /127.5-1)."""
        size = int(data.input_size or self.default_input_size(config))
        channels = 3 if data.modality == "rgb" else 2 * int(data.flow_length)
        return InputSpec(size, channels, lambda frames: tf.cast(frames, tf.float32) / 127.5 - 1.0)

    # ----------------------------------------------------------------------------------------------------- build
    @abc.abstractmethod
    def build(self, config: Any, num_classes: int, data: Any, *, feature_shape: list[int] | None = None) -> keras.Model:
        """The network: clips `(B, K, S, S, C)` (K free) -> float32 logits `(B, num_classes)`.

        Args:
          config: the family's typed config (`config_class`).
          num_classes: number of classes.
          data: the run's `engine.config.DataConfig` (modality, flow_length, input_size).
          feature_shape: (h, w, C) when the input source yields cached features `(B, K, h, w, C)` instead of frames.
        """

    def build_kwargs(
        self, config: Any, num_classes: int, data: Any, *, feature_shape: list[int] | None = None
    ) -> dict[str, Any]:
        """What config.json stores under "build" (enough to rebuild the untrained network, `from_build_kwargs`)."""
        build = {
            "model": self.name,
            "num_classes": int(num_classes),
            "modality": data.modality,
            "flow_length": data.flow_length,
            "input_size": int(self.input_spec(config, data).size),
        }
        build.update({name: getattr(config, name) for name in self.build_fields()})
        if feature_shape is not None:
            build["feature_shape"] = [int(v) for v in feature_shape]
        return build

    def build_fields(self) -> list[str]:
        """The config fields that are network-building arguments (config.json "build"; `option(build=True)`)."""
        return [f.name for f in dataclasses.fields(self.config_class) if f.metadata.get("build", True)]

    def canonical_build(self, build: Mapping[str, Any]) -> dict[str, Any]:
        """A "build" dict reduced to what defines the network, defaults filled in (to compare two runs)."""
        defaults = self.make_config({})
        keys = {"model", "num_classes", "modality", "flow_length", "input_size", "feature_shape"}
        canonical = {key: build.get(key) for key in keys}
        for name in self.build_fields():
            value = build.get(name, getattr(defaults, name))
            canonical[name] = list(value) if isinstance(value, tuple) else value
        return canonical

    def rebuild_overrides(self) -> dict[str, Any]:
        """Build arguments a rebuild from config.json sets whatever the run had, e.g. {"weights": None}.

        A rebuild restores a checkpoint into the network, so what only initialises it (a weight download) is
        switched off here; these keys also never make two runs different networks (`checkpoints.
        check_same_architecture`). Default: none.
        """
        return {}

    def run_config_entries(self, config: Any) -> dict[str, Any]:
        """The family's top-level entries of config.json besides "build" (e.g. {"backbone": ...}). Default: none."""
        del config
        return {}

    def rebuild_kwargs(self, build: Mapping[str, Any]) -> dict[str, Any]:
        """A config.json "build" dict with `rebuild_overrides` applied (what `from_build_kwargs` builds)."""
        return {**build, **self.rebuild_overrides()}

    def from_build_kwargs(self, build: Mapping[str, Any]) -> keras.Model:
        """Rebuilds the untrained network of a config.json "build" dict (`rebuild_overrides` applied: no downloads)."""
        from stpa.engine import config as config_lib

        build = self.rebuild_kwargs(build)
        names = {f.name for f in dataclasses.fields(self.config_class)}
        config = self.config_class(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in build.items() if k in names}
        )
        data = config_lib.data_of_run({"flow_length": 5, **build})
        return self.build(config, int(build["num_classes"]), data, feature_shape=build.get("feature_shape"))

    def outputs_model(self, model: keras.Model) -> keras.Model:
        """Same inputs and weights as `model`, dict outputs: "logits" and the `attention_outputs` tensors."""
        return keras.Model(model.input, {"logits": model.output}, name=f"{model.name}_outputs")

    # ------------------------------------------------------------------------------------------------ objective
    def loss_terms(
        self,
        config: Any,
        outputs: Mapping[str, tf.Tensor],
        labels: tf.Tensor,
        model: keras.Model,
        *,
        multi_label: bool,
        weight_decay: float,
    ) -> dict[str, tf.Tensor]:
        """Every term of the objective, each already multiplied by its coefficient (the engine sums them).

        Default: "classification" (cross-entropy) and "weight_decay" (weight_decay * sum w^2; absent when 0).
        """
        terms = {"classification": classification_loss(labels, outputs["logits"], multi_label)}
        if weight_decay:
            terms["weight_decay"] = weight_decay * weight_decay_loss(model)
        return terms

    # ------------------------------------------------------------------------------------------------- pictures
    def summary_images(self, outputs: Mapping[str, np.ndarray], frames: np.ndarray) -> dict[str, np.ndarray]:
        """TensorBoard pictures of one clip's attention: {name: (h, w, 3) uint8}. Default: none."""
        del outputs, frames
        return {}

    def summary_histograms(self, outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """TensorBoard histograms of one clip's attention. Default: none."""
        del outputs
        return {}

    def attention_frames(self, attention: Mapping[str, np.ndarray], frames: np.ndarray) -> list[np.ndarray]:
        """One picture per frame of a clip with the attention drawn on it (the animations of `stpa.predict`).

        Args:
          attention: one clip's `attention_outputs` as NumPy, without the batch axis ({} when there are none).
          frames: `(K, S, S, C)` the clip as the network saw it (the test crop), values in [0, 255].

        Returns:
          K uint8 `(H, W, 3)` pictures of one size. Default: the frames alone (flow colour-coded), enlarged.
        """
        del attention
        from stpa.engine import pictures

        return list(pictures.enlarge(pictures.displayable(frames)))

    def attention_scalars(self, outputs: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Statistics of each clip's attention, from the outputs model's outputs (no extra forward pass).

        The engine averages them: over the training batches of a logging window (TensorBoard `attention/<name>`
        and `<model_dir>/attention_statistics.csv`), and over the test videos in `stpa.evaluate`'s metrics JSON
        ("attention_statistics"). Runs inside the training step's graph (XLA included): TensorFlow ops only.

        Args:
          outputs: `outputs_model(model)`'s outputs for a batch of B clips ("logits" and `attention_outputs`).

        Returns:
          {name: float32 `(B,)`, one value per clip}, the same names for every batch. Default: none.
        """
        del outputs
        return {}

    # ------------------------------------------------------------------------------------------- inputs, export
    def input_sources(self) -> dict[str, Callable[[str], Any]]:
        """Input sources the family provides besides frames from records. Default: none.

        Returns:
          {config.json "input" name: a callable root -> `engine.inputs.InputSource`}.
        """
        return {}

    def selected_input(self, config: Any) -> tuple[str, str] | None:
        """(source name, root directory) when the family's options select a provided source, else None (frames)."""
        del config
        return None

    def add_signatures(
        self, archive: keras.export.ExportArchive, outputs_model: keras.Model, run_config: Mapping[str, Any]
    ) -> None:
        """Adds the family's own SavedModel endpoints (`archive.add_endpoint(name, fn, input_signature=...)`).

        They come beside the engine's `serve_frames`, `serve_video` and `serve_encoded_video`. Default: none.
        """
        del archive, outputs_model, run_config

    def export_error(self, run_config: Mapping[str, Any]) -> str | None:
        """Why a run cannot be exported with the engine's signatures (None: it can)."""
        del run_config
        return None


def register_family(family: ModelFamily) -> ModelFamily:
    """Adds a family to the registry (a second family of the same name replaces the first). Returns it."""
    if not family.name:
        raise ValueError(f"{type(family).__name__} has no name.")
    if not dataclasses.is_dataclass(family.config_class):
        raise ValueError(f"{type(family).__name__}.config_class must be a dataclass.")
    _REGISTRY[family.name] = family
    return family


def family_names() -> tuple[str, ...]:
    """Registered family names, in registration order."""
    return tuple(_REGISTRY)


def unregister_family(name: str) -> ModelFamily:
    """Removes a registered family (tests, plugins that replace one) and returns it.

    Raises:
      ValueError: no family of that name is registered.
    """
    if name not in _REGISTRY:
        raise ValueError(f"no model family {name!r} is registered; registered: {list(_REGISTRY)}.")
    return _REGISTRY.pop(name)


def get_family(name: str) -> ModelFamily:
    """The registered family called `name`.

    Raises:
      ValueError: listing the registered names.
    """
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown --model {name!r}; registered model families: {list(_REGISTRY)} (the command lines "
            "register them in stpa.families)."
        )
    return _REGISTRY[name]


def families() -> tuple[ModelFamily, ...]:
    """Every registered family."""
    return tuple(_REGISTRY.values())
