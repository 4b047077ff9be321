"""st_attn.visualize: pixel values of overlays, strips and boxes, PNG/GIF files, the TensorBoard tensor, the CLI."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from data import files
from st_attn import models, visualize
from st_attn.family import ST_ATTN
from stpa.engine import pictures
from tests.st_attn import records_helper


def test_overlay_blends_the_jet_colour_of_the_mask():
    frame = np.full((8, 8, 3), 100, np.uint8)
    mask = np.zeros((4, 4))
    mask[:, 2:] = 1.0
    out = pictures.overlay_mask(frame, mask, alpha=0.5)  # the one overlay (engine), ST-attn's strips use it
    # Jet: 0 -> dark blue (0, 0, 128), 1 -> dark red (128, 0, 0) in RGB.
    np.testing.assert_array_equal(out[0, 0], [50, 50, 114])
    np.testing.assert_array_equal(out[0, 7], [114, 50, 50])


def test_attention_strip_layout_and_brightness():
    frames = np.zeros((4, 9, 8, 3), np.uint8)
    weights = np.array([[0.1, 0.2, 0.6, 0.1]] * 4)
    strip = visualize.attention_strip(frames, np.ones((4, 3, 3, 1)) * 0.5, weights, gap=2)
    assert strip.shape == (9 + 2 + 9 + 2 + 3, 4 * 8 + 3 * 2, 3)
    tiles = strip[-3:]  # the temporal row: frame 2 is the brightest (255), frames 0 and 3 the darkest (0)
    assert tiles[0, 2 * 10 + 1, 0] == 255 and tiles[0, 1, 0] == 0 and tiles[0, 3 * 10 + 1, 0] == 0
    assert tiles[0, 10 + 1, 0] == round(255 * 0.1 / 0.5)
    assert visualize.attention_strip(frames, max_frames=2).shape == (9, 2 * 8 + 2, 3)


def test_boxes_are_drawn_in_their_colours():
    frame = np.zeros((20, 20, 3), np.uint8)
    out = visualize.draw_boxes(
        frame, predicted=np.array([0.5, 0.5, 1.0, 1.0]), ground_truth=np.array([[0.0, 0.0, 0.5, 0.5]]), thickness=1
    )
    np.testing.assert_array_equal(out[0, 5], visualize.GROUND_TRUTH_COLOUR)  # top edge of the GT box
    np.testing.assert_array_equal(out[19, 15], visualize.PREDICTED_COLOUR)  # bottom edge of the prediction
    np.testing.assert_array_equal(out[5, 5], [0, 0, 0])  # inside: untouched
    crop = visualize.to_crop_coordinates(np.array([[0.25, 0.0, 0.75, 0.5]]), (0.25, 0.0, 0.75, 1.0))
    np.testing.assert_allclose(crop, [[0.0, 0.0, 1.0, 0.5]])


def test_png_gif_and_summary_tensor(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, size=(3, 8, 8, 3), dtype=np.uint8)
    mask = np.random.default_rng(1).uniform(size=(3, 2, 2))
    weights = np.full((3, 3), 1 / 3)
    animation = visualize.animation_frames(frames, mask, weights, [None] * 3, [np.zeros((0, 4))] * 3)
    gif = visualize.save_gif(animation, str(tmp_path / "a" / "clip.gif"))
    with Image.open(gif) as image:
        assert image.n_frames == 3
    png = visualize.save_png(animation[0], str(tmp_path / "frame.png"))
    np.testing.assert_array_equal(np.asarray(Image.open(png).convert("RGB")), animation[0])
    # The family's TensorBoard picture: the Fig. 4 strip of the first clip; its first tile is frame 0 enlarged 12x.
    outputs = {"mask": mask[None, ..., None].repeat(2, 0), "temporal_weights": weights[None].repeat(2, 0)}
    images = ST_ATTN.summary_images(outputs, frames.astype(np.float32))
    strip = images["attention/st_attn_strip"]
    assert strip.dtype == np.uint8 and strip.ndim == 3 and strip.shape[-1] == 3
    np.testing.assert_array_equal(strip[:96, :96], np.repeat(np.repeat(frames[0], 12, axis=0), 12, axis=1))
    histogram = ST_ATTN.summary_histograms(outputs)["attention/temporal_weights"]
    np.testing.assert_allclose(histogram, [1 / 3] * 3)


def test_png_and_gif_writers_fail_naming_the_path(tmp_path):
    picture = np.full((4, 4, 3), 200, np.uint8)
    (tmp_path / "pictures").write_text("a file where the folder should be")
    with pytest.raises(files.WriteError, match=r"could not write .*pictures/v1_attention\.png: a file stands"):
        visualize.save_png(picture, str(tmp_path / "pictures" / "v1_attention.png"))
    with pytest.raises(files.WriteError, match=r"pictures/v1_attention\.gif"):
        visualize.save_gif([picture, picture], str(tmp_path / "pictures" / "v1_attention.gif"))
    with pytest.raises(ValueError, match="no frames"):
        visualize.save_gif([], str(tmp_path / "empty.gif"))
    assert sorted(os.listdir(tmp_path)) == ["pictures"]


@pytest.mark.slow
def test_command_line_writes_pictures(tmp_path):
    examples = [records_helper.video(f"v{i}", i % 2, num_frames=10, seed=i) for i in range(2)]
    records_helper.write_split(str(tmp_path / "records" / "test"), examples)
    frames = keras.Input((16, 16, 3))
    extractor = keras.Model(frames, keras.layers.Conv2D(4, 3, strides=4, padding="same")(frames))
    model = models.build_st_attn_network(
        2, feature_extractor=extractor, mask_filters=(4,), lstm_units=4, init_filters=4, attention_units=4
    )
    model.save(str(tmp_path / "model.keras"))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "st_attn.visualize",
            f"--model_path={tmp_path / 'model.keras'}",
            f"--records_dir={tmp_path / 'records'}",
            "--backbone=tiny",
            "--input_size=16",
            "--num_frames=5",
            "--video_ids=v1",
            f"--out_dir={tmp_path / 'pictures'}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert sorted(os.listdir(tmp_path / "pictures")) == ["v1_attention.gif", "v1_attention.png", "v1_boxes.png"]
    with Image.open(tmp_path / "pictures" / "v1_attention.gif") as image:
        assert image.n_frames == 5
