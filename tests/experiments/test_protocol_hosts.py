"""The hosts protocol (experiments/preregistration_hosts.md): its parts, rows, seeds and claims, and a toy part."""

import json
import os
import re

import pytest

from experiments import preregistration, protocol, runner, studies

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PREREG_PATH = os.path.join(REPO, "experiments", "preregistration_hosts.md")
HOST_WEIGHTS = os.path.join(REPO, "experiments", "weights", "tiny_deep_stills.weights.h5")


def _flag(command, name):
    values = [arg.split("=", 1)[1] for arg in command if arg.startswith(f"--{name}=")]
    return values[-1] if values else None


def _flagfile_flags(path):
    """The flags a flagfile resolves to, includes expanded in place (absl: the last value wins)."""
    resolved = {}
    with open(path) as f:
        for line in (line.strip() for line in f):
            if line.startswith("--flagfile="):
                resolved.update(_flagfile_flags(os.path.join(REPO, line.split("=", 1)[1])))
            elif line.startswith("--"):
                name, _, value = line[2:].partition("=")
                resolved[name] = value
    return resolved


def test_the_hosts_preregistration_names_its_protocol_and_claims():
    prereg = preregistration.load(PREREG_PATH)
    assert protocol.protocol_of(prereg) is protocol.HOSTS
    assert protocol.protocol_of(preregistration.load(os.path.join(REPO, "experiments", "preregistration.md"))) is (
        protocol.POWERED
    )
    assert prereg.benchmark_digest == "d46646dcf7d91569"  # the first protocol's benchmark: the same videos
    assert len(prereg.claims) == 8
    for claim in prereg.claims:  # every claim names two cells of its study
        study = studies.STUDIES[claim.study]
        study.cell(*claim.cell)
        study.cell(*claim.reference)
    seeds = {name: protocol.part_seeds(prereg, part) for name, part in protocol.HOSTS.parts.items()}
    groups = {"a": (0, 1, 2), "b": (3, 4, 5), "c": (6, 7), "d": (8, 9)}  # Amendment 1
    assert seeds == {
        **{f"host_{stream}_{group}": s for stream in ("flow", "rgb") for group, s in groups.items()},
        "tiny_flow": (0, 1, 2),  # Amendment 2
        "tiny_flow_b": (3, 4),
        "tiny_rgb": (0, 1, 2),
        "tiny_rgb_b": (3, 4),
        "tiny_st_attn": (5, 6, 7),
        "tiny_st_attn_b": (8, 9),
    }
    # Every claim's study is read at the primary seeds 0-9 (the union of its parts' lists).
    by_study = protocol.seeds_by_study(prereg, protocol.HOSTS.instances["main"])
    assert {by_study[claim.study] for claim in prereg.claims} == {tuple(range(10))}
    assert by_study["hosts_stpa_tiny"] == (0, 1, 2, 3, 4)
    with pytest.raises(ValueError, match="no part 'stpa_rgb'"):
        protocol.protocol_part(prereg, "stpa_rgb")


def test_host_rows_change_only_the_backbone_and_its_weights():
    flagfiles = os.path.join(REPO, "experiments", "synthetic")
    for modality in ("rgb", "flow"):
        for host_row, tiny_row in (("tsn", "tsn"), ("uniform", "uniform"), ("stpa", "scales3")):
            host = _flagfile_flags(os.path.join(flagfiles, f"study_host_{host_row}_{modality}.cfg"))
            tiny = _flagfile_flags(os.path.join(flagfiles, f"study_stpa_{tiny_row}_{modality}.cfg"))
            changed = {k for k in host.keys() | tiny.keys() if host.get(k) != tiny.get(k)}
            assert changed == {"backbone", "weights", "model_dir"}, (host_row, modality)
            assert host["backbone"] == "tiny_deep" and os.path.join(REPO, host["weights"]) == HOST_WEIGHTS
        zero = _flagfile_flags(os.path.join(flagfiles, f"study_stpa_sum_zero_{modality}.cfg"))
        paper = _flagfile_flags(os.path.join(flagfiles, f"study_stpa_scales3_{modality}.cfg"))
        assert {k for k in zero if zero[k] != paper.get(k)} == {"fusion", "score_init", "model_dir"}
        assert (zero["fusion"], zero["score_init"]) == ("sum", "zeros")
    matched = _flagfile_flags(os.path.join(flagfiles, "study_st_attn_chain_matched.cfg"))
    ours = _flagfile_flags(os.path.join(flagfiles, "study_st_attn_chain.cfg"))
    assert matched["model_options"] == ours["model_options"] + ",spatial_attention=False,temporal_attention=False"


