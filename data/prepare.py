r"""Raw videos -> frames + optical flow -> sharded SequenceExample records (command line).

    python -m data.prepare --dataset=ucf101 --raw_dir=/data/UCF101 --out_dir=/data/records/ucf101_s1 \
        --split=1 --flow=tvl1 --workers=16

writes ``OUT/train/`` and ``OUT/test/`` (``*.tfrecord`` shards, their ``.json`` indexes, ``manifest.json``,
``failures.txt``). Re-running with the same flags resumes: complete shards are skipped. Videos that cannot be read
are listed in ``failures.txt``, the rest is processed, and the command exits with status 1 and a summary.
On a cluster, run the same command on N machines with ``--task_index=i --num_tasks=N`` (shared ``--out_dir``), or
run ``python -m data.beam_prepare`` (same flags, an Apache Beam pipeline: Dataflow, Flink, Spark) for the same output.
See BUILD.md for the record format.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging

from data import extract, preparation, video_io
from data.datasets.base import DatasetLayoutError, DatasetSplits

# Flags recorded in each split's manifest: the ones that decide the records (not how the work is spread).
RECORDED_FLAGS = (
    "dataset", "raw_dir", "split", "flow", "frame_size", "jpeg_quality", "fps", "videos_per_shard",
    "boxes_pkl", "segments_dir", "class_names", "train_list", "test_list", "multi_label", "drop_multi_label",
    "rgb_template", "flow_x_template", "flow_y_template", "rawframes_start_index", "rawframes_fps",
)  # fmt: skip


def define_dataset_flags() -> None:
    """Defines the flags that say what to prepare and how (shared by `data.prepare` and `data.beam_prepare`)."""
    flags.DEFINE_enum("dataset", None, list(preparation.DATASETS), "Raw dataset layout.", required=True)
    flags.DEFINE_string("raw_dir", None, "Root of the raw dataset as published.", required=True)
    flags.DEFINE_string("out_dir", None, "Output root: one subdirectory per split.", required=True)
    flags.DEFINE_integer("split", 1, "Official split (1-3) for UCF101 / HMDB51 / UCF101-24.")
    flags.DEFINE_list("splits", list(preparation.SPLIT_NAMES), "Output splits to prepare.")
    flags.DEFINE_enum("flow", "tvl1", ["tvl1", "dis", "farneback", "none"], "Optical flow method.")
    flags.DEFINE_string(
        "frame_size", "340x256", "Stored frame size: WIDTHxHEIGHT (TSN: 340x256), a short side (256), or none."
    )
    flags.DEFINE_integer("jpeg_quality", 95, "JPEG quality of stored RGB and flow frames (OpenCV / dense_flow: 95).")
    flags.DEFINE_float("fps", None, "Resample videos to this frame rate (e.g. 10 for THUMOS14 as Meng et al.).")
    flags.DEFINE_integer("videos_per_shard", 50, "Videos per TFRecord shard.")
    flags.DEFINE_bool("retry_failed", False, "Redo complete shards that recorded failures.")
    flags.DEFINE_string(
        "boxes_pkl",
        None,
        "UCF101-24 UCF101v2-GT.pkl whose boxes go into the records (default RAW/UCF101v2-GT.pkl "
        "if present; 'none' to skip).",
    )
    flags.DEFINE_string(
        "segments_dir",
        None,
        "Folder of THUMOS-style <Class>_{val,test}.txt segment files (default RAW/annotations "
        "if present; 'none' to skip).",
    )
    flags.DEFINE_string("class_names", None, "Class names file (thumos14 / videos / rawframes).")
    flags.DEFINE_string(
        "flip_label_map_file",
        None,
        "JSON {class: mirrored class or null (never mirrored)} recorded in the manifests, for training's horizontal "
        "flip (default RAW/flip_label_map.json if present, as data.synthetic writes it; 'none' to skip).",
    )
    flags.DEFINE_string("train_list", None, "videos / rawframes: list file of the train split.")
    flags.DEFINE_string("test_list", None, "videos / rawframes: list file of the test split.")
    flags.DEFINE_bool("multi_label", None, "videos / rawframes: force multi-label (default: from the lists).")
    flags.DEFINE_bool("drop_multi_label", True, "thumos14: drop videos annotated with several classes.")
    flags.DEFINE_string("rgb_template", "img_{:05d}.jpg", "rawframes: RGB frame file names.")
    flags.DEFINE_string("flow_x_template", "flow_x_{:05d}.jpg", "rawframes: x flows (mmaction2 1.x: x_{:05d}.jpg)")
    flags.DEFINE_string("flow_y_template", "flow_y_{:05d}.jpg", "rawframes: y flows (mmaction2 1.x: y_{:05d}.jpg)")
    flags.DEFINE_integer("rawframes_start_index", 1, "rawframes: number of the first frame file.")
    flags.DEFINE_float("rawframes_fps", 25.0, "rawframes: frame rate recorded for frame folders.")


def _define_flags() -> None:
    define_dataset_flags()
    flags.DEFINE_integer("workers", os.cpu_count() or 1, "Extraction processes (0: in this process).")
    flags.DEFINE_integer("task_index", 0, "This task's index when the shards are divided among --num_tasks tasks.")
    flags.DEFINE_integer("num_tasks", 1, "Number of tasks (machines) dividing the shards.")
    flags.DEFINE_bool("progress", True, "Show progress bars.")


def load_from_flags(f: flags.FlagValues) -> tuple[DatasetSplits, extract.ExtractOptions, dict]:
    """Checks the flags of `define_dataset_flags` and parses the dataset, before any work.

    Returns:
      (the parsed dataset, the extraction options, the flags to record in the manifests).

    Raises:
      ValueError, ImportError, DatasetLayoutError: bad flags or raw data (the message says what to do).
    """
    frame_size = video_io.parse_frame_size(f.frame_size)
    preparation.check_flow_method(f.flow)
    if not 1 <= f.jpeg_quality <= 100:
        raise ValueError(f"--jpeg_quality must be in [1, 100], got {f.jpeg_quality}")
    if f.videos_per_shard < 1:
        raise ValueError(f"--videos_per_shard must be >= 1, got {f.videos_per_shard}")
    unknown = sorted(set(f.splits) - set(preparation.SPLIT_NAMES))
    if unknown:
        raise ValueError(f"--splits: unknown {unknown}; choose from {list(preparation.SPLIT_NAMES)}")
    dataset = preparation.load_dataset(
        f.dataset,
        f.raw_dir,
        split=f.split,
        boxes_pkl=f.boxes_pkl,
        segments_dir=f.segments_dir,
        class_names_file=f.class_names,
        train_list=f.train_list,
        test_list=f.test_list,
        multi_label=f.multi_label,
        drop_multi_label=f.drop_multi_label,
        flip_label_map_file=f.flip_label_map_file,
    )
    if f.dataset == "rawframes" and f["frame_size"].present:
        logging.warning("--frame_size is ignored for rawframes: their JPEGs are copied byte for byte.")
    options = extract.ExtractOptions(
        flow=f.flow,
        frame_size=frame_size,
        jpeg_quality=f.jpeg_quality,
        target_fps=f.fps,
        rgb_template=f.rgb_template,
        flow_x_template=f.flow_x_template,
        flow_y_template=f.flow_y_template,
        rawframes_start_index=f.rawframes_start_index,
        rawframes_fps=f.rawframes_fps,
    )
    return dataset, options, {name: f[name].value for name in RECORDED_FLAGS}


def main(argv: list[str]) -> int:
    """Command-line entry point; returns the exit status."""
    del argv
    f = flags.FLAGS
    try:
        dataset, options, recorded_flags = load_from_flags(f)
    except (ValueError, ImportError, DatasetLayoutError) as e:
        print(f"data.prepare: {e}", file=sys.stderr)
        return 2
    failed = 0
    lines = []
    for split in f.splits:
        tasks = dataset.splits.get(split, [])
        if not tasks:
            lines.append(f"{split}: no videos in this dataset/split, skipped")
            continue
        try:
            summary = preparation.prepare_split(
                tasks,
                split=split,
                out_dir=f.out_dir,
                dataset_name=f.dataset,
                class_names=dataset.class_names,
                multi_label=dataset.multi_label,
                options=options,
                raw_dir=f.raw_dir,
                workers=f.workers,
                videos_per_shard=f.videos_per_shard,
                task_index=f.task_index,
                num_tasks=f.num_tasks,
                retry_failed=f.retry_failed,
                flags=recorded_flags,
                progress=f.progress,
                flip_label_map=dataset.flip_label_map,
            )
        except ValueError as e:
            print(f"data.prepare: {e}", file=sys.stderr)
            return 2
        failed += len(summary.failures)
        split_dir = os.path.join(f.out_dir, split)
        state = "manifest written" if summary.manifest_written else "waiting for the other tasks' shards"
        lines.append(
            f"{split}: {summary.videos_written} videos ({summary.frames_written} frames) in "
            f"{summary.shards_written} new shard(s), {summary.shards_skipped} already complete, of "
            f"{summary.num_shards}; {len(summary.failures)} failed; {state}; {summary.seconds:.1f} s -> {split_dir}"
        )
        for source, reason in summary.failures[:20]:
            lines.append(f"    FAILED {source}: {reason}")
        if len(summary.failures) > 20:
            lines.append(f"    ... and {len(summary.failures) - 20} more in {split_dir}/failures.txt")
    print("data.prepare summary:\n  " + "\n  ".join(lines))
    if failed:
        print(
            f"data.prepare: {failed} video(s) could not be used (listed in failures.txt); the rest is in the records.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    _define_flags()
    app.run(lambda argv: sys.exit(main(argv)))
