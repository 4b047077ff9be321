"""Salient receptive fields (Sec. 4.4, Fig. 4-5): positions, centres, drawing, and `python -m stpa.visualize`."""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf

from data import records
from stpa import saliency, visualization
from stpa.engine import pictures as engine_pictures
from stpa.family import STPA, TSN
from tests.stpa.cli_fixtures import make_run_dir, write_tiny_records

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")


def _attention():
    """K = 2 frames of a 2x2 map: d = 4 output positions, n = 8 input positions (k, h, w) row-major."""
    attention = np.full((4, 8), 0.1)
    attention[0, 5] = 0.9  # m = 0 <- (k=1, h=0, w=1)
    attention[0, 2] = 0.6  # m = 0 <- (k=0, h=1, w=0)
    attention[3, 7] = 0.8  # m = 3 <- (k=1, h=1, w=1)
    return attention


def test_salient_positions_follow_the_flatten_order_and_threshold():
    attention = _attention()
    np.testing.assert_array_equal(saliency.salient_positions(attention, 2, 0.5, 0), [[0, 1, 0], [1, 0, 1]])
    np.testing.assert_array_equal(saliency.salient_positions(attention, 2, 0.7, 0), [[1, 0, 1]])  # Fig. 5's 0.7
    np.testing.assert_array_equal(
        saliency.salient_positions(attention, 2, 0.5, None), [[0, 1, 0], [1, 0, 1], [1, 1, 1]]
    )
    np.testing.assert_array_equal(saliency.salient_positions(attention, 2, 0.5, [3]), [[1, 1, 1]])
    assert saliency.salient_positions(attention, 2, 0.9, 0).shape == (0, 3)  # strictly greater
    with pytest.raises(ValueError, match="columns"):
        saliency.salient_positions(attention, 3, 0.5, 0)


def test_receptive_field_centres():
    centres = saliency.receptive_field_centres(np.array([[0, 1], [1, 0]]), (2, 2), (40, 60))
    np.testing.assert_allclose(centres, [[45.0, 10.0], [15.0, 30.0]])  # (x, y) = ((w+.5)*60/2, (h+.5)*40/2)


def test_render_salient_fields_draws_each_model_in_its_colour():
    frames = np.zeros((2, 40, 40, 3), np.uint8)
    image = saliency.render_salient_fields(frames, [_attention(), _attention()], threshold=0.5, positions=0, gap=2)
    assert image.shape == (2 * 40 + 2, 2 * 40 + 2, 3)
    # Frame k=1 of row 0 (model 1, blue): centre of (h=0, w=1) at x = 42 + 30, y = 10.
    np.testing.assert_array_equal(image[10, 42 + 30], saliency.SCALE_COLOURS[0])
    # Row 1 (model 2, green), frame k=0: centre of (h=1, w=0) at x = 10, y = 42 + 30.
    np.testing.assert_array_equal(image[42 + 30, 10], saliency.SCALE_COLOURS[1])
    # Nothing drawn where nothing is salient (frame 0, cell (0, 0)).
    np.testing.assert_array_equal(image[10, 10], [0, 0, 0])


def test_render_positions_one_tile_per_output_position():
    frame = np.zeros((40, 40, 3), np.uint8)
    image = saliency.render_positions(frame, _attention(), 1, [0, 3], num_frames=2, threshold=0.7, gap=2)
    assert image.shape == (40, 82, 3)
    np.testing.assert_array_equal(image[10, 30], saliency.SCALE_COLOURS[2])  # m=0 <- (1, 0, 1)
    np.testing.assert_array_equal(image[30, 42 + 30], saliency.SCALE_COLOURS[2])  # m=3 <- (1, 1, 1)


def test_tiles_pad_with_white_and_keep_each_image_in_place():
    small = np.zeros((3, 4, 3), np.uint8)
    narrow = np.full((5, 2, 3), 7, np.uint8)
    column = engine_pictures.tile_column([small, narrow], gap=2)
    assert column.shape == (10, 4, 3)
    assert (column[:3] == 0).all() and (column[3:5] == 255).all()  # the image, then the gap
    assert (column[5:, :2] == 7).all() and (column[5:, 2:] == 255).all()  # narrow image, padded on the right
    row = engine_pictures.tile_row([small, narrow], gap=2)
    assert row.shape == (5, 8, 3)
    assert (row[:3, :4] == 0).all() and (row[3:, :4] == 255).all() and (row[:, 4:6] == 255).all()
    assert (row[:, 6:] == 7).all()


