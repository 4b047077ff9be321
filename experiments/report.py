"""A study's report: report.md in the paper's layout, a PNG figure, values.csv (every run), TensorBoard HParams.

`results` everywhere is what `experiments.runner.collect` returns: (row, column) -> {seed: value (%) or None}.

report.md holds, per cell, mean ± std over the seeds with the number of seeds that finished, the paper's own number
in a side column (labelled as the paper's result on its real dataset), and a direction table: every claim of the
paper as a paired difference over the seeds with its 95 % t interval and the verdict (`experiments.statistics`).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence

from data import files
from experiments import statistics
from experiments.studies import STUDY_CLASSES, Study

Results = Mapping[tuple[str, str], Mapping[int, float | None]]


def format_cell(values: Mapping[int, float | None]) -> str:
    """"87.3 ± 1.2 (3)" (mean ± std, seeds with a result); "no result (0/3)" when none has one.

    A seed without a result failed (or has not run yet): `<out_dir>/state/` and `logs/` say which, and the report
    lists the failed commands.
    """
    summary = statistics.summarize(list(values.values()))
    if summary is None:
        return f"no result (0/{len(values)})"
    text = f"{summary.mean:.1f} ± {summary.std:.1f} ({summary.n})"
    if summary.n < len(values):
        text += f", {len(values) - summary.n} without result"
    return text


def _paper(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.1f}"


def comparisons(study: Study, results: Results) -> list[tuple[object, statistics.Comparison]]:
    """Every claim of the study with its paired comparison."""
    return [(claim, statistics.paired_difference(results[claim.cell], results[claim.reference], claim.sign))
            for claim in study.claims]


def render_markdown(study: Study, results: Results, *, seeds: Sequence[int], quick: bool = False,
                    figure: str | None = None, failures: Sequence[str] = (), benchmark: str = "--preset=study"
                    ) -> str:
    """The report of one study (markdown).

    Args:
      study: the study.
      results: its values.
      seeds: the seeds it was run with.
      quick: whether the runs had the --quick schedules.
      figure: the PNG shown under the tables.
      failures: the study's commands that failed (with their logs).
      benchmark: the `data.synthetic` flags of the benchmark.

    Returns:
      The markdown text.
    """
    lines = [f"# {study.title}", ""]
    schedule = "--quick (shorter schedules)" if quick else "full schedules"
    lines.append(f"Study benchmark (`data.synthetic {benchmark}`), {schedule}, seeds {list(seeds)}; values: "
                 f"{study.unit} on the test split, mean ± std over the seeds (number of seeds that finished). "
                 f"**Paper** columns: {study.paper_source} — the paper's result on its real dataset, shown for the "
                 "direction, not comparable in value.")
    lines.append("")
    header = ["Row"]
    for column in study.columns:
        header += [f"{column}", f"{column}: paper"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for row in study.rows:
        cells = [row]
        for column in study.columns:
            cell = study.cell(row, column)
            cells += [format_cell(results[(row, column)]), _paper(cell.paper)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if study.notes:
        lines += [study.notes, ""]
    lines += ["## The paper's directions", ""]
    lines.append("| Row | vs | Paper | Ours: mean difference [95 % interval] (pairs) | Verdict |")
    lines.append("|---|---|---|---|---|")
    for claim, result in comparisons(study, results):
        if result.low is None:
            interval = f"{_signed(result.mean)} ({result.n})"
        else:
            interval = f"{result.mean:+.1f} [{result.low:+.1f}, {result.high:+.1f}] ({result.n})"
        row, reference = " / ".join(claim.cell), " / ".join(claim.reference)
        lines.append(f"| {row} | {reference} | {'higher' if claim.sign > 0 else 'lower'}: {claim.paper_says} | "
                     f"{interval} | {result.verdict} |")
    lines += ["", statistics.VERDICT_RULES, ""]
    if failures:
        lines += ["## Commands that failed (their cells have no result for that seed)", ""]
        lines += [f"- {failure}" for failure in failures] + [""]
    if figure:
        lines += [f"![{study.name}]({os.path.basename(figure)})", ""]
    return "\n".join(lines)


def figure(study: Study, results: Results):
    """Bars with error bars (rows × columns), or lines over the columns (Fig. 3's K sweep, α thresholds)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(6.0, 1.1 * len(study.rows) * max(1, len(study.columns)) ** 0.5 + 2), 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)

    def stats(row, column):
        summary = statistics.summarize(list(results[(row, column)].values()))
        return (math.nan, 0.0) if summary is None else (summary.mean, summary.std)

    if study.figure == "lines":
        x = np.arange(len(study.columns))
        for row in study.rows:
            means, stds = zip(*(stats(row, c) for c in study.columns))
            ax.errorbar(x, means, yerr=stds, marker="o", capsize=3, label=row)
        ax.set_xticks(x, study.columns)
    else:
        width = 0.8 / len(study.columns)
        x = np.arange(len(study.rows))
        for i, column in enumerate(study.columns):
            means, stds = zip(*(stats(r, column) for r in study.rows))
            ax.bar(x + (i - (len(study.columns) - 1) / 2) * width, means, width, yerr=stds, capsize=3, label=column)
        ax.set_xticks(x, study.rows, rotation=20, ha="right", fontsize=8)
    if study.unit.startswith("top-1"):
        ax.axhline(100.0 / STUDY_CLASSES, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_ylabel(study.unit)
    ax.set_title(study.title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def write_figure(path: str, fig) -> str:
    """Saves a figure atomically (folder created); returns the path."""
    files.write_atomic(path, lambda temporary: fig.savefig(temporary, format="png"))
    return path


def write_hparams(study: Study, results: Results, log_dir: str, flag_settings: Mapping[str, Mapping[str, str]]
                  ) -> str:
    """One TensorBoard HParams session per (cell, seed) under `log_dir/<study>/`: the row's settings and its value.

    Args:
      study: the study.
      results: its values.
      log_dir: TensorBoard root (`tensorboard --logdir=<log_dir>`, tab HPARAMS).
      flag_settings: flagfile stem -> {flag: value} (`read_flagfile`), for the hyper-parameter columns.

    Returns:
      The study's log directory.
    """
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    root = os.path.join(log_dir, study.name)
    keys = ("model", "modality", "scales", "fusion", "beta", "gamma", "train_frames", "max_steps",
            "lambda_tv", "lambda_contrast", "lambda_unimodal", "model_options")
    for cell in study.cells:
        settings = {}
        for stem in cell.measure.runs:
            for key in keys:
                if key in flag_settings.get(stem, {}):
                    value = flag_settings[stem][key]
                    settings[key] = value if key not in settings else f"{settings[key]} + {value}"
        for seed, value in results[(cell.row, cell.column)].items():
            if value is None:
                continue
            name = f"{cell.row}|{cell.column}|seed{seed}"
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
            with tf.summary.create_file_writer(os.path.join(root, safe)).as_default():
                hp.hparams({"study": study.name, "row": cell.row, "column": cell.column, "seed": seed,
                            "measure": cell.measure.kind, "test_frames": cell.measure.test_frames,
                            "flagfiles": ",".join(cell.measure.runs), **settings}, trial_id=name)
                tf.summary.scalar("value", value, step=0)
    return root


def read_flagfile(path: str) -> dict[str, str]:
    """{flag: value} of a flagfile's `--flag=value` lines (comments and nested --flagfile lines skipped)."""
    settings = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("--") and "=" in line:
                key, _, value = line[2:].partition("=")
                settings[key] = value
    return settings


def values_csv(study: Study, results: Results) -> str:
    """Every run's value, one line per (row, column, seed): what the means, stds and paired intervals come from.

    A seed without a result has an empty value.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["row", "column", "seed", "value"])
    for cell in study.cells:
        for seed, value in sorted(results[(cell.row, cell.column)].items()):
            writer.writerow([cell.row, cell.column, seed, "" if value is None else f"{value:.4f}"])
    return buffer.getvalue()


def write_report(study: Study, results: Results, out_dir: str, *, seeds: Sequence[int], quick: bool = False,
                 hparams_dir: str | None = None, flag_settings: Mapping[str, Mapping[str, str]] | None = None,
                 failures: Sequence[str] = (), benchmark: str = "--preset=study") -> dict[str, str]:
    """Writes `<out_dir>/<study>/report.md`, `<study>.png` and `values.csv` (and HParams when `hparams_dir`).

    Returns:
      The paths written, by kind: "report", "figure", "values" (and "hparams").
    """
    folder = os.path.join(out_dir, study.name)
    png = write_figure(os.path.join(folder, f"{study.name}.png"), figure(study, results))
    report = files.write_text(os.path.join(folder, "report.md"), render_markdown(
        study, results, seeds=seeds, quick=quick, figure=png, failures=failures, benchmark=benchmark))
    values = files.write_text(os.path.join(folder, "values.csv"), values_csv(study, results))
    paths = {"report": report, "figure": png, "values": values}
    if hparams_dir:
        paths["hparams"] = write_hparams(study, results, hparams_dir, flag_settings or {})
    return paths


def summary_table(rows: Sequence[tuple[Study, Results]]) -> str:
    """The "What reproduces" table: one line per claim of every study, with its verdict."""
    lines = ["| Study | Row | vs | Paper | Ours (mean difference [95 % interval]) | Verdict |",
             "|---|---|---|---|---|---|"]
    for study, results in rows:
        for claim, result in comparisons(study, results):
            if result.low is None:
                interval = _signed(result.mean)
            else:
                interval = f"{result.mean:+.1f} [{result.low:+.1f}, {result.high:+.1f}]"
            lines.append(f"| {study.name} | {' / '.join(claim.cell)} | {' / '.join(claim.reference)} | "
                         f"{'higher' if claim.sign > 0 else 'lower'} | {interval} | {result.verdict} |")
    return "\n".join(lines)
