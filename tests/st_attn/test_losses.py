"""Eq. 7-9 of Meng et al. against float64 NumPy references."""

import numpy as np
import pytest
import tensorflow as tf

from st_attn import losses
from tests.st_attn import reference


@pytest.fixture
def mask():
    rng = np.random.default_rng(0)
    return rng.uniform(size=(3, 4, 5, 6)).astype(np.float32)


def test_total_variation_matches_numpy(mask):
    expected = reference.total_variation(mask)
    np.testing.assert_allclose(losses.total_variation_loss(mask).numpy(), expected, rtol=1e-5)
    # The (B, n, h, w, 1) layout gives the same value.
    np.testing.assert_allclose(losses.total_variation_loss(mask[..., None]).numpy(), expected, rtol=1e-5)


def test_total_variation_of_a_hand_made_mask():
    mask = np.zeros((1, 1, 3, 3), np.float32)
    mask[0, 0, 1, 1] = 1.0  # one bright pixel: 4 neighbour pairs differ by 1
    assert losses.total_variation_loss(mask).numpy() == pytest.approx(4.0)
    two_videos = np.concatenate([mask, np.zeros_like(mask)])  # mean over the batch
    assert losses.total_variation_loss(two_videos).numpy() == pytest.approx(2.0)


def test_contrast_matches_numpy_and_has_constant_binarisation(mask):
    expected = reference.contrast(mask)
    np.testing.assert_allclose(losses.contrast_loss(mask[..., None]).numpy(), expected, rtol=1e-5)
    variable = tf.Variable(mask)
    with tf.GradientTape() as tape:
        value = losses.contrast_loss(variable)
    gradient = tape.gradient(value, variable).numpy()
    batch = mask.shape[0]
    # No gradient through 1{M > 0.5}: d/dM = (-1/2 B + 1/2 (1 - B)) / batch exactly.
    np.testing.assert_allclose(gradient, np.where(mask > 0.5, -0.5, 0.5) / batch, rtol=1e-6)


def test_unimodality_matches_numpy():
    rng = np.random.default_rng(1)
    weights = rng.dirichlet(np.ones(7), size=(2, 5)).astype(np.float32)  # (B=2, T=5, n=7)
    expected = reference.unimodality(weights)
    assert expected > 0
    np.testing.assert_allclose(losses.unimodality_loss(weights).numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize(
    "sequence",
    [
        np.exp(-0.5 * ((np.arange(9) - 3.3) / 1.7) ** 2),  # Gaussian-shaped: log is concave
        np.array([1, 8, 28, 56, 70, 56, 28, 8, 1], np.float64),  # binomial coefficients
        0.5 ** np.arange(9),  # geometric: log is linear
        np.array([0, 0, 1, 0, 0, 0, 0, 0, 0], np.float64),  # a single frame
    ],
)
def test_log_concave_sequence_costs_zero(sequence):
    weights = (sequence / sequence.sum())[None, None, :]
    assert losses.unimodality_loss(weights.astype(np.float32)).numpy() == 0.0


def test_bimodal_sequence_cost_has_known_value():
    weights = np.array([[[0.4, 0.1, 0.4, 0.1]]], np.float32)
    # i=2: 0.4*0.4 - 0.1^2 = 0.15 ; i=3: 0.1*0.1 - 0.4^2 < 0 -> 0.
    assert losses.unimodality_loss(weights).numpy() == pytest.approx(0.15)


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="mask"):
        losses.total_variation_loss(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="n_steps"):
        losses.unimodality_loss(np.zeros((2, 3)))