def test_flow_frames_are_displayable_and_summary_images_are_made():
    flow = np.full((3, 16, 16, 4), 128, np.uint8)
    flow[:, 4:8, 4:8, 2] = 200  # motion in the middle field's x
    pictures = engine_pictures.displayable(flow)
    assert pictures.shape == (3, 16, 16, 3) and pictures[0, 5, 5].max() == 255 and pictures[0, 0, 0].max() < 5
    attention = np.zeros((1, 4, 12))
    attention[0, 0, 0] = 1.0
    images = STPA.summary_images({"attention": attention}, flow[:, :, :, :4].astype(np.float32))
    assert set(images) == {"attention/salient_fields_m0_t0.5", "attention/salient_fields_all_t0.7"}
    assert TSN.summary_images({"attention": attention}, flow.astype(np.float32)) == {}  # TSN has no attention


@pytest.mark.slow
def test_visualize_command_line_side_by_side(tmp_path_factory, tmp_path):
    records = write_tiny_records(str(tmp_path_factory.getbasetemp() / "stpa_cli_records"))
    runs = [make_run_dir(str(tmp_path / f"s{scales}"), scales=scales, seed=scales) for scales in (1, 2, 3)]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "stpa.visualize",
            f"--model_dirs={','.join(runs)}",
            f"--records_dir={records}",
            "--num_videos=2",
            "--frames=3",
            "--threshold=0.2",
            f"--out_dir={tmp_path}/fig",
            f"--tensorboard_dir={tmp_path}/tb",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    paths = out.stdout.split()
    assert len(paths) == 2 and all(p.endswith("_fig4.png") for p in paths)
    image = cv2.imread(paths[0])
    assert image.shape == (3 * 128 + 2 * 2, 3 * 128 + 2 * 2, 3)  # 1/2/3 scales x 3 frames, 32 px enlarged to 128
    # Each written PNG (lossless) holds exactly the in-process renderer's picture of the same clip and weights.
    from stpa import models
    from stpa.engine import checkpoints

    config = checkpoints.load_run_config(runs[0])
    probes = [models.attention_outputs_model(checkpoints.load_model(run, "last")) for run in runs]
    preprocess = models.preprocess_for(config["backbone"], config["modality"])
    clips = visualization.load_clips(config, records_dir=records, num_videos=2, num_frames=3)
    for (video_id, frames), path in zip(clips, paths):
        assert os.path.basename(path) == f"{video_id}_fig4.png"
        pictures = engine_pictures.enlarge(engine_pictures.displayable(frames))
        expected = saliency.render_salient_fields(
            pictures, visualization.attention_maps(probes, preprocess, frames), threshold=0.2, positions=0
        )
        np.testing.assert_array_equal(cv2.imread(path)[..., ::-1], expected)  # BGR on disk -> RGB
    assert os.listdir(tmp_path / "tb")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "stpa.visualize",
            f"--model_dirs={runs[-1]}",
            f"--records_dir={records}",
            "--figure=5",
            "--positions=0,3",
            f"--out_dir={tmp_path}/fig5",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (path,) = out.stdout.split()
    # Fig. 5 of the last model on frame 0 of the first clip (default --frames=5, --threshold=0.7): the renderer's
    # picture of the same clip and weights, pixel for pixel (PNG is lossless).
    (video_id, frames), *_ = visualization.load_clips(config, records_dir=records, num_videos=1, num_frames=5)
    assert os.path.basename(path) == f"{video_id}_fig5.png"
    pictures = engine_pictures.enlarge(engine_pictures.displayable(frames))
    expected = saliency.render_positions(
        pictures[0], visualization.attention_maps(probes[-1:], preprocess, frames)[0], 0, [0, 3], num_frames=5
    )
    assert expected.shape == (128, 2 * 128 + 2, 3)
    np.testing.assert_array_equal(cv2.imread(path)[..., ::-1], expected)


