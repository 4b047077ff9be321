"""data.prepare: synthetic raw videos -> records -> pipeline; partitions; resume after a kill; bad inputs; rawframes."""

import glob
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from data import extract, frame_offsets, pipeline, preparation, records, video_io
from data.datasets.base import VideoTask
from tests.helpers import flow_reference
from tests.helpers.tiny_dataset import prepare_tiny

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _shard_bytes(out_dir):
    """{relative path: bytes} of every shard and its .offsets index under ``out_dir``."""
    found = {}
    paths = glob.glob(os.path.join(out_dir, "*", "*.tfrecord")) + glob.glob(os.path.join(out_dir, "*", "*.offsets"))
    for path in sorted(paths):
        with open(path, "rb") as f:
            found[os.path.relpath(path, out_dir)] = f.read()
    return found


def _run(*args, timeout=240):
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout
    )


def test_prepared_synthetic_records(synthetic_raw, synthetic_records, tmp_path):
    split_dir = os.path.join(synthetic_records, "train")
    manifest = records.read_manifest(split_dir)
    assert manifest["counts"]["videos"] == 6 and manifest["counts"]["failed"] == 0
    assert manifest["counts"]["frames"] == 6 * 14 and manifest["counts"]["flow_frames"] == 6 * 13
    assert manifest["counts"]["per_class"] == {"MoveRight": 2, "MoveLeft": 2, "MoveUp": 2}
    assert manifest["num_shards"] == 3 and manifest["has_flow"] and manifest["has_boxes"] and manifest["has_segments"]
    assert manifest["flow"]["method"] == "dis" and manifest["format_version"] == records.FORMAT_VERSION

    # Ground truth carried into the records: UCF101-24-style boxes (normalised, 0-based frames), THUMOS-style segments.
    with open(os.path.join(synthetic_raw, "UCF101v2-GT.pkl"), "rb") as f:
        gt = pickle.load(f)
    annotations = records.read_annotations(split_dir)
    video = "MoveLeft/v_MoveLeft_g02_c01"
    tube = gt["gttubes"][video][1][0]
    entry = annotations[video]
    assert sorted(entry["boxes"]) == (tube[:, 0] - 1).astype(int).tolist()
    np.testing.assert_allclose(entry["boxes"][int(tube[0, 0]) - 1], tube[:1, 1:] / 48.0, atol=1e-6)
    np.testing.assert_allclose(entry["segments"], [[(tube[0, 0] - 1) / 25.0, tube[-1, 0] / 25.0]], atol=1e-3)
    assert entry["segment_labels"].tolist() == [1] and entry["labels"] == [1]

    # Frames: the video's decoded frames re-encoded as JPEG; flow: DIS on them, quantised.
    source, _ = video_io.read_video(os.path.join(synthetic_raw, "UCF-101", video + ".avi"))
    all_stored = (records.example_to_dict(e, with_frames=True) for e in records.iterate_sequence_examples(split_dir))
    stored = next(e for e in all_stored if e["video_id"] == video)
    decoded = np.stack([video_io.decode_jpeg(f) for f in stored["frames"]])
    assert np.abs(decoded.astype(int) - source).mean() < 3
    expected_flow = flow_reference.quantized(flow_reference.dis_flow(source[4], source[5]))  # OpenCV, not data.flow
    stored_x = video_io.decode_jpeg(stored["flow_x"][4], grayscale=True)
    assert np.abs(stored_x.astype(int) - expected_flow[..., 0]).mean() < 2

    # ... with a current .offsets index beside every shard (no temporary files left), and the pipeline reads them.
    shards = records.record_files(split_dir)
    assert all(frame_offsets.is_current(shard) for shard in shards)
    for shard in shards:  # built while writing == built by reading the finished shard back
        rebuilt = str(tmp_path / "rebuilt.offsets")
        frame_offsets.write_offsets(shard, rebuilt)
        with open(frame_offsets.offsets_path(shard), "rb") as written, open(rebuilt, "rb") as read_back:
            assert written.read() == read_back.read()
    assert not glob.glob(os.path.join(split_dir, "*.tmp-*"))
    assert pipeline.choose_reader(shards, "auto") == "offsets"
    frames, labels = next(iter(pipeline.build_dataset(split_dir, training=True, num_frames=3, batch_size=2,
                                                      modality="flow", input_size=32, seed=0)))  # fmt: skip
    assert frames.shape == (2, 3, 32, 32, 10) and set(labels.numpy()) <= {0, 1, 2}


