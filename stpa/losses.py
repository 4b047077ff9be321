"""The STPA regularisers of Eq. 6-8 (Du et al., ECCV 2018, Sec. 3.3).

Both take the final, L2-normalised attention matrix `A` `(B, d, n)` of `stpa.layers.PyramidAttention`
(`d = H*W` output positions, `n = K*H*W` input positions) and return the batch mean of a per-sample loss. The full
objective of Eq. 9 (classification + lambda * sum w^2 + beta * l_interactive + gamma * l_attn) is assembled by
`stpa.models.loss_terms`.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

INTERACTION_GRADIENTS = ("attention", "both")
INTERACTION_NORMALIZATIONS = ("covariance", "none")


def interaction_loss(
    attention: tf.Tensor,
    values: tf.Tensor,
    *,
    gradient: str = "both",
    normalization: str = "none",
) -> tf.Tensor:
    """Eq. 6: the PCA-inspired interaction-aware loss, mean over the batch.

    Per sample, `-sum(diag(A X X^T A^T)) / c + sum_{m != m'} ((A A^T)_{m m'})^2`: the first term is the variance
    captured by the attention "basis" A (the trace of Eq. 5), the second pushes the rows of A towards orthogonality.

    Two readings the paper leaves open (Sec. 3.1 "Discussion", Sec. 3.3):

    * `gradient`: Eq. 5 is an argmin over S (= A) with X_i the data, so "attention" stops the gradient into X
      (`tf.stop_gradient(values)`): the term shapes A only. "both" lets it flow into X too, which lets the network
      lower the loss without bound by growing its features.
    * `normalization`: "Discussion" reads X_i's C columns `v_m` (flattened channel maps) as the PCA samples and says
      "S is usually obtained by eigenvalue decomposition of covariance matrix X_i X_i^T"; "covariance" uses that
      covariance, `X X^T / C` (c = C), so the captured variance no longer grows with the channel count.
      "none" is the printed `X X^T` (c = 1).

    Args:
      attention: `(B, d, n)` attention matrix A, rows L2-normalised.
      values: `(B, n, C)` flattened top-layer features X (`stpa.layers.flatten_positions`).
      gradient: one of `INTERACTION_GRADIENTS`: "attention" (X is data) or "both".
      normalization: one of `INTERACTION_NORMALIZATIONS`: "covariance" (divide by C) or "none".

    Returns:
      Scalar float32 loss.

    Raises:
      ValueError: on an unknown `gradient` or `normalization`.
    """
    if gradient not in INTERACTION_GRADIENTS:
        raise ValueError(f"interaction gradient {gradient!r} unknown; allowed: {list(INTERACTION_GRADIENTS)}.")
    if normalization not in INTERACTION_NORMALIZATIONS:
        raise ValueError(
            f"interaction normalization {normalization!r} unknown; allowed: {list(INTERACTION_NORMALIZATIONS)}."
        )
    attention = tf.cast(attention, tf.float32)
    values = tf.cast(values, tf.float32)
    if gradient == "attention":
        values = tf.stop_gradient(values)  # Eq. 5: X is data, the argmin is over A only.
    projected = tf.matmul(attention, values)  # A X: (B, d, C)
    captured = tf.reduce_sum(tf.square(projected), axis=[1, 2])  # sum(diag(A X X^T A^T)): (B,)
    if normalization == "covariance":
        captured = captured / tf.cast(tf.shape(values)[-1], tf.float32)  # sum(diag(A (X X^T / C) A^T)): (B,)
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