def _ucf_layout_records(root, source):
    """One test record whose id carries the class folder, as data.prepare writes UCF101 ids."""
    split_dir = os.path.join(root, "test")
    os.makedirs(split_dir, exist_ok=True)
    example = next(records.iterate_sequence_examples(os.path.join(source, "test")))
    example.context.feature[records.VIDEO_ID].bytes_list.value[0] = b"MoveRight/v_MoveRight_g01_c01"
    with tf.io.TFRecordWriter(os.path.join(split_dir, records.shard_name("test", 0, 1) + records.RECORD_SUFFIX)) as w:
        w.write(example.SerializeToString())
    manifest = records.read_manifest(os.path.join(source, "test"))
    records.write_manifest(split_dir, {**manifest, "counts": {"videos": 1}})
    return root


@pytest.mark.slow
def test_visualize_writes_into_the_class_subfolder_of_a_ucf101_id(tmp_path_factory, tmp_path):
    """Issue 12.3: the id "MoveRight/v_MoveRight_g01_c01" printed a path under figures/MoveRight/ but wrote nothing."""
    source = write_tiny_records(str(tmp_path_factory.getbasetemp() / "stpa_cli_records"))
    ucf = _ucf_layout_records(str(tmp_path / "ucf"), source)
    run = make_run_dir(str(tmp_path / "run"), scales=2, seed=4)
    command = [
        sys.executable,
        "-m",
        "stpa.visualize",
        f"--model_dirs={run}",
        f"--records_dir={ucf}",
        "--frames=3",
        "--threshold=0.0",
    ]
    out = subprocess.run(
        command + [f"--out_dir={tmp_path}/figures"], capture_output=True, text=True, env=ENV, timeout=180
    )
    assert out.returncode == 0, out.stderr[-3000:]
    expected = os.path.abspath(tmp_path / "figures" / "MoveRight" / "v_MoveRight_g01_c01_fig4.png")
    assert out.stdout.split() == [expected]
    # The renderer's Fig. 4 of the same clip and weights (one model, threshold 0), pixel for pixel.
    from stpa import models
    from stpa.engine import checkpoints

    config = checkpoints.load_run_config(run)
    ((video_id, frames),) = visualization.load_clips(config, records_dir=ucf, num_videos=1, num_frames=3)
    assert video_id == "MoveRight/v_MoveRight_g01_c01"
    probe = models.attention_outputs_model(checkpoints.load_model(run, "last"))
    attention = visualization.attention_maps(
        [probe], models.preprocess_for(config["backbone"], config["modality"]), frames
    )
    rendered = saliency.render_salient_fields(
        engine_pictures.enlarge(engine_pictures.displayable(frames)), attention, threshold=0.0, positions=0
    )
    assert rendered.shape == (128, 3 * 128 + 2 * 2, 3)
    np.testing.assert_array_equal(cv2.imread(expected)[..., ::-1], rendered)  # BGR on disk -> RGB

    (tmp_path / "blocked").mkdir()
    (tmp_path / "blocked" / "MoveRight").write_text("a file where the class folder should be")
    out = subprocess.run(
        command + [f"--out_dir={tmp_path}/blocked"], capture_output=True, text=True, env=ENV, timeout=180
    )
    assert out.returncode != 0 and out.stdout.strip() == ""  # nothing reported as written
    assert "could not write" in out.stderr and "MoveRight/v_MoveRight_g01_c01_fig4.png" in out.stderr
    assert "Traceback" not in out.stderr


def test_figure_path_keeps_the_class_folder_inside_out_dir():
    assert visualization.figure_path("figs", "MoveRight/v_MoveRight_g01_c01", 5) == os.path.join(
        "figs", "MoveRight", "v_MoveRight_g01_c01_fig5.png"
    )
    with pytest.raises(ValueError, match="outside --out_dir"):
        visualization.figure_path("figs", "../../etc/v", 4)
    with pytest.raises(ValueError, match="outside --out_dir"):
        visualization.figure_path("figs", "/tmp/v", 4)
