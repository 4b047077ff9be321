"""One video outside the records, as `data.prepare` would store it and `data.pipeline` would sample it at test time.

A model must see, on a user's clip, the numbers it was trained on: the frames `data.prepare` decodes, resizes and
JPEG-codes and, for a flow model, the flow it computes between consecutive stored frames and quantises, with the
settings recorded in the records' manifest (frame size, JPEG quality, frame rate, flow method and bound).

- `recorded_options` reads those settings from a split's manifest (`data.preparation.finalize_split` writes them).
- `extract_video` runs `data.extract.extract`, the `data.prepare` worker itself, on a file (or rawframe folder);
  `encode_frames` runs the same steps (`data.video_io.resize_frame`, `encode_jpeg`, `data.flow`,
  `data.extract.encode_flow`) on decoded frames held in memory.
- `clip_frames` takes the K test samples at the TSN segment centres (`data.sampling.centre_offsets`; flow: stacks of
  flow_length frames, channels x0, y0, x1, y1, ...) and decodes them as the pipeline's offsets reader does (OpenCV;
  the same pixels as `tf.io.decode_jpeg` with the accurate IDCT), ready for `data.augment.eval_crops`.

No TensorFlow here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from data import extract as extract_lib
from data import flow as flow_lib
from data import sampling, video_io
from data.datasets.base import VIDEO_EXTENSIONS, VideoTask

MODALITIES = ("rgb", "flow")


def recorded_options(manifest: Mapping[str, Any]) -> extract_lib.ExtractOptions | None:
    """The extraction settings a split's manifest records, or None when it records none (hand-written records).

    Args:
      manifest: a split's manifest.json (`data.records.read_manifest`): its "extract_options" (every manifest
        `data.prepare` writes), else its "flow" / "frame_size" / "jpeg_quality" / "fps" entries.

    Returns:
      `data.extract.ExtractOptions` with the recorded values (the defaults for what is not recorded), or None.
    """
    recorded = dict(manifest.get("extract_options") or {})
    if not recorded and isinstance(manifest.get("flow"), Mapping):
        flow = manifest["flow"]
        recorded = {"flow": flow.get("method"), "flow_bound": flow.get("bound")}
        named = {"frame_size": "frame_size", "jpeg_quality": "jpeg_quality", "target_fps": "fps"}
        recorded.update({key: manifest[name] for key, name in named.items() if name in manifest})
    if not recorded:
        return None
    names = {field.name for field in dataclasses.fields(extract_lib.ExtractOptions)}
    nullable = ("frame_size", "target_fps")  # None: the source size / every frame
    values = {key: value for key, value in recorded.items() if key in names and (value is not None or key in nullable)}
    if isinstance(values.get("frame_size"), list):
        values["frame_size"] = tuple(values["frame_size"])
    return extract_lib.ExtractOptions(**values)


def list_videos(paths: list[str] | tuple[str, ...]) -> list[str]:
    """The video files named by `paths`: files as given, folders expanded to their video files (recursive, sorted).

    A path that does not exist is kept (reading it fails later with a line naming it).

    Raises:
      ValueError: a folder holds no video file (`data.datasets.base.VIDEO_EXTENSIONS`).
    """
    videos = []
    for path in paths:
        if not os.path.isdir(path):
            videos.append(path)
            continue
        found = sorted(
            os.path.join(directory, name)
            for directory, _, names in os.walk(path)
            for name in names
            if name.lower().endswith(VIDEO_EXTENSIONS)
        )
        if not found:
            raise ValueError(f"{path} holds no video file (looked for {', '.join(VIDEO_EXTENSIONS)}).")
        videos.extend(found)
    return videos


def extract_video(path: str, options: extract_lib.ExtractOptions) -> extract_lib.ExtractedVideo:
    """A video file (or rawframe folder) extracted by `data.extract.extract` exactly as `data.prepare` does.

    Args:
      path: the video.
      options: the run's extraction settings (`recorded_options`; flow "none" for an RGB model).

    Returns:
      The `ExtractedVideo`: JPEG frames, and the quantised flow's x / y JPEGs when `options.flow` is not "none".

    Raises:
      data.video_io.VideoReadError: naming `path` and the reason (missing, not a video, truncated, too short).
    """
    result = extract_lib.extract(VideoTask(video_id=path, source=path, labels=()), options)
    if isinstance(result, extract_lib.ExtractionFailure):
        raise video_io.VideoReadError(path, result.reason)
    return result


def encode_frames(
    frames: np.ndarray, options: extract_lib.ExtractOptions, *, name: str = "frames", fps: float = 0.0
) -> extract_lib.ExtractedVideo:
    """Decoded frames in memory, resized, JPEG-coded and their flow quantised with `data.extract`'s steps.

    The frames are taken as given (no frame-rate resampling: pass the frames at the rate the run was trained on).

    Args:
      frames: uint8 (T, H, W, 3) RGB.
      options: the run's extraction settings.
      name: the video's name in messages.
      fps: recorded as the video's frame rate.

    Returns:
      The `ExtractedVideo` `extract_video` would return for a file holding these frames.

    Raises:
      ValueError: not uint8 (T, H, W, 3) with T >= 1, or a single frame for flow.
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"{name}: frames must be uint8 (T, H, W, 3) RGB, T >= 1; got {frames.dtype} {frames.shape}.")
    flow_fn = flow_lib.make_flow_fn(options.flow) if options.flow != "none" else None
    if flow_fn is not None and len(frames) < 2:
        raise ValueError(f"{name}: only 1 frame: flow needs at least 2.")
    jpegs: list[bytes] = []
    flow_x: list[bytes] = []
    flow_y: list[bytes] = []
    previous_gray = None
    height = width = 0
    for frame in frames:
        frame = video_io.resize_frame(np.ascontiguousarray(frame), options.frame_size)  # (h, w, 3)
        height, width = frame.shape[:2]
        jpegs.append(video_io.encode_jpeg(frame, options.jpeg_quality))
        if flow_fn is not None:
            gray = flow_lib.to_gray(frame)
            if previous_gray is not None:
                x, y = extract_lib.encode_flow(flow_fn(previous_gray, gray), options)
                flow_x.append(x)
                flow_y.append(y)
            previous_gray = gray
    return extract_lib.ExtractedVideo(
        task=VideoTask(video_id=name, source=name, labels=()),
        fps=float(fps),
        height=height,
        width=width,
        frames=jpegs,
        flow_x=flow_x,
        flow_y=flow_y,
        boxes=None,
    )


