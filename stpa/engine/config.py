"""The one configuration definition of a training run, and everything derived from it.

A run is `RunConfig` = `model_dir` + `model` (a registered family's name) + that family's typed config + `DataConfig`
+ `OptimConfig` + `LoopConfig`. Each field declared with `option(...)` carries its flag's help, choices and bounds, so

  - the absl flags of `stpa.train` (`define_flags`: the engine sections, then the union of the registered families'
    config fields, each defined once with its owning families' help; `from_flags` refuses another family's option),
  - `from_flags` / `from_values` (flat flag names -> RunConfig; `--model_options=key=value` items of old flagfiles
    are read into the family's typed fields),
  - the lines of flags.txt (`flag_lines`: `--name=value` that reproduce the run)

all come from these dataclasses. config.json (what the network is) is written by the trainer from
`family.build_kwargs` and read back by `engine.checkpoints` (its layout is unchanged since format 1).
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import io
from collections.abc import Mapping, Sequence
from typing import Any

from absl import flags

from stpa.engine import distribute, schedules

MODALITIES = ("rgb", "flow")
OPTIMIZERS = ("sgd", "adam")
MIXED_PRECISION = ("none", "mixed_float16", "mixed_bfloat16")


def option(
    default: Any,
    help: str,
    *,
    kind: str | None = None,
    choices: Sequence[str] | None = None,  # noqa: A002
    lower: float | None = None,
    upper: float | None = None,
    flag: bool = True,
    build: bool = True,
    **field_kwargs,
) -> Any:
    """A dataclass field that is also a command-line flag.

    Args:
      default: the default value (a tuple default is stored through a factory).
      help: the flag's help text.
      kind: "string", "integer", "float", "boolean", "enum", "list", "int_list", "float_list" (default: from the
        default's type; "enum" when `choices` is given).
      choices: allowed values (an enum flag).
      lower: lower bound of a numeric flag.
      upper: upper bound of a numeric flag.
      flag: False for a field that is not a flag.
      build: for family configs: the field is a network-building argument stored in config.json's "build".
    """
    if kind is None:
        kind = (
            "enum"
            if choices
            else {bool: "boolean", int: "integer", float: "float", str: "string"}.get(type(default), "string")
        )
    metadata = {
        "help": help,
        "kind": kind,
        "choices": tuple(choices) if choices else None,
        "lower": lower,
        "upper": upper,
        "flag": flag,
        "build": build,
    }
    if isinstance(default, (list, tuple, dict)):
        value = tuple(default) if not isinstance(default, dict) else default
        return dataclasses.field(default_factory=lambda: value, metadata=metadata, **field_kwargs)
    return dataclasses.field(default=default, metadata=metadata, **field_kwargs)


@dataclasses.dataclass
class DataConfig:
    """Where the clips come from and how they are sampled (TSN sampling, Sec. 3.4)."""

    records_dir: str | None = option(
        None,
        "Prepared dataset: the --out_dir of data.prepare, holding one directory "
        "per split (train/, test/) with *.tfrecord shards and manifest.json.",
    )
    train_split: str = option("train", "Split directory under --records_dir to train on.")
    eval_split: str | None = option(
        "test", "Split directory under --records_dir to validate / evaluate on ('' for none)."
    )
    num_classes: int | None = option(
        None, "Number of classes (default: from the records' manifest).", kind="integer", lower=1
    )
    modality: str = option("rgb", "Stream: RGB frames or stacked optical flow.", choices=MODALITIES)
    flow_length: int = option(5, "Optical-flow frames per stack (2*flow_length input channels).", lower=1)
    input_size: int | None = option(
        None, "Square input size (default: the backbone's, e.g. 299 for Inception-ResNet-V2).", kind="integer", lower=8
    )
    train_frames: int = option(3, "K, frames (segments) per training clip (Sec. 3.4).", lower=1)
    flip: bool = option(
        True,
        "Mirror each training clip left-right with probability 1/2 (TSN; flow x changes "
        "sign). --noflip never mirrors; 10-crop testing then averages the 5 unmirrored crops.",
    )
    flip_label_map: str = option(
        "manifest",
        "The class of a mirrored training clip: 'manifest' (the records' "
        "manifest.json 'flip_label_map'; identity where it has none, as for UCF101, "
        "HMDB51, Charades), 'identity', or comma-separated pairs 'A:B,C:-' of class names "
        "(a mirrored A is a B and a mirrored B an A; a C clip is never mirrored).",
    )
    batch_size: int = option(64, "Global batch size (split over the replicas).", lower=1)
    eval_frames: int = option(25, "K of validation during training (Sec. 3.4 tests with 25).", lower=1)
    eval_batch_size: int = option(8, "Validation batch size.", lower=1)
    max_eval_videos: int | None = option(
        None, "Validate on at most this many videos (default: all).", kind="integer", lower=1
    )


@dataclasses.dataclass
class OptimConfig:
    """Optimisation (Sec. 3.4): optimizer, learning-rate schedule, weight decay (lambda of Eq. 9), precision."""

    optimizer: str = option("sgd", "Optimizer (paper: SGD, momentum 0.9).", choices=OPTIMIZERS)
    momentum: float = option(0.9, "SGD momentum.", lower=0.0)
    learning_rate: float | None = option(
        None, "Initial learning rate (default: 0.001 RGB, 0.005 flow).", kind="float", lower=0.0
    )
    lr_boundaries: tuple[int, ...] | None = option(
        None,
        "Steps at which the learning rate is divided by 10 (default: 4000,8000 RGB; 12000,24000 flow).",
        kind="int_list",
    )
    lr_values: tuple[float, ...] | None = option(
        None,
        "Learning rate of each piece (one more than --lr_boundaries); overrides --learning_rate.",
        kind="float_list",
    )
    max_steps: int | None = option(None, "Training steps (default: 12000 RGB, 30000 flow).", kind="integer", lower=0)
    weight_decay: float = option(4e-5, "lambda of Eq. 9 (L2 term on trainable kernels).", lower=0.0)
    mixed_precision: str = option(
        "none", "Keras mixed-precision policy (mixed_float16 adds dynamic loss scaling).", choices=MIXED_PRECISION
    )
    jit_compile: bool = option(False, "Compile the training step with XLA.")


@dataclasses.dataclass
class LoopConfig:
    """The training loop around the step: validation, logging, checkpoints, distribution, seeds."""

    eval_every: int = option(
        1000,
        "Validate, write attention images and keep the best model every this many steps (0: only at the end).",
        lower=0,
    )
    log_every: int = option(10, "Write training scalars every this many steps.", lower=1)
    checkpoint_every: int | None = option(
        None, "Save a checkpoint every this many steps (default: --eval_every, or 500).", kind="integer", lower=1
    )
    keep_checkpoints: int = option(3, "How many recent checkpoints to keep (plus the best).", lower=1)
    strategy: str = option(
        "default",
        "tf.distribute strategy: one device, all GPUs of this machine (mirrored), or "
        "several machines (multi_worker, configured by TF_CONFIG).",
        choices=distribute.STRATEGIES,
    )
    precise_bn_batches: int = option(
        0,
        "At the last step, re-estimate the batch-norm moving statistics as plain averages over this many "
        "training batches before the final validation and checkpoint (precise BN; 0: keep the moving averages). "
        "Short schedules need it: after 200 steps at momentum 0.99, 13 percent of the initial values remain.",
        lower=0,
    )
    seed: int = option(0, "Random seed (weights, sampling, augmentation).")
    deterministic: bool = option(False, "Deterministic ops and input order (slower).")
    progress: bool = option(True, "Show a progress bar.")
    summary_images: bool = option(True, "Attention image summaries at each validation.", flag=False)


SECTIONS = {"data": DataConfig, "optim": OptimConfig, "loop": LoopConfig}


@dataclasses.dataclass
class RunConfig:
    """Everything a training run needs.

    Attributes:
      model_dir: the run directory.
      model: the registered family's name.
      family: that family's typed config (`family.config_class`).
      data, optim, loop: the engine's sections.
    """

    model_dir: str
    model: str = ""
    family: Any = None
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    loop: LoopConfig = dataclasses.field(default_factory=LoopConfig)

    def __post_init__(self):
        from stpa.engine import family as family_lib

        self.model = self.model or family_lib.family_names()[0]  # The first registered family.
        if self.family is None:
            self.family = family_lib.get_family(self.model).make_config({})

    def schedule(self) -> schedules.Schedule:
        """The resolved learning-rate schedule (paper defaults per modality)."""
        return schedules.make_schedule(
            self.data.modality,
            learning_rate=self.optim.learning_rate,
            lr_boundaries=self.optim.lr_boundaries,
            lr_values=self.optim.lr_values,
            max_steps=self.optim.max_steps,
        )

    def checkpoint_interval(self) -> int:
        """Steps between checkpoints."""
        return self.loop.checkpoint_every or self.loop.eval_every or 500


def data_of_run(run_config: Mapping[str, Any]) -> DataConfig:
    """The DataConfig part a saved run's config.json records (modality, flow length, frame size)."""
    return DataConfig(
        modality=run_config["modality"],
        flow_length=int(run_config["flow_length"]),
        input_size=int(run_config["input_size"]),
    )


def check_choices(config: RunConfig) -> None:
    """Raises ValueError naming a field whose value is not among its choices or outside its bounds."""
    for section in (config.data, config.optim, config.loop, config.family):
        for field in dataclasses.fields(section):
            value, meta = getattr(section, field.name), field.metadata
            if value is None or not meta:
                continue
            if meta.get("choices") and value not in meta["choices"]:
                raise ValueError(f"--{field.name}={value!r} is not allowed; choose one of {list(meta['choices'])}.")
            numbers = value if isinstance(value, tuple) else (value,)
            for number in numbers:
                if not isinstance(number, (int, float)) or isinstance(number, bool):
                    continue
                if meta.get("lower") is not None and number < meta["lower"]:
                    raise ValueError(f"--{field.name}={value!r} must be >= {meta['lower']}.")
                if meta.get("upper") is not None and number > meta["upper"]:
                    raise ValueError(f"--{field.name}={value!r} must be <= {meta['upper']}.")


def _flag_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.metadata.get("flag")]


