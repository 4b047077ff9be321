"""The powered protocol (`experiments.protocol`): parts, schedules, conflicts, replications, a toy part end to end."""

import csv
import os
import re
import subprocess
import sys

import pytest

from experiments import preregistration, protocol, statistics

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PREREG_PATH = os.path.join(REPO, "experiments", "preregistration.md")
TOY_BENCHMARK = (
    "--preset=study --num_classes=2 --train_per_class=2 --test_per_class=3 --num_frames=12 --width=64 --height=64 "
    "--actor_radius_range=5,8 --distractor_radius=3,5"
)


def _toy_prereg(tmp_path, *, digest=None, schedule="stpa=4, st_attn=4"):
    """The committed pre-registration with a toy benchmark, one seed and a 4-step schedule."""
    with open(PREREG_PATH) as f:
        text = f.read()
    replacements = {
        r"^seeds: .*$": "seeds: 0",
        r"^dose_seeds: .*$": "dose_seeds: 0",
        r"^replication_seeds: .*$": "replication_seeds: 0",
        r"^benchmark: .*$": "benchmark: " + TOY_BENCHMARK,
        r"^benchmark_digest: .*$": "benchmark_digest: "
        + (digest or preregistration.benchmark_digest(TOY_BENCHMARK.split())),
        r"^schedule: .*$": "schedule: " + schedule,
        r"^bootstrap_resamples: .*$": "bootstrap_resamples: 200",
    }
    for pattern, value in replacements.items():
        text = re.sub(pattern, value, text, flags=re.MULTILINE)
    path = tmp_path / "prereg.md"
    path.write_text(text)
    return preregistration.load(str(path))


def _flag(command, name):
    values = [arg.split("=", 1)[1] for arg in command if arg.startswith(f"--{name}=")]
    return values[-1] if values else None  # absl: the last one wins


def test_schedule_is_parsed_and_refused_in_one_line():
    assert protocol.parse_schedule("stpa=1500, st_attn=1000") == {"stpa": 1500, "st_attn": 1000}
    assert protocol.format_schedule({"st_attn": 1000, "stpa": 1500}) == "stpa=1500, st_attn=1000"
    # Schedule-group names, not family names ("tsn" is a family of the "stpa" group); a group left out fails where
    # one of its rows is built (test_schedules.py).
    assert protocol.parse_schedule("stpa=1500") == {"stpa": 1500}
    for bad in ("1500 steps", "", "stpa=15x0, st_attn=1", "stpa=1, stpa=2, st_attn=3", "tsn=1, st_attn=2"):
        with pytest.raises(ValueError, match="schedule"):
            protocol.parse_schedule(bad)


def test_parts_follow_the_committed_preregistration(tmp_path):
    prereg = preregistration.load(PREREG_PATH)
    seeds = {name: protocol.part_seeds(prereg, part) for name, part in protocol.PARTS.items()}
    assert seeds == {
        "stpa_rgb": tuple(range(10)),
        "stpa_flow": tuple(range(10)),
        "st_attn": tuple(range(10)),
        "dose": (0, 1, 2),
        "replicate_seed": tuple(range(5)),
        "replicate_motion": tuple(range(5)),
    }
    graph, tasks = protocol.part_graph(prereg, protocol.PARTS["stpa_rgb"], str(tmp_path))
    trains = [t for t in tasks if t.key.startswith("train/")]
    assert len(trains) == 3 * 10  # TSN, uniform, STPA on RGB x 10 seeds
    assert {t.key.split("/")[1] for t in trains} == {
        "study_stpa_tsn_rgb",
        "study_stpa_uniform_rgb",
        "study_stpa_scales3_rgb",
    }
    assert {(_flag(t.command, "max_steps"), _flag(t.command, "lr_boundaries")) for t in trains} == {("1500", "1125")}
    generate = graph.tasks["data/benchmark/generate"].command
    assert " ".join(a for a in generate if a.startswith("--") and "out_dir" not in a) == prereg.benchmark + " --seed=0"
    assert preregistration.benchmark_digest(["--preset=study", *graph.options.benchmark_flags]) == "d46646dcf7d91569"
    validation = graph.tasks["data/val/generate"].command
    assert (_flag(validation, "seed"), _flag(validation, "train_per_class"), _flag(validation, "test_per_class")) == (
        "1",
        "1",
        "20",
    )

    _, tasks = protocol.part_graph(prereg, protocol.PARTS["st_attn"], str(tmp_path))
    heads = [t for t in tasks if t.key.startswith("train/study_st_attn_chain")]
    assert len(heads) == 4 * 10
    assert {(_flag(t.command, "max_steps"), _flag(t.command, "lr_boundaries")) for t in heads} == {("1000", "750")}
    head = next(t for t in heads if t.key == "train/study_st_attn_chain_average/seed3")
    assert _flag(head.command, "features_dir") == os.path.join(
        str(tmp_path), "main", "features", "study_stpa_tsn_rgb", "seed3"
    )
    evaluation = next(t for t in tasks if t.key == "evaluate/study_st_attn_chain_average/seed3/test_K6")
    assert _flag(evaluation.command, "records_dir") == _flag(head.command, "features_dir")
    assert not [t for t in tasks if "chain" in t.key and "val_K" in t.key]  # no features of the validation set

    # Replications: only the cells of their claims, on their own instance.
    graph, tasks = protocol.part_graph(prereg, protocol.PARTS["replicate_seed"], str(tmp_path))
    assert {t.key.split("/")[1] for t in tasks if t.key.startswith("train/")} == {
        "study_stpa_tsn_rgb",
        "study_stpa_uniform_rgb",
        "study_stpa_scales3_rgb",
        "study_st_attn_chain",
        "study_st_attn_chain_average",
    }
    assert _flag(graph.tasks["data/benchmark/generate"].command, "seed") == "2"
    assert graph.layout.out_dir == os.path.join(str(tmp_path), "seed2")
    graph, tasks = protocol.part_graph(prereg, protocol.PARTS["replicate_motion"], str(tmp_path))
    assert "--cue=motion" in graph.tasks["data/benchmark/generate"].command
    assert {t.key.split("/")[1] for t in tasks if t.key.startswith("train/")} == {
        "study_stpa_tsn_flow",
        "study_stpa_uniform_flow",
        "study_stpa_scales3_flow",
    }


