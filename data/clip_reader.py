"""Reads a clip's sampled JPEGs straight from a shard by byte offset, and decodes and augments them with OpenCV.

The fast path of `data.pipeline` (``reader="offsets"``): given a shard, the (offset, length) spans of the sampled
frames (from its ``.offsets`` index, `data.frame_offsets`) and the clip's random draws, one call does

  positioned reads of only those JPEGs -> ``cv2.imdecode`` -> TSN multi-scale crop -> bilinear resize -> flip

and returns the clip (float32, or uint8 for models that normalise on the accelerator). Why Python and OpenCV: no
TensorFlow op reads a byte range of a file, and ``tf.image.resize`` is about 5x slower than OpenCV's resize on the
CPUs measured (benchmarks/pipeline.py). OpenCV's libjpeg-turbo decodes the same pixels as ``tf.io.decode_jpeg`` with
the accurate integer IDCT, and its bilinear resize uses half-pixel centres as ``tf.image.resize`` does (both
tested); the crop window is `data.augment.multiscale_crop_window`, the NumPy twin of the one the records reader
draws. The work runs in `tf.numpy_function` (OpenCV releases the GIL while decoding and resizing), so this path is
not serialisable into a graph: the tf.data service or remote TPU input workers need ``reader="records"``. Training
clips go through Python once per batch (`training_batch_tf`, which also draws the segment frames with
`data.sampling`'s NumPy twins): a `tf.numpy_function` call costs about as much as decoding a JPEG.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
from collections.abc import Iterator, Sequence

import cv2
import numpy as np
import tensorflow as tf

from data import augment, sampling

_STALE_HINT = (
    "the shard's .offsets index does not match it (stale) or the shard is corrupt: rebuild the index with "
    "`python -m data.frame_offsets --records=<split dir>` and check the split with `python -m data.check`."
)


# TensorFlow adopts a `tf.numpy_function` result without copying only if its data are aligned to this many bytes;
# NumPy's allocator aligns to 16.
TENSOR_ALIGNMENT = 64


def aligned_empty(shape: Sequence[int], dtype: type) -> np.ndarray:
    """An uninitialised C-contiguous array whose data start on a `TENSOR_ALIGNMENT`-byte boundary."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(size + TENSOR_ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % TENSOR_ALIGNMENT
    return raw[start : start + size].view(dtype).reshape(shape)


