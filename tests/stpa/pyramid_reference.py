"""An independent float64 NumPy reference of STPA Eq. 1-8, written from the paper, for the tests."""

import numpy as np


def adaptive_max_pool(frame: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Eq. 1's R(.): max pooling of `(H, W, C)` with PyTorch AdaptiveMaxPool2d bins."""
    in_h, in_w, channels = frame.shape
    out = np.empty((out_h, out_w, channels), dtype=np.float64)
    for i in range(out_h):
        h0, h1 = (i * in_h) // out_h, -(-((i + 1) * in_h) // out_h)
        for j in range(out_w):
            w0, w1 = (j * in_w) // out_w, -(-((j + 1) * in_w) // out_w)
            out[i, j] = frame[h0:h1, w0:w1].max(axis=(0, 1))
    return out


def pyramid_attention(inputs, kernels, biases, fusion):
    """Eq. 1-4 in float64. Returns (M' (B,H,W,C), A (B,d,n), [y^j (B,d,n)])."""
    inputs = [np.asarray(x, np.float64) for x in inputs]
    batch, frames, height, width, channels = inputs[-1].shape
    scores = []
    for index, x in enumerate(inputs):
        if index < len(inputs) - 1:
            x = np.stack(
                [np.stack([adaptive_max_pool(x[b, k], height, width) for k in range(frames)]) for b in range(batch)]
            )
        flat = x.reshape(batch, frames * height * width, x.shape[-1])  # (B, n, C_j): rows in (k, h, w) order
        y = np.einsum("bnc,cd->bdn", flat, np.asarray(kernels[index], np.float64))
        scores.append(y + np.asarray(biases[index], np.float64)[None, :, None])  # Eq. 2
    fused = scores[0]
    for y in scores[1:]:
        fused = {"max": np.maximum, "sum": np.add, "mul": np.multiply}[fusion](fused, y)
    e = np.exp(fused - fused.max(axis=-1, keepdims=True))
    a = e / e.sum(axis=-1, keepdims=True)  # Eq. 3 softmax over all K*H*W positions
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)  # L2-normalised rows
    values = inputs[-1].reshape(batch, frames * height * width, channels)
    m = a @ values  # Eq. 4
    return m.reshape(batch, height, width, channels), a, scores


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def interaction_loss(a, values):
    """Eq. 6, mean over the batch."""
    a, values = np.asarray(a, np.float64), np.asarray(values, np.float64)
    losses = []
    for ab, xb in zip(a, values):
        covariance = ab @ xb @ xb.T @ ab.T
        gram = ab @ ab.T
        identity = np.eye(gram.shape[0])
        losses.append(-np.sum(covariance * identity) + np.sum((gram * (1 - identity)) ** 2))
    return float(np.mean(losses))


def attention_loss(a, scores):
    """Eq. 7-8, mean over the batch."""
    a = np.asarray(a, np.float64)
    total = np.zeros(a.shape[0])
    for y in scores:
        delta = np.abs(a - softmax(np.asarray(y, np.float64)))
        total += np.sum(1 - delta**2, axis=(1, 2))
    return float(np.mean(np.sqrt(total)))