def test_replication_expects_its_own_seeds_benchmark_and_claims():
    prereg = preregistration.load(PREREG_PATH)
    motion = protocol.instance_prereg(prereg, protocol.INSTANCES["motion"])
    assert motion.seeds == tuple(range(5)) and [c.id for c in motion.claims] == ["stpa_flow", "attention_flow"]
    assert motion.benchmark == prereg.benchmark + " --cue=motion"
    assert motion.benchmark_digest == preregistration.benchmark_digest((prereg.benchmark + " --cue=motion").split())
    assert protocol.instance_prereg(prereg, protocol.INSTANCES["main"]) is prereg


def _decision(verdict, mean=None):
    estimate = None
    if mean is not None:
        estimate = statistics.PairedEstimate(mean, 1.0, mean - 2, mean + 2, 0.95, 10, 300, None, None, 100, 0)
    return statistics.Decision(estimate, 1, 3.0, 0.05, 0.5, 0.5, 0.5, 0.5, 2.5, verdict, False)


def test_replication_table_says_where_a_verdict_changes():
    prereg = preregistration.load(PREREG_PATH)
    rgb, flow, fusion = prereg.claim("stpa_rgb"), prereg.claim("stpa_flow"), prereg.claim("stpa_fusion")
    table = protocol.replication_table(
        [rgb, flow, fusion],
        {
            "main": [
                (rgb, _decision("as the paper", 4.0)),
                (flow, _decision("equivalent", 0.5)),
                (fusion, _decision("inconclusive")),
            ],
            "seed2": [(rgb, _decision("as the paper", 3.5))],
            "motion": [(flow, _decision("opposite", -5.0))],
        },
    ).splitlines()
    assert table[2] == (
        "| stpa_rgb | as the paper: +4.0 [+2.0, +6.0], MDE 2.5 | as the paper: +3.5 [+1.5, +5.5], MDE 2.5 | — | no |"
    )
    assert table[3] == (
        "| stpa_flow | equivalent: +0.5 [-1.5, +2.5], MDE 2.5 | — | opposite: -5.0 [-7.0, -3.0], MDE 2.5 | yes |"
    )
    assert table[4] == "| stpa_fusion | inconclusive (no paired seeds yet) | — | — | not replicated |"
    pending = protocol.replication_table(
        [flow], {"main": [(flow, _decision("opposite", -5.0))], "motion": [(flow, _decision("inconclusive"))]}
    ).splitlines()
    assert pending[2] == (
        "| stpa_flow | opposite: -5.0 [-7.0, -3.0], MDE 2.5 | inconclusive (no paired seeds yet) | pending |"
    )


