r"""Reproduce the papers' tables on the study benchmark: `python -m experiments.reproduce`.

  python -m experiments.reproduce --study=stpa_table1c --seeds=3 --out_dir=runs/studies
  python -m experiments.reproduce --study=all --seeds=3 --out_dir=runs/studies --jobs=4
  python -m experiments.reproduce --study=all --quick --out_dir=runs/studies_quick     # one seed, short schedules
  python -m experiments.reproduce --list                                                # the studies and their runs

Generates and prepares the study benchmark (`data.synthetic --preset=study`, and a validation set for the tuned
fusion) once, trains every row's flagfile (`experiments/synthetic/study_*.cfg`) with each seed through `stpa.train`,
tests it with `stpa.evaluate` (K = 25; Fig. 3: K = 1 ... 30), fuses with `stpa.fuse` (equal weights and `--tune_on`
the validation set) and localises with `st_attn.localize` — the commands a user runs — then writes per study
`<out_dir>/reports/<study>/report.md` (the paper's table layout, mean ± std over the seeds, the paper's number beside,
a paired verdict per claim), `<study>.png`, TensorBoard HParams under `<out_dir>/reports/tensorboard`, and
`<out_dir>/reports/summary.md` (the "What reproduces" table). Next to each report's values.csv: per_video.csv.gz
(every top-1 / fused run's per-video predictions) and accuracy.csv (train / validation / test top-1 per run; train
with --train_accuracy_videos, validation with --val_accuracy).

  python -m experiments.reproduce --study=all --seeds=10 --preregistration=experiments/preregistration.md \
      --train_accuracy_videos=120 --val_accuracy

With --preregistration, the primary claims it lists are decided as one Holm family from the per-video results
(`experiments.statistics.DECISION_RULES`: paired seeds × videos bootstrap, TOST with the claim's margin, four
verdicts, minimum detectable effect), in each study's report and in summary.md, with the run's deviations from it.

Resumable: finished tasks are skipped, a killed study resumes (half-trained runs from their checkpoints); a failed
task (e.g. a non-finite loss) is reported as failed and skipped on re-runs unless --retry_failed. Runs are shared
between studies (`--study=all` trains each flagfile once per seed). Progress bar over the tasks; each task's output
is in `<out_dir>/logs/`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

from absl import app, flags

from data import files
from experiments import preregistration as prereg_lib
from experiments import report as report_lib
from experiments import runner, statistics
from experiments import studies as studies_lib

_STUDY = flags.DEFINE_string("study", None, f"Comma-separated studies, or 'all': {', '.join(studies_lib.STUDIES)}.")
_SEEDS = flags.DEFINE_integer(
    "seeds", 3, "Training seeds 0 .. N-1 per row (pairs of rows share the seed).", lower_bound=1
)
_OUT_DIR = flags.DEFINE_string("out_dir", "runs/studies", "Study directory: data, runs, logs, reports.")
_QUICK = flags.DEFINE_boolean(
    "quick",
    False,
    "One seed and shorter schedules (stpa rows "
    f"{runner.QUICK_STEPS['stpa']} steps, ST-attn rows {runner.QUICK_STEPS['st_attn']}).",
)
_CUE = flags.DEFINE_enum(
    "cue",
    "both",
    ["both", "appearance", "motion"],
    "Where the class lives in the study "
    "benchmark (data.synthetic --cue): 'both' is the study benchmark; the others are variants "
    "for separate studies (use another --out_dir).",
)
_JOBS = flags.DEFINE_integer(
    "jobs", 1, "Tasks run at the same time (each command uses the CPU cores it finds).", lower_bound=1
)
_RETRY = flags.DEFINE_boolean("retry_failed", False, "Run failed tasks again instead of reporting them as failed.")
_DETERMINISTIC = flags.DEFINE_boolean(
    "deterministic",
    True,
    "Train every run with stpa.train --deterministic, so a seed reproduces its run bit for "
    "bit (no slower on the study rows). --nodeterministic continues a directory made before this was recorded.",
)
_REPORT_ONLY = flags.DEFINE_boolean("report_only", False, "Write the reports from what has finished; run nothing.")
_LIST = flags.DEFINE_boolean("list", False, "List the studies, their rows and flagfiles, and exit.")
_HPARAMS = flags.DEFINE_boolean("hparams", True, "Write TensorBoard HParams of every row and seed.")
_PROGRESS = flags.DEFINE_boolean("progress", True, "Show the progress bar.")
_PREREGISTRATION = flags.DEFINE_string(
    "preregistration",
    None,
    "The protocol's pre-registration (markdown; experiments/preregistration.py gives the "
    "format): its primary claims are decided as one Holm family and the reports list the deviations from it.",
)
_TRAIN_ACCURACY_VIDEOS = flags.DEFINE_integer(
    "train_accuracy_videos",
    None,
    "Also evaluate every top-1 run on its first N train videos (accuracy.csv's "
    "train_top1; about N / test videos of a test evaluation's time).",
    lower_bound=1,
)
_VAL_ACCURACY = flags.DEFINE_boolean(
    "val_accuracy", False, "Also evaluate every top-1 run on the validation set (accuracy.csv's val_top1)."
)


def list_studies() -> str:
    """The studies, their cells and flagfiles (for --list)."""
    lines = []
    for study in studies_lib.STUDIES.values():
        lines.append(f"{study.name}: {study.title}")
        lines.append(f"  rows: {', '.join(study.rows)}; columns: {', '.join(study.columns)}")
        lines.append(f"  flagfiles: {', '.join(s + '.cfg' for s in study.flagfiles())}")
    return "\n".join(lines)


def _has_cell(study: studies_lib.Study, row_column: tuple[str, str]) -> bool:
    return any((cell.row, cell.column) == tuple(row_column) for cell in study.cells)


def actual_settings(
    prereg: prereg_lib.Preregistration,
    chosen: Sequence[studies_lib.Study],
    options: runner.Options,
    per_video_by_study: dict,
    benchmark_flags: Sequence[str],
) -> dict:
    """What this run used, in the keys of `preregistration.deviations`.

    The claims are the pre-registered ones whose study was run and has both cells; test_videos is the number of
    test videos in the per-video results (absent when there are none); the decision settings are the
    pre-registration's own (the report uses them).
    """
    by_name = {study.name: study for study in chosen}
    claims = [
        c
        for c in prereg.claims
        if c.study in by_name and _has_cell(by_name[c.study], c.cell) and _has_cell(by_name[c.study], c.reference)
    ]
    actual = {
        "seeds": list(options.seeds),
        "alpha": prereg.alpha,
        "power": prereg.power,
        "level": prereg.level,
        "bootstrap_resamples": prereg.bootstrap_resamples,
        "bootstrap_seed": prereg.bootstrap_seed,
        "benchmark": " ".join(benchmark_flags),
        "benchmark_digest": prereg_lib.benchmark_digest(benchmark_flags),
        "claims": claims,
    }
    counts = sorted(
        {
            len(records)
            for per_video in per_video_by_study.values()
            for by_seed in per_video.values()
            for records in by_seed.values()
        }
    )
    if len(counts) == 1:
        actual["test_videos"] = counts[0]
    elif counts:
        actual["test_videos"] = f"{counts[0]}-{counts[-1]} (differs between runs)"
    return actual


def write_reports(
    chosen: Sequence[studies_lib.Study],
    layout: runner.Layout,
    options: runner.Options,
    graph: runner.TaskGraph,
    *,
    hparams: bool = True,
    prereg: prereg_lib.Preregistration | None = None,
) -> list[str]:
    """Collects every study's values (and per-video results, accuracies) and writes its report.

    With `prereg`, its primary claims are decided as one family and the deviations listed. Returns the printed
    lines.
    """
    reports_dir = os.path.join(layout.out_dir, "reports")
    flag_settings = {}
    for study in chosen:
        for stem in study.flagfiles():
            path = os.path.join(options.flagfile_dir, stem + ".cfg")
            flag_settings[stem] = {
                **report_lib.read_flagfile(path),
                **dict(o[2:].split("=", 1) for o in runner.schedule_overrides(stem, options.quick)),
            }
    lines, summary_rows = [], []
    benchmark_flags = ["--preset=study", *options.benchmark_flags]
    benchmark = " ".join(benchmark_flags)
    per_video_by_study = {study.name: runner.collect_per_video(study, layout, options.seeds) for study in chosen}
    decisions, deviations = [], None
    if prereg is not None:
        decisions = report_lib.primary_decisions(prereg, per_video_by_study)
        deviations = prereg_lib.deviations(
            prereg, actual_settings(prereg, chosen, options, per_video_by_study, benchmark_flags)
        )
        if options.quick:
            deviations.append("schedule: --quick (shorter schedules, one seed) instead of the full schedules.")
    for study in chosen:
        results = runner.collect(study, layout, options.seeds)
        summary_rows.append((study, results))
        paths = report_lib.write_report(
            study,
            results,
            reports_dir,
            seeds=options.seeds,
            quick=options.quick,
            hparams_dir=os.path.join(reports_dir, "tensorboard") if hparams else None,
            flag_settings=flag_settings,
            failures=runner.study_failures(study, graph, layout, options.seeds),
            benchmark=benchmark,
            per_video=per_video_by_study[study.name],
            accuracy=runner.collect_accuracy(study, layout, options.seeds),
            prereg=prereg,
            decisions=[(c, d) for c, d in decisions if c.study == study.name],
            deviations=deviations,
        )
        lines.append(f"{study.name}: {paths['report']}")
    baseline = report_lib.format_cell(
        {seed: runner.read_value(studies_lib.TSN_BASELINE, seed, layout) for seed in options.seeds}
    )
    header = (
        f"# What reproduces\n\nBenchmark: `data.synthetic {benchmark}`; seeds {list(options.seeds)}"
        f"{' (--quick)' if options.quick else ''}. TSN RGB baseline (`study_stpa_tsn_rgb`, K = 25): "
        f"{baseline} % top-1 (chance {100 / studies_lib.STUDY_CLASSES:.1f} %).\n\n"
    )
    primary = ""
    if prereg is not None:
        primary = "\n".join(
            [
                "## Pre-registered primary claims",
                "",
                *report_lib.preregistration_lines(prereg.path, deviations, reports_dir),
                report_lib.primary_table(decisions),
                "",
                statistics.DECISION_RULES,
                "",
                "## Every claim (seed-only t intervals)",
                "",
                "",
            ]
        )
    summary = files.write_text(
        os.path.join(reports_dir, "summary.md"), header + primary + report_lib.summary_table(summary_rows) + "\n"
    )
    lines.append(f"TSN RGB baseline: {baseline} % top-1")
    lines.append(f"summary: {summary}")
    if hparams:
        lines.append(f"TensorBoard HParams: tensorboard --logdir={os.path.join(reports_dir, 'tensorboard')}")
    return lines


def main(argv: Sequence[str]) -> None:
    """Runs the chosen studies and writes their reports."""
    del argv
    if _LIST.value:
        print(list_studies())
        return
    if not _STUDY.value:
        raise app.UsageError(f"--study is required: one of {', '.join(studies_lib.STUDIES)}, or 'all'.")
    try:
        chosen = studies_lib.select(_STUDY.value)
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    seeds = (0,) if _QUICK.value else tuple(range(_SEEDS.value))
    options = runner.Options(
        seeds=seeds,
        quick=_QUICK.value,
        deterministic=_DETERMINISTIC.value,
        benchmark_flags=[f"--cue={_CUE.value}"] if _CUE.value != "both" else [],
        train_accuracy_videos=_TRAIN_ACCURACY_VIDEOS.value,
        val_accuracy=_VAL_ACCURACY.value,
    )
    prereg = None
    if _PREREGISTRATION.value:
        try:
            prereg = prereg_lib.load(_PREREGISTRATION.value)
        except (ValueError, FileNotFoundError) as error:
            raise app.UsageError(str(error)) from error
    layout = runner.Layout(os.path.abspath(_OUT_DIR.value))
    try:
        runner.check_schedule(layout, options)
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    graph = runner.TaskGraph(layout, options)
    graph.add_studies(chosen)
    tasks = graph.ordered()
    start = time.perf_counter()
    if not _REPORT_ONLY.value:
        states = runner.execute(tasks, layout, jobs=_JOBS.value, retry_failed=_RETRY.value, progress=_PROGRESS.value)
        failed = [key for key, state in states.items() if state["status"] != "done"]
        print(f"{len(tasks)} tasks, {len(failed)} not done, {(time.perf_counter() - start) / 60:.1f} min")
        for key in failed:
            state = states[key]
            print(f"  {state['status']}: {key}" + (f" (log: {state['log']})" if "log" in state else ""))
    for line in write_reports(chosen, layout, options, graph, hparams=_HPARAMS.value, prereg=prereg):
        print(line)
    sys.stdout.flush()


if __name__ == "__main__":
    app.run(main)
