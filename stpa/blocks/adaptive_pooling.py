"""Eq. 1's down-sampling: max pooling over PyTorch `AdaptiveMaxPool2d` bins, lean in memory and in time.

The bins are fixed when the graph is traced (`start = floor(i*H_in/H_out)`, `end = ceil((i+1)*H_in/H_out)`), so the
pooling is written with constants (`adaptive_max_pool`, used by `stpa.layers.pyramid_downsample`):

- forward: a running maximum over the row bins' slots, then over the column bins' slots (one gather per slot),
  carrying each maximum's flat position in its sample (int32, the output's size: all that backprop keeps; nothing of
  the input's size outlives the forward pass). The strict `>` keeps the first maximum, as max pooling does.
- backward: one `MaxPoolGradWithArgmax`, TensorFlow's max-pooling gradient kernel, which adds each upstream value at
  its recorded input position. Under XLA, which has no kernel for it, the segment-sum version below is used.

Alternatives kept to measure against (`POOLINGS`; `benchmarks/pyramid_attention.py` times the layer with the
segment-sum backward in the same rounds, `benchmarks/memory.py --parts=stpa_layer --variants=segment_sum,matmul`
measures their memory):
- `segment_sum`: the previous version, `argmax` forward and an element-wise `unsorted_segment_sum` backward over
  int64 positions. The layer with it takes 2.7-3.4 times as long (forward + backward, K = 25, alternating rounds in
  one process, 2 loaded cores); allocator peak at K = 30 183-200 MiB against 159-174 MiB.
- `matmul`: the winners' one-hot code times a dense `(H_in, H_out * window)` 0/1 selection, a batched matmul per
  direction: the layer about twice as slow as with `adaptive_max_pool`, and 265-290 MiB at K = 30, since the spread
  gradient `(N, H_out, window, W, C)` is about 1.4 times the input.
- `tf.nn.max_pool` gradients need regular bins; Inception-ResNet-V2's 35 -> 8 has bins of 5 and 6 rows.

`keras.ops.adaptive_max_pool` keeps stride-1 pools of the whole map (about 3.5 times its size) until backprop.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def bin_rows(in_size: int, out_size: int) -> list[list[int]]:
    """PyTorch adaptive bins as rows of input indices, each padded to the widest bin by repeating its last index."""
    spans = [((i * in_size) // out_size, -(-((i + 1) * in_size) // out_size)) for i in range(out_size)]
    width = max(end - start for start, end in spans)
    return [[start + min(j, end - start - 1) for j in range(width)] for start, end in spans]


_bin_rows = bin_rows  # The name stpa.layers used.


def selection_matrix(in_size: int, out_size: int) -> np.ndarray:
    """`(in_size, out_size * window)` 0/1: column `i * window + j` selects the input row of slot j of bin i."""
    bins = bin_rows(in_size, out_size)
    window = len(bins[0])
    matrix = np.zeros((in_size, out_size * window), np.float32)
    for i, row in enumerate(bins):
        for j, index in enumerate(row):
            matrix[index, i * window + j] = 1.0
    return matrix


def _dims(x: tf.Tensor) -> tuple:
    dynamic = tf.shape(x)
    return tuple(dynamic[a] if x.shape[a] is None else x.shape[a] for a in range(4))


def _in_xla() -> bool:
    from tensorflow.python.ops import control_flow_util  # noqa: PLC0415  (TF's own test for an XLA context)

    return bool(control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))


def _running_max(x: tf.Tensor, index: tf.Tensor, bins: list[list[int]], axis: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Max over `bins` along `axis` of `x`, carrying `index` (int32, x's shape or batch 1) of the winners.

    One gather per slot of the bins (the strict `>` keeps the first maximum, as max pooling does).
    """
    window = len(bins[0])
    slot = [b[0] for b in bins]
    pooled = tf.gather(x, slot, axis=axis)
    winner = tf.broadcast_to(tf.gather(index, slot, axis=axis), tf.shape(pooled))  # index may have batch 1
    for j in range(1, window):
        slot = [b[j] for b in bins]
        candidate = tf.gather(x, slot, axis=axis)
        winner = tf.where(candidate > pooled, tf.gather(index, slot, axis=axis), winner)
        pooled = tf.maximum(pooled, candidate)
    return pooled, winner


def adaptive_max_pool_2d(frames: tf.Tensor, out_height: int, out_width: int) -> tf.Tensor:
    """Max over PyTorch `AdaptiveMaxPool2d` bins of `(N, H, W, C)` -> `(N, out_height, out_width, C)`, rows first.

    Forward: a running max over the row bins, then over the column bins, carrying each maximum's flat position in
    its sample, `(h * W + w) * C + c` (int32, the output's size: all that backprop keeps). Backward: one
    `MaxPoolGradWithArgmax`, the max-pooling gradient kernel, which adds grad[k] at input position argmax[k]; it reads
    only the input's shape, and a VALID pooling with window `(H - out_height + 1, W - out_width + 1)`, stride 1,
    passes its shape check. (Ties: the first maximum along the rows, then along the columns.)
    """
    _, height, width, channels = frames.shape
    if None in (height, width, channels) or height * width * channels >= 2**31:
        raise ValueError(f"adaptive_max_pool_2d needs static H, W, C and H*W*C < 2**31, got {frames.shape}")
    row_bins, column_bins = bin_rows(height, out_height), bin_rows(width, out_width)

    @tf.custom_gradient
    def pool(x):
        positions = tf.reshape(tf.range(height * width * channels), [1, height, width, channels])  # batch 1
        pooled, index = x, positions
        if out_height != height:
            pooled, index = _running_max(pooled, index, row_bins, axis=1)  # (N, out_height, W, C)
        if out_width != width:
            pooled, index = _running_max(pooled, index, column_bins, axis=2)  # (N, out_height, out_width, C)

        def grad(upstream):
            return tf.raw_ops.MaxPoolGradWithArgmax(
                input=x,
                grad=upstream,
                # The kernel takes int64 only: widened for the backward pass alone (batch 1 where nothing pooled).
                argmax=tf.cast(tf.broadcast_to(index, tf.shape(upstream)), tf.int64),
                ksize=[1, height - out_height + 1, width - out_width + 1, 1],
                strides=[1, 1, 1, 1],
                padding="VALID",
                include_batch_in_index=False,
            )

        return pooled, grad

    return pool(frames)


