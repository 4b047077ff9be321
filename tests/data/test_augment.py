"""TSN augmentation: crop sizes and positions, NumPy/TensorFlow agreement, flips of flow, test crops."""

import numpy as np
import pytest
import tensorflow as tf

from data import augment


def test_multiscale_crop_sizes_for_tsn_frames():
    # 340x256 frames, 224 input: sides int(256 * s) = 256, 224, 192, 168; pairs at most one scale step apart.
    assert augment.multiscale_crop_sizes(256, 340, 224) == [
        (256, 256), (256, 224),
        (224, 256), (224, 224), (224, 192),
        (192, 224), (192, 192), (192, 168),
        (168, 192), (168, 168),
    ]  # fmt: skip


def test_multiscale_crop_sizes_snap_to_input_size():
    # 72-pixel short side, 64 input: 72, 63, 54, 47 -> 63 is within 3 pixels of 64 and snaps to it.
    sizes = augment.multiscale_crop_sizes(72, 96, 64)
    assert sorted({h for h, _ in sizes}) == [47, 54, 64, 72]


def test_fixed_crop_offsets_tsn_positions():
    # w_step = (340 - 224) // 4 = 29, h_step = (256 - 224) // 4 = 8; (y, x) in TSN's fill_fix_offset order.
    assert augment.fixed_crop_offsets(256, 340, 224, 224, more_fix_crop=True) == [
        (0, 0), (0, 116), (32, 0), (32, 116), (16, 58),
        (16, 0), (16, 116), (32, 58), (0, 58), (8, 29), (8, 87), (24, 29), (24, 87),
    ]  # fmt: skip
    assert len(augment.fixed_crop_offsets(256, 340, 224, 224, more_fix_crop=False)) == 5


@pytest.mark.parametrize("more_fix_crop", [True, False])
def test_crop_window_numpy_and_tensorflow_agree(more_fix_crop):
    rng = np.random.default_rng(0)
    for height, width, size in [(256, 340, 224), (72, 96, 64), (240, 320, 299), (100, 60, 48)]:
        for _ in range(15):
            u = rng.random(2)
            expected = augment.multiscale_crop_window(height, width, size, u, more_fix_crop=more_fix_crop)
            got = augment.multiscale_crop_window_tf(
                tf.constant(height), tf.constant(width), size, tf.constant(u), more_fix_crop=more_fix_crop
            )
            assert tuple(got.numpy()) == expected
            y, x, h, w = expected
            assert 0 <= y and y + h <= height and 0 <= x and x + w <= width


def test_every_crop_size_and_position_is_reachable():
    windows = [augment.multiscale_crop_window(256, 340, 224, (a, b)) for a in (np.arange(10) + 0.5) / 10
               for b in (np.arange(13) + 0.5) / 13]  # fmt: skip
    assert {(h, w) for _, _, h, w in windows} == set(augment.multiscale_crop_sizes(256, 340, 224))
    assert {(y, x) for y, x, h, w in windows if (h, w) == (224, 224)} == set(
        augment.fixed_crop_offsets(256, 340, 224, 224)
    )


def test_flip_mirrors_and_inverts_flow_x():
    rng = np.random.default_rng(0)
    flow = rng.integers(0, 256, size=(2, 3, 4, 4)).astype(np.float32)  # (K, H, W, 2L) channels x0, y0, x1, y1
    flipped = augment.flip_horizontally(tf.constant(flow), "flow").numpy()
    mirrored = flow[:, :, ::-1, :]
    np.testing.assert_array_equal(flipped[..., 0::2], 255.0 - mirrored[..., 0::2])
    np.testing.assert_array_equal(flipped[..., 1::2], mirrored[..., 1::2])
    rgb = rng.random((2, 3, 4, 3)).astype(np.float32)
    np.testing.assert_array_equal(augment.flip_horizontally(tf.constant(rgb), "rgb").numpy(), rgb[:, :, ::-1, :])


def _coordinate_frames(num_frames, height, width):
    """(K, H, W, 3) with channel 0 = row, 1 = column, 2 = frame index."""
    k, y, x = np.meshgrid(np.arange(num_frames), np.arange(height), np.arange(width), indexing="ij")
    return np.stack([y, x, k], axis=-1).astype(np.float32)


@pytest.mark.parametrize("crops", [1, 3, 10])
def test_eval_crops_positions(crops):
    size = 28  # eval_scale_size(28) == 32: 32x40 frames are not resized
    assert augment.eval_scale_size(size) == 32 and augment.eval_scale_size(224) == 256
    frames = _coordinate_frames(2, 32, 40)
    out = augment.eval_crops(tf.constant(frames), size, crops, "rgb").numpy()
    assert out.shape == (crops, 2, size, size, 3)
    offsets = augment.eval_crop_offsets(32, 40, size, crops)
    views = [out[i] for i in range(0, crops, 2)] if crops == 10 else list(out)
    for view, (y, x) in zip(views, offsets):
        np.testing.assert_array_equal(view[:, 0, 0, :2], [[y, x], [y, x]])
        np.testing.assert_array_equal(view[:, :, :, 2], np.broadcast_to(np.arange(2)[:, None, None], (2, size, size)))
    if crops == 3:
        assert offsets == [(2, 0), (2, 6), (2, 12)]
    if crops == 10:
        np.testing.assert_array_equal(out[1], out[0][:, :, ::-1, :])  # TSN order: crop, its flip, next crop ...


def test_eval_crops_resize_short_side_and_flip_flow_in_ten_crop():
    frames = np.full((1, 64, 80, 2), 100.0, np.float32)
    out = augment.eval_crops(tf.constant(frames), 28, 10, "flow").numpy()
    assert out.shape == (10, 1, 28, 28, 2)
    np.testing.assert_allclose(out[0], 100.0)
    np.testing.assert_allclose(out[1][..., 0], 155.0)  # flipped: x -> 255 - x
    np.testing.assert_allclose(out[1][..., 1], 100.0)
