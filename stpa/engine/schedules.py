"""Learning-rate schedules of Sec. 3.4 of Du et al. (piecewise constant, keyed on the optimizer step).

Spatial (RGB) networks: 0.001, divided by 10 every 4000 iterations. Temporal (flow) networks: 0.005, divided by 10
after 12000 and 24000 iterations, 30000 iterations in all. The paper states no maximum for RGB; `paper_schedule`
stops it after two decays (12000 iterations), as TSN stops its RGB stream after two decays.

Because the schedule is a function of `optimizer.iterations`, a run restored from a checkpoint continues on the
right piece of it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A piecewise-constant learning rate and the number of steps to train.

    Attributes:
      boundaries: step boundaries, increasing; `values[i]` is used for steps in [boundaries[i-1], boundaries[i]).
      values: len(boundaries) + 1 learning rates.
      max_steps: total training steps.
    """

    boundaries: tuple[int, ...]
    values: tuple[float, ...]
    max_steps: int

    def __post_init__(self):
        validate(self.boundaries, self.values, self.max_steps)

    def learning_rate(self) -> keras.optimizers.schedules.LearningRateSchedule:
        """The Keras schedule object to pass as an optimizer's `learning_rate`."""
        if not self.boundaries:
            return keras.optimizers.schedules.PiecewiseConstantDecay([self.max_steps + 1], [self.values[0]] * 2)
        return keras.optimizers.schedules.PiecewiseConstantDecay(list(self.boundaries), list(self.values))

    def value_at(self, step: int) -> float:
        """The learning rate at `step` (plain Python, for logs and tests)."""
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:  # PiecewiseConstantDecay: values[i] while step <= boundaries[i].
                return value
        return self.values[-1]


def validate(boundaries: Sequence[int], values: Sequence[float], max_steps: int) -> None:
    """Raises ValueError with the reason if the schedule is inconsistent."""
    if len(values) != len(boundaries) + 1:
        raise ValueError(
            f"--lr_values needs one more entry than --lr_boundaries: got {len(values)} values for "
            f"{len(boundaries)} boundaries ({list(boundaries)})."
        )
    if any(b <= a for a, b in zip(boundaries, boundaries[1:])) or any(b <= 0 for b in boundaries):
        raise ValueError(f"--lr_boundaries must be positive and increasing, got {list(boundaries)}.")
    if any(v <= 0 for v in values):
        raise ValueError(f"learning rates must be positive, got {list(values)}.")
    if max_steps <= 0:
        raise ValueError(f"--max_steps must be positive, got {max_steps}.")


def paper_schedule(modality: str) -> Schedule:
    """The schedule of Sec. 3.4 for `modality` ("rgb" or "flow")."""
    if modality == "rgb":
        return Schedule(boundaries=(4000, 8000), values=(1e-3, 1e-4, 1e-5), max_steps=12000)
    if modality == "flow":
        return Schedule(boundaries=(12000, 24000), values=(5e-3, 5e-4, 5e-5), max_steps=30000)
    raise ValueError(f"modality must be 'rgb' or 'flow', got {modality!r}.")


def make_schedule(
    modality: str,
    *,
    learning_rate: float | None = None,
    lr_boundaries: Sequence[int] | None = None,
    lr_values: Sequence[float] | None = None,
    max_steps: int | None = None,
    lr_decay_factor: float = 0.1,
) -> Schedule:
    """Resolves the command-line schedule flags against the paper's defaults for `modality`.

    Precedence: explicit `lr_values` (with `lr_boundaries`); else `learning_rate` decayed by `lr_decay_factor` at
    `lr_boundaries` (paper boundaries when not given); else the paper's schedule. `max_steps` overrides the paper's.
    Boundaries at or beyond `max_steps` are dropped (with their values) so a short run has a valid schedule.

    Args:
      modality: "rgb" or "flow".
      learning_rate: initial learning rate.
      lr_boundaries: decay steps.
      lr_values: the learning rate of every piece.
      max_steps: total steps.
      lr_decay_factor: multiplier applied at each boundary when `lr_values` is not given.

    Returns:
      A validated Schedule.
    """
    paper = paper_schedule(modality)
    boundaries = tuple(int(b) for b in (paper.boundaries if lr_boundaries is None else lr_boundaries))
    if lr_values:
        values = tuple(float(v) for v in lr_values)
    else:
        start = paper.values[0] if learning_rate is None else float(learning_rate)
        values = tuple(start * lr_decay_factor**i for i in range(len(boundaries) + 1))
    steps = paper.max_steps if max_steps is None else int(max_steps)
    validate(boundaries, values, steps)
    keep = sum(1 for b in boundaries if b < steps)
    return Schedule(boundaries=boundaries[:keep], values=values[: keep + 1], max_steps=steps)
