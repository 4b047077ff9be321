"""Report rendering from fixture results: the table layout, mean ± std, the paper column, verdicts, figure, summary,
and with per-video results the pre-registered decisions, the committed per-video file and the margin bands."""

import gzip
import math
import os

import numpy as np
import pytest

from experiments import preregistration, report, statistics, studies

STUDY = studies.Study(
    name="fixture",
    title="Fixture study",
    paper_source="a paper, its real dataset",
    rows=("Baseline", "Attention"),
    columns=("RGB", "Flow"),
    cells=(
        studies.Cell("Baseline", "RGB", studies.Measure("top1", ("base_rgb",)), 85.2),
        studies.Cell("Baseline", "Flow", studies.Measure("top1", ("base_flow",)), None),
        studies.Cell("Attention", "RGB", studies.Measure("top1", ("attn_rgb",)), 88.2),
        studies.Cell("Attention", "Flow", studies.Measure("top1", ("attn_flow",)), 86.5),
    ),
    claims=(
        studies.Claim(("Attention", "RGB"), ("Baseline", "RGB"), +1, "the layer helps RGB (+3.0)"),
        studies.Claim(("Attention", "Flow"), ("Baseline", "Flow"), +1, "the layer helps flow"),
    ),
    figure="bars",
    notes="A note.",
)
RESULTS = {
    ("Baseline", "RGB"): {0: 10.0, 1: 10.0, 2: 10.0},
    ("Attention", "RGB"): {0: 13.0, 1: 14.0, 2: 15.0},  # differences 3, 4, 5: [+1.5, +6.5], as the paper
    ("Baseline", "Flow"): {0: 50.0, 1: 54.0, 2: 52.0},
    ("Attention", "Flow"): {0: 48.0, 1: None, 2: 51.0},  # seed 1 failed: differences -2, -1: [-7.9, +4.9]
}


def test_markdown_has_the_paper_layout_values_and_verdicts():
    text = report.render_markdown(STUDY, RESULTS, seeds=(0, 1, 2), figure="/x/fixture.png")
    lines = text.splitlines()
    assert lines[0] == "# Fixture study"
    assert "| Row | RGB | RGB: paper | Flow | Flow: paper |" in lines
    assert "| Baseline | 10.0 ± 0.0 (3) | 85.2 | 52.0 ± 2.0 (3) | — |" in lines
    # Attention / Flow: 48 and 51 -> mean 49.5, sd sqrt(4.5) = 2.1; one seed failed.
    assert "| Attention | 14.0 ± 1.0 (3) | 88.2 | 49.5 ± 2.1 (2), 1 without result | 86.5 |" in lines
    assert (
        "| Attention / RGB | Baseline / RGB | higher: the layer helps RGB (+3.0) | +4.0 [+1.5, +6.5] (3) | "
        f"{statistics.AS_PAPER} |"
    ) in lines
    # -1.5 ± 12.706 * sqrt(0.5) / sqrt(2) = -1.5 ± 6.3530.
    assert (
        "| Attention / Flow | Baseline / Flow | higher: the layer helps flow | -1.5 [-7.9, +4.9] (2) | "
        f"{statistics.WITHIN_NOISE} |"
    ) in lines
    assert "the paper's result on its real dataset" in text and "A note." in lines
    assert statistics.VERDICT_RULES in lines and "![fixture](fixture.png)" in lines


def test_one_seed_and_all_failed_cells():
    results = {key: {0: values[0]} for key, values in RESULTS.items()}
    results[("Baseline", "Flow")] = {0: None}
    text = report.render_markdown(STUDY, results, seeds=(0,), quick=True, failures=["`train/x/seed0` (failed): x.log"])
    assert "| Baseline | 10.0 ± 0.0 (1) | 85.2 | no result (0/1) | — |" in text.splitlines()
    assert f"| +3.0 (1) | {statistics.ONE_SEED} |" in text
    assert f"| — (0) | {statistics.NO_PAIRS} |" in text
    assert "--quick" in text and "- `train/x/seed0` (failed): x.log" in text.splitlines()