def _reproduce(*args):
    return subprocess.run(
        [sys.executable, "-m", "experiments.reproduce", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_part_refuses_flags_the_preregistration_decides(tmp_path):
    out = f"--out_dir={tmp_path / 'p'}"
    refused = _reproduce("--part=stpa_rgb", f"--preregistration={PREREG_PATH}", "--seeds=3", "--quick", out)
    assert refused.returncode != 0
    assert "--part takes its settings from the pre-registration; drop --seeds, --quick" in refused.stderr
    missing = _reproduce("--part=stpa_rgb", out)
    assert missing.returncode != 0 and "--part needs --preregistration=FILE" in missing.stderr
    assert not os.path.exists(tmp_path / "p")  # nothing ran


def test_report_of_a_protocol_with_no_runs(tmp_path):
    done = _reproduce("--part=report", f"--preregistration={PREREG_PATH}", f"--out_dir={tmp_path / 'p'}", "--nohparams")
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "p" / "summary.md").read_text()
    assert "- TSN RGB: not run yet." in text and "| stpa_rgb | main | 48 | not run | 0 | — | — |" in text


def test_relink_preregistration_rewrites_only_the_link():
    text = "# R\n\nPre-registration: [p.md](../../old/p.md). Deviations from it: none.\n\n[other](x.md)\n"
    relinked = protocol.relink_preregistration(text, "/repo/experiments/p.md", "/repo/experiments/results/a")
    assert relinked == "# R\n\nPre-registration: [p.md](../../p.md). Deviations from it: none.\n\n[other](x.md)\n"


@pytest.mark.slow
def test_toy_st_attn_part_end_to_end_and_its_deviations(tmp_path):
    """The ST-attn part at toy size: the chain's four heads on one trunk's features, evaluated, localised, reported."""
    prereg = _toy_prereg(tmp_path, digest="0123456789abcdef")  # a wrong digest: the report must say so
    out = str(tmp_path / "protocol")
    lines = protocol.run_part(prereg, "st_attn", out, jobs=2, progress=False)
    assert lines[0].startswith("part st_attn: 13 tasks, 0 not done"), lines
    protocol.write_protocol_report(prereg, out)
    main = os.path.join(out, "main")
    # Every head evaluated on the same 6 cached-feature test videos; accuracy.csv holds what stpa.evaluate wrote.
    with open(os.path.join(main, "reports", "protocol_st_attn", "accuracy.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [r["row"] for r in rows] == [
        "Ours",
        "w/o spatial attention",
        "w/o temporal attention",
        "No attention (average pooling)",
    ]
    import json

    for row, stem in zip(rows, ("", "_no_spatial", "_no_temporal", "_average")):
        with open(os.path.join(main, "runs", f"study_st_attn_chain{stem}", "seed0", "eval", "test_K6.json")) as f:
            metrics = json.load(f)
        assert metrics["num_videos"] == 6
        assert float(row["test_top1"]) == pytest.approx(100.0 * metrics["top1"], abs=1e-4)
        assert row["val_top1"] == "" and row["train_running_top1"] != ""
    with open(os.path.join(main, "runs", "study_st_attn_chain_average", "seed0", "config.json")) as f:
        assert json.load(f)["build"]["pooling"] == "average"
    summary = open(os.path.join(main, "reports", "summary.md")).read()
    assert "- benchmark_digest: pre-registered 0123456789abcdef, the run used " in summary
    assert "- test_videos: pre-registered 300, the run used 6." in summary
    assert "schedule:" not in summary.split("Deviations from it:")[1].split("##")[0]  # the schedule was followed
    timings = open(os.path.join(main, "timings.csv")).read().splitlines()
    assert "train/study_st_attn_chain_average/seed0,train,done," in "\n".join(timings)
    parts = protocol.read_parts(out)
    assert parts["st_attn"]["runs"] == 1 and parts["st_attn"]["not_done"] == [] and parts["st_attn"]["tasks"] == 13
    results = str(tmp_path / "results")
    copied = protocol.copy_results(out, results, str(tmp_path / "prereg.md"))
    assert "main/reports/protocol_st_attn/per_video.csv.gz" in copied and "summary.md" in copied
    assert os.path.isfile(tmp_path / "results" / "main" / "timings.csv")
    assert "main/resume/runs/study_st_attn_chain/seed0/eval/test_K6.npz" in copied
    assert not [c for c in copied if "/ckpt" in c or "resume/state/data__" in c]  # no weights, data regenerated
    links = []  # the copies link the pre-registration from where they are copied, not from `out`
    for path in (tmp_path / "results").rglob("*.md"):
        for line in path.read_text().splitlines():
            if line.startswith("Pre-registration: ["):
                links.append(os.path.normpath(path.parent / line.split("](", 1)[1].split(")", 1)[0]))
    assert len(links) >= 2 and set(links) == {str(tmp_path / "prereg.md")}

    # A later session: restore into a new directory; the part then trains nothing again, the reports are the same.
    again = str(tmp_path / "again")
    restored = protocol.restore_results(results, again)
    assert "main/state/train__study_st_attn_chain_average__seed0.json" in restored
    assert protocol.run_part(prereg, "st_attn", again, jobs=2, progress=False)[0].startswith(
        "part st_attn: 13 tasks, 0 not done"
    )
    assert sorted(os.listdir(os.path.join(again, "main", "logs"))) == [
        "data__benchmark__generate.log",
        "data__benchmark__prepare.log",
    ]
    protocol.write_protocol_report(prereg, again)
    for name in ("accuracy.csv", "values.csv"):
        with (
            open(os.path.join(main, "reports", "protocol_st_attn", name)) as f,
            open(os.path.join(again, "main", "reports", "protocol_st_attn", name)) as g,
        ):
            assert f.read() == g.read()
