"""Report rendering from fixture results: the table layout, mean ± std, the paper column, verdicts, figure, summary."""

import os

from experiments import report, statistics, studies

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
    assert ("| Attention / RGB | Baseline / RGB | higher: the layer helps RGB (+3.0) | +4.0 [+1.5, +6.5] (3) | "
            f"{statistics.AS_PAPER} |") in lines
    # -1.5 ± 12.706 * sqrt(0.5) / sqrt(2) = -1.5 ± 6.3530.
    assert ("| Attention / Flow | Baseline / Flow | higher: the layer helps flow | -1.5 [-7.9, +4.9] (2) | "
            f"{statistics.WITHIN_NOISE} |") in lines
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
    assert summary[2] == (f"| fixture | Attention / RGB | Baseline / RGB | higher | +4.0 [+1.5, +6.5] | "
                          f"{statistics.AS_PAPER} |")
    assert len(summary) == 4


def test_every_study_renders_with_empty_results():
    for study in studies.STUDIES.values():
        results = {(c.row, c.column): {0: None} for c in study.cells}
        text = report.render_markdown(study, results, seeds=(0,))
        assert text.count("no result (0/1)") == len(study.cells)
        assert text.count(statistics.NO_PAIRS) == len(study.claims)


def test_read_flagfile(tmp_path):
    path = tmp_path / "a.cfg"
    path.write_text("# comment\n--model=stpa\n--eval_split=\n--model_options=\"a=(1,2)\",b=3\n")
    assert report.read_flagfile(str(path)) == {"model": "stpa", "eval_split": "", "model_options": '"a=(1,2)",b=3'}
