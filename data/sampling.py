"""TSN segment sampling: which frames (or flow stacks) of a video a clip is made of.

Temporal Segment Networks (Wang et al., ECCV 2016), used by both papers (Du et al. Sec. 3.4: K = 3 segments for
training, K = 25 frames for testing), split the valid start positions of a video into K equal segments:

* training: one random start in each segment. With ``L = num_frames - new_length + 1`` valid starts and
  ``avg = L // K``, start ``k`` is ``k * avg + randint(avg)`` (TSN's ``_sample_indices``). Videos with fewer starts
  than segments (``avg == 0``) repeat frames: start ``k`` is ``floor((k + u_k) * L / K)``, one random start inside each
  of K equal fractional segments (TSN itself returns all zeros there, i.e. K copies of the first frame);
* testing: the segment centres, ``int(tick / 2 + tick * k)`` with ``tick = L / K`` (TSN's ``_get_test_indices``);
  short videos repeat frames by the same formula.

``new_length`` is 1 for RGB and ``flow_length`` for flow stacks (the stack starting at ``s`` uses flow frames
``s .. s + new_length - 1``; a video too short for one full stack repeats its last flow frame).

The random draws are explicit uniforms ``u`` in [0, 1) (``randint(avg) == floor(u * avg)``), so the NumPy functions
(used by tests, tools and the exporter) and the TensorFlow functions (used inside `tf.data`) return the same
indices for the same draws. Indices are 0-based.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def _num_starts(num_frames: int, new_length: int) -> int:
    return max(int(num_frames) - int(new_length) + 1, 1)


def train_offsets(num_frames: int, num_segments: int, uniforms: np.ndarray, new_length: int = 1) -> np.ndarray:
    """TSN training starts: one random start per segment (NumPy).

    Args:
      num_frames: number of frames (flow frames for flow) in the video, >= 1.
      num_segments: K.
      uniforms: float array (K,) of draws in [0, 1).
      new_length: frames per sample (1 for RGB, flow_length for flow stacks).

    Returns:
      int64 (K,) 0-based start indices, non-decreasing, each in [0, max(num_frames - new_length, 0)].
    """
    uniforms = np.asarray(uniforms, dtype=np.float64)
    k = np.arange(num_segments, dtype=np.float64)
    starts = _num_starts(num_frames, new_length)
    average = starts // num_segments
    if average > 0:
        return (k * average + np.floor(uniforms * average)).astype(np.int64)
    return np.floor((k + uniforms) * starts / num_segments).astype(np.int64)


def centre_offsets(num_frames: int, num_segments: int, new_length: int = 1) -> np.ndarray:
    """TSN test starts: the centres of K equal segments (NumPy).

    Args:
      num_frames: number of frames (flow frames for flow) in the video, >= 1.
      num_segments: K.
      new_length: frames per sample.

    Returns:
      int64 (K,) 0-based start indices.
    """
    tick = _num_starts(num_frames, new_length) / float(num_segments)
    k = np.arange(num_segments, dtype=np.float64)
    return np.floor(tick / 2.0 + tick * k).astype(np.int64)


def sample_offsets(
    num_frames: int,
    num_segments: int,
    *,
    training: bool,
    new_length: int = 1,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """TSN starts for training (random, drawn from ``rng``) or testing (segment centres) (NumPy).

    Returns:
      int64 (K,) 0-based start indices.
    """
    if not training:
        return centre_offsets(num_frames, num_segments, new_length)
    rng = rng if rng is not None else np.random.default_rng()
    return train_offsets(num_frames, num_segments, rng.random(num_segments), new_length)


def stack_indices(offsets: np.ndarray, new_length: int, num_frames: int) -> np.ndarray:
    """Frame indices of each sample: ``offset + [0, new_length)`` clipped to the last frame (NumPy).

    Returns:
      int64 (K, new_length).
    """
    indices = np.asarray(offsets, dtype=np.int64)[:, None] + np.arange(new_length, dtype=np.int64)[None, :]
    return np.minimum(indices, max(int(num_frames) - 1, 0))


# TensorFlow versions: same formulas, same float64 arithmetic, dynamic num_frames.


def train_offsets_tf(num_frames: tf.Tensor, num_segments: int, uniforms: tf.Tensor, new_length: int = 1) -> tf.Tensor:
    """TensorFlow twin of `train_offsets`; ``num_frames`` may be a dynamic scalar.

    Returns:
      int32 (K,).
    """
    starts = tf.maximum(tf.cast(num_frames, tf.int64) - new_length + 1, 1)
    average = starts // num_segments
    k = tf.range(num_segments, dtype=tf.float64)
    uniforms = tf.cast(uniforms, tf.float64)
    with_average = k * tf.cast(average, tf.float64) + tf.floor(uniforms * tf.cast(average, tf.float64))
    fractional = tf.floor((k + uniforms) * tf.cast(starts, tf.float64) / num_segments)
    return tf.cast(tf.where(average > 0, with_average, fractional), tf.int32)


def centre_offsets_tf(num_frames: tf.Tensor, num_segments: int, new_length: int = 1) -> tf.Tensor:
    """TensorFlow twin of `centre_offsets`.

    Returns:
      int32 (K,).
    """
    starts = tf.maximum(tf.cast(num_frames, tf.int64) - new_length + 1, 1)
    tick = tf.cast(starts, tf.float64) / float(num_segments)
    k = tf.range(num_segments, dtype=tf.float64)
    return tf.cast(tf.floor(tick / 2.0 + tick * k), tf.int32)


def stack_indices_tf(offsets: tf.Tensor, new_length: int, num_frames: tf.Tensor) -> tf.Tensor:
    """TensorFlow twin of `stack_indices`.

    Returns:
      int32 (K, new_length).
    """
    indices = offsets[:, None] + tf.range(new_length, dtype=offsets.dtype)[None, :]
    return tf.minimum(indices, tf.maximum(tf.cast(num_frames, offsets.dtype) - 1, 0))
