"""st_attn.visualize: pixel values of overlays, strips and boxes, PNG/GIF files, the TensorBoard tensor, the CLI."""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from data import files, records
from st_attn import visualize
from st_attn.family import ST_ATTN
from stpa.engine import pictures
from tests.st_attn import known_attention, records_helper


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


def _read_rgb(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@pytest.mark.slow
def test_command_line_writes_the_renderers_pictures(tmp_path):
    """The written PNGs are the in-process renderers' pictures of the same clip and attention, pixel for pixel.

    The saved model's attention is fixed by hand (every mask entry 0.75: the last mask convolution's kernel zeroed,
    its bias logit(0.75); uniform temporal weights: v = 0), so the expected pictures need only the clip, cut here from
    the record's JPEGs: 10 frames, 5 TSN samples at frames 1, 3, 5, 7, 9; the 40x48 frame is resized to 18x22 for a
    16 px input (16 * 256 // 224 = 18), whose centre 16x16 is rows 2..37, columns 7..40 of the stored frame.
    """
    examples = [records_helper.video(f"v{i}", i % 2, num_frames=10, seed=i) for i in range(2)]
    records_helper.write_split(str(tmp_path / "records" / "test"), examples)
    model = known_attention.known_attention_model(input_size=16, feature_filters=4, mask_filters=(4,), mask_value=0.75)
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
    out = tmp_path / "pictures"
    assert sorted(os.listdir(out)) == ["v1_attention.gif", "v1_attention.png", "v1_boxes.png"]

    jpegs = records.example_to_dict(examples[1], with_frames=True)["frames"]
    clip = np.stack(
        [
            cv2.resize(
                cv2.imdecode(np.frombuffer(jpegs[t], np.uint8), cv2.IMREAD_COLOR)[2:38, 7:41, ::-1],
                (16, 16),
                interpolation=cv2.INTER_LINEAR,
            )
            for t in (1, 3, 5, 7, 9)
        ]
    )
    shown = visualize.displayable(clip)  # (5, 96, 96, 3): enlarged 6x
    mask = np.full((5, 4, 4), 0.75)  # a 4x4 map: the stride-4 extractor on 16 px
    weights = np.full((5, 5), 0.2)
    whole_crop = np.array([0.0, 0.0, 1.0, 1.0])  # every mask entry above 0.5
    # The box (0.5, 0.25, 0.875, 0.75) of frames 3..8 in the crop (3/22, 1/18, 19/22, 17/18), clipped at 1.
    in_crop = np.array([[0.5, 3.5 / 16, 1.0, 12.5 / 16]])
    truth = [np.zeros((0, 4)), in_crop, in_crop, in_crop, np.zeros((0, 4))]

    strip = _read_rgb(out / "v1_attention.png")
    np.testing.assert_array_equal(strip, visualize.attention_strip(shown, mask, weights, max_frames=10))
    assert strip.shape == (96 + 2 + 96 + 2 + 32, 5 * 96 + 4 * 2, 3)
    np.testing.assert_array_equal(strip[-32:, :96], np.full((32, 96, 3), 255))  # uniform attention: all bright
    boxes = _read_rgb(out / "v1_boxes.png")
    np.testing.assert_array_equal(boxes, visualize.box_strip(shown, [whole_crop] * 5, truth))
    np.testing.assert_array_equal(boxes[0, 0], visualize.PREDICTED_COLOUR)  # the whole-crop box's corner
    np.testing.assert_array_equal(boxes[int(3.5 / 16 * 96), 98 + 60], visualize.GROUND_TRUTH_COLOUR)  # its top edge
    # The GIF holds the same animation, up to its 256-colour palette.
    expected = visualize.animation_frames(shown, mask, weights, [whole_crop] * 5, truth)
    with Image.open(out / "v1_attention.gif") as image:
        assert image.n_frames == 5
        for t, picture in enumerate(expected):
            image.seek(t)
            decoded = np.asarray(image.convert("RGB"), np.float64)
            assert decoded.shape == picture.shape
            assert np.abs(decoded - picture).mean() < 2.0, t