def test_host_parts_train_the_registered_rows_on_the_host_features(tmp_path):
    prereg = preregistration.load(PREREG_PATH)
    graph, tasks = protocol.part_graph(prereg, protocol.HOSTS.parts["host_flow_a"], str(tmp_path))
    trains = [t for t in tasks if t.key.startswith("train/")]
    assert {t.key.split("/")[1] for t in trains} == {
        "study_host_tsn_flow",
        "study_host_uniform_flow",
        "study_host_stpa_flow",
        "study_host_stpa_sum_zero_flow",
    }
    assert len(trains) == 4 * 3
    assert {(_flag(t.command, "max_steps"), _flag(t.command, "lr_boundaries")) for t in trains} == {("1500", "1125")}
    evaluations = {t.key.rsplit("/", 1)[1] for t in tasks if t.key.startswith("evaluate/")}
    assert evaluations == {"test_K25", "test_K3"}  # no validation-set evaluations in this protocol
    assert "data/val/generate" not in graph.tasks

    _, tasks = protocol.part_graph(prereg, protocol.HOSTS.parts["host_rgb_a"], str(tmp_path))
    features = next(t for t in tasks if t.key == "features/study_host_tsn_rgb/seed2")
    assert _flag(features.command, "flagfile").endswith("study_host_st_attn_features.cfg")
    assert _flag(features.command, "weights") == os.path.join(
        str(tmp_path), "main", "runs", "study_host_tsn_rgb", "seed2"
    )
    fusions = sorted(t.key for t in tasks if t.key.startswith("fuse/study_host_stpa_rgb__"))
    assert fusions == [
        f"fuse/study_host_stpa_rgb__study_host_stpa_flow/seed{s}/{name}"
        for s in range(3)
        for name in ("equal", "softmax")
    ]
    softmax = next(t for t in tasks if t.key.endswith("seed0/softmax") and "study_host_tsn" in t.key)
    assert "--normalize=softmax" in softmax.command
    heads = {t.key.split("/")[1] for t in tasks if t.key.startswith("train/study_host_st_attn")}
    assert heads == {"study_host_st_attn_chain", "study_host_st_attn_chain_matched", "study_host_st_attn_chain_average"}


def _toy_prereg(tmp_path):
    with open(PREREG_PATH) as f:
        text = f.read()
    toy = (
        "--preset=study --num_classes=2 --train_per_class=2 --test_per_class=3 --num_frames=12 --width=64 --height=64 "
        "--actor_radius_range=5,8 --distractor_radius=3,5"
    )
    for pattern, value in {
        r"^(seeds|host_seeds_a|tiny_seeds_a): .*$": r"\1: 0",
        r"^benchmark: .*$": "benchmark: " + toy,
        r"^benchmark_digest: .*$": "benchmark_digest: " + preregistration.benchmark_digest(toy.split()),
        r"^schedule: .*$": "schedule: stpa=4, st_attn=4",
        r"^bootstrap_resamples: .*$": "bootstrap_resamples: 200",
    }.items():
        text = re.sub(pattern, value, text, flags=re.MULTILINE)
    path = tmp_path / "prereg.md"
    path.write_text(text)
    return preregistration.load(str(path))


@pytest.mark.slow
def test_toy_host_part_end_to_end(tmp_path):
    """host_rgb_a at toy size: both streams on the pretrained host, both fusions, the three ST-attn heads."""
    prereg = _toy_prereg(tmp_path)
    out = str(tmp_path / "protocol")
    lines = protocol.run_part(prereg, "host_rgb_a", out, jobs=2, progress=False)
    assert " 0 not done" in lines[0], lines
    main = runner.Layout(os.path.join(out, "main"))
    with open(os.path.join(main.run_dir("study_host_stpa_sum_zero_flow", 0), "config.json")) as f:
        build = json.load(f)["build"]
    assert (build["backbone"], build["fusion"], build["score_init"]) == ("tiny_deep", "sum", "zeros")
    assert os.path.normpath(os.path.join(REPO, build["weights"])) == HOST_WEIGHTS
    with open(main.eval_json("study_host_uniform_rgb", 0, 25)) as f:
        statistics = json.load(f)["attention_statistics"]
    assert statistics["entropy"] == pytest.approx(1.0) and statistics["test_frames"] == 25
    assert statistics["l1_mass"] == pytest.approx(20.0, rel=1e-4)  # sqrt(n), n = K*H*W = 25 * 4 * 4
    with open(os.path.join(main.fusion_dir("study_host_tsn_rgb", "study_host_tsn_flow", 0), "softmax.json")) as f:
        assert json.load(f)["fused"]["num_videos"] == 6
    protocol.write_protocol_report(prereg, out)
    summary = open(os.path.join(out, "summary.md")).read()
    assert summary.startswith("# The hosts protocol: results")
    assert "| pretrained_stpa_rgb |" in summary and "| tiny_st_attn_matched |" in summary
