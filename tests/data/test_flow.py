"""Optical flow: the dense_flow quantisation, and each OpenCV method on a known translation."""

import cv2
import numpy as np
import pytest

from data import flow, video_io


def test_quantize_known_values():
    values = np.array([-25.0, -20.0, -10.0, 0.0, 1.0, 19.9, 20.0, 300.0])
    # round(255 * (clip(v, -20, 20) + 20) / 40), by hand: 127.5 rounds to even 128; 133.875 -> 134; 254.36 -> 254.
    np.testing.assert_array_equal(flow.quantize_flow(values), [0, 0, 64, 128, 134, 254, 255, 255])
    assert flow.quantize_flow(values).dtype == np.uint8


def test_quantize_dequantize_round_trip_within_half_a_step():
    values = np.linspace(-20.0, 20.0, 1001)
    restored = flow.dequantize_flow(flow.quantize_flow(values))
    assert np.max(np.abs(restored - values)) <= 20.0 / 255.0 + 1e-5  # half a step (float32 output)
    # 255 - u is the negated flow, exactly: what the horizontal flip relies on.
    u = np.arange(256, dtype=np.uint8)
    np.testing.assert_allclose(flow.dequantize_flow(255 - u), -flow.dequantize_flow(u), atol=1e-5)


def test_quantize_survives_jpeg_storage():
    rng = np.random.default_rng(0)
    smooth = cv2.GaussianBlur(rng.normal(0, 4, (48, 64)).astype(np.float32), (0, 0), 3)
    quantized = flow.quantize_flow(smooth)
    decoded = video_io.decode_jpeg(video_io.encode_jpeg(quantized, 95), grayscale=True)
    assert np.abs(decoded.astype(int) - quantized.astype(int)).max() <= 3


def _translated_pair(dx: float, dy: float, size: int = 64):
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur((rng.random((size, size)) * 255).astype(np.float32), (0, 0), 2)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX)
    moved = cv2.warpAffine(texture, np.float32([[1, 0, dx], [0, 1, dy]]), (size, size), borderMode=cv2.BORDER_REFLECT)
    return texture.astype(np.uint8), moved.astype(np.uint8)


@pytest.mark.parametrize("method", ["tvl1", "dis", "farneback"])
def test_flow_methods_recover_a_translation(method):
    first, second = _translated_pair(2.0, -1.0)
    estimate = flow.make_flow_fn(method)(first, second)  # one small pair (TV-L1 is ~1 s per 340x256 pair)
    assert estimate.shape == (64, 64, 2) and estimate.dtype == np.float32
    interior = estimate[12:-12, 12:-12]
    np.testing.assert_allclose(np.median(interior.reshape(-1, 2), axis=0), [2.0, -1.0], atol=0.1)


def test_compute_flow_takes_rgb():
    first, second = _translated_pair(0.0, 1.5)
    rgb = [np.repeat(f[..., None], 3, axis=-1) for f in (first, second)]
    estimate = flow.compute_flow(rgb[0], rgb[1], "dis")
    np.testing.assert_allclose(np.median(estimate[12:-12, 12:-12].reshape(-1, 2), axis=0), [0.0, 1.5], atol=0.1)


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="tvl1, dis, farneback"):
        flow.make_flow_fn("raft")


def test_a_video_flow_does_not_depend_on_earlier_videos(tmp_path):
    # OpenCV's DIS object keeps state sized by the first pair it sees; extraction makes one per video.
    from data import extract
    from data.datasets.base import VideoTask

    def write_video(path, width, height, shift):
        ys, xs = np.mgrid[0:height, 0:width]
        pattern = (127 + 100 * np.sin(xs / 5.0) * np.cos(ys / 7.0)).astype(np.uint8)
        if shift == 0:  # noise
            pattern = np.random.default_rng(1).integers(0, 255, (height, width), dtype=np.uint8)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (width, height))
        for t in range(3):
            writer.write(cv2.cvtColor(np.roll(pattern, shift * t, axis=1), cv2.COLOR_GRAY2BGR))
        writer.release()
        return str(path)

    small = write_video(tmp_path / "small.avi", 32, 24, 0)
    large = write_video(tmp_path / "large.avi", 112, 48, 2)
    options = extract.ExtractOptions(flow="dis", frame_size=None)
    extract.extract(VideoTask("small", small, (0,)), options)  # another video of another size first
    result = extract.extract(VideoTask("large", large, (0,)), options)
    gray = [flow.to_gray(frame) for _, frame in video_io.iter_frames(large)]
    fresh = flow.quantize_flow(flow.make_flow_fn("dis")(gray[0], gray[1]))  # a DIS object that saw nothing else
    stored = np.stack([video_io.decode_jpeg(result.flow_x[0], grayscale=True),
                       video_io.decode_jpeg(result.flow_y[0], grayscale=True)], axis=-1)  # fmt: skip
    expected = np.stack([video_io.decode_jpeg(video_io.encode_jpeg(np.ascontiguousarray(fresh[..., c]),
                                                                   options.jpeg_quality), grayscale=True)
                         for c in range(2)], axis=-1)  # fmt: skip
    np.testing.assert_array_equal(stored, expected)
