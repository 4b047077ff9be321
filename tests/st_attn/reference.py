"""Independent float64 NumPy references of the ST-attn equations, shared by the tests."""

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def conv2d_same(x, kernel, bias=None):
    """x (N, H, W, Cin), kernel (k, k, Cin, Cout), stride 1, zero 'same' padding."""
    k = kernel.shape[0]
    p = k // 2
    n, h, w, _ = x.shape
    padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    out = np.zeros((n, h, w, kernel.shape[-1]))
    for dy in range(k):
        for dx in range(k):
            out += padded[:, dy : dy + h, dx : dx + w, :] @ kernel[dy, dx]
    return out if bias is None else out + bias


def batch_norm(x, gamma, beta, mean, var, eps):
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def conv_bn_relu(x, conv, bn):
    """conv: keras Conv2D (no bias); bn: keras BatchNormalization (inference mode)."""
    kernel = np.asarray(conv.kernel.numpy(), np.float64)
    gamma, beta, mean, var = (
        np.asarray(v.numpy(), np.float64) for v in (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance)
    )
    return np.maximum(batch_norm(conv2d_same(x, kernel), gamma, beta, mean, var, bn.epsilon), 0.0)


def softmax(x, axis=-1):
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def total_variation(mask):
    """Eq. 7, mask (B, n, h, w): per-video sum, batch mean."""
    mask = np.asarray(mask, np.float64)
    per_video = []
    for video in mask:
        total = 0.0
        for frame in video:
            h, w = frame.shape
            for j in range(h):
                for k in range(w):
                    if j + 1 < h:
                        total += abs(frame[j + 1, k] - frame[j, k])
                    if k + 1 < w:
                        total += abs(frame[j, k + 1] - frame[j, k])
        per_video.append(total)
    return float(np.mean(per_video))


def contrast(mask):
    """Eq. 8, mask (B, n, h, w)."""
    mask = np.asarray(mask, np.float64)
    binary = (mask > 0.5).astype(np.float64)
    return float(np.mean([np.sum(-0.5 * m * b + 0.5 * m * (1 - b)) for m, b in zip(mask, binary)]))


def unimodality(weights):
    """Eq. 9, weights (B, T, n)."""
    weights = np.asarray(weights, np.float64)
    per_video = []
    for video in weights:
        total = 0.0
        for row in video:
            for i in range(1, len(row) - 1):
                total += max(0.0, row[i - 1] * row[i + 1] - row[i] ** 2)
        per_video.append(total)
    return float(np.mean(per_video))
