"""A study's report: report.md in the paper's layout, a PNG figure, values.csv (every run), TensorBoard HParams.

`results` everywhere is what `experiments.runner.collect` returns: (row, column) -> {seed: value (%) or None}.
`per_video` is what `experiments.runner.collect_per_video` returns: (row, column) -> {seed: [(video_id, label,
predicted), ...]}; `accuracy` is `experiments.runner.collect_accuracy`'s (row, column) -> {seed: {"train_top1",
"val_top1", "test_top1"}}.

report.md holds, per cell, mean ± std over the seeds with the number of seeds that finished, the paper's own number
in a side column (labelled as the paper's result on its real dataset), and a direction table: every claim of the
paper as a paired difference over the seeds with its 95 % t interval and the verdict (`experiments.statistics`).
Where per-video results exist, the direction table adds the seeds + videos bootstrap interval, and the
pre-registered primary claims of the study get their decision (d, interval, p, Holm-adjusted p, TOST, minimum
detectable effect, four-class verdict; then the variance-components SE and verdict as a sensitivity analysis,
marked † where the verdict differs), with a link to the pre-registration and the run's deviations from it.

Files per study (`write_report`): report.md, <study>.png, values.csv; with per-video results also per_video.csv.gz
(row, column, seed, video_id, label, predicted, correct; gzip without a timestamp, so the bytes re-derive) and with
accuracies accuracy.csv (row, column, seed, train_top1, val_top1, test_top1, train_running_top1: the end of
training's logged top-1 on augmented clips). `read_per_video` reads the first back,
so every bootstrap interval re-derives from the committed files.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import math
import os
from collections.abc import Mapping, Sequence

from data import files
from experiments import preregistration as prereg_lib
from experiments import statistics
from experiments import studies as studies_lib
from experiments.studies import STUDY_CLASSES, Study

Results = Mapping[tuple[str, str], Mapping[int, float | None]]
PerVideo = Mapping[tuple[str, str], Mapping[int, Sequence[tuple[str, int, int]]]]
Accuracy = Mapping[tuple[str, str], Mapping[int, Mapping[str, float | None]]]
PER_VIDEO_COLUMNS = ("row", "column", "seed", "video_id", "label", "predicted", "correct")
ACCURACY_COLUMNS = ("row", "column", "seed", "train_top1", "val_top1", "test_top1", "train_running_top1")


def format_cell(values: Mapping[int, float | None]) -> str:
    """A cell's text: "87.3 ± 1.2 (3)" (mean ± std, seeds with a result); "no result (0/3)" when none has one.

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
    return [
        (claim, statistics.paired_difference(results[claim.cell], results[claim.reference], claim.sign))
        for claim in study.claims
    ]


# ------------------------------------------------------------------------------------------ per-video results
def correctness(per_video: PerVideo) -> dict[tuple[str, str], dict[int, dict[str, float]]]:
    """(row, column) -> {seed: {video_id: 1.0 if predicted == label else 0.0}}."""
    return {
        key: {
            seed: {video: float(label == predicted) for video, label, predicted in records}
            for seed, records in by_seed.items()
        }
        for key, by_seed in per_video.items()
    }


def paired_estimate(
    per_video: PerVideo,
    cell: tuple[str, str],
    reference: tuple[str, str],
    *,
    level: float = 0.95,
    resamples: int = 10_000,
    rng_seed: int = 0,
) -> statistics.PairedEstimate | None:
    """`statistics.paired_bootstrap` of cell − reference over their shared seeds; None without a paired seed."""
    if not per_video.get(cell) or not per_video.get(reference):
        return None
    correct = correctness({key: per_video[key] for key in (cell, reference)})
    a, b, seeds, _ = statistics.paired_arrays(correct[cell], correct[reference])
    if not seeds:
        return None
    return statistics.paired_bootstrap(a, b, level=level, resamples=resamples, rng_seed=rng_seed)


def variance_components(
    per_video: PerVideo, cell: tuple[str, str], reference: tuple[str, str]
) -> statistics.VarianceComponents | None:
    """`statistics.variance_components_se` of cell − reference (points) over their shared seeds and videos.

    None without per-video results for both cells (e.g. a localisation cell) or with fewer than 2 paired seeds
    or 2 videos (no ANOVA).
    """
    if not per_video.get(cell) or not per_video.get(reference):
        return None
    correct = correctness({key: per_video[key] for key in (cell, reference)})
    a, b, seeds, videos = statistics.paired_arrays(correct[cell], correct[reference])
    if len(seeds) < 2 or len(videos) < 2:
        return None
    return statistics.variance_components_se(100.0 * (a - b))


