"""The study runner: task graph, resumable execution with real subprocesses, and a two-row micro study end to end."""

import glob
import json
import math
import os
import sys

import numpy as np
import pytest

from experiments import report, runner, statistics, studies

PY = sys.executable


def _write(path, code):
    """A real command: a Python one-liner (writes files, fails on purpose)."""
    return (PY, "-c", code.replace("OUT", repr(path)))


def test_execute_order_skips_failures_and_resumes(tmp_path):
    layout = runner.Layout(str(tmp_path))
    a, b, c, d = (str(tmp_path / n) for n in ("a.txt", "b.txt", "c.txt", "d.txt"))
    tasks = [
        runner.Task("t/a", _write(a, "open(OUT, 'w').write('1')"), output=a),
        runner.Task(
            "t/b",
            _write(b, "import os; assert os.path.exists(OUT[:-5] + 'a.txt'); open(OUT, 'w').write('2')"),
            deps=("t/a",),
            output=b,
        ),
        runner.Task("t/c", _write(c, "raise SystemExit('diverged at step 3')"), deps=("t/a",), output=c),
        runner.Task("t/d", _write(d, "open(OUT, 'w').write('4')"), deps=("t/c",), output=d),
    ]
    states = runner.execute(tasks, layout, jobs=2, progress=False)
    assert [states[k]["status"] for k in ("t/a", "t/b", "t/c", "t/d")] == ["done", "done", "failed", "skipped"]
    assert "diverged at step 3" in states["t/c"]["log_tail"] and not os.path.exists(d)
    assert runner.read_state(layout, "t/c")["returncode"] == 1
    # Resume: nothing runs again (the failed task is reported, not retried); a task whose state is gone runs again.
    mtimes = {p: os.path.getmtime(p) for p in glob.glob(str(tmp_path / "logs" / "*.log"))}
    os.remove(layout.state("t/b"))
    again = runner.execute(tasks, layout, progress=False)
    assert again["t/c"]["status"] == "failed" and again["t/d"]["status"] == "skipped"
    changed = [p for p, m in mtimes.items() if os.path.getmtime(p) != m]
    assert changed == [layout.log("t/b")]
    # A task whose output disappeared runs again, and --retry_failed runs the failed one.
    os.remove(a)
    retried = runner.execute(tasks, layout, progress=False, retry_failed=True)
    assert os.path.exists(a) and retried["t/c"]["status"] == "failed"
    # Exit 0 without the promised output is a failure.
    e = str(tmp_path / "e.txt")
    quiet = runner.execute([runner.Task("t/e", (PY, "-c", "pass"), output=e)], layout, progress=False)
    assert quiet["t/e"]["status"] == "failed" and "was not written" in quiet["t/e"]["reason"]


