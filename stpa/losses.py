"""The STPA regularisers of Eq. 6-8 (Du et al., ECCV 2018, Sec. 3.3).

Both take the final, L2-normalised attention matrix `A` `(B, d, n)` of `stpa.layers.PyramidAttention`
(`d = H*W` output positions, `n = K*H*W` input positions) and return the batch mean of a per-sample loss. The full
objective of Eq. 9 (classification + lambda * sum w^2 + beta * l_interactive + gamma * l_attn) is assembled by
`stpa.models.loss_terms`.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf


def interaction_loss(attention: tf.Tensor, values: tf.Tensor) -> tf.Tensor:
    """Eq. 6: the PCA-inspired interaction-aware loss, mean over the batch.

    Per sample, `-sum(diag(A X X^T A^T)) + sum_{m != m'} ((A A^T)_{m m'})^2`: the first term is the variance captured
    by the attention "basis" A (the trace of Eq. 5), the second pushes the rows of A towards orthogonality.

    Args:
      attention: `(B, d, n)` attention matrix A, rows L2-normalised.
      values: `(B, n, C)` flattened top-layer features X (`stpa.layers.flatten_positions`).

    Returns:
      Scalar float32 loss.
    """
    attention = tf.cast(attention, tf.float32)
    values = tf.cast(values, tf.float32)
    projected = tf.matmul(attention, values)  # A X: (B, d, C)
    captured = tf.reduce_sum(tf.square(projected), axis=[1, 2])  # sum(diag(A X X^T A^T)): (B,)
    gram = tf.matmul(attention, attention, transpose_b=True)  # A A^T: (B, d, d)
    off_diagonal = tf.reduce_sum(tf.square(gram), axis=[1, 2]) - tf.reduce_sum(
        tf.square(tf.linalg.diag_part(gram)), axis=1
    )  # (B,)
    return tf.reduce_mean(-captured + off_diagonal)


def attention_loss(attention: tf.Tensor, scale_logits: Sequence[tf.Tensor]) -> tf.Tensor:
    """Eq. 7-8: the multi-scale attention loss, mean over the batch.

    Per sample `sqrt(sum_j sum_m sum_k (1 - delta_{j,m,k}^2))` with `delta_{j,m,k} = |A_{m,k} - softmax(y^j)_{m,k}|`
    (Eq. 7), so each scale's own attention is pushed away from the fused one. `A` is the final, L2-normalised
    attention (as in the paper, `a^i` after normalisation).

    Args:
      attention: `(B, d, n)` attention matrix A.
      scale_logits: the N per-scale scores y^j of Eq. 2, each `(B, d, n)`, before fusion.

    Returns:
      Scalar float32 loss.
    """
    if not scale_logits:
        raise ValueError("attention_loss needs at least one per-scale score tensor y^j, got an empty list.")
    attention = tf.cast(attention, tf.float32)
    total = 0.0
    for logits in scale_logits:
        delta = attention - tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)  # Eq. 7: (B, d, n)
        total += tf.reduce_sum(1.0 - tf.square(delta), axis=[1, 2])  # (B,)
    return tf.reduce_mean(tf.sqrt(total))  # Eq. 8