def adaptive_max_pool_rows(frames: tf.Tensor, out_rows: int) -> tf.Tensor:
    """Max over PyTorch `AdaptiveMaxPool` bins along the rows of `(N, H_in, W, C)` -> `(N, out_rows, W, C)`."""
    if _in_xla():
        return adaptive_max_pool_rows_segment_sum(frames, out_rows)
    return adaptive_max_pool_2d(frames, out_rows, frames.shape[2])


def adaptive_max_pool(frames: tf.Tensor, out_height: int, out_width: int) -> tf.Tensor:
    """Eq. 1's pooling of `(N, H, W, C)` -> `(N, out_height, out_width, C)`: `adaptive_max_pool_2d`.

    Under XLA (no kernel for MaxPoolGradWithArgmax) the segment-sum version, rows then columns.
    """
    if _in_xla():
        return separable(adaptive_max_pool_rows_segment_sum, frames, out_height, out_width)
    return adaptive_max_pool_2d(frames, out_height, out_width)


def separable(pool_rows, frames: tf.Tensor, out_height: int, out_width: int) -> tf.Tensor:
    """A row pooling `pool_rows(frames, out_rows)` applied to the rows, then (transposed) to the columns."""
    rows = pool_rows(frames, out_height)  # (N, out_height, W, C)
    return tf.transpose(pool_rows(tf.transpose(rows, [0, 2, 1, 3]), out_width), [0, 2, 1, 3])


def adaptive_max_pool_rows_matmul(frames: tf.Tensor, out_rows: int) -> tf.Tensor:
    """The dense-selection alternative: winners' one-hot code times a `(H_in, out_rows * window)` 0/1 matrix.

    As fast as `adaptive_max_pool_rows` but its backward holds the spread gradient `(N, out_rows, window, W, C)`
    (about 1.4 times the input): 265-290 MiB at K = 30 instead of about 200 (kept to measure against).
    """
    in_rows = frames.shape[1]
    bins = bin_rows(in_rows, out_rows)
    window = len(bins[0])
    selection = selection_matrix(in_rows, out_rows)
    slots = [[b[j] for b in bins] for j in range(window)]

    @tf.custom_gradient
    def pool(x):
        pooled = tf.gather(x, slots[0], axis=1)
        winner = tf.zeros_like(pooled, tf.int32)
        for j in range(1, window):
            candidate = tf.gather(x, slots[j], axis=1)
            winner = tf.where(candidate > pooled, j, winner)
            pooled = tf.maximum(pooled, candidate)

        def grad(upstream):
            n, _, w, c = _dims(x)
            spread = tf.one_hot(winner, window, axis=2, dtype=upstream.dtype) * upstream[:, :, None]
            spread = tf.reshape(spread, [n, out_rows * window, w * c])
            routed = tf.matmul(tf.constant(selection, upstream.dtype)[None], spread)  # (N, H_in, W * C)
            return tf.reshape(routed, [n, in_rows, w, c])

        return pooled, grad

    return pool(frames)


def adaptive_max_pool_rows_segment_sum(frames: tf.Tensor, out_rows: int) -> tf.Tensor:
    """The earlier version: `argmax` forward, element-wise `unsorted_segment_sum` backward (kept to time against)."""
    in_rows = frames.shape[1]
    bins = bin_rows(in_rows, out_rows)
    window = len(bins[0])
    flat_bins = tf.constant([index for row in bins for index in row], tf.int32)  # (out_rows * window,)

    @tf.custom_gradient
    def pool(x):
        windows = tf.gather(x, tf.reshape(flat_bins, [out_rows, window]), axis=1)  # (N, out_rows, window, W, C)
        pooled = tf.reduce_max(windows, axis=2)
        winner = tf.argmax(windows, axis=2, output_type=tf.int32)
        offsets = tf.range(out_rows, dtype=tf.int32)[None, :, None, None] * window
        rows = tf.gather(flat_bins, offsets + winner)  # (N, out_rows, W, C): the input row of each maximum

        def grad(upstream):
            shape = tf.shape(x, out_type=tf.int64)
            n, w, c = shape[0], shape[2], shape[3]
            index = tf.cast(rows, tf.int64)
            batch = tf.range(n)[:, None, None, None]
            column = tf.range(w)[None, None, :, None]
            channel = tf.range(c)[None, None, None, :]
            segments = ((batch * in_rows + index) * w + column) * c + channel
            total = n * in_rows * w * c
            summed = tf.math.unsorted_segment_sum(tf.reshape(upstream, [-1]), tf.reshape(segments, [-1]), total)
            return tf.reshape(summed, shape)

        return pooled, grad

    return pool(frames)


# Eq. 1's pooling `(frames, out_height, out_width)` by backward; `benchmarks/` times them against each other.
POOLINGS = {
    "max_pool_grad": adaptive_max_pool,
    "matmul": lambda frames, h, w: separable(adaptive_max_pool_rows_matmul, frames, h, w),
    "segment_sum": lambda frames, h, w: separable(adaptive_max_pool_rows_segment_sum, frames, h, w),
}