class _InputCalls:
    """Counts `tf.numpy_function` calls in flight, so that interpreter exit can wait for them.

    tf.data keeps prefetching on its own threads until the iterator is destroyed; a call still inside OpenCV when the
    process tears OpenCV down at exit aborts it ("terminate called without an active exception"). At exit, new calls
    fail at once and running ones are given a moment to finish.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._running = 0
        self._exiting = False

    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        with self._lock:
            if self._exiting:
                raise RuntimeError("the interpreter is exiting: no more clips are read")
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1

    def drain(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._exiting = True
        deadline = time.monotonic() + timeout
        while self._running and time.monotonic() < deadline:
            time.sleep(0.005)


_CALLS = _InputCalls()
atexit.register(_CALLS.drain)


def read_spans(path: str, spans: np.ndarray) -> list[bytes]:
    """Reads byte ranges of a file with positioned reads.

    Args:
      path: a local file, or any `tf.io.gfile` URL (``gs://...``).
      spans: int (N, 2) of (offset, length).

    Returns:
      N byte strings.
    """
    if "://" in path:
        out = []
        with tf.io.gfile.GFile(path, "rb") as f:
            for offset, length in spans:
                f.seek(int(offset))
                out.append(f.read(int(length)))
        return out
    descriptor = os.open(path, os.O_RDONLY)
    try:
        return [os.pread(descriptor, int(length), int(offset)) for offset, length in spans]
    finally:
        os.close(descriptor)


def decode_jpegs(path: str, spans: np.ndarray, depth: int) -> list[np.ndarray]:
    """Reads and decodes the JPEGs at ``spans`` of ``path``: uint8 (H, W, 3) RGB or (H, W) grayscale each.

    Raises:
      ValueError: bytes that are not a JPEG, naming the shard, the offset and what to do.
    """
    # TensorFlow does not apply EXIF orientation either: imported rawframes decode as stored.
    flag = (cv2.IMREAD_COLOR_RGB if depth == 3 else cv2.IMREAD_GRAYSCALE) | cv2.IMREAD_IGNORE_ORIENTATION
    images = []
    for (offset, length), data in zip(spans, read_spans(path, spans)):
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flag) if len(data) == length else None
        if image is None:
            raise ValueError(f"{path}: {length} bytes at offset {offset} are not a JPEG; {_STALE_HINT}")
        images.append(image)
    return images


def _as_str(path: bytes | str | np.ndarray) -> str:
    if isinstance(path, np.ndarray):  # a 0-d array when `tf.numpy_function` runs eagerly
        path = path.item()
    return path.decode("utf-8") if isinstance(path, bytes) else str(path)


def _segment_windows(
    images: list[list[np.ndarray]], num_segments: int, window: tuple[int, int, int, int]
) -> list[list[np.ndarray]]:
    """The crop window of each segment's frames, in channel order.

    Args:
      images: per key (1 for RGB, 2 for flow x / y), the K * L decoded frames (H, W, 3) or (H, W).
      num_segments: K.
      window: (y, x, h, w).

    Returns:
      K lists of uint8 views: RGB [(h, w, 3)]; flow [x0, y0, x1, y1, ...] (h, w) each (TSN's stack order).
    """
    y, x, height, width = window
    frames_per_segment = len(images[0]) // num_segments
    return [
        [
            key_images[k * frames_per_segment + step][y : y + height, x : x + width]
            for step in range(frames_per_segment)
            for key_images in images
        ]
        for k in range(num_segments)
    ]


def _resized(image: np.ndarray, size: int, dtype: np.dtype, flip: bool) -> np.ndarray:
    """A uint8 crop, mirrored if ``flip``, converted to ``dtype`` and bilinearly resized to (size, size[, 3]).

    Mirroring before resizing equals mirroring after (half-pixel-centre bilinear is symmetric); the small uint8 crop
    is the cheaper one to mirror. Planes are resized one by one: OpenCV's fast paths take 1 to 4 channels.
    """
    if flip:
        image = cv2.flip(image, 1)
    image = image.astype(dtype, copy=False)
    if image.shape[:2] == (size, size):
        return image
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)


def training_clip(
    path: bytes | str,
    spans: np.ndarray,
    uniforms: np.ndarray,
    flip: bool,
    *,
    input_size: int,
    modality: str,
    num_segments: int,
    scales: Sequence[float],
    max_distort: int,
    more_fix_crop: bool,
    out: np.ndarray | None = None,
    dtype: type = np.float32,
) -> np.ndarray:
    """One training clip: read + decode the sampled JPEGs, one TSN multi-scale crop for all, resize, flip.

    Args:
      path: the shard.
      spans: int64 (keys, K * L, 2) (offset, length) of the sampled frames: keys = 1 (RGB) or 2 (flow x, y), in
        sampling order (segment k's L frames at k * L ...).
      uniforms: float (2,) in [0, 1): crop size and crop position draws (`augment.multiscale_crop_window`).
      flip: mirror the clip (flow: also ``u -> 255 - u`` on the x channels).
      input_size: S.
      modality: "rgb" or "flow".
      num_segments: K.
      scales, max_distort, more_fix_crop: TSN multi-scale crop settings.
      out: (K, S, S, C) float32 or uint8 to write into (e.g. a slice of a batch); a new array if None.
      dtype: of the new array when ``out`` is None: float32 (bilinear values) or uint8 (OpenCV's fixed-point
        bilinear resize, within 1 of the rounded float32 values - as TSN / mmaction2 resize).

    Returns:
      (K, S, S, C) in [0, 255] (``out``); C = 3 or 2L.
    """
    path = _as_str(path)
    depth = 3 if modality == "rgb" else 1
    images = [decode_jpegs(path, key_spans, depth) for key_spans in spans]
    height, width = images[0][0].shape[:2]
    window = augment.multiscale_crop_window(height, width, input_size, uniforms, scales, max_distort, more_fix_crop)
    channels = 3 if depth == 3 else 2 * (len(spans[0]) // num_segments)
    if out is None:
        out = np.empty((num_segments, input_size, input_size, channels), dtype)
    for k, planes in enumerate(_segment_windows(images, num_segments, window)):
        resized = [_resized(plane, input_size, out.dtype, flip) for plane in planes]  # (S, S[, 3]) each
        if len(resized) == 1:
            out[k] = resized[0]
        else:
            np.stack(resized, axis=-1, out=out[k])  # (S, S, 2L)
    if flip and modality == "flow":
        np.subtract(out.dtype.type(255), out[..., 0::2], out=out[..., 0::2])  # the x component changes sign
    return out


def full_frames(path: bytes | str, spans: np.ndarray, depth: int) -> np.ndarray:
    """Reads and decodes whole frames: spans int64 (N, 2) -> uint8 (N, H, W, depth).

    Raises:
      ValueError: frames of different sizes, or bytes that are not a JPEG.
    """
    path = _as_str(path)
    images = decode_jpegs(path, spans, depth)
    if len({image.shape for image in images}) > 1:
        raise ValueError(f"{path}: the sampled frames of a video differ in size: {sorted({i.shape for i in images})}")
    frames = aligned_empty((len(images), *images[0].shape[:2], depth), np.uint8)  # no copy into TF
    for frame, image in zip(frames, images):
        frame[...] = image.reshape(frame.shape)
    return frames


def training_batch(
    paths: np.ndarray,
    video_ids: np.ndarray,
    uniforms: np.ndarray,
    spans: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    input_size: int,
    modality: str,
    num_segments: int,
    flow_length: int,
    scales: Sequence[float],
    max_distort: int,
    more_fix_crop: bool,
    dtype: type = np.float32,
    flips: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A batch of training clips: TSN segment sampling (`data.sampling`), then `training_clip` for each.

    Args:
      paths: (B,) shard of each video.
      video_ids: (B,) video ids (for error messages).
      uniforms: float64 (B, K + 3): per clip, K segment draws, crop size and position draws, flip draw (< 0.5 flips)
        - the draws the records reader makes, so both readers give the same clips.
      spans: per frame key (RGB: image; flow: x, y), (row_splits int64 (B + 1,), spans int64 (N, 2)): the (offset,
        length) of every frame of the batch's videos, video i's at ``row_splits[i]:row_splits[i + 1]``.
      input_size, modality, num_segments, scales, max_distort, more_fix_crop: see `training_clip`.
      flow_length: L, flow frames per stack (flow only).
      dtype: of the clips, float32 or uint8 (see `training_clip`).
      flips: bool (B,): which clips are mirrored (the flip draws after the flip label map, `data.augment`); None:
        the draws themselves (``uniforms[:, K + 2] < 0.5``, the identity map).

    Returns:
      ((B, K, S, S, C) clips of ``dtype``, int32 (B, K) sampled starts).

    Raises:
      ValueError: a video without frames, or flow x / y lists of different lengths.
    """
    new_length = 1 if modality == "rgb" else flow_length
    channels = 3 if modality == "rgb" else 2 * flow_length
    clips = aligned_empty((len(paths), num_segments, input_size, input_size, channels), dtype)  # no copy into TF
    starts = np.empty((len(paths), num_segments), np.int32)
    if flips is None:
        flips = uniforms[:, num_segments + 2] < 0.5
    for i, path in enumerate(paths):
        counts = {int(splits[i + 1] - splits[i]) for splits, _ in spans}
        available = counts.pop()
        if counts or available == 0:
            raise ValueError(
                f"{_as_str(path)}: video {_as_str(video_ids[i])} has no {modality} frames (or flow x / y counts "
                "differ): check the split with `python -m data.check`."
            )
        offsets = sampling.train_offsets(available, num_segments, uniforms[i, :num_segments], new_length)  # (K,)
        indices = sampling.stack_indices(offsets, new_length, available).reshape(-1)  # (K*L,)
        training_clip(
            path,
            np.stack([key_spans[splits[i] + indices] for splits, key_spans in spans]),  # (keys, K*L, 2)
            uniforms[i, num_segments : num_segments + 2],
            bool(flips[i]),
            input_size=input_size,
            modality=modality,
            num_segments=num_segments,
            scales=scales,
            max_distort=max_distort,
            more_fix_crop=more_fix_crop,
            out=clips[i],
        )
        starts[i] = offsets
    return clips, starts


def training_batch_tf(
    paths: tf.Tensor,
    video_ids: tf.Tensor,
    uniforms: tf.Tensor,
    spans: Sequence[tf.RaggedTensor],
    flips: tf.Tensor | None = None,
    **settings,
) -> tuple[tf.Tensor, tf.Tensor]:
    """`training_batch` as one TensorFlow op (one Python call per batch; a call costs about one JPEG decode).

    Args:
      paths: string (B,).
      video_ids: string (B,).
      uniforms: float64 (B, K + 3).
      spans: per frame key, int64 `tf.RaggedTensor` (B, None, 2).
      flips: bool (B,): which clips are mirrored; None: the flip draws ``uniforms[:, K + 2] < 0.5``.
      **settings: `training_batch`'s keyword arguments.

    Returns:
      ((B, K, S, S, C) float32 or uint8 (``dtype`` setting), int32 (B, K)).
    """
    flat = [tensor for ragged in spans for tensor in (ragged.row_splits, ragged.values)]

    def run(paths_value, ids_value, uniforms_value, flips_value, *flat_values):
        pairs = list(zip(flat_values[0::2], flat_values[1::2]))
        with _CALLS.call():
            return training_batch(paths_value, ids_value, uniforms_value, pairs, flips=flips_value, **settings)

    if flips is None:
        flips = uniforms[:, settings["num_segments"] + 2] < 0.5
    dtype = tf.as_dtype(settings.get("dtype", np.float32))
    inputs = [paths, video_ids, uniforms, flips, *flat]
    clips, starts = tf.numpy_function(run, inputs, (dtype, tf.int32), stateful=False)
    channels = 3 if settings["modality"] == "rgb" else 2 * settings["flow_length"]
    size, segments = settings["input_size"], settings["num_segments"]
    return tf.ensure_shape(clips, [None, segments, size, size, channels]), tf.ensure_shape(starts, [None, segments])


def full_frames_tf(path: tf.Tensor, spans: tf.Tensor, depth: int) -> tf.Tensor:
    """`full_frames` as a TensorFlow op: string path, int64 (N, 2) spans -> uint8 (N, H, W, depth)."""

    def run(path_value, spans_value):
        with _CALLS.call():
            return full_frames(path_value, spans_value, depth)

    frames = tf.numpy_function(run, [path, spans], tf.uint8, stateful=False)
    return tf.ensure_shape(frames, [None, None, None, depth])