def per_video_csv_gz(study: Study, per_video: PerVideo) -> bytes:
    """The per-video results of a study as gzip-compressed CSV (`PER_VIDEO_COLUMNS`).

    Cells in the study's order, seeds ascending, videos in the score file's order; no timestamp in the gzip header
    (same data, same bytes).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PER_VIDEO_COLUMNS)
    for cell in study.cells:
        for seed, records in sorted(per_video.get((cell.row, cell.column), {}).items()):
            for video, label, predicted in records:
                writer.writerow([cell.row, cell.column, seed, video, label, predicted, int(label == predicted)])
    return gzip.compress(buffer.getvalue().encode("utf-8"), compresslevel=9, mtime=0)


def read_per_video(path: str) -> dict[tuple[str, str], dict[int, list[tuple[str, int, int]]]]:
    """Reads a per_video.csv.gz back into `per_video` form (the `correct` column is checked against the others)."""
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != PER_VIDEO_COLUMNS:
            raise ValueError(f"{path}: columns {reader.fieldnames}, expected {list(PER_VIDEO_COLUMNS)}.")
        per_video: dict[tuple[str, str], dict[int, list[tuple[str, int, int]]]] = {}
        for line in reader:
            label, predicted = int(line["label"]), int(line["predicted"])
            if int(line["correct"]) != int(label == predicted):
                raise ValueError(
                    f"{path}: video {line['video_id']} of {line['row']} / {line['column']} seed "
                    f"{line['seed']} has correct={line['correct']} but label {label}, predicted "
                    f"{predicted}."
                )
            key = (line["row"], line["column"])
            per_video.setdefault(key, {}).setdefault(int(line["seed"]), []).append((line["video_id"], label, predicted))
    return per_video


def accuracy_csv(study: Study, accuracy: Accuracy) -> str:
    """Train / validation / test top-1 (%) per top-1 cell and seed (`ACCURACY_COLUMNS`; empty: not measured)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(ACCURACY_COLUMNS)
    for cell in study.cells:
        for seed, values in sorted(accuracy.get((cell.row, cell.column), {}).items()):
            writer.writerow(
                [cell.row, cell.column, seed]
                + ["" if values.get(key) is None else f"{values[key]:.4f}" for key in ACCURACY_COLUMNS[3:]]
            )
    return buffer.getvalue()


# --------------------------------------------------------------------------------- pre-registered primary claims
def primary_decisions(
    prereg: prereg_lib.Preregistration, per_video_by_study: Mapping[str, PerVideo]
) -> list[tuple[prereg_lib.PrimaryClaim, statistics.Decision]]:
    """Every pre-registered primary claim decided as one Holm family (`statistics.DECISION_RULES`).

    Each decision also carries the sensitivity analysis (`statistics.VARIANCE_COMPONENTS_RULES`): the same family
    decided with the variance-components SE, in `Decision.variance_components`.

    Args:
      prereg: the pre-registration (its alpha, power, level, bootstrap_resamples, bootstrap_seed are used).
      per_video_by_study: study name -> its per-video results. A claim whose study or cells have none stays in
        the family with p = 1 (verdict inconclusive).

    Returns:
      (claim, decision) in the pre-registration's order.
    """
    estimates, components = [], []
    for claim in prereg.claims:
        per_video = per_video_by_study.get(claim.study, {})
        estimates.append(
            paired_estimate(
                per_video,
                claim.cell,
                claim.reference,
                level=prereg.level,
                resamples=prereg.bootstrap_resamples,
                rng_seed=prereg.bootstrap_seed,
            )
        )
        components.append(variance_components(per_video, claim.cell, claim.reference))
    signs, margins = [c.sign for c in prereg.claims], [c.margin for c in prereg.claims]
    decisions = statistics.decide_family(estimates, signs, margins, alpha=prereg.alpha, power=prereg.power)
    sensitivity = statistics.decide_family_variance_components(
        components, signs, margins, alpha=prereg.alpha, power=prereg.power
    )
    return [
        (claim, dataclasses.replace(decision, variance_components=other))
        for claim, decision, other in zip(prereg.claims, decisions, sensitivity)
    ]


def _p(value: float) -> str:
    return f"{value:.2g}" if value >= 0.001 else "< 0.001"