def parse_options(items: Sequence[str] | None, flag_name: str) -> dict:
    """Parses `key=value` items (a list flag) into a dict; values are Python literals, else strings.

    Args:
      items: e.g. ["spatial_attention=False", "lstm_units=512"].
      flag_name: for the error message.

    Returns:
      {"spatial_attention": False, "lstm_units": 512}.
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


def _define(
    field: dataclasses.Field, default: Any, flag_values: flags.FlagValues, help_text: str | None = None
) -> None:
    meta, name = {**field.metadata, "help": help_text or field.metadata["help"]}, field.name
    kind, bounds = (
        meta["kind"],
        {k: v for k, v in (("lower_bound", meta["lower"]), ("upper_bound", meta["upper"])) if v is not None},
    )
    if kind == "enum":
        flags.DEFINE_enum(name, default, list(meta["choices"]), meta["help"], flag_values=flag_values)
    elif kind == "boolean":
        flags.DEFINE_boolean(name, default, meta["help"], flag_values=flag_values)
    elif kind == "integer":
        flags.DEFINE_integer(name, default, meta["help"], flag_values=flag_values, **bounds)
    elif kind == "float":
        flags.DEFINE_float(name, default, meta["help"], flag_values=flag_values, **bounds)
    elif kind in ("list", "int_list", "float_list"):
        value = None if default is None else [str(v) for v in default]
        flags.DEFINE_list(name, value, meta["help"], flag_values=flag_values)
    else:
        flags.DEFINE_string(name, None if default is None else str(default), meta["help"], flag_values=flag_values)


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines the flags of `stpa.train`: --model_dir, --model, the engine sections, the families' options.

    Family options are per family: each is one flag (absl has one namespace) whose help is its owning families'
    (`_family_help`), and `from_flags` refuses one given for another `--model` (`check_family_options`). An option
    several families share (e.g. --backbone) is one flag; when their defaults differ, the flag's default is None and
    each family applies its own.
    """
    from stpa.engine import family as family_lib

    names = family_lib.family_names()
    flags.DEFINE_string(
        "model_dir",
        None,
        "Run directory: checkpoints (ckpt/, best/), best.keras, TensorBoard "
        "logs (train/, validation/), flags.txt, config.json. Re-running resumes.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "model",
        names[0] if names else None,
        f"Network family, one of {list(names)} (registered in stpa.families).",
        flag_values=flag_values,
    )
    for cls in SECTIONS.values():
        for field in _flag_fields(cls):
            _define(field, _default(field), flag_values)
    for name, owners in family_options().items():
        if name in flag_values:
            raise ValueError(f"family option --{name} collides with an engine flag; rename the field.")
        fields = list(owners.values())
        defaults = {repr(_default(f)) for f in fields}
        _define(
            fields[0],
            _default(fields[0]) if len(defaults) == 1 else None,
            flag_values,
            help_text=_family_help(owners, len(names)),
        )
    flags.DEFINE_list(
        "model_options",
        [],
        "Family options as key=value (read into the family's typed options; "
        "e.g. frozen_bn=True, lstm_units=32). Kept for old flagfiles: every option is also a flag.",
        flag_values=flag_values,
    )


