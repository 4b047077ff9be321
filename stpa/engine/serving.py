"""SavedModel export of a trained model (library of `python -m stpa.export`).

Three signatures (all also callable as attributes of `tf.saved_model.load(path)`):

- `serve_frames(frames)`: frames float32 `(B, K, S, S, C)` with K free, pixel values in [0, 255] (RGB) or the
  quantised flow values 0..255 (flow stacks, x/y interleaved), i.e. what `data.pipeline` yields before
  preprocessing; the backbone's normalisation runs in-graph. Returns {"logits", "probabilities" (B, num_classes)}
  plus the attention: "attention" (B, d, K*H*W) for STPA, "mask" / "temporal_weights" for ST-attn.
- `serve_video(video)`: one whole decoded video, uint8 `(T, H, W, 3)` for RGB models (`(T, H, W, 2)` quantised
  flow x/y fields for flow models), any T, H, W. In-graph TSN test protocol (Sec. 3.4): K = `test_frames` segment
  centres (`data.sampling.centre_offsets_tf`; flow: stacks of flow_length from each), short side resized to
  S * 256 / 224 and the centre S x S crop (`data.augment.eval_crops`), normalisation, model. Returns
  {"logits", "probabilities" (num_classes,), "frame_indices" (K,)} (+ "attention" (d, K*H*W) for STPA).
- `serve_encoded_video(frames_bytes)` for RGB models, `serve_encoded_video(flow_x_bytes, flow_y_bytes)` for flow
  models: one whole video as JPEG bytes, a string tensor (T,) with one JPEG per frame (flow: the grayscale JPEGs of
  the quantised x and y fields, as `data.records` stores them), any T. The K test offsets are chosen first and only
  those frames are decoded in-graph (the IDCT of `data.pipeline`), then the clip is built exactly as in
  `serve_video`; same outputs. This is what a TF Serving client sends: a 280-frame 340x256 video is 8.1 MB of
  quality-95 JPEGs instead of 73 MB of uint8 (9x; flow 19x; `benchmarks/serving_payload.py`).

A video with 0 frames (or flow x / y of different lengths, or JPEG frames of different sizes) fails with an
InvalidArgumentError whose message names the signature and what to send.

`assets.extra/stpa_config.json` next to the SavedModel holds the run's config.json plus `test_frames`, so
`stpa.evaluate --saved_model` knows the modality, input size and classes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence

import keras
import tensorflow as tf

from data import files

EXPORT_CONFIG = os.path.join("assets.extra", "stpa_config.json")
# Input names of `serve_encoded_video` per modality (the `_bytes` suffix marks base64 binary inputs for REST
# front ends such as Vertex AI; TF Serving accepts {"b64": ...} for any string input).
ENCODED_INPUTS = {"rgb": ("frames_bytes",), "flow": ("flow_x_bytes", "flow_y_bytes")}


def read_export_config(export_dir: str) -> dict:
    """The config stored with an exported SavedModel."""
    path = os.path.join(export_dir, EXPORT_CONFIG)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: {export_dir!r} was not written by `python -m stpa.export`.")
    with open(path) as f:
        return json.load(f)


def _checked_count(count: tf.Tensor, message: str) -> tf.Tensor:
    """``count`` (scalar int32), after an in-graph assertion that it is positive with ``message``."""
    with tf.control_dependencies([tf.debugging.assert_positive(count, message=message)]):
        return tf.identity(count)


def _test_clip(
    num_frames: tf.Tensor,
    read_frames: Callable[[tf.Tensor], tf.Tensor],
    *,
    test_frames: int,
    input_size: int,
    modality: str,
    flow_length: int,
) -> tuple[tf.Tensor, tf.Tensor]:
    """The TSN test clip of a video whose frames come from ``read_frames``: the one clip path of every signature.

    Args:
      num_frames: scalar, the video's frames T (flow frames for flow), >= 1 (checked by the caller).
      read_frames: int32 indices (N,) -> uint8 (N, H, W, 3) RGB frames or (N, H, W, 2) quantised flow x/y fields;
        called once, with only the sampled indices (so an encoded video decodes just those frames).
      test_frames: K.
      input_size: S.
      modality: "rgb" or "flow".
      flow_length: L, frames per flow stack.

    Returns:
      (frames float32 (K, S, S, C) in [0, 255], offsets int32 (K,)); C = 3 or 2L (x0, y0, x1, y1, ...).
    """
    from data import augment, sampling

    new_length = 1 if modality == "rgb" else flow_length
    offsets = sampling.centre_offsets_tf(num_frames, test_frames, new_length)  # (K,)
    indices = tf.reshape(sampling.stack_indices_tf(offsets, new_length, num_frames), [-1])  # (K*L,)
    frames = read_frames(indices)  # (K*L, H, W, 3 or 2) uint8
    if modality == "flow":
        shape = tf.shape(frames)
        stacks = tf.reshape(frames, [test_frames, flow_length, shape[1], shape[2], 2])  # (K, L, H, W, 2)
        stacks = tf.transpose(stacks, [0, 2, 3, 1, 4])  # (K, H, W, L, 2)
        frames = tf.reshape(stacks, [test_frames, shape[1], shape[2], 2 * flow_length])  # (K, H, W, 2L)
    frames = augment.eval_crops(tf.cast(frames, tf.float32), input_size, 1, modality)[0]  # (K, S, S, C)
    channels = 3 if modality == "rgb" else 2 * flow_length
    return tf.ensure_shape(frames, [test_frames, input_size, input_size, channels]), offsets


def sample_test_clip(
    video: tf.Tensor, *, test_frames: int, input_size: int, modality: str, flow_length: int, caller: str = "serve_video"
) -> tuple[tf.Tensor, tf.Tensor]:
    """The TSN test clip of one decoded video, exactly as `data.pipeline` builds it for crops = 1.

    Args:
      video: uint8 (T, H, W, 3) frames, or (T, H, W, 2) quantised flow fields for modality "flow".
      test_frames: K.
      input_size: S.
      modality: "rgb" or "flow".
      flow_length: frames per flow stack.
      caller: the name the 0-frame error message starts with.

    Returns:
      (frames float32 (K, S, S, C) in [0, 255], offsets int32 (K,)).

    Raises:
      tf.errors.InvalidArgumentError: the video has 0 frames.
    """
    num_frames = _checked_count(tf.shape(video)[0], f"{caller}: the video has 0 frames; send at least 1 frame")
    return _test_clip(
        num_frames,
        lambda indices: tf.gather(video, indices),
        test_frames=test_frames,
        input_size=input_size,
        modality=modality,
        flow_length=flow_length,
    )


def decode_jpeg_frames(encoded: Sequence[tf.Tensor], channels: int, caller: str) -> tf.Tensor:
    """Decodes equally sized JPEG frames, as `data.pipeline` decodes the records (same IDCT), to one uint8 tensor.

    Args:
      encoded: one or more string tensors (N,) of JPEGs, with N static (e.g. [flow_x, flow_y]).
      channels: channels decoded per JPEG (3: RGB, 1: grayscale flow).
      caller: the name the error message starts with.

    Returns:
      uint8 (N, H, W, channels * len(encoded)), the decoded tensors concatenated along channels.

    Raises:
      tf.errors.InvalidArgumentError: the frames differ in height or width.
    """
    from data import pipeline

    count = int(encoded[0].shape[0])
    sizes = tf.concat(
        [
            tf.map_fn(
                lambda data: tf.image.extract_jpeg_shape(data)[:2], e, fn_output_signature=tf.TensorSpec([2], tf.int32)
            )
            for e in encoded
        ],
        axis=0,
    )  # (M, 2)
    same_size = tf.debugging.assert_equal(
        sizes,
        tf.broadcast_to(sizes[:1], tf.shape(sizes)),
        message=f"{caller}: the JPEG frames differ in size; send frames of one height and width",
    )
    with tf.control_dependencies([same_size]):
        # `data.pipeline.decode_jpegs`: the records' decoder (unrolled up to 64 JPEGs, else tf.map_fn), same IDCT.
        decoded = [pipeline.decode_jpegs(tf.identity(e), count, channels, None) for e in encoded]  # (N, H, W, channels)
    return tf.concat(decoded, axis=-1) if len(decoded) > 1 else decoded[0]


def sample_encoded_test_clip(
    encoded: Sequence[tf.Tensor],
    *,
    test_frames: int,
    input_size: int,
    modality: str,
    flow_length: int,
    caller: str = "serve_encoded_video",
) -> tuple[tf.Tensor, tf.Tensor]:
    """`sample_test_clip` of a JPEG-encoded video: samples the K test offsets, then decodes only those frames.

    Args:
      encoded: [frames (T,) RGB JPEG strings] for "rgb", [flow_x (T,), flow_y (T,)] grayscale JPEGs of the
        quantised flow for "flow" (as `data.records` stores them), any T.
      test_frames: K.
      input_size: S.
      modality: "rgb" or "flow".
      flow_length: frames per flow stack.
      caller: the name the error messages start with.

    Returns:
      (frames float32 (K, S, S, C) in [0, 255], offsets int32 (K,)).

    Raises:
      tf.errors.InvalidArgumentError: 0 frames, flow_x and flow_y of different lengths, or frames of different sizes.
    """
    names = ENCODED_INPUTS[modality]
    checks = []
    if len(encoded) == 2:
        checks.append(
            tf.debugging.assert_equal(
                tf.size(encoded[0]),
                tf.size(encoded[1]),
                message=f"{caller}: {names[0]} and {names[1]} have different numbers of frames; send one x and one y "
                "JPEG per flow frame",
            )
        )
    with tf.control_dependencies(checks):
        num_frames = _checked_count(
            tf.size(encoded[0]), f"{caller}: the video has 0 frames; send at least 1 JPEG in {names[0]}"
        )

    def read_frames(indices: tf.Tensor) -> tf.Tensor:
        selected = [tf.gather(e, indices) for e in encoded]  # each (K*L,) JPEG strings
        return decode_jpeg_frames(selected, 3 if modality == "rgb" else 1, caller)  # (K*L, H, W, 3 or 2)

    return _test_clip(
        num_frames,
        read_frames,
        test_frames=test_frames,
        input_size=input_size,
        modality=modality,
        flow_length=flow_length,
    )


def build_export_archive(model: keras.Model, config: dict, *, test_frames: int = 25) -> keras.export.ExportArchive:
    """The Keras ExportArchive with the `serve_frames`, `serve_video` and `serve_encoded_video` endpoints.

    Args:
      model: the trained keras.Model (logits).
      config: the run's config.json dict (backbone, modality, flow_length, input_size, multi_label, build).
      test_frames: K of `serve_video` and `serve_encoded_video`.

    Returns:
      The archive (call `.write_out(path)`).
    """
    from stpa.engine import family as family_lib
    from stpa.engine import inference

    family = family_lib.get_family(config["build"]["model"])
    error = family.export_error(config)
    if error:
        raise ValueError(error)
    outputs_model = family.outputs_model(model)
    preprocess = inference.run_preprocess(config)
    size, modality, flow_length = int(config["input_size"]), config["modality"], int(config["flow_length"])
    channels = 3 if modality == "rgb" else 2 * flow_length
    multi_label = bool(config.get("multi_label", False))

    def predict(frames: tf.Tensor) -> dict[str, tf.Tensor]:
        outputs = outputs_model(preprocess(frames), training=False)
        logits = tf.cast(outputs["logits"], tf.float32)
        result = {
            "logits": logits,
            "probabilities": tf.sigmoid(logits) if multi_label else tf.nn.softmax(logits, axis=-1),
        }
        for name in family.attention_outputs:
            if name in outputs:
                result[name] = tf.cast(outputs[name], tf.float32)
        return result

    def predict_video(frames: tf.Tensor, offsets: tf.Tensor) -> dict[str, tf.Tensor]:
        result = {name: value[0] for name, value in predict(frames[None]).items()}
        result["frame_indices"] = offsets
        return result

    protocol = {"test_frames": test_frames, "input_size": size, "modality": modality, "flow_length": flow_length}

    def serve_frames(frames):
        return predict(frames)

    def serve_video(video):
        return predict_video(*sample_test_clip(video, **protocol, caller="serve_video"))

    def serve_encoded_rgb(frames_bytes):
        return predict_video(*sample_encoded_test_clip([frames_bytes], **protocol, caller="serve_encoded_video"))

    def serve_encoded_flow(flow_x_bytes, flow_y_bytes):
        return predict_video(
            *sample_encoded_test_clip([flow_x_bytes, flow_y_bytes], **protocol, caller="serve_encoded_video")
        )

    archive = keras.export.ExportArchive()
    archive.track(outputs_model)
    archive.add_endpoint(
        "serve_frames",
        serve_frames,
        input_signature=[tf.TensorSpec([None, None, size, size, channels], tf.float32, name="frames")],
    )
    video_channels = 3 if modality == "rgb" else 2
    archive.add_endpoint(
        "serve_video",
        serve_video,
        input_signature=[tf.TensorSpec([None, None, None, video_channels], tf.uint8, name="video")],
    )
    archive.add_endpoint(
        "serve_encoded_video",
        serve_encoded_rgb if modality == "rgb" else serve_encoded_flow,
        input_signature=[tf.TensorSpec([None], tf.string, name=name) for name in ENCODED_INPUTS[modality]],
    )
    family.add_signatures(archive, outputs_model, config)  # What the family serves beyond the three above.
    return archive


def export_saved_model(model: keras.Model, config: dict, export_dir: str, *, test_frames: int = 25) -> str:
    """Writes the SavedModel and its config to `export_dir`. Returns `export_dir`."""
    archive = build_export_archive(model, config, test_frames=test_frames)
    archive.write_out(export_dir, verbose=False)
    files.write_json(os.path.join(export_dir, EXPORT_CONFIG), {**config, "test_frames": test_frames}, sort_keys=True)
    return export_dir


def export_run(model_dir: str, export_dir: str | None = None, *, which: str = "last", test_frames: int = 25) -> str:
    """Exports the best (or last) weights of a `stpa.train` run directory.

    Args:
      model_dir: the run directory.
      export_dir: where to write (default <model_dir>/saved_model).
      which: "best" or "last".
      test_frames: K of serve_video and serve_encoded_video.

    Returns:
      The SavedModel directory.
    """
    from stpa.engine import checkpoints

    config = checkpoints.load_run_config(model_dir)
    model = checkpoints.load_model(model_dir, which)
    export_dir = export_dir or os.path.join(model_dir, "saved_model")
    return export_saved_model(model, config, export_dir, test_frames=test_frames)
