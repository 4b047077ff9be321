"""SavedModel export of a trained model (library of `python -m stpa.export`).

Two signatures (both also callable as attributes of `tf.saved_model.load(path)`):

- `serve_frames(frames)`: frames float32 `(B, K, S, S, C)` with K free, pixel values in [0, 255] (RGB) or the
  quantised flow values 0..255 (flow stacks, x/y interleaved), i.e. what `data.pipeline` yields before
  preprocessing; the backbone's normalisation runs in-graph. Returns {"logits", "probabilities" (B, num_classes)}
  plus the attention: "attention" (B, d, K*H*W) for STPA, "mask" / "temporal_weights" for ST-attn.
- `serve_video(video)`: one whole decoded video, uint8 `(T, H, W, 3)` for RGB models (`(T, H, W, 2)` quantised
  flow x/y fields for flow models), any T, H, W. In-graph TSN test protocol (Sec. 3.4): K = `test_frames` segment
  centres (`data.sampling.centre_offsets_tf`; flow: stacks of flow_length from each), short side resized to
  S * 256 / 224 and the centre S x S crop (`data.augment.eval_crops`), normalisation, model. Returns
  {"logits", "probabilities" (num_classes,), "frame_indices" (K,)} (+ "attention" (d, K*H*W) for STPA).

`assets.extra/stpa_config.json` next to the SavedModel holds the run's config.json plus `test_frames`, so
`stpa.evaluate --saved_model` knows the modality, input size and classes.
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

EXPORT_CONFIG = os.path.join("assets.extra", "stpa_config.json")
ATTENTION_OUTPUTS = ("attention", "mask", "temporal_weights")


def read_export_config(export_dir: str) -> dict:
    """The config stored with an exported SavedModel."""
    path = os.path.join(export_dir, EXPORT_CONFIG)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: {export_dir!r} was not written by `python -m stpa.export`.")
    with open(path) as f:
        return json.load(f)


def _flow_stacks(video: tf.Tensor, offsets: tf.Tensor, flow_length: int) -> tf.Tensor:
    """(T, H, W, 2) flow fields -> (K, H, W, 2L) stacks starting at `offsets`, channels x0, y0, x1, y1, ..."""
    from data import sampling

    indices = sampling.stack_indices_tf(offsets, flow_length, tf.shape(video)[0])  # (K, L)
    stacks = tf.gather(video, indices)  # (K, L, H, W, 2)
    stacks = tf.transpose(stacks, [0, 2, 3, 1, 4])  # (K, H, W, L, 2)
    shape = tf.shape(stacks)
    return tf.reshape(stacks, [shape[0], shape[1], shape[2], 2 * flow_length])  # (K, H, W, 2L)


def sample_test_clip(video: tf.Tensor, *, test_frames: int, input_size: int, modality: str,
                     flow_length: int) -> tuple[tf.Tensor, tf.Tensor]:
    """The TSN test clip of one decoded video, exactly as `data.pipeline` builds it for crops = 1.

    Args:
      video: uint8 (T, H, W, 3) frames, or (T, H, W, 2) quantised flow fields for modality "flow".
      test_frames: K.
      input_size: S.
      modality: "rgb" or "flow".
      flow_length: frames per flow stack.

    Returns:
      (frames float32 (K, S, S, C) in [0, 255], offsets int32 (K,)).
    """
    from data import augment, sampling

    new_length = 1 if modality == "rgb" else flow_length
    offsets = sampling.centre_offsets_tf(tf.shape(video)[0], test_frames, new_length)  # (K,)
    if modality == "rgb":
        frames = tf.gather(video, offsets)  # (K, H, W, 3)
    else:
        frames = _flow_stacks(video, offsets, flow_length)  # (K, H, W, 2L)
    frames = augment.eval_crops(tf.cast(frames, tf.float32), input_size, 1, modality)[0]  # (K, S, S, C)
    channels = 3 if modality == "rgb" else 2 * flow_length
    return tf.ensure_shape(frames, [test_frames, input_size, input_size, channels]), offsets


def build_export_archive(model: keras.Model, config: dict, *, test_frames: int = 25) -> keras.export.ExportArchive:
    """The Keras ExportArchive with the `serve_frames` and `serve_video` endpoints.

    Args:
      model: the trained keras.Model (logits).
      config: the run's config.json dict (backbone, modality, flow_length, input_size, multi_label, build).
      test_frames: K of `serve_video`.

    Returns:
      The archive (call `.write_out(path)`).
    """
    from stpa import models

    if config.get("input") == "features":
        raise ValueError("this run was trained on cached backbone features (--features_dir): the model has no "
                         "backbone, so it cannot serve frames or videos. Train with --records_dir to export.")
    outputs_model = models.attention_outputs_model(model)
    preprocess = models.preprocess_for(config["backbone"], config["modality"])
    size, modality, flow_length = int(config["input_size"]), config["modality"], int(config["flow_length"])
    channels = 3 if modality == "rgb" else 2 * flow_length
    multi_label = bool(config.get("multi_label", False))

    def predict(frames: tf.Tensor) -> dict[str, tf.Tensor]:
        outputs = outputs_model(preprocess(frames), training=False)
        logits = tf.cast(outputs["logits"], tf.float32)
        result = {"logits": logits,
                  "probabilities": tf.sigmoid(logits) if multi_label else tf.nn.softmax(logits, axis=-1)}
        for name in ATTENTION_OUTPUTS:
            if name in outputs:
                result[name] = tf.cast(outputs[name], tf.float32)
        return result

    def serve_frames(frames):
        return predict(frames)

    def serve_video(video):
        frames, offsets = sample_test_clip(video, test_frames=test_frames, input_size=size, modality=modality,
                                           flow_length=flow_length)
        result = {name: value[0] for name, value in predict(frames[None]).items()}
        result["frame_indices"] = offsets
        return result

    archive = keras.export.ExportArchive()
    archive.track(outputs_model)
    archive.add_endpoint("serve_frames", serve_frames,
                         input_signature=[tf.TensorSpec([None, None, size, size, channels], tf.float32, name="frames")])
    video_channels = 3 if modality == "rgb" else 2
    archive.add_endpoint("serve_video", serve_video,
                         input_signature=[tf.TensorSpec([None, None, None, video_channels], tf.uint8, name="video")])
    return archive


def export_saved_model(model: keras.Model, config: dict, export_dir: str, *, test_frames: int = 25) -> str:
    """Writes the SavedModel and its config to `export_dir`. Returns `export_dir`."""
    archive = build_export_archive(model, config, test_frames=test_frames)
    archive.write_out(export_dir, verbose=False)
    os.makedirs(os.path.join(export_dir, "assets.extra"), exist_ok=True)
    with open(os.path.join(export_dir, EXPORT_CONFIG), "w") as f:
        json.dump({**config, "test_frames": test_frames}, f, indent=2, sort_keys=True)
    return export_dir


def export_run(model_dir: str, export_dir: str | None = None, *, which: str = "last", test_frames: int = 25) -> str:
    """Exports the best (or last) weights of a `stpa.train` run directory.

    Args:
      model_dir: the run directory.
      export_dir: where to write (default <model_dir>/saved_model).
      which: "best" or "last".
      test_frames: K of serve_video.

    Returns:
      The SavedModel directory.
    """
    from stpa import checkpoints

    config = checkpoints.load_run_config(model_dir)
    model = checkpoints.load_model(model_dir, which)
    export_dir = export_dir or os.path.join(model_dir, "saved_model")
    return export_saved_model(model, config, export_dir, test_frames=test_frames)
