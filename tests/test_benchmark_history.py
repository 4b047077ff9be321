"""The benchmark history (benchmarks/history.py), its comparison and the generated performance table."""

import json
import os

from benchmarks import compare, history

CONTEXT = {
    "commit": "abc1234567",
    "date": "2026-12-01T10:00:00Z",
    "machine": {"cores": 2, "cpu_count": 2, "cpu": "Test CPU", "load_1min": 1.0},
    "versions": {"python": "3.11", "tensorflow": "2.21.0", "keras": "3.15.1"},
}
RATIO = "layer / IRv2, forward+backward"


def _line(value: float, spread: float, commit: str, date: str = "2026-12-01T10:00:00Z") -> dict:
    ratios = {RATIO: {"value": value, "spread": spread, "goal": 0.015}}
    return history.make_line("demo", {"layer ms": 1000 * value}, ratios, **dict(CONTEXT, commit=commit, date=date))


def test_writer_prints_and_appends_one_json_line(tmp_path, capsys):
    line = history.make_line(
        "demo", {"layer ms": 120.0}, {RATIO: history.ratio([0.012, 0.010, 0.011], 0.015)}, **CONTEXT
    )
    assert line["ratios"][RATIO] == {"value": 0.011, "spread": 0.012 - 0.010, "goal": 0.015}
    history.write(line, record=False, directory=str(tmp_path))
    assert not os.listdir(tmp_path)  # printed only
    history.write(line, record=True, directory=str(tmp_path))
    history.write(line, record=True, directory=str(tmp_path))
    printed = [text for text in capsys.readouterr().out.splitlines() if text.startswith("HISTORY ")]
    assert len(printed) == 3 and json.loads(printed[0][len("HISTORY ") :]) == line
    with open(tmp_path / "demo.jsonl") as f:
        texts = f.read().splitlines()
    assert len(texts) == 2 and json.loads(texts[0]) == line
    assert history.read("demo", str(tmp_path)) == [line, line]
    assert set(line) == {"benchmark", "commit", "date", "machine", "versions", "settings", "figures", "ratios"}


def test_default_context_names_the_machine_and_versions():
    line = history.make_line("demo", {}, {})
    assert line["machine"]["cores"] >= 1 and line["machine"]["cpu"]
    assert line["versions"]["tensorflow"] and line["versions"]["keras"]
    assert line["commit"] and line["date"].endswith("Z")


def test_comparison_flags_a_ratio_20_percent_worse_but_not_one_within_the_spread():
    recorded = [_line(0.0100, 0.0004, "c1"), _line(0.0110, 0.0005, "c2")]  # run-to-run spread 0.0010
    assert history.tolerance(RATIO, recorded) == 0.0110 - 0.0100
    worse = history.compare(_line(0.0110 * 1.2, 0.0003, "c3"), recorded)[0]
    assert worse["worse"] and not worse["over_goal"]
    assert (worse["last"], worse["last_commit"], worse["goal"]) == (0.0110, "c2", 0.015)
    within = history.compare(_line(0.0119, 0.0003, "c3"), recorded)[0]
    assert not within["worse"]
    better = history.compare(_line(0.0090, 0.0003, "c3"), recorded)[0]
    assert not better["worse"]
    over = history.compare(_line(0.0160, 0.0003, "c3"), recorded)[0]
    assert over["worse"] and over["over_goal"]
    first = history.compare(_line(0.0160, 0.0003, "c3"), [])[0]  # nothing recorded: only the goal
    assert first["last"] is None and not first["worse"] and first["over_goal"]


def test_a_single_recorded_run_uses_its_own_spread():
    recorded = [_line(0.0100, 0.0015, "c1")]
    assert not history.compare(_line(0.0114, 0.0, "c2"), recorded)[0]["worse"]
    assert history.compare(_line(0.0120, 0.0, "c2"), recorded)[0]["worse"]  # 20 % worse, beyond 0.0015


def test_compare_no_run_exit_status_and_report(tmp_path, capsys):
    directory = tmp_path / "history"
    directory.mkdir()
    lines = [_line(0.0100, 0.0004, "c1"), _line(0.0110, 0.0005, "c2")]
    path = directory / "pyramid_attention.jsonl"
    path.write_text("".join(json.dumps(dict(line, benchmark="pyramid_attention")) + "\n" for line in lines))
    # The last run (0.0110) is 10 % above the only earlier one, beyond that run's own spread (0.0004).
    assert compare.main(["--no-run", "--history", str(directory)]) == 1
    assert "WORSE" in capsys.readouterr().out
    with open(path, "a") as f:
        f.write(json.dumps(dict(_line(0.0115, 0.0004, "c3"), benchmark="pyramid_attention")) + "\n")
    assert compare.main(["--no-run", "--history", str(directory)]) == 0  # within 0.0110 + the range 0.0010
    out = capsys.readouterr().out
    assert "WORSE" not in out and out.rstrip().endswith("ok")


def test_table_rows_show_latest_value_range_and_commit():
    histories = {"demo": [_line(0.0100, 0.0, "c1"), _line(0.0120, 0.0, "c2", "2026-12-02T10:00:00Z")]}
    rows = history.table(histories).splitlines()
    assert rows[0].startswith("| benchmark | figure | latest | range over runs | runs | goal | commit | date |")
    ratio_row = (
        "| demo | ratio: layer / IRv2, forward+backward | 1.20% | 1.00% – 1.20% | 2 | ≤ 1.50% | c2 | 2026-12-02 |"
    )
    assert ratio_row in rows
    assert "| demo | layer ms | 12 | 10 – 12 | 2 |  | c2 | 2026-12-02 |" in rows


def test_committed_performance_table_is_generated_from_the_committed_history():
    with open(compare.TABLE) as f:
        committed = f.read()
    assert committed == compare.render_table()
    assert "pyramid_attention" in committed