def test_graph_shares_runs_between_studies_and_orders_dependencies(tmp_path):
    layout = runner.Layout(str(tmp_path))
    graph = runner.TaskGraph(layout, runner.Options(seeds=(0, 1), quick=True))
    graph.add_studies([studies.STPA_TABLE1B, studies.STPA_TABLE1C, studies.STPA_TABLE1D])
    keys = [t.key for t in graph.ordered()]
    assert len(keys) == len(set(keys))
    # Table 1(c)'s mul row is Table 1(b)'s 3-scale run: one training per seed.
    assert keys.count("train/study_stpa_scales3_rgb/seed0") == 1
    trains = {k.split("/")[1] for k in keys if k.startswith("train/")}
    assert trains == {f"study_stpa_scales{n}_{m}" for n in (1, 2, 3, 4) for m in ("rgb", "flow")} | {
        "study_stpa_fusion_max_rgb",
        "study_stpa_fusion_sum_rgb",
    } | {f"study_stpa_loss_{v}_{m}" for v in ("inter", "attn", "both") for m in ("rgb", "flow")}
    position = {k: i for i, k in enumerate(keys)}
    for task in graph.tasks.values():
        assert all(position[d] < position[task.key] for d in task.deps)
    train = graph.tasks["train/study_stpa_scales1_rgb/seed1"]
    assert "--seed=1" in train.command and "--max_steps=200" in train.command and "--lr_boundaries=150" in train.command
    tuned = graph.tasks["fuse/study_stpa_scales3_rgb__study_stpa_scales3_flow/seed0/tuned"]
    assert any(a.startswith("--tune_on=") and "val_K25.npz" in a for a in tuned.command)
    # The fused per-video scores are kept next to the metrics (per_video.csv.gz of the fused cells).
    fusion_dir = layout.fusion_dir("study_stpa_scales3_rgb", "study_stpa_scales3_flow", 0)
    assert f"--output={os.path.join(fusion_dir, 'tuned.npz')}" in tuned.command
    assert runner.scores_path(
        studies.Measure("fused_tuned", ("study_stpa_scales3_rgb", "study_stpa_scales3_flow")), 0, layout
    ) == os.path.join(fusion_dir, "tuned.npz")
    # No train / validation evaluations unless asked for.
    assert not any(k.endswith(("/train_K25", "/val_K25")) and "scales1" in k for k in keys)
    assert "data/val/prepare" in {d for dep in tuned.deps for d in graph.tasks[dep].deps}
    full = runner.TaskGraph(layout, runner.Options(seeds=(0,)))
    assert not any(a.startswith("--max_steps") for a in full.tasks.get(full.train("study_stpa_tsn_rgb", 0)).command)
    with pytest.raises(ValueError, match="no flagfile"):
        graph.train("nonexistent", 0)


def test_train_and_validation_accuracy_tasks_are_optional(tmp_path):
    layout = runner.Layout(str(tmp_path))
    graph = runner.TaskGraph(layout, runner.Options(seeds=(0,), train_accuracy_videos=50, val_accuracy=True))
    graph.add_studies([studies.STPA_TABLE1C])
    train = graph.tasks["evaluate/study_stpa_fusion_max_rgb/seed0/train_K25"]
    assert {
        "--split=train",
        "--max_videos=50",
        f"--records_dir={layout.records}",
        "--test_frames=25",
        f"--output={layout.eval_json('study_stpa_fusion_max_rgb', 0, 25, 'train')[:-5]}.npz",
    } <= set(train.command)
    assert train.deps == ("train/study_stpa_fusion_max_rgb/seed0",)
    val = graph.tasks["evaluate/study_stpa_fusion_max_rgb/seed0/val_K25"]
    assert {"--split=test", f"--records_dir={layout.val_records}"} <= set(val.command)
    test = graph.tasks["evaluate/study_stpa_fusion_max_rgb/seed0/test_K25"]
    assert not any(a.startswith("--max_videos") for a in test.command)
    with pytest.raises(ValueError, match="train_accuracy_videos"):
        runner.TaskGraph(layout, runner.Options(seeds=(0,))).evaluate("study_stpa_tsn_rgb", 0, 25, "train")
    # Recorded in reproduce.json only when used: an older directory continues without them, and they don't mix.
    runner.check_schedule(layout, runner.Options())
    with open(os.path.join(str(tmp_path), "reproduce.json")) as f:
        assert "train_accuracy_videos" not in json.load(f)
    with pytest.raises(ValueError, match="train_accuracy_videos=None \\(here 50\\)"):
        runner.check_schedule(layout, runner.Options(train_accuracy_videos=50))


def test_schedule_is_recorded_and_not_mixed(tmp_path):
    layout = runner.Layout(str(tmp_path))
    runner.check_schedule(layout, runner.Options(quick=True))
    runner.check_schedule(layout, runner.Options(quick=True))
    with pytest.raises(ValueError, match="--quick runs made with quick=True"):
        runner.check_schedule(layout, runner.Options(quick=False))
    with open(os.path.join(str(tmp_path), "reproduce.json")) as f:
        assert json.load(f)["deterministic"] is True