def test_two_partitions_match_a_single_run(synthetic_raw, synthetic_records, tmp_path):
    out = str(tmp_path / "partitioned")
    first = prepare_tiny(synthetic_raw, out, task_index=0, num_tasks=2)
    assert (first["train"].shards_written, first["train"].manifest_written) == (2, False)  # shards 0, 2 of 3
    assert not os.path.exists(os.path.join(out, "train", "manifest.json"))
    second = prepare_tiny(synthetic_raw, out, task_index=1, num_tasks=2)
    assert (second["train"].shards_written, second["train"].manifest_written) == (1, True)
    assert _shard_bytes(out) == _shard_bytes(synthetic_records)
    for split in ("train", "test"):
        assert records.read_manifest(os.path.join(out, split)) == records.read_manifest(
            os.path.join(synthetic_records, split)
        )


def test_rerun_skips_complete_shards_and_refuses_other_settings(synthetic_raw, synthetic_records, tmp_path):
    out = str(tmp_path / "records")
    shutil.copytree(synthetic_records, out)  # the session fixture stays untouched
    before = _shard_bytes(out)
    summaries = prepare_tiny(synthetic_raw, out)
    assert (summaries["train"].shards_written, summaries["train"].shards_skipped) == (0, 3)
    assert _shard_bytes(out) == before == _shard_bytes(synthetic_records)
    with pytest.raises(ValueError, match="other settings"):
        prepare_tiny(synthetic_raw, out, flow="farneback")
    assert _shard_bytes(out) == before


def test_extract_resamples_fps_resizes_and_remaps_boxes(synthetic_raw):
    path = os.path.join(synthetic_raw, "UCF-101", "MoveUp", "v_MoveUp_g01_c01.avi")
    boxes = {3: (np.array([[0.1, 0.2, 0.3, 0.4]], np.float32), np.array([2])), 4: (np.zeros((1, 4), np.float32), [2])}
    task = VideoTask(video_id="v", source=path, labels=(2,), boxes=boxes)
    result = extract.extract(task, extract.ExtractOptions(flow="farneback", frame_size=24, target_fps=10.0))
    assert isinstance(result, extract.ExtractedVideo)
    # 25 -> 10 fps keeps source frames 0, 3, 5, 8, 10, 13 (floor(i * 0.4) increases).
    assert len(result.frames) == 6 and len(result.flow_x) == 5 and result.fps == 10.0
    assert (result.height, result.width) == (24, 24) and video_io.decode_jpeg(result.frames[0]).shape == (24, 24, 3)
    assert sorted(result.boxes) == [1]  # source frame 3 is output frame 1; source frame 4 was dropped
    source, _ = video_io.read_video(path)
    stored = video_io.decode_jpeg(result.frames[1]).astype(int)
    errors = [np.abs(stored - cv2.resize(frame, (24, 24), interpolation=cv2.INTER_LINEAR)).mean() for frame in source]
    assert np.argmin(errors) == 3 and errors[3] < 4  # output frame 1 is source frame 3, resized


def _write_rawframes(directory, num_frames, *, rgb="img_{:05d}.jpg", fx="flow_x_{:05d}.jpg", fy="flow_y_{:05d}.jpg",
                     with_flow=True, seed=0):  # fmt: skip
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    for i in range(1, num_frames + 1):
        cv2.imwrite(os.path.join(directory, rgb.format(i)), rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))
        if with_flow and i < num_frames:
            cv2.imwrite(os.path.join(directory, fx.format(i)), np.full((24, 32), 100 + i, np.uint8))
            cv2.imwrite(os.path.join(directory, fy.format(i)), np.full((24, 32), 150 - i, np.uint8))


