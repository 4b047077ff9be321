"""Random pyramid inputs and layer weights shared by the PyramidAttention tests (layers, losses, precision)."""

import numpy as np

# Pyramid sizes bottom -> top with non-integer ratios (11 -> 7 -> 3) and a 4th, larger scale below them.
SIZES = [(13, 2), (11, 4), (7, 5), (3, 6)]  # (spatial size, channels)


def make_inputs(rng, num_scales, frames, batch=2, sizes=SIZES):
    return [rng.normal(scale=0.5, size=(batch, frames, s, s, c)).astype(np.float32) for s, c in sizes[-num_scales:]]


def randomise(layer, rng):
    weights = [rng.normal(scale=0.3, size=w.shape).astype(np.float32) for w in layer.get_weights()]
    layer.set_weights(weights)
    return weights[0::2], weights[1::2]


def assert_close(actual, expected, rtol=1e-4):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * np.abs(expected).max())