def family_options() -> dict[str, dict[str, dataclasses.Field]]:
    """{flag name: {family name: its field}} of every registered family's options, in registration order."""
    from stpa.engine import family as family_lib

    options: dict[str, dict[str, dataclasses.Field]] = {}
    for fam in family_lib.families():
        for field in _flag_fields(fam.config_class):
            options.setdefault(field.name, {})[fam.name] = field
    return options


def _family_help(owners: Mapping[str, dataclasses.Field], num_families: int) -> str:
    """The help of a family option: its owners' text, prefixed by the families it belongs to unless all have it."""
    helps: dict[str, list[str]] = {}
    for name, field in owners.items():
        helps.setdefault(field.metadata["help"], []).append(name)
    if len(helps) == 1 and len(owners) == num_families:
        return next(iter(helps))
    return " | ".join(f"(--model={', '.join(names)}) {text}" for text, names in helps.items())


def check_family_options(model: str, values: Mapping[str, Any]) -> None:
    """Refuses an option of another family given with `--model=model` (it would be silently ignored).

    An option that flagfiles written before the families had their own flags carry for every run (the owning
    family's `ModelFamily.old_shared_flags`, at its default value) is accepted and dropped.

    Args:
      model: the chosen family.
      values: flat flag names -> values, as given (None: not given).

    Raises:
      ValueError: one line naming the option and the families it belongs to.
    """
    from stpa.engine import family as family_lib

    own = {f.name for f in dataclasses.fields(family_lib.get_family(model).config_class)}
    for name, owners in family_options().items():
        if name in own or values.get(name) is None:
            continue
        tolerated = [
            fam
            for fam, field in owners.items()
            if name in family_lib.get_family(fam).old_shared_flags and _convert(field, values[name]) == _default(field)
        ]
        if not tolerated:
            raise ValueError(
                f"--{name} is an option of --model={', '.join(owners)}, not of --model={model}: drop it "
                f"or choose --model={next(iter(owners))}."
            )


