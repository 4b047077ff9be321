"""A row's schedule comes from its flagfile's --model through the family registry (experiments.schedules)."""

from __future__ import annotations

import ast
import dataclasses
import glob
import json
import os

import pytest

from experiments import protocol, runner, schedules, studies
from stpa import families  # noqa: F401  (registers the project's families)
from stpa.engine import family as family_lib

REPO = runner.REPO


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_the_model_is_read_through_includes_and_the_last_value_wins(tmp_path):
    base = _write(tmp_path / "base.cfg", "# a base\n--model=st_attn\n--batch_size=8\n")
    row = _write(tmp_path / "row.cfg", f"--flagfile={base}\n// a comment\n\n--lr_boundaries=3\n")
    assert schedules.flagfile_arguments(row) == ["--model=st_attn", "--batch_size=8", "--lr_boundaries=3"]
    assert schedules.flag_value(row, "model") == "st_attn"
    assert schedules.flag_value(row, "model_options") is None
    later = _write(tmp_path / "later.cfg", f"--model=tsn\n--flagfile={base}\n")
    assert schedules.flag_value(later, "model") == "st_attn"  # the include comes after: its value wins
    earlier = _write(tmp_path / "earlier.cfg", f"--flagfile={base}\n--model=tsn\n")
    assert schedules.row_family(earlier).name == "tsn"
    # A relative include is read from the repository root, where the study commands run.
    relative = _write(tmp_path / "relative.cfg", "--flagfile=experiments/synthetic/study_st_attn_chain.cfg\n")
    assert schedules.row_family(relative).name == "st_attn"
    # No --model: the flag's default, the first registered family.
    assert schedules.row_family(_write(tmp_path / "none.cfg", "--batch_size=8\n")).name == family_lib.family_names()[0]
    loop = _write(tmp_path / "loop.cfg", f"--flagfile={tmp_path / 'loop.cfg'}\n")
    with pytest.raises(ValueError, match="includes itself"):
        schedules.flagfile_arguments(loop)
    with pytest.raises(ValueError, match="unknown --model 'nope'"):
        schedules.row_family(_write(tmp_path / "bad.cfg", "--model=nope\n"))


def test_the_group_follows_the_family_not_the_flagfile_name(tmp_path):
    # A row named like an ST-attn row whose flagfile builds STPA follows the STPA group, and the other way round.
    flagfiles = tmp_path / "flagfiles"
    flagfiles.mkdir()
    _write(flagfiles / "my_st_attn_row.cfg", "--model=stpa\n")
    _write(flagfiles / "my_stpa_row.cfg", "--flagfile=experiments/synthetic/study_st_attn_chain.cfg\n")
    steps = {"stpa": 1500, "st_attn": 1000}
    assert runner.schedule_overrides("my_st_attn_row", False, steps, str(flagfiles)) == [
        "--max_steps=1500",
        "--lr_boundaries=1125",
    ]
    assert runner.schedule_overrides("my_stpa_row", True, None, str(flagfiles)) == [
        "--max_steps=150",
        "--lr_boundaries=112",
    ]
    assert runner.schedule_overrides("my_stpa_row", False, None, str(flagfiles)) == []  # the flagfile's own


def test_every_study_row_has_the_schedule_its_family_declares():
    stpa_group = family_lib.get_family("stpa").schedule_group
    assert family_lib.get_family("tsn").schedule_group is stpa_group  # TSN trains like STPA
    assert (stpa_group.name, stpa_group.quick_steps) == ("stpa", 200)
    st_attn = family_lib.get_family("st_attn").schedule_group
    assert (st_attn.name, st_attn.quick_steps) == ("st_attn", 150)
    assert schedules.quick_steps() == {"stpa": 200, "st_attn": 150}  # what --quick directories recorded
    rows = {stem for study in studies.STUDIES.values() for stem in study.flagfiles()}
    for stem in rows:
        like = studies.SAME_SCHEDULE_AS.get(stem, stem)
        model = schedules.row_family(os.path.join(runner.FLAGFILE_DIR, like + ".cfg")).name
        expected = {"stpa": 200, "tsn": 200, "st_attn": 150}[model]
        assert runner.schedule_overrides(stem, True)[0] == f"--max_steps={expected}", stem
    # The ST-attn tables' TSN baseline trains as long as the heads it is compared with (as its flagfile does).
    assert schedules.row_family(os.path.join(runner.FLAGFILE_DIR, "study_st_attn_no_attention.cfg")).name == "tsn"
    assert runner.schedule_overrides("study_st_attn_no_attention", True) == ["--max_steps=150", "--lr_boundaries=112"]
    assert set(studies.SAME_SCHEDULE_AS) <= rows and set(studies.SAME_SCHEDULE_AS.values()) <= rows


