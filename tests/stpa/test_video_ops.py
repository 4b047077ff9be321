"""Tests of `stpa.blocks.video_ops`: folding time into the batch with an unknown number of frames."""

import keras
import numpy as np
import tensorflow as tf

from stpa.blocks.video_ops import FlattenPositions, FoldTime, UnfoldTime


def test_fold_and_unfold_round_trip_with_unknown_frames():
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 5, 6)).astype(np.float32)
    fold, unfold = FoldTime(), UnfoldTime()

    @tf.function(input_signature=[tf.TensorSpec((None, None, 4, 5, 6))])
    def round_trip(clip):
        folded = fold(clip)
        return folded, unfold([folded * 2.0, clip])

    folded, back = round_trip(x)
    np.testing.assert_array_equal(folded.numpy()[1 * 3 + 2], x[1, 2])  # row b*K + k
    np.testing.assert_allclose(back.numpy(), 2 * x)


def test_layers_in_a_saved_model_serve_other_frame_counts(tmp_path):
    clip = keras.Input((None, 2, 2, 3))
    folded = FoldTime()(clip)
    doubled = keras.layers.Rescaling(2.0)(folded)
    model = keras.Model(clip, FlattenPositions()(UnfoldTime()([doubled, clip])))
    path = tmp_path / "m.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    x = np.arange(1 * 4 * 2 * 2 * 3, dtype=np.float32).reshape(1, 4, 2, 2, 3)
    np.testing.assert_array_equal(restored(x).numpy(), 2 * x.reshape(1, 16, 3))
