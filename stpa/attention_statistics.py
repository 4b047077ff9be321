"""Per-row statistics of STPA's attention matrix A (Eq. 3 of Du et al., ECCV 2018): how peaked each row is.

`A` `(B, d, n)` is `stpa.layers.PyramidAttention`'s final attention (`d = H*W` output positions, `n = K*H*W` input
positions): every row a is a softmax distribution p, L2-normalised, so `a = p / ||p||_2`, non-negative, `||a||_2 = 1`.
Two numbers describe a row:

* the normalised entropy `H(p) / log(n)` of the distribution the row came from (`p = a / sum(a)` recovers it, since
  L2 normalisation only rescales): 0 for a one-hot row, 1 for a uniform one;
* the L1 mass `sum_i a_i = 1 / ||p||_2`: 1 for a one-hot row, `sqrt(n)` for a uniform one. Eq. 4's `M' = A X`
  gives output position m the row `sum_i a_mi x_i = (sum_i a_mi) * sum_i p_mi x_i`: the p-weighted mean of X's rows
  times the row's L1 mass, so the L1 mass is exactly the factor by which STPA scales a weighted mean of X.

`stpa.layers.UniformAttention`'s A (every entry `1/sqrt(n)`) has entropy 1 and L1 mass `sqrt(n)` in every row.
"""

from __future__ import annotations

import tensorflow as tf

ENTROPY = "entropy"
L1_MASS = "l1_mass"


def normalized_entropy(attention: tf.Tensor) -> tf.Tensor:
    """The entropy of each attention row's distribution, divided by its maximum `log(n)`.

    Per row a: `p = a / sum(a)` (the softmax distribution of Eq. 3 before the L2 normalisation), then
    `-sum_i p_i log p_i / log(n)`, with `0 log 0 = 0` (`tf.math.xlogy`). A row of zeros and `n = 1` give 0.

    Args:
      attention: `(B, d, n)` attention matrix A, rows non-negative (L2-normalised, Eq. 3); any float dtype.

    Returns:
      float32 `(B, d)` in [0, 1]: 0 for a one-hot row, 1 for a uniform row.
    """
    attention = tf.cast(attention, tf.float32)  # (B, d, n)
    mass = tf.reduce_sum(attention, axis=-1, keepdims=True)  # (B, d, 1)
    probabilities = tf.math.divide_no_nan(attention, mass)  # (B, d, n), rows sum to 1
    entropy = -tf.reduce_sum(tf.math.xlogy(probabilities, probabilities), axis=-1)  # (B, d), xlogy(0, 0) = 0
    log_n = tf.math.log(tf.cast(tf.shape(attention)[-1], tf.float32))  # 0 when n = 1
    return tf.clip_by_value(tf.math.divide_no_nan(entropy, log_n), 0.0, 1.0)  # (B, d)


def l1_mass(attention: tf.Tensor) -> tf.Tensor:
    """The L1 norm of each attention row: the factor by which `M' = A X` (Eq. 4) scales a weighted mean of X.

    Row m of `M' = A X` is `sum_i a_mi x_i = l1_mass_m * sum_i p_mi x_i` with `p_m = a_m / l1_mass_m`, a weighted
    mean of X's rows; for an L2-normalised row, `l1_mass = 1 / ||p||_2`.

    Args:
      attention: `(B, d, n)` attention matrix A, rows non-negative and L2-normalised (Eq. 3); any float dtype.

    Returns:
      float32 `(B, d)` in [1, sqrt(n)]: 1 for a one-hot row, `sqrt(n)` for a uniform row.
    """
    return tf.reduce_sum(tf.cast(attention, tf.float32), axis=-1)  # (B, d)


def per_clip(attention: tf.Tensor) -> dict[str, tf.Tensor]:
    """Each clip's mean over its d attention rows of both statistics.

    Args:
      attention: `(B, d, n)` attention matrix A (Eq. 3).

    Returns:
      {"entropy": float32 `(B,)` (`normalized_entropy`), "l1_mass": float32 `(B,)` (`l1_mass`)}.
    """
    return {
        ENTROPY: tf.reduce_mean(normalized_entropy(attention), axis=-1),  # (B,)
        L1_MASS: tf.reduce_mean(l1_mass(attention), axis=-1),  # (B,)
    }


def summarize(attention: tf.Tensor) -> dict[str, tf.Tensor]:
    """The means of both statistics over the batch and the d rows.

    Args:
      attention: `(B, d, n)` attention matrix A (Eq. 3).

    Returns:
      {"entropy": float32 scalar in [0, 1], "l1_mass": float32 scalar in [1, sqrt(n)]}.
    """
    return {name: tf.reduce_mean(value) for name, value in per_clip(attention).items()}
