"""A study row's training schedule, from the model family its flagfile names (`--model`) and the family registry.

A row is a flagfile. Its family is the `--model` the flagfile resolves to (nested `--flagfile=` lines expanded in
place, the last value winning, as absl reads it; no `--model`: the flag's default, the first registered family),
looked up in the registry of `stpa.engine.family` (the composition root `stpa.families` registers the project's
families and any plugin). The family's `ScheduleGroup` says which schedule its rows follow:

  steps      a study schedule gives the steps per group name, e.g. a pre-registration's
             `schedule: stpa=1500, st_attn=1000` (`parse_schedule`); the names there are schedule-group names, not
             family names: the group "stpa" holds the STPA and the TSN rows, "st_attn" the ST-attn heads.
  --quick    every row of a group trains its group's `quick_steps`.

Either way the learning rate drops 10x at 75 % of the steps (`overrides`), as in the flagfiles. Without steps and
without --quick a row keeps its flagfile's schedule and no family is looked up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the registry imports TensorFlow: only the functions that look a family up import it
    from stpa.engine.family import ModelFamily, ScheduleGroup

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEDULE_EXAMPLE = "stpa=1500, st_attn=1000"  # the spelling of the committed pre-registrations


def flagfile_arguments(path: str, *, root: str = REPO, _stack: tuple[str, ...] = ()) -> list[str]:
    """The flag arguments a flagfile expands to, as absl reads it: nested `--flagfile=` lines in place.

    Lines that are blank or start with "#" or "//" are skipped. A relative nested path is read from `root`, the
    working directory the study commands run in (the repository root).

    Raises:
      ValueError: a flagfile that includes itself (directly or through others).
    """
    path = os.path.normpath(path if os.path.isabs(path) else os.path.join(root, path))
    if path in _stack:
        raise ValueError(f"{path} includes itself: {' -> '.join((*_stack, path))}.")
    arguments: list[str] = []
    with open(path) as f:
        for line in f:
            if line.isspace() or line.startswith(("#", "//")):
                continue
            line = line.strip()
            if line.startswith(("--flagfile=", "-flagfile=")):
                nested = os.path.expanduser(line.split("=", 1)[1].strip())
                arguments += flagfile_arguments(nested, root=root, _stack=(*_stack, path))
            elif line:
                arguments.append(line)
    return arguments


def flag_value(path: str, name: str, *, root: str = REPO) -> str | None:
    """The value a flagfile gives `--name` (includes resolved, the last one wins), or None when it gives none."""
    value = None
    for argument in flagfile_arguments(path, root=root):
        key, equals, rest = argument.lstrip("-").partition("=")
        if argument.startswith("-") and equals and key == name:
            value = rest
    return value


def row_family(flagfile: str) -> ModelFamily:
    """The registered `ModelFamily` of a row's flagfile (its `--model`, default the first registered family)."""
    from stpa import families  # noqa: F401  (the composition root: registers the families)
    from stpa.engine import family as family_lib

    model = flag_value(flagfile, "model") or family_lib.family_names()[0]
    try:
        return family_lib.get_family(model)
    except ValueError as error:
        raise ValueError(f"{flagfile}: {error}") from error


def row_group(flagfile: str) -> ScheduleGroup:
    """The `ScheduleGroup` of a row's flagfile; ValueError when its family declares none."""
    family = row_family(flagfile)
    if family.schedule_group is None:
        raise ValueError(
            f"{flagfile}: --model={family.name} declares no schedule group (ModelFamily.schedule_group), so a study "
            "schedule cannot give its rows steps; set one in the family, or run the row with its flagfile's steps."
        )
    return family.schedule_group


def registered_groups() -> dict[str, ScheduleGroup]:
    """Schedule-group name -> `ScheduleGroup` of the registered families, in registration order."""
    from stpa import families  # noqa: F401  (the composition root: registers the families)
    from stpa.engine import family as family_lib

    groups: dict[str, ScheduleGroup] = {}
    for family in family_lib.families():
        group = family.schedule_group
        if group is None:
            continue
        if groups.setdefault(group.name, group) != group:
            raise ValueError(
                f"two schedule groups are called {group.name!r} with different quick steps ({groups[group.name]} "
                f"and {group} of --model={family.name}); families of one group share one ScheduleGroup."
            )
    return groups


def quick_steps() -> dict[str, int]:
    """Schedule-group name -> the steps of its rows in a --quick study (what reproduce.json records)."""
    return {name: int(group.quick_steps) for name, group in registered_groups().items()}


def parse_schedule(text: str) -> dict[str, int]:
    """A study schedule ("stpa=1500, st_attn=1000": steps per schedule group) as {"stpa": 1500, "st_attn": 1000}.

    In the text's order. Each name must be a registered family's schedule group, once; a group the schedule leaves
    out fails where one of its rows is built (`overrides`).
    """
    known = registered_groups()
    steps: dict[str, int] = {}
    for item in (part.strip() for part in text.split(",") if part.strip()):
        name, equals, count = item.partition("=")
        name = name.strip()
        if not equals or name not in known or not count.strip().isdigit() or name in steps:
            raise ValueError(
                f"schedule {text!r}: write the steps per schedule group, e.g. {SCHEDULE_EXAMPLE!r} (groups of the "
                f"registered families: {', '.join(known)})."
            )
        steps[name] = int(count)
    if not steps:
        raise ValueError(f"schedule {text!r}: write the steps per schedule group, e.g. {SCHEDULE_EXAMPLE!r}.")
    return steps


def format_schedule(steps: Mapping[str, int]) -> str:
    """{"stpa": 1500, "st_attn": 1000} -> "stpa=1500, st_attn=1000", the groups in registration order."""
    order = [name for name in registered_groups() if name in steps]
    order += [name for name in steps if name not in order]
    return ", ".join(f"{name}={steps[name]}" for name in order)


def overrides(flagfile: str, quick: bool, steps: Mapping[str, int] | None = None) -> list[str]:
    """`stpa.train` flags of a row's schedule: its group's quick steps, its group's `steps`, or none (the flagfile's).

    Either way the learning rate drops 10x at 75 % of the steps, as in the flagfiles.

    Raises:
      ValueError: the row's family has no schedule group, or `steps` has no entry for it.
    """
    if quick:
        count = int(row_group(flagfile).quick_steps)
    elif steps:
        group = row_group(flagfile).name
        if group not in steps:
            raise ValueError(
                f"{flagfile}: the schedule {format_schedule(steps)!r} gives no steps for its schedule group "
                f"{group!r}; add {group}=N."
            )
        count = int(steps[group])
    else:
        return []
    return [f"--max_steps={count}", f"--lr_boundaries={int(0.75 * count)}"]
