"""The reference test clip of TSN test sampling, written independently of data.augment (export, serving tests)."""

import numpy as np
import tensorflow as tf

from data import sampling


def reference_clip(video, test_frames, size, flow_length=None):
    """NumPy TSN test sampling + TF bilinear resize of the short side to size*256/224 + centre crop."""
    new_length = 1 if flow_length is None else flow_length
    offsets = sampling.centre_offsets(len(video), test_frames, new_length)
    if flow_length is None:
        frames = video[offsets].astype(np.float32)
    else:
        index = np.minimum(offsets[:, None] + np.arange(flow_length)[None], len(video) - 1)  # (K, L)
        stacks = video[index]  # (K, L, H, W, 2)
        frames = stacks.transpose(0, 2, 3, 1, 4).reshape(*stacks.shape[:1], *stacks.shape[2:4], -1).astype(np.float32)
    height, width = frames.shape[1:3]
    short = size * 256 // 224
    scale = short / min(height, width)
    new_h, new_w = int(round(height * scale)), int(round(width * scale))
    if (new_h, new_w) != (height, width):
        frames = tf.image.resize(frames, [new_h, new_w], method="bilinear").numpy()
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return frames[:, top : top + size, left : left + size], offsets