def clip_frames(
    video: extract_lib.ExtractedVideo, *, modality: str, num_frames: int, flow_length: int
) -> tuple[np.ndarray, np.ndarray]:
    """The K test samples of a video, decoded, as `data.pipeline` builds them before cropping.

    Args:
      video: `extract_video`'s or `encode_frames`' result (with flow for modality "flow").
      modality: "rgb" or "flow".
      num_frames: K.
      flow_length: L, flow frames per stack.

    Returns:
      (uint8 (K, H, W, C), int64 (K,) sampled frame (flow: stack start) indices); C = 3, or 2L for flow with
      channels x0, y0, x1, y1, ... (TSN's stack order).

    Raises:
      ValueError: an unknown modality, or a video without frames of that modality.
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}.")
    new_length = 1 if modality == "rgb" else flow_length
    available = len(video.frames if modality == "rgb" else video.flow_x)
    if available == 0:
        raise ValueError(f"{video.task.source}: no {modality} frames were extracted.")
    offsets = sampling.centre_offsets(available, num_frames, new_length)  # (K,)
    indices = sampling.stack_indices(offsets, new_length, available).reshape(-1)  # (K*L,)
    if modality == "rgb":
        return np.stack([video_io.decode_jpeg(video.frames[i]) for i in indices]), offsets  # (K, H, W, 3)
    x = np.stack([video_io.decode_jpeg(video.flow_x[i], grayscale=True) for i in indices])  # (K*L, H, W)
    y = np.stack([video_io.decode_jpeg(video.flow_y[i], grayscale=True) for i in indices])
    height, width = x.shape[1:3]
    stacks = np.stack([x, y], axis=-1).reshape(num_frames, flow_length, height, width, 2)  # (K, L, H, W, 2)
    stacks = stacks.transpose(0, 2, 3, 1, 4).reshape(num_frames, height, width, 2 * flow_length)  # (K, H, W, 2L)
    return np.ascontiguousarray(stacks), offsets
