"""TSN segment sampling: exact indices for small videos, NumPy and TensorFlow versions agreeing."""

import numpy as np
import pytest
import tensorflow as tf

from data import sampling


def tsn_sample_indices(num_frames, num_segments, new_length, randint_values):
    """TSN's `_sample_indices` (tsn-pytorch dataset.py), 0-based, with given randint draws."""
    average_duration = (num_frames - new_length + 1) // num_segments
    assert average_duration > 0
    return np.multiply(list(range(num_segments)), average_duration) + np.asarray(randint_values)


def tsn_test_indices(num_frames, num_segments, new_length):
    """TSN's `_get_test_indices`, 0-based."""
    tick = (num_frames - new_length + 1) / float(num_segments)
    return np.array([int(tick / 2.0 + tick * x) for x in range(num_segments)])


def test_train_offsets_known_values():
    # 10 frames, K = 3: segments of 3 frames [0,3) [3,6) [6,9); u picks 0, 1, 2 within them.
    np.testing.assert_array_equal(sampling.train_offsets(10, 3, [0.0, 0.5, 0.99]), [0, 4, 8])
    # Flow stacks of 5 in 16 flow frames: 12 starts, K = 3 -> segments of 4.
    np.testing.assert_array_equal(sampling.train_offsets(16, 3, [0.3, 0.0, 0.76], new_length=5), [1, 4, 11])


@pytest.mark.parametrize("num_frames,num_segments,new_length", [(10, 3, 1), (100, 25, 1), (37, 3, 5), (9, 3, 1)])
def test_train_offsets_match_tsn_formula(num_frames, num_segments, new_length):
    rng = np.random.default_rng(0)
    average = (num_frames - new_length + 1) // num_segments
    for _ in range(20):
        draws = rng.integers(0, average, size=num_segments)
        uniforms = (draws + rng.random(num_segments) * 0.999) / average  # floor(u * average) == draws
        np.testing.assert_array_equal(
            sampling.train_offsets(num_frames, num_segments, uniforms, new_length),
            tsn_sample_indices(num_frames, num_segments, new_length, draws),
        )


@pytest.mark.parametrize("num_frames,num_segments,new_length", [(10, 3, 1), (250, 25, 1), (40, 25, 5), (7, 3, 1)])
def test_centre_offsets_match_tsn_formula(num_frames, num_segments, new_length):
    np.testing.assert_array_equal(
        sampling.centre_offsets(num_frames, num_segments, new_length),
        tsn_test_indices(num_frames, num_segments, new_length),
    )


def test_centre_offsets_known_values():
    np.testing.assert_array_equal(sampling.centre_offsets(10, 3), [1, 5, 8])  # tick 10/3: 1.67, 5.0, 8.33
    np.testing.assert_array_equal(sampling.centre_offsets(25, 25), np.arange(25))


def test_short_videos_repeat_frames():
    # 3 frames, K = 5: test repeats frames at the segment centres; train stays within each fractional segment.
    np.testing.assert_array_equal(sampling.centre_offsets(3, 5), [0, 0, 1, 2, 2])  # tick 0.6
    np.testing.assert_array_equal(sampling.train_offsets(3, 5, np.zeros(5)), [0, 0, 1, 1, 2])
    np.testing.assert_array_equal(sampling.train_offsets(3, 5, np.full(5, 0.999)), [0, 1, 1, 2, 2])
    # A single frame, or fewer flow frames than one stack: every sample starts at 0.
    np.testing.assert_array_equal(sampling.train_offsets(1, 3, [0.9, 0.1, 0.5]), [0, 0, 0])
    np.testing.assert_array_equal(sampling.centre_offsets(2, 3, new_length=5), [0, 0, 0])
    # ... and the stack repeats the last flow frame.
    np.testing.assert_array_equal(sampling.stack_indices(np.array([0]), 5, 2), [[0, 1, 1, 1, 1]])


def test_stack_indices():
    np.testing.assert_array_equal(sampling.stack_indices(np.array([0, 4]), 3, 10), [[0, 1, 2], [4, 5, 6]])


@pytest.mark.parametrize("new_length", [1, 5])
def test_numpy_and_tensorflow_agree(new_length):
    rng = np.random.default_rng(1)
    for num_frames in [1, 2, 3, 7, 16, 40, 173]:
        for num_segments in [1, 3, 8, 25]:
            uniforms = rng.random(num_segments)
            expected = sampling.train_offsets(num_frames, num_segments, uniforms, new_length)
            got = sampling.train_offsets_tf(tf.constant(num_frames), num_segments, tf.constant(uniforms), new_length)
            np.testing.assert_array_equal(got.numpy(), expected)
            np.testing.assert_array_equal(
                sampling.centre_offsets_tf(tf.constant(num_frames), num_segments, new_length).numpy(),
                sampling.centre_offsets(num_frames, num_segments, new_length),
            )
            np.testing.assert_array_equal(
                sampling.stack_indices_tf(tf.constant(expected, tf.int32), new_length, num_frames).numpy(),
                sampling.stack_indices(expected, new_length, num_frames),
            )


def test_sample_offsets_with_seeded_generator_is_reproducible_and_in_segments():
    a = sampling.sample_offsets(30, 3, training=True, rng=np.random.default_rng(7))
    b = sampling.sample_offsets(30, 3, training=True, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert [0 <= a[0] < 10, 10 <= a[1] < 20, 20 <= a[2] < 30] == [True] * 3
    np.testing.assert_array_equal(sampling.sample_offsets(30, 3, training=False), [5, 15, 25])
