"""The ST-attn attention regularisers (Sec. 3.4-3.5, Eq. 6-10 of Meng et al., 2019).

The full objective (Eq. 6) is `L = L_CE + λ_TV L_TV + λ_contrast L_contrast + λ_unimodal L_unimodal`, with the
paper's weights λ_TV = 1e-5, λ_contrast = 1e-4, λ_unimodal = 1 (Sec. 4.1) as `DEFAULT_LOSS_WEIGHTS`. Each function
here is one term, summed over one video as the paper writes it and averaged over the batch; all are computed in
float32 whatever the input dtype.
"""

from __future__ import annotations

import tensorflow as tf

DEFAULT_LOSS_WEIGHTS = {"lambda_tv": 1e-5, "lambda_contrast": 1e-4, "lambda_unimodal": 1.0}


def _mask_4d(mask) -> tf.Tensor:
    """(B, n, h, w) or (B, n, h, w, 1) -> float32 (B, n, h, w)."""
    mask = tf.convert_to_tensor(mask)
    if mask.shape.rank == 5:
        if mask.shape[-1] not in (1, None):
            raise ValueError(f"A spatial mask has one channel; got shape {mask.shape}.")
        mask = mask[..., 0]
    elif mask.shape.rank != 4:
        raise ValueError(f"A spatial mask must be (B, n, h, w) or (B, n, h, w, 1); got shape {mask.shape}.")
    return tf.cast(mask, tf.float32)


def total_variation_loss(mask) -> tf.Tensor:
    """Eq. 7 of Meng et al.: anisotropic total variation of the masks.

    Per video `Σ_i (Σ_{j,k} |M_i^{j+1,k} - M_i^{j,k}| + Σ_{j,k} |M_i^{j,k+1} - M_i^{j,k}|)` (sum over frames i and
    over all vertical and horizontal neighbour pairs), then the mean over the batch.

    Args:
      mask: `(B, n, h, w)` or `(B, n, h, w, 1)` spatial attention masks.

    Returns:
      float32 scalar.
    """
    mask = _mask_4d(mask)
    vertical = tf.abs(mask[:, :, 1:, :] - mask[:, :, :-1, :])  # (B, n, h-1, w)
    horizontal = tf.abs(mask[:, :, :, 1:] - mask[:, :, :, :-1])  # (B, n, h, w-1)
    per_video = tf.reduce_sum(vertical, axis=[1, 2, 3]) + tf.reduce_sum(horizontal, axis=[1, 2, 3])  # (B,)
    return tf.reduce_mean(per_video)


def contrast_loss(mask) -> tf.Tensor:
    """Eq. 8 of Meng et al.: mask/background contrast.

    Per video `Σ_i Σ_{j,k} (-½ M_i ⊙ B_i + ½ M_i ⊙ (1 - B_i))` with the binarised mask `B_i = 1{M_i > 0.5}` held
    constant (no gradient flows through the threshold), then the mean over the batch. It pushes entries above 0.5 up
    and entries below 0.5 down.

    Args:
      mask: `(B, n, h, w)` or `(B, n, h, w, 1)` spatial attention masks.

    Returns:
      float32 scalar.
    """
    mask = _mask_4d(mask)
    binary = tf.stop_gradient(tf.cast(mask > 0.5, tf.float32))  # B_i
    per_entry = -0.5 * mask * binary + 0.5 * mask * (1.0 - binary)  # (B, n, h, w)
    return tf.reduce_mean(tf.reduce_sum(per_entry, axis=[1, 2, 3]))


def unimodality_loss(weights) -> tf.Tensor:
    """Eq. 9 of Meng et al. (the log-concavity penalty R of Eq. 10 applied at every step t).

    Per video `Σ_t Σ_{i=2}^{n-1} max(0, w_{t,i-1} w_{t,i+1} - w_{t,i}²)`, then the mean over the batch. A log-concave
    (hence unimodal, Proposition 1) sequence costs exactly 0.

    Args:
      weights: `(B, n_steps, n)` temporal attention weights (step x frame). Fewer than 3 frames cost 0.

    Returns:
      float32 scalar.
    """
    weights = tf.cast(tf.convert_to_tensor(weights), tf.float32)
    if weights.shape.rank != 3:
        raise ValueError(f"Temporal attention weights must be (B, n_steps, n); got shape {weights.shape}.")
    violation = tf.nn.relu(weights[:, :, :-2] * weights[:, :, 2:] - tf.square(weights[:, :, 1:-1]))  # (B, T, n-2)
    return tf.reduce_mean(tf.reduce_sum(violation, axis=[1, 2]))