def test_files_figure_and_summary(tmp_path):
    paths = report.write_report(STUDY, RESULTS, str(tmp_path), seeds=(0, 1, 2))
    assert paths["report"] == os.path.join(str(tmp_path), "fixture", "report.md")
    assert set(paths) == {"report", "figure", "values"}  # no per-video results, no accuracies: no such files
    with open(paths["figure"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(paths["values"]) as f:
        lines = f.read().splitlines()
    assert lines[0] == "row,column,seed,value" and len(lines) == 1 + 4 * 3
    assert lines[1:4] == ["Baseline,RGB,0,10.0000", "Baseline,RGB,1,10.0000", "Baseline,RGB,2,10.0000"]
    assert "Attention,Flow,1," in lines and "Attention,Flow,2,51.0000" in lines
    lines_study = studies.Study(**{**STUDY.__dict__, "figure": "lines", "name": "lines"})
    with open(report.write_report(lines_study, RESULTS, str(tmp_path), seeds=(0, 1, 2))["figure"], "rb") as f:
        assert f.read(4) == b"\x89PNG"
    summary = report.summary_table([(STUDY, RESULTS)]).splitlines()
    assert summary[2] == (
        f"| fixture | Attention / RGB | Baseline / RGB | higher | +4.0 [+1.5, +6.5] | {statistics.AS_PAPER} |"
    )
    assert len(summary) == 4


def test_every_study_renders_with_empty_results():
    for study in studies.STUDIES.values():
        results = {(c.row, c.column): {0: None} for c in study.cells}
        text = report.render_markdown(study, results, seeds=(0,))
        assert text.count("no result (0/1)") == len(study.cells)
        assert text.count(statistics.NO_PAIRS) == len(study.claims)


def test_read_flagfile(tmp_path):
    path = tmp_path / "a.cfg"
    path.write_text('# comment\n--model=stpa\n--eval_split=\n--model_options="a=(1,2)",b=3\n')
    assert report.read_flagfile(str(path)) == {"model": "stpa", "eval_split": "", "model_options": '"a=(1,2)",b=3'}


def test_figure_bars_are_the_means_and_lines_follow_them():
    from matplotlib.container import BarContainer, ErrorbarContainer

    fig = report.figure(STUDY, RESULTS)
    (ax,) = fig.axes
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [c.get_label() for c in bars] == ["RGB", "Flow"]
    heights = {label: [bar.get_height() for bar in c] for c, label in zip(bars, ("RGB", "Flow"))}
    # Means by hand: RGB 10, (13 + 14 + 15) / 3 = 14; Flow (50 + 54 + 52) / 3 = 52, (48 + 51) / 2 = 49.5.
    assert heights == {"RGB": [10.0, 14.0], "Flow": [52.0, 49.5]}
    chance = [line for line in ax.get_lines() if line.get_label() == "chance"]
    assert chance and list(chance[0].get_ydata()) == [100 / 6, 100 / 6]
    lines_study = studies.Study(**{**STUDY.__dict__, "figure": "lines", "name": "lines", "x_label": "stream"})
    ax = report.figure(lines_study, RESULTS).axes[0]
    by_row = {c.get_label(): list(c.lines[0].get_ydata()) for c in ax.containers if isinstance(c, ErrorbarContainer)}
    assert by_row == {"Baseline": [10.0, 52.0], "Attention": [14.0, 49.5]}
    assert ax.get_xlabel() == "stream" and ax.get_ylabel() == "top-1 (%)"
    for study in studies.STUDIES.values():  # every line figure of the repository says what its x axis is
        assert study.figure == "bars" or study.x_label, study.name


# Per-video correctness, 3 seeds x 4 videos (the statistics test's toy): Attention RGB (A) and Baseline RGB (B).
TOY_A = np.array([[1, 1, 0, 1], [0, 1, 1, 1], [1, 0, 0, 1]])
TOY_B = np.array([[0, 1, 0, 0], [0, 1, 0, 1], [1, 0, 1, 0]])
LABELS = [2, 0, 1, 2]


def _records(correct):
    """(video_id, label, predicted) with predicted = label where correct, else (label + 1) mod 3."""
    return [(f"v{j}", LABELS[j], LABELS[j] if c else (LABELS[j] + 1) % 3) for j, c in enumerate(correct)]


PER_VIDEO = {
    ("Attention", "RGB"): {s: _records(TOY_A[s]) for s in range(3)},
    ("Baseline", "RGB"): {s: _records(TOY_B[s]) for s in range(3)},
    ("Attention", "Flow"): {},
    ("Baseline", "Flow"): {},
}
PREREG_TEXT = """# Fixture pre-registration

```prereg
seeds: 0-2
alpha: 0.05
bootstrap_resamples: 4000
bootstrap_seed: 7
```

| id | study | row A | row B | column | direction | margin |
|---|---|---|---|---|---|---|
| rgb | fixture | Attention | Baseline | RGB | higher | 4 |
| flow | fixture | Attention | Baseline | Flow | higher | 5 |
"""


def test_primary_claims_are_decided_from_the_per_video_results_and_re_derive_from_the_file(tmp_path):
    path = tmp_path / "prereg.md"
    path.write_text(PREREG_TEXT)
    prereg = preregistration.load(str(path))
    decisions = report.primary_decisions(prereg, {"fixture": PER_VIDEO})
    (rgb_claim, rgb), (flow_claim, flow) = decisions
    assert (rgb_claim.id, flow_claim.id) == ("rgb", "flow")
    # d = mean over seeds of (75 - 25, 75 - 50, 50 - 50) = 25 points; the bootstrap with the pre-registered settings.
    expected = statistics.paired_bootstrap(TOY_A, TOY_B, resamples=4000, rng_seed=7)
    assert rgb.estimate == expected and rgb.estimate.mean == pytest.approx(25.0)
    # Family of two: the Flow claim has no per-video result (p = 1), so Holm doubles the RGB claim's smaller p.
    assert flow.estimate is None and flow.verdict == statistics.INCONCLUSIVE
    p = 2 * statistics.t_cdf(-25.0 / expected.se, 2)
    assert rgb.p_difference == pytest.approx(p) and rgb.p_difference_adjusted == pytest.approx(min(1.0, 2 * p))
    assert rgb.verdict == statistics.INCONCLUSIVE  # SE about 23 points with 3 seeds x 4 videos
    # The sensitivity analysis: the same family with the variance-components SE (both components truncated at 0
    # here: SE^2 = MS_resid / 12, 6 df); Flow has nothing to decompose (p = 1 in that family too).
    components = statistics.variance_components_se(100.0 * (TOY_A - TOY_B))
    assert rgb.variance_components.estimate == components and components.df == 6.0
    assert rgb.variance_components.p_difference == pytest.approx(2 * statistics.t_cdf(-25.0 / components.se, 6.0))
    assert rgb.variance_components.verdict == statistics.INCONCLUSIVE
    assert flow.variance_components.estimate is None
    deviations = ["seeds: pre-registered 0-2 (3), the run used 0-1 (2): missing 2."]
    accuracy = {
        ("Attention", "RGB"): {0: {"train_top1": 90.0, "val_top1": None, "test_top1": 75.0}},
        ("Baseline", "RGB"): {0: {"train_top1": None, "val_top1": None, "test_top1": 25.0}},
    }
    paths = report.write_report(
        STUDY,
        RESULTS,
        str(tmp_path / "reports"),
        seeds=(0, 1, 2),
        per_video=PER_VIDEO,
        accuracy=accuracy,
        prereg=prereg,
        decisions=decisions,
        deviations=deviations,
    )
    with open(paths["report"]) as f:
        text = f.read()
    lines = text.splitlines()
    assert (
        f"Pre-registration: [prereg.md]({os.path.relpath(str(path), str(tmp_path / 'reports' / 'fixture'))}). "
        "Deviations from it:" in lines
    )
    assert "- " + deviations[0] in lines and statistics.DECISION_RULES in lines
    mde = (statistics.t_quantile(1 - 0.05 / 4, 2) + statistics.t_quantile(0.8, 2)) * expected.se
    assert (
        f"| rgb | Attention − Baseline (RGB) | higher | 3 × 4 | +25.0 [{expected.low:+.1f}, {expected.high:+.1f}] "
        f"| {expected.se:.1f} | {p:.2g} | {min(1, 2 * p):.2g} | ±4 | {rgb.p_tost_adjusted:.2g} | {mde:.1f} | "
        f"inconclusive | {components.se:.1f} | inconclusive |"
    ) in lines
    assert (
        "| flow | Attention − Baseline (Flow) | higher | 0 | no paired seed | — | 1 | 1 | ±5 | 1 | — | "
        "inconclusive | — | — |" in lines
    )
    assert report.SENSITIVITY_NOTE in lines
    # The direction table adds the bootstrap column: RGB has it, Flow (no per-video results) not.
    assert (
        f"| +4.0 [+1.5, +6.5] (3) | {statistics.AS_PAPER} | +25.0 [{expected.low:+.1f}, {expected.high:+.1f}] "
        f"({expected.se:.1f}) |"
    ) in text
    assert f"| -1.5 [-7.9, +4.9] (2) | {statistics.WITHIN_NOISE} | — |" in text
    # per_video.csv.gz: the rows as written, and the same estimate re-derived from the file alone.
    with gzip.open(paths["per_video"], "rt") as f:
        rows = f.read().splitlines()
    assert rows[0] == "row,column,seed,video_id,label,predicted,correct" and len(rows) == 1 + 2 * 3 * 4
    # Cells in the study's order (Baseline / RGB first); seed 0 of B is correct on v1 only.
    assert rows[1:5] == [
        "Baseline,RGB,0,v0,2,0,0",
        "Baseline,RGB,0,v1,0,0,1",
        "Baseline,RGB,0,v2,1,2,0",
        "Baseline,RGB,0,v3,2,0,0",
    ]
    assert rows[13:17] == [
        "Attention,RGB,0,v0,2,2,1",
        "Attention,RGB,0,v1,0,0,1",
        "Attention,RGB,0,v2,1,2,0",
        "Attention,RGB,0,v3,2,2,1",
    ]
    back = report.read_per_video(paths["per_video"])
    assert back == {k: v for k, v in PER_VIDEO.items() if v}
    assert report.primary_decisions(prereg, {"fixture": back}) == decisions
    with open(paths["per_video"], "rb") as f:
        assert f.read() == report.per_video_csv_gz(STUDY, PER_VIDEO)  # byte for byte: no gzip timestamp
    with open(paths["accuracy"]) as f:
        assert f.read().splitlines() == [
            "row,column,seed,train_top1,val_top1,test_top1,train_running_top1",
            "Baseline,RGB,0,,,25.0000,",
            "Attention,RGB,0,90.0000,,75.0000,",
        ]
    # No deviation: "none".
    again = report.render_markdown(
        STUDY, RESULTS, seeds=(0, 1, 2), per_video=PER_VIDEO, prereg=prereg, decisions=decisions, deviations=[]
    )
    assert "Pre-registration: [prereg.md](" in again and "Deviations from it: none." in again


def test_figure_draws_the_differences_and_the_margin_bands(tmp_path):
    path = tmp_path / "prereg.md"
    path.write_text(PREREG_TEXT)
    prereg = preregistration.load(str(path))
    diffs = report.differences(STUDY, RESULTS, PER_VIDEO, prereg)
    expected = statistics.paired_bootstrap(TOY_A, TOY_B, resamples=4000, rng_seed=7)
    assert diffs == [
        report.Difference("Attention / RGB − Baseline / RGB", 25.0, expected.low, expected.high, 4.0),
        # No per-video results for Flow: the seed-only t interval -1.5 ± 6.3530 (test_markdown_has_...).
        report.Difference(
            "Attention / Flow − Baseline / Flow",
            -1.5,
            pytest.approx(-1.5 - 6.353, abs=1e-3),
            pytest.approx(-1.5 + 6.353, abs=1e-3),
            5.0,
        ),
    ]
    fig = report.figure(STUDY, RESULTS, diffs)
    values, right = fig.axes
    assert [bar.get_height() for bar in values.patches[:2]] == [10.0, 14.0]  # the RGB bars, drawn first
    bands = {p.get_gid(): p for p in right.patches if (p.get_gid() or "").startswith("margin:")}
    rgb = bands["margin:Attention / RGB − Baseline / RGB"]
    flow = bands["margin:Attention / Flow − Baseline / Flow"]
    # ±margin around 0, centred on the claim's row (first claim on top: y = 1, then y = 0).
    assert (rgb.get_x(), rgb.get_width(), rgb.get_y(), rgb.get_height()) == (-4.0, 8.0, pytest.approx(0.6), 0.8)
    assert (flow.get_x(), flow.get_width(), flow.get_y(), flow.get_height()) == (-5.0, 10.0, pytest.approx(-0.4), 0.8)
    points = [line for line in right.get_lines() if len(line.get_xdata()) == 1 and line.get_marker() == "o"]
    assert sorted((float(line.get_xdata()[0]), float(line.get_ydata()[0])) for line in points) == [
        (-1.5, 0.0),
        (25.0, 1.0),
    ]
    low, high = right.get_xlim()
    assert low <= -5.0 and high >= expected.high and not math.isnan(low)
    # Without a pre-registration: the same points, no band.
    plain = report.figure(STUDY, RESULTS, report.differences(STUDY, RESULTS)).axes[1]
    assert not [p for p in plain.patches if (p.get_gid() or "").startswith("margin:")]