def test_rawframes_import_is_lossless(tmp_path):
    root = str(tmp_path / "frames")
    _write_rawframes(f"{root}/jump/a", 6)
    _write_rawframes(f"{root}/run/b", 5, with_flow=False, seed=1)  # flow computed from the frames
    _write_rawframes(f"{root}/run/c", 6, seed=2)
    os.remove(f"{root}/run/c/flow_x_00003.jpg")  # a missing flow frame: reported, skipped
    with open(f"{root}/train.txt", "w") as f:
        f.write("jump/a 6 0\nrun/b 5 1\nrun/c 6 1\n")
    parsed = preparation.load_dataset("rawframes", root, train_list="train.txt")
    summary = preparation.prepare_split(
        parsed.splits["train"], split="train", out_dir=str(tmp_path / "out"), dataset_name="rawframes",
        class_names=parsed.class_names, multi_label=False, options=extract.ExtractOptions(flow="dis"),
        raw_dir=root, progress=False,
    )  # fmt: skip
    assert summary.videos_written == 2
    assert summary.failures == [(f"{root}/run/c", "flow_x_00003.jpg is missing (later frames exist)")]
    examples = records.iterate_sequence_examples(str(tmp_path / "out" / "train"))
    stored = {e["video_id"]: e for e in (records.example_to_dict(x, with_frames=True) for x in examples)}
    for i, data in enumerate(stored["jump/a"]["frames"]):
        with open(f"{root}/jump/a/img_{i + 1:05d}.jpg", "rb") as f:
            assert f.read() == data  # byte for byte
    with open(f"{root}/jump/a/flow_y_00002.jpg", "rb") as f:
        assert stored["jump/a"]["flow_y"][1] == f.read()
    assert len(stored["run/b"]["flow_x"]) == 4 and stored["run/b"]["fps"] == 25.0
    with open(str(tmp_path / "out" / "train" / "failures.txt")) as f:
        assert "flow_x_00003.jpg is missing" in f.read()

    # mmaction2 1.x names, with the templates set.
    _write_rawframes(f"{root}/mm/d", 4, rgb="img_{:05d}.jpg", fx="x_{:05d}.jpg", fy="y_{:05d}.jpg")
    options = extract.ExtractOptions(flow="none", flow_x_template="x_{:05d}.jpg", flow_y_template="y_{:05d}.jpg")
    result = extract.extract(VideoTask("mm/d", f"{root}/mm/d", (0,), num_frames_hint=4), options)
    assert len(result.frames) == 4 and len(result.flow_x) == 3


