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

from experiments import preregistration as prereg_lib
from experiments import protocol as protocol_lib
from experiments import runner, study_reports
from experiments import studies as studies_lib

_STUDY = flags.DEFINE_string("study", None, f"Comma-separated studies, or 'all': {', '.join(studies_lib.STUDIES)}.")
_SEEDS = flags.DEFINE_integer(
    "seeds", 3, "Training seeds 0 .. N-1 per row (pairs of rows share the seed).", lower_bound=1
)
_OUT_DIR = flags.DEFINE_string("out_dir", "runs/studies", "Study directory: data, runs, logs, reports.")
_QUICK = flags.DEFINE_boolean(
    "quick",
    False,
    "One seed and shorter schedules: each row trains the quick steps of its model family's schedule group "
    "(ModelFamily.schedule_group.quick_steps).",
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
_PART = flags.DEFINE_enum(
    "part",
    None,
    list(protocol_lib.PART_CHOICES),
    "Run a named part of the pre-registered protocol (needs --preregistration; its seeds, benchmark and schedule "
    "come from the file): each part resumes and is planned to finish within 60 min with --jobs=2; 'all' runs them in "
    "order; 'report' writes every report and the protocol summary from what has finished (experiments.protocol).",
)
_RESULTS_DIR = flags.DEFINE_string(
    "results_dir",
    None,
    "With --part: also copy the committed subset (reports, values.csv, per_video.csv.gz, accuracy.csv, figures, "
    "summaries, timings) here, e.g. experiments/results/protocol.",
)
_RESTORE_FROM = flags.DEFINE_string(
    "restore_from",
    None,
    "With --part: first copy the finished tasks of an earlier session's --results_dir (its <instance>/resume/) into "
    "--out_dir, so the remaining parts continue without retraining them.",
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


def protocol_conflicts(flag_values) -> list[str]:
    """The flags given with --part that the pre-registration decides instead (each a UsageError line)."""
    conflicts = []
    for name in ("study", "seeds", "cue", "quick", "train_accuracy_videos", "val_accuracy", "deterministic"):
        if flag_values[name].present:
            conflicts.append(f"--{name}")
    return conflicts


def run_protocol(part: str) -> None:
    """--part: runs a part (or all, or only the reports) of the pre-registered protocol."""
    protocol = protocol_lib
    if not _PREREGISTRATION.value:
        raise app.UsageError("--part needs --preregistration=FILE (the protocol's seeds, benchmark and schedule).")
    conflicts = protocol_conflicts(flags.FLAGS)
    if conflicts:
        raise app.UsageError(
            f"--part takes its settings from the pre-registration; drop {', '.join(conflicts)} (or run without --part)."
        )
    try:
        prereg = prereg_lib.load(_PREREGISTRATION.value)
        if part == "report" or _REPORT_ONLY.value:
            names = []
        else:
            names = list(protocol.protocol_of(prereg).parts) if part == "all" else [part]
        for name in names:
            protocol.part_graph(prereg, protocol.protocol_part(prereg, name), _OUT_DIR.value)  # refuses a bad file
    except (ValueError, FileNotFoundError, KeyError) as error:
        raise app.UsageError(str(error)) from error
    if _RESTORE_FROM.value:
        restored = protocol.restore_results(_RESTORE_FROM.value, _OUT_DIR.value)
        print(f"restored {len(restored)} files from {_RESTORE_FROM.value} into {_OUT_DIR.value}")
    for name in names:
        try:
            lines = protocol.run_part(
                prereg, name, _OUT_DIR.value, jobs=_JOBS.value, retry_failed=_RETRY.value, progress=_PROGRESS.value
            )
        except ValueError as error:  # a directory made with other settings
            raise app.UsageError(str(error)) from error
        print("\n".join(lines))
    print("\n".join(protocol.write_protocol_report(prereg, _OUT_DIR.value, hparams=_HPARAMS.value)))
    if _RESULTS_DIR.value:
        copied = protocol.copy_results(_OUT_DIR.value, _RESULTS_DIR.value, _PREREGISTRATION.value)
        print(f"copied {len(copied)} files to {_RESULTS_DIR.value}")
    sys.stdout.flush()


def main(argv: Sequence[str]) -> None:
    """Runs the chosen studies and writes their reports."""
    del argv
    if _LIST.value:
        print(list_studies())
        return
    if _PART.value:
        run_protocol(_PART.value)
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
    lines, _ = study_reports.write_reports(chosen, layout, options, graph, hparams=_HPARAMS.value, prereg=prereg)
    for line in lines:
        print(line)
    sys.stdout.flush()


if __name__ == "__main__":
    app.run(main)