def test_directory_made_before_deterministic_runs_continues_with_nodeterministic(tmp_path):
    old = {"quick": False, "quick_steps": None, "train_overrides": [], "benchmark_flags": []}  # its reproduce.json
    (tmp_path / "reproduce.json").write_text(json.dumps(old))
    layout = runner.Layout(str(tmp_path))
    with pytest.raises(ValueError, match="deterministic=False \\(here True\\).*--nodeterministic"):
        runner.check_schedule(layout, runner.Options())
    runner.check_schedule(layout, runner.Options(deterministic=False))
    for deterministic in (True, False):
        graph = runner.TaskGraph(layout, runner.Options(deterministic=deterministic))
        command = graph.tasks[graph.train("study_stpa_tsn_rgb", 0)].command
        assert ("--deterministic" in command) is deterministic


MICRO_FLAGS = """# micro study row
# command: python -m stpa.train
--model={model}
--backbone=tiny
--modality=rgb
--input_size=32
--top=C
--scales=2
--beta=0
--gamma=0
--dropout=0
--train_frames=2
--eval_frames=2
--batch_size=4
--optimizer=adam
--learning_rate=0.001
--lr_boundaries=2
--max_steps=3
--eval_every=0
--eval_split=
"""
MICRO = studies.Study(
    name="micro",
    title="Micro study",
    paper_source="none",
    rows=("TSN", "STPA"),
    columns=("RGB",),
    cells=(
        studies.Cell("TSN", "RGB", studies.Measure("top1", ("micro_tsn",), test_frames=2), 80.0),
        studies.Cell("STPA", "RGB", studies.Measure("top1", ("micro_stpa",), test_frames=2), 83.0),
    ),
    claims=(studies.Claim(("STPA", "RGB"), ("TSN", "RGB"), +1, "attention helps"),),
)


@pytest.mark.slow
def test_localisation_studies_use_the_fine_tune_features_attention_chain(tmp_path):
    # Meng et al. Sec. 3.1: TSN fine-tuning -> st_attn.features with its trunk -> ST-attn on features -> localise.
    layout = runner.Layout(str(tmp_path))
    graph = runner.TaskGraph(layout, runner.Options(seeds=(0,)))
    graph.add_studies([studies.ST_ATTN_TABLE5, studies.ST_ATTN_TABLE6])
    keys = [t.key for t in graph.ordered()]
    chain = [
        "data/benchmark/prepare",
        "train/study_stpa_tsn_rgb/seed0",
        "features/study_stpa_tsn_rgb/seed0",
        "train/study_st_attn_chain/seed0",
        "localize/study_st_attn_chain/seed0",
    ]
    assert [k for k in keys if k in chain] == chain and len(keys) == len(set(keys))
    features_dir = layout.features_dir("study_stpa_tsn_rgb", 0)
    extract = graph.tasks["features/study_stpa_tsn_rgb/seed0"]
    assert extract.command[1:3] == ("-m", "st_attn.features") and extract.deps == ("train/study_stpa_tsn_rgb/seed0",)
    assert f"--weights={layout.run_dir('study_stpa_tsn_rgb', 0)}" in extract.command
    assert f"--out_dir={features_dir}" in extract.command and f"--records_dir={layout.records}" in extract.command
    train = graph.tasks["train/study_st_attn_chain/seed0"]
    assert f"--features_dir={features_dir}" in train.command and train.deps == ("features/study_stpa_tsn_rgb/seed0",)
    assert not any(a.startswith("--records_dir") for a in train.command)
    localize = graph.tasks["localize/study_st_attn_chain/seed0"]
    assert {f"--features_dir={features_dir}", f"--records_dir={layout.records}"} <= set(localize.command)
    assert studies.ST_ATTN_TABLE5.flagfiles() == ["study_stpa_tsn_rgb", "study_st_attn_chain"]
    # Rows not trained on features keep the records.
    assert f"--records_dir={layout.records}" in graph.tasks["train/study_stpa_tsn_rgb/seed0"].command