@pytest.mark.slow
def test_bad_videos_are_skipped_and_reported(synthetic_raw, tmp_path):
    raw = str(tmp_path / "raw")
    shutil.copytree(os.path.join(synthetic_raw, "ucfTrainTestlist"), os.path.join(raw, "ucfTrainTestlist"))
    good = os.path.join(synthetic_raw, "UCF-101", "MoveRight", "v_MoveRight_g02_c01.avi")
    videos = os.path.join(raw, "UCF-101", "MoveRight")
    os.makedirs(videos)
    with open(good, "rb") as f:
        data = f.read()
    noise = bytes(np.random.default_rng(0).integers(0, 255, len(data) - 2000, dtype=np.uint8))
    names = {"g02": data, "g03": data[: len(data) // 2], "g04": b"", "g05": b"not a video\n" * 50,
             "g06": data[:2000] + noise}  # fmt: skip
    for group, content in names.items():
        with open(os.path.join(videos, f"v_MoveRight_{group}_c01.avi"), "wb") as f:
            f.write(content)
    with open(os.path.join(raw, "ucfTrainTestlist", "trainlist01.txt"), "w") as f:
        f.write("".join(f"MoveRight/v_MoveRight_{g}_c01.avi 1\n" for g in [*names, "g07"]))  # g07 does not exist
    with open(os.path.join(raw, "ucfTrainTestlist", "testlist01.txt"), "w") as f:
        f.write("MoveRight/v_MoveRight_g02_c01.avi\n")
    out = str(tmp_path / "out")
    result = _run("data.prepare", "--dataset=ucf101", f"--raw_dir={raw}", f"--out_dir={out}", "--flow=dis",
                  "--frame_size=none", "--workers=2", "--videos_per_shard=2", "--noprogress")  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    assert "train: 1 videos" in result.stdout and "5 failed" in result.stdout
    with open(os.path.join(out, "train", "failures.txt")) as f:
        failures = dict(line.rstrip("\n").split("\t") for line in f)
    reasons = {os.path.basename(k).split("_")[2]: v for k, v in failures.items()}
    assert sorted(reasons) == ["g03", "g04", "g05", "g06", "g07"]
    assert reasons["g03"].startswith("truncated: decoded")
    assert reasons["g04"] == "empty file (0 bytes)"
    assert "cannot open" in reasons["g05"]
    assert "cannot open" in reasons["g06"] or "no decodable frame" in reasons["g06"]
    assert reasons["g07"] == "file not found"
    manifest = records.read_manifest(os.path.join(out, "train"))
    assert (manifest["counts"]["videos"], manifest["counts"]["failed"]) == (1, 5)
    # Failures are remembered: a re-run skips the complete shards and still reports them.
    again = _run("data.prepare", "--dataset=ucf101", f"--raw_dir={raw}", f"--out_dir={out}", "--flow=dis",
                 "--frame_size=none", "--workers=2", "--videos_per_shard=2", "--noprogress")  # fmt: skip
    assert again.returncode == 1 and "0 new shard(s), 3 already complete" in again.stdout


@pytest.mark.slow
def test_resume_after_kill_gives_identical_records(synthetic_raw, tmp_path):
    # Farneback on frames upscaled to 160x160, one video per shard: about a second of work after the first shard.
    args = ["data.prepare", "--dataset=ucf101", f"--raw_dir={synthetic_raw}", "--flow=farneback",
            "--frame_size=160x160", "--workers=0", "--videos_per_shard=1", "--noprogress"]  # fmt: skip
    killed = str(tmp_path / "killed")
    process = subprocess.Popen([sys.executable, "-m", *args, f"--out_dir={killed}"], cwd=REPO, env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 180
    while not glob.glob(os.path.join(killed, "train", "*.tfrecord")) and time.time() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = glob.glob(os.path.join(killed, "*", "*.tfrecord"))
    assert 1 <= len(done) < 9, "the run was not interrupted mid-way"
    assert not os.path.exists(os.path.join(killed, "train", "manifest.json"))

    resumed = _run(*args, f"--out_dir={killed}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"{len([d for d in done if '/train/' in d])} already complete" in resumed.stdout
    assert not glob.glob(os.path.join(killed, "*", "*.tmp-*"))

    # The uninterrupted run, in this process with the same settings.
    reference = str(tmp_path / "reference")
    dataset = preparation.load_dataset("ucf101", synthetic_raw)
    for split, tasks in dataset.splits.items():
        preparation.prepare_split(
            tasks, split=split, out_dir=reference, dataset_name="ucf101", class_names=dataset.class_names,
            multi_label=False, options=extract.ExtractOptions(flow="farneback", frame_size=(160, 160)),
            raw_dir=synthetic_raw, workers=0, videos_per_shard=1, progress=False,
        )  # fmt: skip
    assert len(_shard_bytes(reference)) == 2 * 9 and _shard_bytes(killed) == _shard_bytes(reference)
    for split in ("train", "test"):
        resumed = records.read_manifest(os.path.join(killed, split))
        expected = records.read_manifest(os.path.join(reference, split))
        assert (resumed["counts"], resumed["fingerprint"]) == (expected["counts"], expected["fingerprint"])


def test_prepare_refuses_duplicate_video_ids_before_any_work(tmp_path):
    raw = tmp_path / "raw"
    (raw / "clips").mkdir(parents=True)
    for name in ("test.avi", "test.mp4"):
        (raw / "clips" / name).write_bytes(b"")
    (raw / "list.txt").write_text("clips/test.avi 0\nclips/test.mp4 0\n")
    out = tmp_path / "out"
    result = _run("data.prepare", "--dataset=videos", f"--raw_dir={raw}", f"--out_dir={out}", "--test_list=list.txt",
                  "--flow=none", "--noprogress")  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "data.prepare: test: clips/test.avi and clips/test.mp4 both get video id 'clips/test'" in result.stderr
    assert not out.exists()