def _convert(field: dataclasses.Field, value: Any) -> Any:
    kind = field.metadata.get("kind")
    if value is None:
        return None
    if kind == "int_list":
        if not value:
            return None
        try:
            return tuple(int(float(v)) for v in value)
        except ValueError as error:
            raise ValueError(f"--{field.name} takes comma-separated numbers, got {value}.") from error
    if kind == "float_list":
        if not value:
            return None
        try:
            return tuple(float(v) for v in value)
        except ValueError as error:
            raise ValueError(f"--{field.name} takes comma-separated numbers, got {value}.") from error
    if kind == "list":
        return tuple(value) if value else None
    return value


def from_values(values: Mapping[str, Any]) -> RunConfig:
    """A RunConfig from flat names (the flag names), e.g. {"model_dir": d, "backbone": "tiny"}.

    Raises:
      ValueError: an unknown name, listing the allowed ones; an unknown family or `model_options` key; an option of
        another family (`check_family_options`).
    """
    from stpa.engine import family as family_lib

    values = dict(values)
    model = values.pop("model", None) or family_lib.family_names()[0]
    family = family_lib.get_family(model)
    check_family_options(model, values)
    model_options = values.pop("model_options", None) or {}
    if not isinstance(model_options, Mapping):
        model_options = parse_options(model_options, "model_options")
    sections = {}
    for key, cls in SECTIONS.items():
        chosen = {}
        for field in dataclasses.fields(cls):
            if field.name in values:
                chosen[field.name] = _convert(field, values.pop(field.name))
        sections[key] = cls(**chosen)
    if sections["data"].eval_split == "":
        sections["data"].eval_split = None
    family_fields = {f.name: f for f in dataclasses.fields(family.config_class)}
    family_values = {
        name: _convert(family_fields[name], values.pop(name))
        for name in list(values)
        if name in family_fields and values[name] is not None
    }
    for name in list(values):
        if values[name] is None or name in _all_family_fields():
            values.pop(name)  # not given, or another family's option an old flagfile carries at its default
    model_dir = values.pop("model_dir", None)
    if values:
        allowed = sorted(
            {
                "model_dir",
                "model",
                "model_options",
                *family_fields,
                *(f.name for cls in SECTIONS.values() for f in dataclasses.fields(cls)),
            }
        )
        raise ValueError(f"unknown run options {sorted(values)}; allowed: {allowed}.")
    return RunConfig(
        model_dir=model_dir,
        model=model,
        family=family.make_config(family_values, model_options),
        data=sections["data"],
        optim=sections["optim"],
        loop=sections["loop"],
    )