DIFFERS = "†"
SENSITIVITY_NOTE = (
    "SE (var. comp.) and Verdict (var. comp.): a sensitivity analysis, not the registered decision: the same "
    "tests, Holm family and verdict rules with a variance-components standard error (crossed seeds × videos, "
    "Satterthwaite degrees of freedom; `experiments.statistics.VARIANCE_COMPONENTS_RULES`) in place of the "
    f"bootstrap SE; — where the claim has no per-video top-1 to decompose. {DIFFERS}: the verdict with that SE "
    "differs from the registered (bootstrap) verdict, so the claim's verdict depends on how its standard error is "
    "estimated."
)


def _sensitivity_cells(decision: statistics.Decision) -> list[str]:
    """The "SE (var. comp.)" and "Verdict (var. comp.)" cells; the verdict marked `DIFFERS` when it differs."""
    other = decision.variance_components
    if other is None or other.estimate is None:
        return ["—", "—"]
    mark = f" {DIFFERS}" if other.verdict != decision.verdict else ""
    return [f"{other.estimate.se:.1f}", _verdict_text(other) + mark]


def _verdict_text(decision: statistics.Decision) -> str:
    if decision.verdict == statistics.EQUIVALENT:
        return f"{statistics.EQUIVALENT} (|d| < {decision.margin:g})"
    if decision.inside_margin:
        return f"{decision.verdict} (inside the margin ±{decision.margin:g})"
    return decision.verdict


