"""Late fusion arithmetic, alignment, weight search and the `stpa.fuse` command line."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from data import files
from stpa.engine import fusion, score_files
from stpa.engine.score_files import ScoreSet


def _sets():
    # 4 videos, 3 classes. RGB gets videos 0, 1 right; flow gets 2, 3 right; their average gets all four.
    labels = np.array([0, 1, 2, 0])
    rgb = np.array([[3.0, 0, 0], [0, 3, 0], [1, 0, 0.9], [0, 1, 0.2]])
    flow = np.array([[0, 0.5, 0], [0, 0.2, 0.3], [0, 0, 3], [3, 0, 0]])
    ids = np.array(["a", "b", "c", "d"])
    return ScoreSet(rgb, labels, ids), ScoreSet(flow, labels, ids)


def test_weighted_average_arithmetic():
    rgb, flow = _sets()
    fused = fusion.fuse_scores([rgb, flow], [1, 1])
    np.testing.assert_allclose(fused.scores, (rgb.scores + flow.scores) / 2, rtol=1e-6)
    fused = fusion.fuse_scores([rgb, flow], [1, 3])
    np.testing.assert_allclose(fused.scores, (rgb.scores + 3 * flow.scores) / 4, rtol=1e-6)
    assert fusion.score_metric(rgb) == 0.5 and fusion.score_metric(flow) == 0.5
    assert fusion.score_metric(fusion.fuse_scores([rgb, flow])) == 1.0


def test_softmax_normalisation():
    rgb, flow = _sets()
    fused = fusion.fuse_scores([rgb, flow], normalize="softmax")

    def softmax(x):
        e = np.exp(x - x.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    np.testing.assert_allclose(fused.scores, (softmax(rgb.scores) + softmax(flow.scores)) / 2, rtol=1e-6)


def test_alignment_by_video_id():
    rgb, flow = _sets()
    shuffled = flow.subset(np.array([3, 1, 0, 2]))
    fused = fusion.fuse_scores([rgb, shuffled])
    np.testing.assert_allclose(fused.scores, (rgb.scores + flow.scores) / 2, rtol=1e-6)
    with pytest.raises(ValueError, match="missing"):
        fusion.fuse_scores([rgb, flow.subset(np.array([0, 1, 2]))])
    bad = ScoreSet(flow.scores, np.array([0, 1, 2, 1]), flow.video_ids)
    with pytest.raises(ValueError, match="labels"):
        fusion.fuse_scores([rgb, bad])
    with pytest.raises(ValueError, match="non-negative"):
        fusion.fuse_scores([rgb, flow], [1, -1])


def test_simplex_grid():
    grid = fusion.simplex_grid(3, 0.5)
    assert {tuple(row) for row in grid} == {
        (0, 0, 1),
        (0, 0.5, 0.5),
        (0, 1, 0),
        (0.5, 0, 0.5),
        (0.5, 0.5, 0),
        (1, 0, 0),
    }
    assert len(fusion.simplex_grid(2, 0.05)) == 21
    np.testing.assert_allclose(fusion.simplex_grid(4, 0.1).sum(1), 1.0)


def test_tune_weights_finds_the_better_stream_and_prefers_the_average_on_ties():
    rgb, flow = _sets()
    weights, value = fusion.tune_weights([rgb, flow], step=0.1)
    assert value == 1.0
    # Several weightings reach 1.0; the one closest to the plain average is chosen.
    np.testing.assert_allclose(weights, [0.5, 0.5])
    # A useless second stream: the search puts (almost) all weight on the first.
    noise = ScoreSet(np.zeros_like(rgb.scores) + np.array([0, 0, 5.0]), rgb.labels, rgb.video_ids)
    good = ScoreSet(np.eye(3)[rgb.labels] * 2, rgb.labels, rgb.video_ids)
    weights, value = fusion.tune_weights([good, noise], step=0.1)
    assert value == 1.0 and weights[0] > weights[1]


def test_score_file_round_trip(tmp_path):
    rgb, _ = _sets()
    rgb.class_names = np.array(["x", "y", "z"])
    path = score_files.save_scores(str(tmp_path / "s" / "rgb.npz"), rgb)
    back = score_files.load_scores(path)
    np.testing.assert_array_equal(back.scores, rgb.scores.astype(np.float32))
    np.testing.assert_array_equal(back.video_ids, rgb.video_ids)
    np.testing.assert_array_equal(back.class_names, ["x", "y", "z"])
    assert not back.multi_label
    with pytest.raises(FileNotFoundError, match="stpa.evaluate"):
        score_files.load_scores(str(tmp_path / "missing.npz"))


@pytest.mark.slow
def test_fuse_command_line(tmp_path):
    rgb, flow = _sets()
    a = score_files.save_scores(str(tmp_path / "rgb.npz"), rgb)
    b = score_files.save_scores(str(tmp_path / "flow.npz"), flow)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "stpa.fuse",
            f"--scores={a},{b}",
            "--weights=1,1",
            f"--output={tmp_path}/fused.npz",
            f"--metrics_output={tmp_path}/fused.json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "100.00%" in out.stdout
    assert f"wrote {tmp_path}/fused.npz" in out.stdout and f"wrote {tmp_path}/fused.json" in out.stdout
    result = json.loads((tmp_path / "fused.json").read_text())
    assert result["fused"]["top1"] == 1.0 and result["streams"][0]["top1"] == 0.5
    np.testing.assert_allclose(
        score_files.load_scores(str(tmp_path / "fused.npz")).scores, (rgb.scores + flow.scores) / 2, rtol=1e-6
    )
    # --tune_on searches on validation files; a wrong count of files fails with a clear message.
    out = subprocess.run(
        [sys.executable, "-m", "stpa.fuse", f"--scores={a},{b}", f"--tune_on={a}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode != 0 and "one file per --scores file" in out.stderr


def test_score_and_metrics_writers_fail_naming_the_path(tmp_path):
    rgb, flow = _sets()
    exact = score_files.save_scores(str(tmp_path / "scores.out"), rgb)  # np.savez alone would write scores.out.npz
    assert os.listdir(tmp_path) == ["scores.out"] and score_files.load_scores(exact).scores.shape == (4, 3)
    (tmp_path / "blocked").write_text("a file where a folder should be")
    with pytest.raises(files.WriteError, match=r"could not write .*blocked/rgb\.npz: a file stands"):
        score_files.save_scores(str(tmp_path / "blocked" / "rgb.npz"), rgb)
    a = score_files.save_scores(str(tmp_path / "rgb.npz"), rgb)
    b = score_files.save_scores(str(tmp_path / "flow.npz"), flow)
    with pytest.raises(files.WriteError, match=r"blocked/fused\.json"):
        fusion.run_fusion([a, b], metrics_output=str(tmp_path / "blocked" / "fused.json"))
    out = subprocess.run(
        [sys.executable, "-m", "stpa.fuse", f"--scores={a},{b}", f"--metrics_output={tmp_path}/blocked/fused.json"],
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=120,
    )
    assert out.returncode != 0 and "wrote" not in out.stdout
    assert f"could not write {tmp_path}/blocked/fused.json" in out.stderr and "Traceback" not in out.stderr