def _all_family_fields() -> set[str]:
    from stpa.engine import family as family_lib

    return {f.name for fam in family_lib.families() for f in dataclasses.fields(fam.config_class)}


def from_flags(flag_values: flags.FlagValues = flags.FLAGS) -> RunConfig:
    """The RunConfig of parsed flags (`define_flags`): family options only where given (not at the flag default)."""
    family_names = _all_family_fields()
    values = {
        name: flag_values[name].value
        for name in flag_values
        if name in _run_flag_names()
        and (
            flag_values[name].present
            or name in ("model_dir", "model", "model_options")
            or (flag_values[name].value is not None and name not in family_names)
            or (name in family_names and not flag_values[name].using_default_value)
        )
    }
    values["model_options"] = (
        parse_options(flag_values["model_options"].value, "model_options") if "model_options" in flag_values else {}
    )
    return from_values(values)


def _run_flag_names() -> set[str]:
    return {
        "model_dir",
        "model",
        "model_options",
        *_all_family_fields(),
        *(f.name for cls in SECTIONS.values() for f in _flag_fields(cls)),
    }


def _csv(items: Sequence[str]) -> str:
    """Joins the items of an absl list flag, quoting those with commas (absl parses list flags as CSV)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(items)
    return buffer.getvalue()


def _line(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return f"--{name}" if value else f"--no{name}"
    if isinstance(value, (list, tuple)):
        return f"--{name}=" + _csv([str(v) for v in value])
    return f"--{name}={value}"


def flag_lines(config: RunConfig) -> list[str]:
    """The `--name=value` lines of `python -m stpa.train` that reproduce `config` (written to flags.txt)."""
    lines = [f"--model_dir={config.model_dir}", f"--model={config.model}"]
    for key in SECTIONS:
        section = getattr(config, key)
        for field in _flag_fields(type(section)):
            value = getattr(section, field.name)
            if field.name == "eval_split":
                lines.append(f"--eval_split={value or ''}")
            elif value is not None:
                lines.append(_line(field.name, value))
    for field in _flag_fields(type(config.family)):
        value = getattr(config.family, field.name)
        if value is not None:
            lines.append(_line(field.name, value))
    return lines