def primary_table(
    decisions: Sequence[tuple[prereg_lib.PrimaryClaim, statistics.Decision]], *, with_study: bool = True
) -> str:
    """Markdown table of decided primary claims: d, interval, SE, p, Holm p, TOST p (Holm), MDE, verdict.

    Then the sensitivity columns "SE (var. comp.)" and "Verdict (var. comp.)" (`Decision.variance_components`;
    — when absent), the latter marked `DIFFERS` when it is not the registered verdict, and `SENSITIVITY_NOTE`
    under the table (a blank line between).
    """
    level = next((d.estimate.level for _, d in decisions if d.estimate is not None), 0.95)
    hosts = [studies_lib.STUDIES[c.study].host if c.study in studies_lib.STUDIES else "" for c, _ in decisions]
    with_host = any(hosts)
    header = [
        "Claim",
        *(["Host"] if with_host else []),
        *(["Study"] if with_study else []),
        "A − B (column)",
        "Paper",
        "Seeds × videos",
        f"d [{100 * level:g} % interval]",
        "SE",
        "p",
        "p (Holm)",
        "Margin",
        "TOST p (Holm)",
        "MDE",
        "Verdict",
        "SE (var. comp.)",
        "Verdict (var. comp.)",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (claim, decision), host in zip(decisions, hosts):
        estimate = decision.estimate
        direction = "higher" if claim.sign > 0 else "lower"
        paper = f"{direction}: {claim.paper}" if claim.paper else direction
        if estimate is None:
            measured = ["0", "no paired seed", "—"]
        else:
            measured = [
                f"{estimate.n_seeds} × {estimate.n_videos}",
                f"{estimate.mean:+.1f} [{estimate.low:+.1f}, {estimate.high:+.1f}]",
                f"{estimate.se:.1f}",
            ]
        mde = "—" if decision.mde is None else f"{decision.mde:.1f}"
        cells = [
            claim.id,
            *([host or "—"] if with_host else []),
            *([claim.study] if with_study else []),
            f"{claim.row_a} − {claim.row_b} ({claim.column})",
            paper,
            *measured,
            _p(decision.p_difference),
            _p(decision.p_difference_adjusted),
            f"±{claim.margin:g}",
            _p(decision.p_tost_adjusted),
            mde,
            _verdict_text(decision),
            *_sensitivity_cells(decision),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", SENSITIVITY_NOTE])


def preregistration_lines(path: str | None, deviations: Sequence[str] | None, folder: str | None = None) -> list[str]:
    """The lines "Pre-registration: [name](link)" and its deviations ("none" when there is none)."""
    if path is None:
        return []
    link = os.path.relpath(path, folder) if folder else path
    lines = [
        f"Pre-registration: [{os.path.basename(path)}]({link}). Deviations from it:"
        + (" none." if not deviations else ""),
        "",
    ]
    if deviations:
        lines += [f"- {line}" for line in deviations] + [""]
    return lines


@dataclasses.dataclass(frozen=True)
class Difference:
    """One paired difference drawn in the figure's right panel (points)."""

    label: str
    mean: float | None
    low: float | None
    high: float | None
    margin: float | None = None  # the equivalence margin: a shaded band ±margin around 0


def _matching_claim(prereg, study: Study, cell, reference):
    if prereg is None:
        return None
    return next(
        (
            c
            for c in prereg.claims
            if c.study == study.name and c.cell == tuple(cell) and c.reference == tuple(reference)
        ),
        None,
    )


def differences(
    study: Study, results: Results, per_video: PerVideo | None = None, prereg: prereg_lib.Preregistration | None = None
) -> list[Difference]:
    """The study's claims (and its primary claims that are not among them) as `Difference`s.

    The interval is the seeds + videos bootstrap's where both cells have per-video results, else the seed-only t
    interval; the margin is the pre-registered one of the same comparison (None: not pre-registered).
    """
    per_video = per_video or {}
    options = (
        {}
        if prereg is None
        else dict(level=prereg.level, resamples=prereg.bootstrap_resamples, rng_seed=prereg.bootstrap_seed)
    )
    items, seen = [], set()
    pairs = [(c.cell, c.reference, c.sign) for c in study.claims]
    if prereg is not None:
        pairs += [(c.cell, c.reference, c.sign) for c in prereg.claims if c.study == study.name]
    for cell, reference, sign in pairs:
        if (tuple(cell), tuple(reference)) in seen:
            continue
        seen.add((tuple(cell), tuple(reference)))
        claim = _matching_claim(prereg, study, cell, reference)
        label = f"{' / '.join(cell)} − {' / '.join(reference)}"
        estimate = paired_estimate(per_video, tuple(cell), tuple(reference), **options)
        if estimate is not None:
            item = Difference(label, estimate.mean, estimate.low, estimate.high)
        elif cell in results and reference in results:
            result = statistics.paired_difference(results[cell], results[reference], sign)
            item = Difference(label, result.mean, result.low, result.high)
        else:
            continue
        items.append(dataclasses.replace(item, margin=None if claim is None else claim.margin))
    return items


def render_markdown(
    study: Study,
    results: Results,
    *,
    seeds: Sequence[int],
    quick: bool = False,
    figure: str | None = None,
    failures: Sequence[str] = (),
    benchmark: str = "--preset=study",
    per_video: PerVideo | None = None,
    prereg: prereg_lib.Preregistration | None = None,
    decisions: Sequence[tuple[prereg_lib.PrimaryClaim, statistics.Decision]] = (),
    deviations: Sequence[str] | None = None,
    folder: str | None = None,
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
      per_video: its per-video results (None or empty: the seed-only analysis of values.csv alone).
      prereg: the pre-registration the protocol follows (linked; its bootstrap settings are used).
      decisions: this study's primary claims decided in the whole family (`primary_decisions`).
      deviations: the run's deviations from the pre-registration (`preregistration.deviations`).
      folder: where report.md is written (for the pre-registration's relative link).

    Returns:
      The markdown text.
    """
    lines = [f"# {study.title}", ""]
    schedule = "--quick (shorter schedules)" if quick else "full schedules"
    lines.append(
        f"Study benchmark (`data.synthetic {benchmark}`), {schedule}, seeds {list(seeds)}; values: "
        f"{study.unit} on the test split, mean ± std over the seeds (number of seeds that finished). "
        f"**Paper** columns: {study.paper_source} — the paper's result on its real dataset, shown for the "
        "direction, not comparable in value."
    )
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
    if prereg is not None:
        lines += ["## Pre-registered primary claims", ""]
        lines += preregistration_lines(prereg.path, deviations, folder)
        if decisions:
            lines += [primary_table(decisions, with_study=False), "", statistics.DECISION_RULES, ""]
        else:
            lines += [
                "This study holds none of the primary claims (descriptive)."
                if study.name in prereg.descriptive
                else "This study holds none of the primary claims.",
                "",
            ]
    options = (
        {}
        if prereg is None
        else dict(level=prereg.level, resamples=prereg.bootstrap_resamples, rng_seed=prereg.bootstrap_seed)
    )
    estimates = [paired_estimate(per_video or {}, tuple(c.cell), tuple(c.reference), **options) for c in study.claims]
    bootstrap = any(e is not None for e in estimates)
    lines += ["## The paper's directions", ""]
    header = "| Row | vs | Paper | Ours: mean difference [95 % interval] (pairs) | Verdict |"
    if bootstrap:
        header += " Seeds + videos: d [bootstrap interval] (SE) |"
    lines += [header, "|---|---|---|---|---|" + ("---|" if bootstrap else "")]
    for (claim, result), estimate in zip(comparisons(study, results), estimates):
        if result.low is None:
            interval = f"{_signed(result.mean)} ({result.n})"
        else:
            interval = f"{result.mean:+.1f} [{result.low:+.1f}, {result.high:+.1f}] ({result.n})"
        row, reference = " / ".join(claim.cell), " / ".join(claim.reference)
        line = (
            f"| {row} | {reference} | {'higher' if claim.sign > 0 else 'lower'}: {claim.paper_says} | "
            f"{interval} | {result.verdict} |"
        )
        if bootstrap:
            line += (
                " — |"
                if estimate is None
                else f" {estimate.mean:+.1f} [{estimate.low:+.1f}, {estimate.high:+.1f}] ({estimate.se:.1f}) |"
            )
        lines.append(line)
    lines += ["", statistics.VERDICT_RULES, ""]
    if bootstrap:
        lines += [
            "The last column resamples seeds and test videos (paired hierarchical bootstrap, "
            f"{next(e for e in estimates if e is not None).resamples} "
            "resamples, percentile interval); it is descriptive here: the decisions are the primary claims'.",
            "",
        ]
    if failures:
        lines += ["## Commands that failed (their cells have no result for that seed)", ""]
        lines += [f"- {failure}" for failure in failures] + [""]
    if figure:
        lines += [f"![{study.name}]({os.path.basename(figure)})", ""]
    return "\n".join(lines)


def figure(study: Study, results: Results, diffs: Sequence[Difference] = ()):
    """Bars with error bars (rows × columns), or lines over the columns (Fig. 3's K sweep, α thresholds).

    Args:
      study: the study.
      results: its values.
      diffs: paired differences (`differences`) drawn in a second panel: the mean with its interval per claim and,
        where pre-registered, the equivalence band ±margin around 0 (a shaded rectangle with gid "margin:<label>").

    Returns:
      The matplotlib Figure: axes[0] the values (bar i of column j: the mean of (row i, column j); a bar container
      per column, labelled with the column; a line per row labelled with the row), axes[1] the differences.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    width_in = max(6.0, 1.1 * len(study.rows) * max(1, len(study.columns)) ** 0.5 + 2)
    fig = Figure(figsize=(width_in + (5.0 if diffs else 0.0), 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2, 1, gid="values") if diffs else fig.add_subplot(1, 1, 1, gid="values")

    def stats(row, column):
        summary = statistics.summarize(list(results[(row, column)].values()))
        return (math.nan, 0.0) if summary is None else (summary.mean, summary.std)

    if study.figure == "lines":
        x = np.arange(len(study.columns))
        for row in study.rows:
            means, stds = zip(*(stats(row, c) for c in study.columns))
            ax.errorbar(x, means, yerr=stds, marker="o", capsize=3, label=row)
        ax.set_xticks(x, study.columns)
        ax.set_xlabel(study.x_label, fontsize=8)
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
    if diffs:  # the title spans both panels (a long one would run off the left panel)
        fig.suptitle(study.title, fontsize=9)
    else:
        ax.set_title(study.title, fontsize=9)
    bottom, top = ax.get_ylim()
    ax.set_ylim(bottom, top + 0.25 * (top - bottom))  # headroom: the legend sits above the data, not on it
    entries = len(ax.get_legend_handles_labels()[1])
    ax.legend(fontsize=8, loc="upper left", ncol=min(entries, 4))
    ax.grid(axis="y", alpha=0.3)
    if diffs:
        right = fig.add_subplot(1, 2, 2, gid="differences")
        y = np.arange(len(diffs))[::-1]  # first claim on top
        for position, item in zip(y, diffs):
            if item.margin is not None:
                right.add_patch(
                    Rectangle(
                        (-item.margin, position - 0.4),
                        2 * item.margin,
                        0.8,
                        color="tab:green",
                        alpha=0.2,
                        linewidth=0,
                        gid=f"margin:{item.label}",
                    )
                )
            if item.mean is None:
                continue
            if item.low is None:
                right.plot([item.mean], [position], "o", color="black")
            else:
                right.errorbar(
                    [item.mean],
                    [position],
                    xerr=[[item.mean - item.low], [item.high - item.mean]],
                    fmt="o",
                    color="black",
                    capsize=3,
                )
        right.axvline(0.0, color="grey", linewidth=1)
        right.set_yticks(y, [item.label for item in diffs], fontsize=7)
        right.set_ylim(-0.6, len(diffs) - 0.4)
        right.set_xlabel("difference (points); shaded: equivalence margin")
        right.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def write_figure(path: str, fig) -> str:
    """Saves a figure atomically (folder created); returns the path."""
    files.write_atomic(path, lambda temporary: fig.savefig(temporary, format="png"))
    return path


def write_hparams(study: Study, results: Results, log_dir: str, flag_settings: Mapping[str, Mapping[str, str]]) -> str:
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
    keys = (
        "model",
        "modality",
        "scales",
        "fusion",
        "beta",
        "gamma",
        "train_frames",
        "max_steps",
        "lambda_tv",
        "lambda_contrast",
        "lambda_unimodal",
        "model_options",
    )
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
                hp.hparams(
                    {
                        "study": study.name,
                        "row": cell.row,
                        "column": cell.column,
                        "seed": seed,
                        "measure": cell.measure.kind,
                        "test_frames": cell.measure.test_frames,
                        "flagfiles": ",".join(cell.measure.runs),
                        **settings,
                    },
                    trial_id=name,
                )
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


def write_report(
    study: Study,
    results: Results,
    out_dir: str,
    *,
    seeds: Sequence[int],
    quick: bool = False,
    hparams_dir: str | None = None,
    flag_settings: Mapping[str, Mapping[str, str]] | None = None,
    failures: Sequence[str] = (),
    benchmark: str = "--preset=study",
    per_video: PerVideo | None = None,
    accuracy: Accuracy | None = None,
    prereg: prereg_lib.Preregistration | None = None,
    decisions: Sequence[tuple[prereg_lib.PrimaryClaim, statistics.Decision]] = (),
    deviations: Sequence[str] | None = None,
) -> dict[str, str]:
    """Writes `<out_dir>/<study>/report.md`, `<study>.png` and `values.csv` (and HParams when `hparams_dir`).

    With per-video results (any cell with a seed) also `per_video.csv.gz`, with accuracies `accuracy.csv`;
    `per_video`, `prereg`, `decisions` and `deviations` are as in `render_markdown`.

    Returns:
      The paths written, by kind: "report", "figure", "values" (and "per_video", "accuracy", "hparams").
    """
    folder = os.path.join(out_dir, study.name)
    has_per_video = bool(per_video) and any(per_video.values())
    png = write_figure(
        os.path.join(folder, f"{study.name}.png"),
        figure(study, results, differences(study, results, per_video, prereg)),
    )
    report = files.write_text(
        os.path.join(folder, "report.md"),
        render_markdown(
            study,
            results,
            seeds=seeds,
            quick=quick,
            figure=png,
            failures=failures,
            benchmark=benchmark,
            per_video=per_video,
            prereg=prereg,
            decisions=decisions,
            deviations=deviations,
            folder=folder,
        ),
    )
    values = files.write_text(os.path.join(folder, "values.csv"), values_csv(study, results))
    paths = {"report": report, "figure": png, "values": values}
    if has_per_video:
        data = per_video_csv_gz(study, per_video)
        paths["per_video"] = os.path.join(folder, "per_video.csv.gz")
        with files.open_atomic(paths["per_video"], "wb") as f:
            f.write(data)
    if accuracy and any(
        value is not None for by_seed in accuracy.values() for values in by_seed.values() for value in values.values()
    ):
        paths["accuracy"] = files.write_text(os.path.join(folder, "accuracy.csv"), accuracy_csv(study, accuracy))
    if hparams_dir:
        paths["hparams"] = write_hparams(study, results, hparams_dir, flag_settings or {})
    return paths


def summary_table(rows: Sequence[tuple[Study, Results]]) -> str:
    """The "What reproduces" table: one line per claim of every study, with its verdict."""
    lines = [
        "| Study | Row | vs | Paper | Ours (mean difference [95 % interval]) | Verdict |",
        "|---|---|---|---|---|---|",
    ]
    for study, results in rows:
        for claim, result in comparisons(study, results):
            if result.low is None:
                interval = _signed(result.mean)
            else:
                interval = f"{result.mean:+.1f} [{result.low:+.1f}, {result.high:+.1f}]"
            lines.append(
                f"| {study.name} | {' / '.join(claim.cell)} | {' / '.join(claim.reference)} | "
                f"{'higher' if claim.sign > 0 else 'lower'} | {interval} | {result.verdict} |"
            )
    return "\n".join(lines)