def test_a_quick_directory_made_before_keeps_its_recorded_schedule(tmp_path):
    old = {"quick": True, "quick_steps": {"stpa": 200, "st_attn": 150}, "train_overrides": [], "benchmark_flags": []}
    (tmp_path / "reproduce.json").write_text(json.dumps({**old, "deterministic": True}))
    runner.check_schedule(runner.Layout(str(tmp_path)), runner.Options(quick=True))  # continues: same settings


def test_the_committed_schedules_parse_to_the_same_steps():
    for path in glob.glob(os.path.join(REPO, "experiments", "preregistration*.md")):
        with open(path) as f:
            lines = [line for line in f if line.startswith("schedule: ")]
        for line in lines:
            text = line.split(":", 1)[1].strip()
            assert protocol.parse_schedule(text) == {"stpa": 1500, "st_attn": 1000}, path
            assert protocol.format_schedule(protocol.parse_schedule(text)) == text


def test_a_schedule_without_a_rows_group_fails_when_the_row_is_built(tmp_path):
    steps = protocol.parse_schedule("stpa=1500")
    graph = runner.TaskGraph(runner.Layout(str(tmp_path)), runner.Options(seeds=(0,), steps=steps))
    assert "--max_steps=1500" in graph.tasks[graph.train("study_stpa_tsn_rgb", 0)].command
    with pytest.raises(ValueError, match="no steps for its schedule group 'st_attn'; add st_attn=N"):
        graph.train("study_st_attn_chain", 0)


@dataclasses.dataclass(frozen=True)
class _NoConfig:
    pass


class _Ungrouped(family_lib.ModelFamily):
    name = "ungrouped_test_family"
    config_class = _NoConfig

    def build(self, config, num_classes, data, *, feature_shape=None):
        raise NotImplementedError


def test_a_family_without_a_group_keeps_its_flagfile_steps_and_is_refused_by_a_schedule(tmp_path):
    family_lib.register_family(_Ungrouped())
    try:
        assert "ungrouped_test_family" not in schedules.quick_steps()
        row = _write(tmp_path / "row.cfg", "--model=ungrouped_test_family\n")
        assert schedules.overrides(row, False, None) == []
        with pytest.raises(ValueError, match="declares no schedule group"):
            schedules.overrides(row, True)
        with pytest.raises(ValueError, match="schedule 'ungrouped_test_family=3'"):
            schedules.parse_schedule("ungrouped_test_family=3")
    finally:
        family_lib.unregister_family("ungrouped_test_family")


def _family_names_in_logic(path: str, names) -> list[str]:
    """Lines of a module with a string constant that is a family name, other than a protocol part's name (data)."""
    tree = ast.parse(open(path).read(), path)
    part_names = {
        id(node.args[0])
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Part" and node.args
    }
    return [
        f"{os.path.relpath(path, REPO)}:{node.lineno} {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in names and id(node) not in part_names
    ]


def test_experiments_name_no_family():
    names = set(family_lib.family_names())
    assert {"stpa", "tsn", "st_attn"} <= names
    found = [
        line for path in sorted(glob.glob(os.path.join(REPO, "experiments", "*.py")))
        for line in _family_names_in_logic(path, names)
    ]  # fmt: skip
    assert found == []
