"""Descriptive analyses of a study beyond its decided claims: what carries a difference between rows.

A study may list `studies.Contrast`s: differences of two cells, or differences of two such differences (e.g. a
deficit at the training K minus the same deficit at the test K), each estimated with the protocol's paired
hierarchical bootstrap over seeds and test videos (`statistics.paired_bootstrap`) and shown with the reading its
pre-registration fixed. Next to them, from the files the commands wrote:

  attention_table   per row and test K: the attention's normalised entropy and L1 mass at test (`stpa.evaluate`'s
                    "attention_statistics"), mean over seeds
  fit_table         per run: the running train top-1 of its last logged steps (how well it fits its training data)
  recall_table      per-class recall of each row in a column, summed over seeds, and the share of a deficit that its
                    largest class carries
  training_figure   the attention's entropy and L1 mass during training (`attention_statistics.csv`), per row

None of these is a decision: the pre-registration's primary claims are decided in `experiments.report`.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence

import numpy as np

from data import files, synthetic
from experiments import report, runner, statistics
from experiments import studies as studies_lib

PerVideo = Mapping[tuple[str, str], Mapping[int, Sequence[tuple[str, int, int]]]]


def contrast_arrays(
    per_video: PerVideo, contrast: studies_lib.Contrast
) -> tuple[np.ndarray, np.ndarray, list[int], list[str]] | None:
    """The (n_seeds, n_videos) arrays whose paired difference is the contrast, over the seeds all its cells share.

    A simple contrast gives the correctness of A and B; a difference of differences gives (A − B) and (A2 − B2)
    per seed and video (values in {-1, 0, 1}), so `paired_bootstrap`'s mean of their difference is
    (A − B) − (A2 − B2). None when a cell has no per-video results.
    """
    cells = [contrast.a, contrast.b, *((contrast.a2, contrast.b2) if contrast.a2 else ())]
    if any(not per_video.get(cell) for cell in cells):
        return None
    correct = report.correctness({cell: per_video[cell] for cell in cells})
    seeds = sorted(set.intersection(*(set(correct[cell]) for cell in cells)))
    if not seeds:
        return None
    aligned = {cell: {seed: correct[cell][seed] for seed in seeds} for cell in cells}
    first, second, seeds, videos = statistics.paired_arrays(aligned[contrast.a], aligned[contrast.b])
    if contrast.a2 is None:
        return first, second, seeds, videos
    third, fourth, _, other_videos = statistics.paired_arrays(aligned[contrast.a2], aligned[contrast.b2])
    if other_videos != videos:
        raise ValueError(f"contrast {contrast.label!r}: its two differences were tested on different videos.")
    return first - second, third - fourth, seeds, videos


def contrast_estimate(
    per_video: PerVideo, contrast: studies_lib.Contrast, *, level: float = 0.95, resamples: int = 10_000, rng_seed=0
) -> statistics.PairedEstimate | None:
    """The contrast in points with its bootstrap interval; None when a cell has not run."""
    arrays = contrast_arrays(per_video, contrast)
    if arrays is None:
        return None
    a, b, _, _ = arrays
    return statistics.paired_bootstrap(a, b, level=level, resamples=resamples, rng_seed=rng_seed)


def contrast_table(
    study: studies_lib.Study, per_video: PerVideo, *, level: float = 0.95, resamples: int = 10_000
) -> str:
    """Markdown: every contrast of the study with d [interval], its seeds × videos and its pre-registered reading."""
    lines = [
        f"| Contrast | d [{100 * level:g} % interval] | Seeds × videos | Reading (pre-registered) |",
        "|---|---|---|---|",
    ]
    for contrast in study.contrasts:
        estimate = contrast_estimate(per_video, contrast, level=level, resamples=resamples)
        if estimate is None:
            measured = ["not run yet", "—"]
        else:
            measured = [
                f"{estimate.mean:+.1f} [{estimate.low:+.1f}, {estimate.high:+.1f}]",
                f"{estimate.n_seeds} × {estimate.n_videos}",
            ]
        lines.append("| " + " | ".join([contrast.label, *measured, contrast.reading or "—"]) + " |")
    return "\n".join(lines)


def _read_json(path: str) -> dict | None:
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def attention_table(study: studies_lib.Study, layout: runner.Layout, seeds: Sequence[int]) -> str | None:
    """Markdown: per top-1 cell with attention, the test attention's entropy and L1 mass (mean over seeds).

    None when no cell's evaluation wrote "attention_statistics" (no attention, or not run yet).
    """
    lines = [
        "| Row | Column | Test K | Entropy H(p)/log n | L1 mass Σa (√n: uniform) | Seeds |",
        "|---|---|---|---|---|---|",
    ]
    found = False
    for cell in study.cells:
        if cell.measure.kind != "top1":
            continue
        values = []
        for seed in seeds:
            metrics = _read_json(layout.eval_json(cell.measure.runs[0], seed, cell.measure.test_frames))
            if metrics and "attention_statistics" in metrics:
                values.append(metrics["attention_statistics"])
        if values:
            found = True
            entropy = float(np.mean([v["entropy"] for v in values]))
            mass = float(np.mean([v["l1_mass"] for v in values]))
            lines.append(
                f"| {cell.row} | {cell.column} | {cell.measure.test_frames} | {entropy:.3f} | {mass:.2f} | "
                f"{len(values)} |"
            )
    return "\n".join(lines) if found else None


def _percent(fraction: float | None) -> float | None:
    return None if fraction is None else 100.0 * fraction


def fit_table(study: studies_lib.Study, layout: runner.Layout, seeds: Sequence[int]) -> str | None:
    """Markdown: per training run of the study, the running train top-1 over its last logged steps (%).

    Columns: mean over seeds, min–max, and in how many seeds the run fit worse than the study's first row's run
    of the same stream at the same seed. None when no run has its training events.
    """
    runs: list[tuple[str, str]] = []  # (row, run stem), in the study's order, one per run
    for cell in study.cells:
        if cell.measure.kind == "top1" and all(stem != run for _, stem in runs for run in cell.measure.runs):
            runs.append((cell.row, cell.measure.runs[0]))
    fits = {stem: {s: _percent(runner.train_running_top1(layout.run_dir(stem, s))) for s in seeds} for _, stem in runs}
    if not any(v is not None for by_seed in fits.values() for v in by_seed.values()):
        return None
    first_row = study.rows[0]
    reference = {stem[-4:] if stem.endswith("_rgb") else stem[-5:]: stem for row, stem in runs if row == first_row}
    lines = [
        f"| Row | Run | Train top-1, mean (min–max) | Seeds below {first_row} |",
        "|---|---|---|---|",
    ]
    for row, stem in runs:
        values = {s: v for s, v in fits[stem].items() if v is not None}
        if not values:
            continue
        suffix = stem[-4:] if stem.endswith("_rgb") else stem[-5:]
        base = reference.get(suffix)
        below = "—"
        if base and base != stem:
            pairs = [(v, fits[base].get(s)) for s, v in values.items() if fits[base].get(s) is not None]
            below = f"{sum(v < w for v, w in pairs)} of {len(pairs)}"
        lines.append(
            f"| {row} | {stem} | {np.mean(list(values.values())):.1f} ({min(values.values()):.1f}–"
            f"{max(values.values()):.1f}) | {below} |"
        )
    return "\n".join(lines)


def class_recall(records: Mapping[int, Sequence[tuple[str, int, int]]]) -> dict[int, tuple[int, int]]:
    """Class -> (correct, videos) summed over seeds from (video_id, label, predicted) records."""
    counts: dict[int, list[int]] = {}
    for rows in records.values():
        for _, label, predicted in rows:
            entry = counts.setdefault(label, [0, 0])
            entry[0] += int(label == predicted)
            entry[1] += 1
    return {label: (c, n) for label, (c, n) in sorted(counts.items())}


def recall_table(study: studies_lib.Study, per_video: PerVideo, column: str, baseline: str, row: str) -> str | None:
    """Markdown: per-class recall (%) of every row in `column`, and where `row` loses videos against `baseline`.

    The loss is summed over classes and over the seeds both rows share; the table's last line names the class that
    carries the largest share of it. None when the column has no per-video results.
    """
    rows = [r for r in study.rows if per_video.get((r, column))]
    if not rows:
        return None
    recalls = {r: class_recall(per_video[(r, column)]) for r in rows}
    labels = sorted({label for recall in recalls.values() for label in recall})
    names = [synthetic.CLASSES[label][0] if label < len(synthetic.CLASSES) else str(label) for label in labels]
    lines = ["| Row | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for r in rows:
        cells = [
            f"{100 * recalls[r][label][0] / recalls[r][label][1]:.1f}" if label in recalls[r] else "—"
            for label in labels
        ]
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    if per_video.get((row, column)) and per_video.get((baseline, column)):
        seeds = sorted(set(per_video[(row, column)]) & set(per_video[(baseline, column)]))
        a = class_recall({s: per_video[(row, column)][s] for s in seeds})
        b = class_recall({s: per_video[(baseline, column)][s] for s in seeds})
        gaps = {label: b[label][0] - a.get(label, (0, 0))[0] for label in b}  # correct videos lost per class
        total = sum(gaps.values())
        if total > 0:
            worst = max(gaps, key=gaps.get)
            name = synthetic.CLASSES[worst][0] if worst < len(synthetic.CLASSES) else str(worst)
            lines += [
                "",
                f"{row} − {baseline} ({column}): {total} fewer correct videos over {len(seeds)} seeds; the largest "
                f"class share is {name}'s, {100 * gaps[worst] / total:.0f} % of the deficit.",
            ]
    return "\n".join(lines)


def read_training_statistics(path: str) -> list[tuple[int, float, float]]:
    """(step, entropy, l1_mass) rows of an `attention_statistics.csv` (none if missing)."""
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as f:
        return [(int(r["step"]), float(r["entropy"]), float(r["l1_mass"])) for r in csv.DictReader(f)]


def training_figure(study: studies_lib.Study, layout: runner.Layout, seeds: Sequence[int], path: str) -> str | None:
    """Writes a figure of the attention's entropy and L1 mass during training, per run (mean over seeds).

    Returns the path, or None when no run wrote `attention_statistics.csv`.
    """
    curves, counts = {}, set()
    for cell in study.cells:
        if cell.measure.kind != "top1" or cell.measure.test_frames != studies_lib.STPA_TEST_FRAMES:
            continue
        stem = cell.measure.runs[0]
        tables = [
            read_training_statistics(os.path.join(layout.run_dir(stem, s), "attention_statistics.csv")) for s in seeds
        ]
        tables = [t for t in tables if t]
        if not tables:
            continue
        counts.add(len(tables))
        length = min(len(t) for t in tables)
        values = np.asarray([t[:length] for t in tables], np.float64)  # (seeds, steps, 3)
        curves[f"{cell.row}, {cell.column}"] = values.mean(axis=0)
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for label, values in curves.items():
        axes[0].plot(values[:, 0], values[:, 1], label=label)
        axes[1].plot(values[:, 0], values[:, 2], label=label)
    axes[0].set(
        xlabel="training step", ylabel="normalised entropy H(p) / log n", title="Attention entropy (1: uniform)"
    )
    axes[1].set(xlabel="training step", ylabel="L1 mass Σa", title="Attention L1 mass (√n: uniform, 1: one position)")
    axes[1].legend(fontsize=7)
    seeds_text = "/".join(str(n) for n in sorted(counts))
    fig.suptitle(f"{study.name}: the attention during training, mean over {seeds_text} seeds per run", fontsize=10)
    fig.tight_layout()
    files.write_atomic(path, lambda temporary: fig.savefig(temporary, dpi=110))
    plt.close(fig)
    return path


def mechanism_lines(
    study: studies_lib.Study,
    layout: runner.Layout,
    seeds: Sequence[int],
    *,
    figure_dir: str,
    markdown_dir: str,
    level: float = 0.95,
    resamples: int = 10_000,
) -> list[str]:
    """The markdown section of a study's descriptive analyses (see the module docstring).

    Args:
      study: the study.
      layout: the instance's directory.
      seeds: the seeds to read.
      figure_dir: where the training figure is written.
      markdown_dir: the folder of the markdown file the lines go into (the figure is linked relative to it).
      level: the contrasts' interval coverage.
      resamples: the contrasts' bootstrap resamples.

    Returns:
      Markdown lines.
    """
    per_video = runner.collect_per_video(study, layout, seeds)
    lines = [f"### {study.title}", "", study.notes, ""]
    if study.contrasts:
        lines += [contrast_table(study, per_video, level=level, resamples=resamples), ""]
    for title, table in (
        ("The attention at test", attention_table(study, layout, seeds)),
        (
            "How well each run fits its training data (running train top-1 of its last logged steps)",
            fit_table(study, layout, seeds),
        ),
    ):
        if table:
            lines += [f"{title}:", "", table, ""]
    for column, baseline, row in study.recall_columns:
        table = recall_table(study, per_video, column, baseline, row)
        if table:
            lines += [f"Per-class recall (%), {column}, summed over seeds:", "", table, ""]
    figure = training_figure(study, layout, seeds, os.path.join(figure_dir, f"{study.name}_attention_training.png"))
    if figure:
        lines += [f"![The attention during training]({os.path.relpath(figure, markdown_dir)})", ""]
    return lines
