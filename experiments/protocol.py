"""The powered protocol of `experiments/preregistration.md`: benchmark instances, named parts, reports.

    python -m experiments.reproduce --preregistration=experiments/preregistration.md --part=stpa_rgb --jobs=2
    python -m experiments.reproduce --preregistration=experiments/preregistration.md --part=report \
        --results_dir=experiments/results/protocol

The pre-registration fixes the benchmark, the seeds, the schedule and the claims; this module turns it into work.
A `Part` is a resumable slice of the protocol planned to finish within 60 minutes on 2 cores (`--jobs=2`): some
studies of `experiments.studies` (optionally only some of their cells) at one of the pre-registration's seed lists,
on one benchmark `Instance`. Parts of one instance share its directory, so a run trained by one part (a seed's TSN
RGB run, the trunk of the ST-attn chain) is reused by the next. `--part=report` writes every report from whatever
has finished:

  <out_dir>/<instance>/                 an `experiments.runner.Layout` (data, runs, state, logs, reproduce.json)
  <out_dir>/main/reports/               the primary claims decided as one Holm family, every study's report
  <out_dir>/<replication>/reports/      each replication's claims as their own Holm family
  <out_dir>/summary.md                  the primary table, the replication table (where a verdict changes), the
                                        benchmark-validity check, the parts' measured times
  <out_dir>/parts.json                  each part's measured wall time (summed over resumed runs) and status
  <out_dir>/<instance>/timings.csv      every task's status and seconds

`copy_results` copies the committed subset (reports, values.csv, per_video.csv.gz, accuracy.csv, figures, summaries,
timings) into a results directory such as `experiments/results/protocol/`.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence

from data import files
from experiments import mechanism, runner, schedules, statistics, study_reports
from experiments import preregistration as prereg_lib
from experiments import report as report_lib
from experiments import studies as studies_lib

VALIDATION_PER_CLASS = 20  # validation-set videos per class (descriptive train/validation accuracy only)
LEARNS_ABOVE_CHANCE = 20.0  # points above chance a row's mean test top-1 needs to "learn" (pre-registered)
BASELINE_BAND = (45.0, 80.0)  # TSN RGB / flow mean test top-1 of a valid benchmark (pre-registered)


@dataclasses.dataclass(frozen=True)
class Instance:
    """One benchmark instance: the pre-registered `data.synthetic` flags at a generation seed, plus extra flags.

    Attributes:
      name: the instance's directory under the protocol's out_dir.
      generation_seed: `data.synthetic --seed` of the benchmark.
      validation_seed: `data.synthetic --seed` of its validation set.
      extra_flags: flags after the pre-registered benchmark's (the --cue=motion variant).
      claims: the primary claims decided on it (None: all of the pre-registration's; the main instance).
      description: what it is, for the reports.
    """

    name: str
    generation_seed: int
    validation_seed: int
    extra_flags: tuple[str, ...] = ()
    claims: tuple[str, ...] | None = None
    description: str = ""


INSTANCES: dict[str, Instance] = {
    i.name: i
    for i in (
        Instance("main", 0, 1, description="the pre-registered benchmark (generation seed 0)"),
        Instance(
            "seed2",
            2,
            3,
            claims=("stpa_rgb", "attention_rgb", "st_attn_attention"),
            description="replication: a second instance of the benchmark (generation seed 2, same settings)",
        ),
        Instance(
            "motion",
            0,
            1,
            extra_flags=("--cue=motion",),
            claims=("stpa_flow", "attention_flow"),
            description="replication: the --cue=motion variant (colour and shape random, the class only in the motion)",
        ),
    )
}


@dataclasses.dataclass(frozen=True)
class Part:
    """A named, resumable slice of the protocol.

    Attributes:
      name: `--part=` value.
      instance: the `Instance` it runs on.
      studies: the studies whose cells it trains and evaluates.
      seeds_key: the pre-registration key of its seed list ("seeds", "dose_seeds" or "replication_seeds").
      columns: only the cells of these columns (None: every column); ignored when the instance names its claims,
        which then select exactly the cells they compare.
      planned_minutes: the pre-registration's time plan.
    """

    name: str
    instance: str
    studies: tuple[str, ...]
    seeds_key: str
    columns: tuple[str, ...] | None = None
    planned_minutes: float = 60.0


PARTS: dict[str, Part] = {
    p.name: p
    for p in (
        Part("stpa_rgb", "main", ("protocol_stpa",), "seeds", ("RGB",), 48),
        Part("stpa_flow", "main", ("protocol_stpa",), "seeds", ("Flow", "Late fusion"), 48),
        Part("st_attn", "main", ("protocol_st_attn", "st_attn_table5", "st_attn_table6"), "seeds", None, 40),
        Part("dose", "main", ("protocol_dose",), "dose_seeds", None, 29),
        Part("replicate_seed", "seed2", ("protocol_stpa", "protocol_st_attn"), "replication_seeds", None, 40),
        Part("replicate_motion", "motion", ("protocol_stpa",), "replication_seeds", None, 27),
    )
}


@dataclasses.dataclass(frozen=True)
class Validity:
    """A pre-registered validity check of the benchmark: a cell's mean over the seeds in a band or above chance.

    Attributes:
      label: what the report calls it.
      study: the study of the cell.
      row: the cell's row.
      column: the cell's column.
      rule: "band" (mean in `BASELINE_BAND`) or "learns" (mean at least chance + `LEARNS_ABOVE_CHANCE`).
    """

    label: str
    study: str
    row: str
    column: str
    rule: str


@dataclasses.dataclass(frozen=True)
class Protocol:
    """A pre-registration's work: its benchmark instances, its parts, its validity checks, its reports' title.

    A pre-registration names its protocol with `protocol: <name>` in its prereg block (none: "powered", the first).

    Attributes:
      name: the `protocol:` value.
      title: the summary's title.
      instances: name -> `Instance`; "main" holds the primary claims.
      parts: name -> `Part`, in the order `--part=all` runs them.
      validity: the benchmark-validity checks of the summary.
      val_accuracy: every top-1 run is also evaluated on the validation set (accuracy.csv's val_top1).
    """

    name: str
    title: str
    instances: Mapping[str, Instance]
    parts: Mapping[str, Part]
    validity: tuple[Validity, ...]
    val_accuracy: bool = True


POWERED = Protocol(
    "powered",
    "The powered protocol: results",
    INSTANCES,
    PARTS,
    (
        Validity("TSN RGB", "protocol_stpa", "TSN", "RGB", "band"),
        Validity("TSN flow", "protocol_stpa", "TSN", "Flow", "band"),
        Validity("ST-attn 'Ours' (chain)", "protocol_st_attn", "Ours", "top-1", "learns"),
    ),
)
_FLOW = ("Flow", "Flow (K = 3)")
_RGB_AND_FUSION = ("RGB", "RGB (K = 3)", "Late fusion", "Late fusion (softmax)")
HOSTS = Protocol(
    "hosts",
    "The hosts protocol: results",
    {"main": Instance("main", 0, 1, description="the first protocol's benchmark (generation seed 0)")},
    {
        p.name: p
        for p in (
            *(
                Part(f"host_flow_{group}", "main", ("hosts_stpa_pretrained",), f"host_seeds_{group}", _FLOW, minutes)
                for group, minutes in (("a", 42), ("b", 42), ("c", 28), ("d", 28))
            ),
            *(
                Part(
                    f"host_rgb_{group}",
                    "main",
                    ("hosts_stpa_pretrained", "hosts_st_attn_pretrained"),
                    f"host_seeds_{group}",
                    (*_RGB_AND_FUSION, "top-1"),
                    minutes,
                )
                for group, minutes in (("a", 42), ("b", 42), ("c", 28), ("d", 28))
            ),
            Part("tiny_flow", "main", ("hosts_stpa_tiny",), "tiny_seeds_a", _FLOW, 42),
            Part("tiny_flow_b", "main", ("hosts_stpa_tiny",), "tiny_seeds_b", _FLOW, 28),
            *(
                Part(
                    name,
                    "main",
                    ("hosts_stpa_tiny", "hosts_st_attn_tiny"),
                    seeds,
                    (*_RGB_AND_FUSION, "top-1"),
                    minutes,
                )
                for name, seeds, minutes in (("tiny_rgb", "tiny_seeds_a", 48), ("tiny_rgb_b", "tiny_seeds_b", 32))
            ),
            Part("tiny_st_attn", "main", ("hosts_st_attn_tiny",), "tiny_trunk_seeds_a", None, 40),
            Part("tiny_st_attn_b", "main", ("hosts_st_attn_tiny",), "tiny_trunk_seeds_b", None, 27),
        )
    },
    (
        Validity("TSN RGB, pretrained host", "hosts_stpa_pretrained", "TSN", "RGB", "learns"),
        Validity("TSN flow, pretrained host", "hosts_stpa_pretrained", "TSN", "Flow", "learns"),
        Validity("ST-attn 'Ours', pretrained host", "hosts_st_attn_pretrained", "Ours", "top-1", "learns"),
        Validity("TSN RGB, tiny host", "hosts_stpa_tiny", "TSN", "RGB", "band"),
        Validity("TSN flow, tiny host", "hosts_stpa_tiny", "TSN", "Flow", "band"),
        Validity("ST-attn 'Ours', tiny host", "hosts_st_attn_tiny", "Ours", "top-1", "learns"),
    ),
    val_accuracy=False,
)
PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (POWERED, HOSTS)}
PART_CHOICES = tuple(dict.fromkeys([name for p in PROTOCOLS.values() for name in p.parts] + ["all", "report"]))
INSTANCE_NAMES = tuple(dict.fromkeys(name for p in PROTOCOLS.values() for name in p.instances))


def protocol_of(prereg: prereg_lib.Preregistration) -> Protocol:
    """The protocol a pre-registration names (`protocol:`; the first pre-registration names none: "powered")."""
    name = prereg.settings.get("protocol", POWERED.name)
    if name not in PROTOCOLS:
        raise ValueError(f"{prereg.path}: unknown protocol {name!r}; choose one of {sorted(PROTOCOLS)}.")
    return PROTOCOLS[name]


def protocol_part(prereg: prereg_lib.Preregistration, name: str) -> Part:
    """A part of the pre-registration's protocol; ValueError naming the protocol's parts otherwise."""
    parts = protocol_of(prereg).parts
    if name not in parts:
        raise ValueError(f"{prereg.path}: its protocol has no part {name!r}; choose one of {list(parts)}.")
    return parts[name]


# ------------------------------------------------------------------------------------------ settings from the file
def parse_schedule(text: str) -> dict[str, int]:
    """The pre-registration's `schedule:` ("stpa=1500, st_attn=1000") as {"stpa": 1500, "st_attn": 1000}.

    The names are schedule groups of the registered model families (`ModelFamily.schedule_group`: "stpa" holds the
    STPA and TSN rows, "st_attn" the ST-attn heads), not family names; `experiments.schedules.parse_schedule`.
    """
    return schedules.parse_schedule(text)


def format_schedule(steps: Mapping[str, int]) -> str:
    """{"stpa": 1500, "st_attn": 1000} -> "stpa=1500, st_attn=1000" (the pre-registration's spelling)."""
    return schedules.format_schedule(steps)


def _required(prereg: prereg_lib.Preregistration, key: str) -> str:
    if key not in prereg.settings:
        raise ValueError(f"{prereg.path}: the prereg block needs '{key}:' to run the protocol.")
    return prereg.settings[key]


def part_seeds(prereg: prereg_lib.Preregistration, part: Part) -> tuple[int, ...]:
    """The seeds a part trains (the pre-registration's list named by `part.seeds_key`)."""
    if part.seeds_key == "seeds":
        return prereg.seeds
    return prereg_lib.parse_seeds(_required(prereg, part.seeds_key))


def benchmark_flags(prereg: prereg_lib.Preregistration, instance: Instance) -> list[str]:
    """The instance's `data.synthetic` flags: the pre-registered benchmark's, then the instance's extra flags."""
    flags = _required(prereg, "benchmark").split()
    if flags[:1] != ["--preset=study"]:
        raise ValueError(f"{prereg.path}: the benchmark must start with --preset=study; got {flags[:1]}.")
    return [*flags, *instance.extra_flags]


def instance_options(prereg: prereg_lib.Preregistration, instance: Instance, seeds: Sequence[int]) -> runner.Options:
    """The runner options of an instance at some seeds (everything else from the pre-registration)."""
    return runner.Options(
        seeds=tuple(seeds),
        benchmark_flags=benchmark_flags(prereg, instance)[1:],  # the runner adds --preset=study itself
        generation_seed=instance.generation_seed,
        validation_seed=instance.validation_seed,
        validation_flags=(f"--test_per_class={VALIDATION_PER_CLASS}",),
        steps=parse_schedule(_required(prereg, "schedule")),
        val_accuracy=protocol_of(prereg).val_accuracy,
    )


def instance_claims(prereg: prereg_lib.Preregistration, instance: Instance) -> tuple[prereg_lib.PrimaryClaim, ...]:
    """The pre-registered claims decided on an instance, in the file's order."""
    if instance.claims is None:
        return prereg.claims
    return tuple(prereg.claim(claim_id) for claim_id in instance.claims)


def part_cells(prereg: prereg_lib.Preregistration, part: Part) -> dict[str, list[studies_lib.Cell]]:
    """Study name -> the cells a part trains and evaluates."""
    instance = protocol_of(prereg).instances[part.instance]
    chosen: dict[str, list[studies_lib.Cell]] = {}
    for name in part.studies:
        study = studies_lib.STUDIES[name]
        if instance.claims is not None:
            wanted = {
                key for claim in instance_claims(prereg, instance) if claim.study == name for key in claim_cells(claim)
            }
            cells = [cell for cell in study.cells if (cell.row, cell.column) in wanted]
        else:
            cells = [cell for cell in study.cells if part.columns is None or cell.column in part.columns]
        chosen[name] = cells
    return chosen


def claim_cells(claim: prereg_lib.PrimaryClaim) -> tuple[tuple[str, str], tuple[str, str]]:
    """The two cells a claim compares."""
    return claim.cell, claim.reference


def layout(out_dir: str, instance: Instance) -> runner.Layout:
    """The runner layout of an instance under the protocol's directory."""
    return runner.Layout(os.path.join(os.path.abspath(out_dir), instance.name))


def part_graph(prereg: prereg_lib.Preregistration, part: Part, out_dir: str) -> tuple[runner.TaskGraph, list]:
    """The task graph of a part and its tasks in dependency order."""
    instance = protocol_of(prereg).instances[part.instance]
    graph = runner.TaskGraph(layout(out_dir, instance), instance_options(prereg, instance, part_seeds(prereg, part)))
    for seed in graph.options.seeds:
        for cells in part_cells(prereg, part).values():
            for cell in cells:
                graph.measure(cell.measure, seed)
    return graph, graph.ordered()


# ------------------------------------------------------------------------------------------------------ running
def _parts_path(out_dir: str) -> str:
    return os.path.join(os.path.abspath(out_dir), "parts.json")


def read_parts(out_dir: str) -> dict:
    """parts.json: part -> {"minutes": wall time summed over its runs, "runs": n, "tasks", "not_done"}."""
    path = _parts_path(out_dir)
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def run_part(
    prereg: prereg_lib.Preregistration,
    name: str,
    out_dir: str,
    *,
    jobs: int = 2,
    retry_failed: bool = False,
    progress: bool = True,
) -> list[str]:
    """Runs one part (resuming what is done) and records its wall time; returns the printed lines."""
    part = protocol_part(prereg, name)
    graph, tasks = part_graph(prereg, part, out_dir)
    runner.check_schedule(graph.layout, graph.options)
    start = time.perf_counter()
    states = runner.execute(tasks, graph.layout, jobs=jobs, retry_failed=retry_failed, progress=progress)
    minutes = (time.perf_counter() - start) / 60
    not_done = sorted(key for key, state in states.items() if state["status"] != "done")
    parts = read_parts(out_dir)
    entry = parts.get(name, {"minutes": 0.0, "runs": 0})
    parts[name] = {
        "minutes": round(entry["minutes"] + minutes, 2),
        "runs": entry["runs"] + 1,
        "tasks": len(tasks),
        "not_done": not_done,
        "planned_minutes": part.planned_minutes,
        "jobs": jobs,
    }
    files.write_json(_parts_path(out_dir), parts)
    runner.write_timings(tasks, graph.layout, os.path.join(graph.layout.out_dir, "timings.csv"))
    lines = [f"part {name}: {len(tasks)} tasks, {len(not_done)} not done, {minutes:.1f} min (this run)"]
    for key in not_done:
        state = states[key]
        lines.append(f"  {state['status']}: {key}" + (f" (log: {state['log']})" if "log" in state else ""))
    return lines


# ------------------------------------------------------------------------------------------------------ reports
def instance_prereg(prereg: prereg_lib.Preregistration, instance: Instance) -> prereg_lib.Preregistration:
    """What the pre-registration expects of an instance: for a replication, its seeds, benchmark and claims."""
    if instance.claims is None:
        return prereg
    bench = benchmark_flags(prereg, instance)
    settings = {
        **prereg.settings,
        "seeds": _required(prereg, "replication_seeds"),
        "benchmark": " ".join(bench),
        "benchmark_digest": prereg_lib.benchmark_digest(bench),
    }
    for key in ("dose_seeds", "descriptive"):
        settings.pop(key, None)
    return dataclasses.replace(
        prereg,
        seeds=prereg_lib.parse_seeds(settings["seeds"]),
        claims=instance_claims(prereg, instance),
        benchmark=settings["benchmark"],
        benchmark_digest=settings["benchmark_digest"],
        descriptive=(),
        settings=settings,
    )


def instance_studies(instance: Instance, protocol: Protocol = POWERED) -> list[studies_lib.Study]:
    """The studies reported on an instance (those of its parts, in part order)."""
    names: list[str] = []
    for part in protocol.parts.values():
        if part.instance == instance.name:
            names.extend(n for n in part.studies if n not in names)
    return [studies_lib.STUDIES[n] for n in names]


def seeds_by_study(prereg: prereg_lib.Preregistration, instance: Instance) -> dict[str, tuple[int, ...]]:
    """Study name -> the seeds its report reads on an instance: the union of its parts' seed lists, in order."""
    seeds: dict[str, tuple[int, ...]] = {}
    for part in protocol_of(prereg).parts.values():
        if part.instance == instance.name:
            for name in part.studies:
                seeds[name] = tuple(sorted({*seeds.get(name, ()), *part_seeds(prereg, part)}))
    return seeds


def write_instance_reports(
    prereg: prereg_lib.Preregistration, instance: Instance, out_dir: str, *, hparams: bool = False
) -> tuple[list[str], list[tuple[prereg_lib.PrimaryClaim, statistics.Decision]]]:
    """Writes an instance's reports (its claims as one Holm family); returns the lines and the decisions."""
    expected = instance_prereg(prereg, instance)
    study_seeds = seeds_by_study(prereg, instance)
    options = instance_options(prereg, instance, expected.seeds)
    where = layout(out_dir, instance)
    graph = runner.TaskGraph(where, options)
    chosen = instance_studies(instance, protocol_of(prereg))
    for study in chosen:
        for seed in study_seeds[study.name]:
            for cell in study.cells:
                graph.measure(cell.measure, seed)
    extra = {"schedule": format_schedule(options.steps)}
    if instance.claims is None:
        extra["replication_seeds"] = prereg.settings.get("replication_seeds")
        dose = [study_seeds[s.name] for s in chosen if s.name == "protocol_dose"]
        if dose:
            extra["dose_seeds"] = prereg_lib.format_seeds(dose[0])
        extra["descriptive"] = [s.name for s in chosen if s.name in prereg.descriptive]
    lines, decisions = study_reports.write_reports(
        chosen,
        where,
        options,
        graph,
        hparams=hparams,
        prereg=expected,
        seeds_by_study=study_seeds,
        extra_settings=extra,
    )
    return lines, decisions


def _verdict_cell(decision: statistics.Decision | None) -> str:
    if decision is None:  # the instance's family does not hold the claim
        return "—"
    if decision.estimate is None:  # fewer than two paired seeds: the part has not run (far enough)
        return f"{decision.verdict} (no paired seeds yet)"
    e = decision.estimate
    mde = "—" if decision.mde is None else f"{decision.mde:.1f}"
    return f"{decision.verdict}: {e.mean:+.1f} [{e.low:+.1f}, {e.high:+.1f}], MDE {mde}"


def replication_table(
    claims: Sequence[prereg_lib.PrimaryClaim],
    decisions_by_instance: Mapping[str, Sequence[tuple[prereg_lib.PrimaryClaim, statistics.Decision]]],
    instances: Mapping[str, Instance] = INSTANCES,
) -> str:
    """Markdown: per claim, the verdict on each instance (d [interval], MDE) and whether a replication changed it."""
    names = list(decisions_by_instance)
    header = ["Claim", *(f"{n}: {instances[n].description}" for n in names), "Verdict changes"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for claim in claims:
        by_instance = {n: dict((c.id, d) for c, d in decisions_by_instance[n]).get(claim.id) for n in names}
        covered = [d for d in by_instance.values() if d is not None]
        if len(covered) < 2:
            change = "not replicated"
        elif any(d.estimate is None for d in covered):
            change = "pending"
        else:
            change = "no" if len({d.verdict for d in covered}) == 1 else "yes"
        rows.append("| " + " | ".join([claim.id, *(_verdict_cell(by_instance[n]) for n in names), change]) + " |")
    return "\n".join(rows)


def validity_lines(where: runner.Layout, seeds: Sequence[int], protocol: Protocol = POWERED) -> list[str]:
    """The pre-registered benchmark-validity checks (`Protocol.validity`): a baseline in the band, a row learns."""
    chance = 100.0 / studies_lib.STUDY_CLASSES
    lines = []
    for check in protocol.validity:
        measure = studies_lib.STUDIES[check.study].cell(check.row, check.column).measure
        values = [v for v in (runner.read_value(measure, s, where) for s in seeds) if v is not None]
        if not values:
            lines.append(f"- {check.label}: not run yet.")
            continue
        mean = sum(values) / len(values)
        if check.rule == "band":
            ok = BASELINE_BAND[0] <= mean <= BASELINE_BAND[1]
            rule_text = f"in [{BASELINE_BAND[0]:g}, {BASELINE_BAND[1]:g}] %"
        else:
            ok = mean >= chance + LEARNS_ABOVE_CHANCE
            rule_text = f"≥ {chance + LEARNS_ABOVE_CHANCE:.1f} % (chance + {LEARNS_ABOVE_CHANCE:g})"
        lines.append(
            f"- {check.label}: mean test top-1 {mean:.1f} % over {len(values)} seeds; needs {rule_text}: "
            f"{'yes' if ok else 'NO'}."
        )
    return lines


def replication_lines(
    prereg: prereg_lib.Preregistration,
    decisions_by_instance: Mapping[str, Sequence[tuple[prereg_lib.PrimaryClaim, statistics.Decision]]],
    protocol: Protocol,
) -> list[str]:
    """The summary's replication section: each claim's verdict per instance (`replication_table`) and its legend."""
    return [
        "## Replications (each its own Holm family)",
        "",
        replication_table(prereg.claims, decisions_by_instance, protocol.instances)
        if decisions_by_instance
        else "Not run yet.",
        "",
        "—: the claim is not part of that instance's family (the pre-registration's \"Replication\" names the "
        'claims each instance covers); "not replicated": only one instance covers it; "pending": an instance that '
        "covers it has no paired seeds yet. An instance's verdict is final when its part has run (the parts table "
        "below).",
        "",
    ]


def descriptive_lines(prereg: prereg_lib.Preregistration, out_dir: str, protocol: Protocol) -> list[str]:
    """The summary's descriptive section: every main-instance study with pre-registered contrasts or recall tables."""
    instance = protocol.instances["main"]
    where = layout(out_dir, instance)
    seeds = seeds_by_study(prereg, instance)
    chosen = [s for s in instance_studies(instance, protocol) if s.contrasts or s.recall_columns]
    if not chosen:
        return []
    lines = [
        "## Descriptive: what carries the differences (readings pre-registered, no decisions)",
        "",
        "Each contrast is estimated like a claim (paired bootstrap over seeds and test videos) but not decided; "
        "its reading is the pre-registration's.",
        "",
    ]
    for study in chosen:
        lines += mechanism.mechanism_lines(
            study,
            where,
            seeds[study.name],
            figure_dir=os.path.join(where.out_dir, "reports", study.name),
            markdown_dir=os.path.abspath(out_dir),
            level=prereg.level,
            resamples=prereg.bootstrap_resamples,
        )
    return lines


def write_protocol_report(prereg: prereg_lib.Preregistration, out_dir: str, *, hparams: bool = False) -> list[str]:
    """Every instance's reports and `<out_dir>/summary.md`; returns the printed lines."""
    protocol = protocol_of(prereg)
    lines, decisions_by_instance = [], {}
    for instance in protocol.instances.values():
        if not os.path.isdir(layout(out_dir, instance).out_dir):
            continue
        instance_lines, decisions = write_instance_reports(prereg, instance, out_dir, hparams=hparams)
        lines += [f"[{instance.name}] {line}" for line in instance_lines]
        decisions_by_instance[instance.name] = decisions
        parts = [p for p in protocol.parts.values() if p.instance == instance.name]
        graph = runner.TaskGraph(layout(out_dir, instance), instance_options(prereg, instance, ()))
        tasks: list = []
        for part in parts:
            _, part_tasks = part_graph(prereg, part, out_dir)
            tasks.extend(t for t in part_tasks if t.key not in {k.key for k in tasks})
        runner.write_timings(tasks, graph.layout, os.path.join(graph.layout.out_dir, "timings.csv"))
    main = decisions_by_instance.get("main", [])
    parts = read_parts(out_dir)
    text = [
        f"# {protocol.title}",
        "",
        f"Pre-registration: `{prereg.path}` (committed before any run). Benchmark: `data.synthetic "
        f"{_required(prereg, 'benchmark')}`; schedule {_required(prereg, 'schedule')} steps; the instances' reports "
        "are under `<instance>/reports/` (each lists its deviations from the pre-registration).",
        "",
        "## Benchmark validity (pre-registered)",
        "",
        *validity_lines(layout(out_dir, protocol.instances["main"]), prereg.seeds, protocol),
        "",
        "## Primary claims (main instance, one Holm family)",
        "",
        report_lib.primary_table(main) if main else "Not run yet.",
        "",
        *(replication_lines(prereg, decisions_by_instance, protocol) if len(protocol.instances) > 1 else []),
        *descriptive_lines(prereg, out_dir, protocol),
        statistics.DECISION_RULES,
        "",
        "## Parts: measured wall time (2 cores)",
        "",
        "| Part | Instance | Planned (min) | Measured (min) | Runs | Tasks | Not done |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {p.name} | {p.instance} | {p.planned_minutes:g} | "
            + (
                f"{parts[p.name]['minutes']:.1f} | {parts[p.name]['runs']} | {parts[p.name]['tasks']} | "
                f"{len(parts[p.name]['not_done'])} |"
                if p.name in parts
                else "not run | 0 | — | — |"
            )
            for p in protocol.parts.values()
        ),
        "",
    ]
    summary = files.write_text(os.path.join(os.path.abspath(out_dir), "summary.md"), "\n".join(text))
    lines.append(f"protocol summary: {summary}")
    return lines


COMMITTED = ("report.md", "values.csv", "per_video.csv.gz", "accuracy.csv", ".png")
RESUME = "resume"  # <results_dir>/<instance>/resume/: what a later session needs to continue without retraining


def _resume_files(base: str) -> list[str]:
    """Paths (relative to an instance directory) a later part needs from the finished ones.

    The finished tasks' states (not the data tasks': the benchmark is regenerated, bit for bit, from its seed) and
    the outputs later tasks read: every run's config.json, evaluation JSON + score file and localisation, and the
    fusions. Checkpoints are not kept: a part that needs a run's weights (features, a new evaluation) must run in
    the session that trained it.
    """
    relative = []
    state = os.path.join(base, "state")
    if os.path.isdir(state):
        relative += [os.path.join("state", n) for n in sorted(os.listdir(state)) if not n.startswith("data__")]
    for pattern in (
        ("runs", "*", "seed*", "config.json"),
        ("runs", "*", "seed*", "localization.json"),
        ("runs", "*", "seed*", "eval", "*.json"),
        ("runs", "*", "seed*", "eval", "*.npz"),
        ("fusion", "*", "seed*", "*.json"),
        ("fusion", "*", "seed*", "*.npz"),
    ):
        relative += sorted(os.path.relpath(p, base) for p in glob.glob(os.path.join(base, *pattern)))
    return relative


def relink_preregistration(text: str, preregistration: str, folder: str) -> str:
    """`text` with its "Pre-registration: [name](link)" lines linking `preregistration` relative to `folder`.

    A report links the pre-registration relative to where it was written (under `--out_dir`); its committed copy
    lives elsewhere, so the link is recomputed for the copy's folder.
    """
    link = os.path.relpath(os.path.abspath(preregistration), os.path.abspath(folder))
    prefix = "Pre-registration: ["
    lines = []
    for line in text.split("\n"):
        if line.startswith(prefix) and "](" in line:
            name, rest = line[len(prefix) :].split("](", 1)
            line = f"{prefix}{name}]({link}){rest.split(')', 1)[1]}"
        lines.append(line)
    return "\n".join(lines)


def copy_results(out_dir: str, results_dir: str, preregistration: str | None = None) -> list[str]:
    """Copies what is committed of a protocol run into `results_dir` (same layout); returns the files copied.

    Reports, figures, summaries and timings, plus `<instance>/resume/` (`_resume_files`, and each run's
    `train_running_top1.json`) from which `restore_results` lets a later session continue the protocol. With
    `preregistration` (its path), the copied markdown files link it relative to where they are copied.
    """
    out_dir = os.path.abspath(out_dir)
    copied = []
    for name in ("summary.md", "parts.json"):
        if os.path.isfile(os.path.join(out_dir, name)):
            copied.append((name, name))
    for instance in INSTANCE_NAMES:
        base = os.path.join(out_dir, instance)
        for name in ("timings.csv", "reproduce.json", os.path.join("reports", "summary.md")):
            if os.path.isfile(os.path.join(base, name)):
                copied.append((os.path.join(instance, name),) * 2)
        reports = os.path.join(base, "reports")
        if os.path.isdir(reports):
            for study in sorted(os.listdir(reports)):
                folder = os.path.join(reports, study)
                if os.path.isdir(folder) and study != "tensorboard":
                    copied += [
                        (os.path.join(instance, "reports", study, f),) * 2
                        for f in sorted(os.listdir(folder))
                        if f.endswith(COMMITTED)
                    ]
        for relative in _resume_files(base):
            copied.append((os.path.join(instance, relative), os.path.join(instance, RESUME, relative)))
        for run_dir in sorted(glob.glob(os.path.join(base, "runs", "*", "seed*"))):
            running = runner.train_running_top1(run_dir)
            if running is not None:
                run = os.path.relpath(run_dir, base)
                target = os.path.join(results_dir, instance, RESUME, run, runner.RUNNING_FILE)
                files.write_json(target, {"train_running_top1": running})
                copied.append((None, os.path.relpath(target, results_dir)))
    for source, relative in copied:
        if source is None:
            continue
        target = os.path.join(results_dir, relative)
        files.make_parent(target)
        if preregistration and target.endswith(".md"):
            with open(os.path.join(out_dir, source), encoding="utf-8") as f:
                text = relink_preregistration(f.read(), preregistration, os.path.dirname(target))
            files.write_text(target, text)
        else:
            shutil.copyfile(os.path.join(out_dir, source), target)
    return [relative for _, relative in copied]


def restore_results(results_dir: str, out_dir: str) -> list[str]:
    """Copies `<results_dir>/<instance>/resume/` and parts.json back into a new `out_dir` (files it lacks).

    The finished tasks then read as done and their outputs exist, so the remaining parts continue from there (the
    data tasks regenerate the benchmark). Returns the files restored.
    """
    out_dir = os.path.abspath(out_dir)
    restored = []
    sources = [("parts.json", "parts.json")]
    for instance in INSTANCE_NAMES:
        resume = os.path.join(results_dir, instance, RESUME)
        if os.path.isfile(os.path.join(results_dir, instance, "reproduce.json")):
            sources.append((os.path.join(instance, "reproduce.json"),) * 2)
        for folder, _, names in os.walk(resume):
            for name in names:
                relative = os.path.relpath(os.path.join(folder, name), resume)
                sources.append((os.path.join(instance, RESUME, relative), os.path.join(instance, relative)))
    for source, relative in sources:
        path, target = os.path.join(results_dir, source), os.path.join(out_dir, relative)
        if os.path.isfile(path) and not os.path.exists(target):
            files.make_parent(target)
            shutil.copyfile(path, target)
            restored.append(relative)
    return restored
