"""A set of studies' reports from a study directory: values, per-video results, decisions, summary.md.

`write_reports` is what `python -m experiments.reproduce` (and the protocol's `--part=report`,
`experiments.protocol`) writes after the runs: every study's report (`experiments.report.write_report`), the
pre-registered primary claims decided as one Holm family with the run's deviations from the pre-registration
(`actual_settings`), and `<out_dir>/reports/summary.md` (the "What reproduces" table).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from data import files
from experiments import preregistration as prereg_lib
from experiments import report as report_lib
from experiments import runner, statistics
from experiments import studies as studies_lib


def _has_cell(study: studies_lib.Study, row_column: tuple[str, str]) -> bool:
    return any((cell.row, cell.column) == tuple(row_column) for cell in study.cells)


def actual_settings(
    prereg: prereg_lib.Preregistration,
    chosen: Sequence[studies_lib.Study],
    options: runner.Options,
    per_video_by_study: dict,
    benchmark_flags: Sequence[str],
    extra: Mapping[str, object] | None = None,
) -> dict:
    """What this run used, in the keys of `preregistration.deviations`.

    The claims are the pre-registered ones whose study was run and has both cells; test_videos is the number of
    test videos in the per-video results (absent when there are none); the decision settings are the
    pre-registration's own (the report uses them); `extra` adds what the caller knows (e.g. the protocol's
    schedule, dose_seeds, replication_seeds, descriptive studies).
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
        **(extra or {}),
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
    seeds_by_study: Mapping[str, Sequence[int]] | None = None,
    extra_settings: Mapping[str, object] | None = None,
) -> tuple[list[str], list]:
    """Collects every study's values (and per-video results, accuracies) and writes its report.

    With `prereg`, its primary claims are decided as one family and the deviations listed (`extra_settings`: more
    of what the run used, see `actual_settings`). `seeds_by_study` gives a study other seeds than
    `options.seeds` (the protocol's dose rows). Returns the printed lines and the primary decisions
    ((claim, `statistics.Decision`) pairs; empty without `prereg`).
    """
    seeds_by_study = dict(seeds_by_study or {})

    def study_seeds(study: studies_lib.Study) -> Sequence[int]:
        return seeds_by_study.get(study.name, options.seeds)

    reports_dir = os.path.join(layout.out_dir, "reports")
    flag_settings = {}
    for study in chosen:
        for stem in study.flagfiles():
            path = os.path.join(options.flagfile_dir, stem + ".cfg")
            flag_settings[stem] = {
                **report_lib.read_flagfile(path),
                **dict(
                    o[2:].split("=", 1)
                    for o in runner.schedule_overrides(stem, options.quick, options.steps, options.flagfile_dir)
                ),
            }
    lines, summary_rows = [], []
    benchmark_flags = ["--preset=study", *options.benchmark_flags]
    benchmark = " ".join(benchmark_flags)
    per_video_by_study = {study.name: runner.collect_per_video(study, layout, study_seeds(study)) for study in chosen}
    decisions, deviations = [], None
    if prereg is not None:
        decisions = report_lib.primary_decisions(prereg, per_video_by_study)
        deviations = prereg_lib.deviations(
            prereg, actual_settings(prereg, chosen, options, per_video_by_study, benchmark_flags, extra_settings)
        )
        if options.quick:
            deviations.append("schedule: --quick (shorter schedules, one seed) instead of the full schedules.")
    for study in chosen:
        seeds = study_seeds(study)
        results = runner.collect(study, layout, seeds)
        summary_rows.append((study, results))
        paths = report_lib.write_report(
            study,
            results,
            reports_dir,
            seeds=seeds,
            quick=options.quick,
            hparams_dir=os.path.join(reports_dir, "tensorboard") if hparams else None,
            flag_settings=flag_settings,
            failures=runner.study_failures(study, graph, layout, seeds),
            benchmark=benchmark,
            per_video=per_video_by_study[study.name],
            accuracy=runner.collect_accuracy(study, layout, seeds),
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
    return lines, decisions