def _logged_top1(run_dir):
    """The mean of the last 10 `top1` scalars of a run's training events, read with TF's own event iterator."""
    import tensorflow as tf

    logged = []
    for path in glob.glob(os.path.join(run_dir, "train", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            logged += [(event.step, float(tf.make_ndarray(v.tensor))) for v in event.summary.value if v.tag == "top1"]
    assert logged, f"no top1 events in {run_dir}"
    tail = [value for _, value in sorted(logged)[-10:]]
    return sum(tail) / len(tail)


@pytest.mark.slow
def test_micro_study_end_to_end(tmp_path):
    flagfiles = tmp_path / "flagfiles"
    flagfiles.mkdir()
    for model in ("tsn", "stpa"):
        (flagfiles / f"micro_{model}.cfg").write_text(MICRO_FLAGS.format(model=model))
    options = runner.Options(
        seeds=(0, 1), flagfile_dir=str(flagfiles), train_accuracy_videos=3,
        benchmark_flags=["--num_classes=2", "--train_per_class=2", "--test_per_class=3", "--num_frames=12",
                         "--width=64", "--height=64", "--actor_radius_range=3,5", "--distractor_radius=3,5"],
        prepare_flags=["--flow=dis", "--frame_size=none", "--workers=0"])  # fmt: skip
    layout = runner.Layout(str(tmp_path / "out"))
    graph = runner.TaskGraph(layout, options)
    graph.add_studies([MICRO])
    tasks = graph.ordered()
    assert [t.key for t in tasks][:2] == ["data/benchmark/generate", "data/benchmark/prepare"]
    states = runner.execute(tasks, layout, progress=False)
    assert {k: s["status"] for k, s in states.items()} == {t.key: "done" for t in tasks}, {
        k: s.get("log_tail") for k, s in states.items() if s["status"] != "done"
    }

    # The per-run metrics as the commands wrote them (stpa.evaluate's JSON), read here independently.
    known = {}
    for row, stem in (("TSN", "micro_tsn"), ("STPA", "micro_stpa")):
        for seed in (0, 1):
            with open(os.path.join(layout.out_dir, "runs", stem, f"seed{seed}", "eval", "test_K2.json")) as f:
                metrics = json.load(f)
            assert metrics["num_videos"] == 6 and metrics["test_frames"] == 2
            known[(row, seed)] = 100.0 * metrics["top1"]
    results = runner.collect(MICRO, layout, (0, 1))
    assert results == {
        ("TSN", "RGB"): {0: known[("TSN", 0)], 1: known[("TSN", 1)]},
        ("STPA", "RGB"): {0: known[("STPA", 0)], 1: known[("STPA", 1)]},
    }
    # Per-video predictions: the same 6 test videos for every run, and their mean correctness is the JSON's top-1.
    per_video = runner.collect_per_video(MICRO, layout, (0, 1))
    ids = None
    for (row, _), by_seed in per_video.items():
        assert sorted(by_seed) == [0, 1]
        for seed, records in by_seed.items():
            assert len(records) == 6 and all(0 <= label < 2 and 0 <= p < 2 for _, label, p in records)
            assert 100.0 * np.mean([label == p for _, label, p in records]) == pytest.approx(known[(row, seed)])
            ids = ids or sorted(v for v, _, _ in records)
            assert sorted(v for v, _, _ in records) == ids
    # Train accuracy on the first 3 train videos, as stpa.evaluate wrote it.
    accuracy = runner.collect_accuracy(MICRO, layout, (0, 1))
    for row, stem in (("TSN", "micro_tsn"), ("STPA", "micro_stpa")):
        for seed in (0, 1):
            with open(os.path.join(layout.out_dir, "runs", stem, f"seed{seed}", "eval", "train_K2.json")) as f:
                train_metrics = json.load(f)
            assert train_metrics["num_videos"] == 3 and train_metrics["split"] == "train"
            assert accuracy[(row, "RGB")][seed] == {
                "train_top1": 100.0 * train_metrics["top1"],
                "val_top1": None,
                "test_top1": known[(row, seed)],
                "train_running_top1": pytest.approx(100.0 * _logged_top1(layout.run_dir(stem, seed))),
            }
    # Aggregates from the known values, float64 by hand: mean, sample std, paired interval with t(1) = 12.706.
    for row in ("TSN", "STPA"):
        values = np.array([known[(row, 0)], known[(row, 1)]], np.float64)
        expected = f"{values.mean():.1f} ± {abs(values[0] - values[1]) / math.sqrt(2):.1f} (2)"
        assert report.format_cell(results[(row, "RGB")]) == expected
    d = np.array([known[("STPA", s)] - known[("TSN", s)] for s in (0, 1)], np.float64)
    half = 12.706 * abs(d[0] - d[1]) / math.sqrt(2) / math.sqrt(2)
    comparison = report.comparisons(MICRO, results)[0][1]
    assert comparison.mean == pytest.approx(d.mean())
    assert (comparison.low, comparison.high) == (pytest.approx(d.mean() - half), pytest.approx(d.mean() + half))
    low, high = d.mean() - half, d.mean() + half
    expected_verdict = statistics.AS_PAPER if low > 0 else statistics.OPPOSITE if high < 0 else statistics.WITHIN_NOISE
    assert comparison.verdict == expected_verdict
    flag_settings = {s: report.read_flagfile(str(flagfiles / f"{s}.cfg")) for s in ("micro_tsn", "micro_stpa")}
    paths = report.write_report(
        MICRO,
        results,
        str(tmp_path / "reports"),
        seeds=(0, 1),
        hparams_dir=str(tmp_path / "tb"),
        flag_settings=flag_settings,
        per_video=per_video,
        accuracy=accuracy,
    )
    assert report.read_per_video(paths["per_video"]) == per_video
    with open(paths["accuracy"]) as f:
        assert len(f.read().splitlines()) == 1 + 2 * 2
    with open(paths["report"]) as f:
        text = f.read()
    assert f"| TSN | {report.format_cell(results[('TSN', 'RGB')])} | 80.0 |" in text and expected_verdict in text

    # TensorBoard HParams: one session per row and seed, with the row's flags and its value.
    import tensorflow as tf

    sessions = sorted(glob.glob(str(tmp_path / "tb" / "micro" / "*")))
    assert [os.path.basename(s) for s in sessions] == [
        "STPA_RGB_seed0",
        "STPA_RGB_seed1",
        "TSN_RGB_seed0",
        "TSN_RGB_seed1",
    ]
    plugins, values = set(), []
    for event_file in glob.glob(os.path.join(sessions[2], "events.*")):
        for event in tf.compat.v1.train.summary_iterator(event_file):
            for value in event.summary.value:
                plugins.add(value.metadata.plugin_data.plugin_name)
                if value.tag == "value":
                    values.append(float(tf.make_ndarray(value.tensor)))
    assert "hparams" in plugins and values == [pytest.approx(known[("TSN", 0)])]

    # Resumable: a second run finds everything done and starts no command.
    logs = {p: os.path.getmtime(p) for p in glob.glob(os.path.join(layout.out_dir, "logs", "*.log"))}
    runner.execute(tasks, layout, progress=False)
    assert {p: os.path.getmtime(p) for p in logs} == logs


def test_study_failures_name_the_failed_commands_a_study_needs(tmp_path):
    from data import files

    layout = runner.Layout(str(tmp_path))
    graph = runner.TaskGraph(layout, runner.Options(seeds=(0,)))
    graph.add_studies([studies.STPA_TABLE1C])
    files.write_json(layout.state("train/study_stpa_fusion_max_rgb/seed0"), {"status": "failed", "log": "logs/x.log"})
    files.write_json(layout.state("train/study_stpa_scales3_rgb/seed0"), {"status": "done"})
    files.write_json(layout.state("train/study_stpa_tsn_rgb/seed0"), {"status": "failed"})  # not in Table 1(c)
    assert runner.study_failures(studies.STPA_TABLE1C, graph, layout, (0,)) == [
        "`train/study_stpa_fusion_max_rgb/seed0` (failed): logs/x.log"
    ]


def test_study_constants_match_the_benchmark_preset():
    from data import synthetic

    assert studies.STUDY_CLASSES == synthetic.STUDY_PRESET_FIELDS["num_classes"]
    assert studies.TSN_BASELINE.runs == ("study_stpa_tsn_rgb",)
