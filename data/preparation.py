"""Raw dataset -> sharded SequenceExample records: the library behind ``python -m data.prepare``.

Work is split into shards fixed in advance (video i of a split goes to shard ``i % num_shards``, so every shard mixes
classes). Worker processes (`data.extract`, no TensorFlow) decode videos, compute flow and encode JPEGs; this process
writes each shard to a temporary name, writes its ``.offsets`` (`data.frame_offsets`) and ``.json`` index, then
renames the shard into place. A shard file
therefore exists only when complete, and a re-run with the same settings skips it: a killed run loses at most the
shards in flight. Shards can also be divided among machines (``task_index`` / ``num_tasks``: shard s belongs to task
``s % num_tasks``); whichever task completes the last shard writes ``manifest.json`` and ``failures.txt``.

The steps are shared with the Apache Beam pipeline `data.beam_prepare` (same plan, extraction and writers, hence the
same bytes): `plan_split` (checks, shard assignment, fingerprint), `completed_shard` (resume), `write_shard`,
`remove_leftovers` and `finalize_split`. Output paths go through `tf.io.gfile` (local, ``gs://`` ...).

TensorFlow is imported lazily here: this module is imported by the spawned worker processes' main module.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import logging
import math
import multiprocessing
import os
import time
from collections.abc import Iterable
from typing import Any

from data import extract as extract_lib
from data import flow as flow_lib
from data.datasets import annotations, charades, hmdb51, lists, thumos14, ucf101
from data.datasets.base import (
    FLIP_LABEL_MAP_FILE,
    DatasetLayoutError,
    DatasetSplits,
    VideoTask,
    check_unique_video_ids,
)

DATASETS = ("ucf101", "ucf101_24", "hmdb51", "charades", "thumos14", "rawframes", "videos")
SPLIT_NAMES = ("train", "test")


@dataclasses.dataclass
class SplitSummary:
    """What one run did to one split."""

    split: str
    num_shards: int
    shards_written: int = 0
    shards_skipped: int = 0
    videos_written: int = 0
    frames_written: int = 0
    failures: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (source, reason), this task's shards
    manifest_written: bool = False
    seconds: float = 0.0


def read_flip_label_map(path: str, class_names: list[str]) -> dict[str, str | None]:
    """A ``flip_label_map.json`` ({class: mirrored class or null}), checked against the dataset's classes.

    Raises:
      DatasetLayoutError: not a JSON object of class names, or not a valid map (`data.augment.flip_targets`).
    """
    from data import augment

    try:
        with open(path) as f:
            mapping = json.load(f)
        if not isinstance(mapping, dict):
            raise ValueError("it is not a JSON object {class: mirrored class or null}")
        augment.flip_targets(class_names, mapping)
    except ValueError as error:  # json.JSONDecodeError is a ValueError
        raise DatasetLayoutError(f"{path}: {error}; fix it, or pass --flip_label_map_file=none.") from error
    return {str(name): mirror for name, mirror in mapping.items()}


def load_dataset(
    dataset: str,
    raw_dir: str,
    *,
    split: int = 1,
    boxes_pkl: str | None = None,
    segments_dir: str | None = None,
    class_names_file: str | None = None,
    train_list: str | None = None,
    test_list: str | None = None,
    multi_label: bool | None = None,
    drop_multi_label: bool = True,
    flip_label_map_file: str | None = None,
) -> DatasetSplits:
    """Parses a raw dataset and attaches optional localisation ground truth.

    Args:
      dataset: one of `DATASETS`.
      raw_dir: the raw dataset root.
      split: official split 1-3 (UCF101, HMDB51, UCF101-24).
      boxes_pkl: ``UCF101v2-GT.pkl`` whose boxes go into the records ("none" disables; default:
        ``RAW/UCF101v2-GT.pkl`` if present).
      segments_dir: folder of THUMOS-style ``<Class>_{val,test}.txt`` files whose segments go into the records
        ("none" disables; default: ``RAW/annotations`` if present).
      class_names_file: class names for thumos14 / videos / rawframes.
      train_list: list file of the train split (videos / rawframes).
      test_list: list file of the test split.
      multi_label: force multi-label (videos / rawframes).
      drop_multi_label: THUMOS14: drop videos with several classes (Meng et al.).
      flip_label_map_file: JSON {class: mirrored class or null} recorded in the manifests ("none" disables;
        default: ``RAW/flip_label_map.json`` if present, as `data.synthetic` writes it).

    Returns:
      the parsed dataset.

    Raises:
      DatasetLayoutError: the raw data is not in the expected layout, or two videos of a split share an id (the
        message says what to do).
    """
    if dataset not in DATASETS:
        raise ValueError(f"--dataset must be one of {', '.join(DATASETS)}; got {dataset!r}")
    if not os.path.isdir(raw_dir):
        raise DatasetLayoutError(f"--raw_dir {raw_dir} is not a directory")

    def optional(path: str | None, default: str) -> str | None:
        if path is not None:
            return None if path.lower() in ("", "none") else path
        candidate = os.path.join(raw_dir, default)
        return candidate if os.path.exists(candidate) else None

    boxes_pkl = optional(boxes_pkl, "UCF101v2-GT.pkl")
    segments_dir = optional(segments_dir, "annotations")
    flip_label_map_file = optional(flip_label_map_file, FLIP_LABEL_MAP_FILE)
    class_names = None
    if class_names_file:
        from data.datasets.base import parse_class_names_file

        class_names = parse_class_names_file(class_names_file)

    if dataset == "ucf101":
        parsed = ucf101.load(raw_dir, split)
    elif dataset == "ucf101_24":
        if boxes_pkl is None:
            raise DatasetLayoutError("--dataset=ucf101_24 needs --boxes_pkl=PATH/UCF101v2-GT.pkl")
        parsed = ucf101.load_ucf101_24(raw_dir, boxes_pkl, split)
        boxes_pkl = None  # already attached
    elif dataset == "hmdb51":
        parsed = hmdb51.load(raw_dir, split)
    elif dataset == "charades":
        parsed = charades.load(raw_dir)
        segments_dir = None  # Charades carries its own segments
    elif dataset == "thumos14":
        parsed = thumos14.load(
            raw_dir, segments_dir=segments_dir, class_names=class_names, drop_multi_label=drop_multi_label
        )
        segments_dir = None  # already attached
    else:
        parsed = lists.load(
            raw_dir,
            kind=dataset,
            train_list=train_list,
            test_list=test_list,
            class_names_file=class_names_file,
            multi_label=multi_label,
        )
    boxes = None
    if boxes_pkl is not None:
        boxes = annotations.boxes_from_ucf101_24(annotations.load_ucf101_24_pickle(boxes_pkl))
    for split_name, tasks in parsed.splits.items():
        check_unique_video_ids(split_name, tasks, raw_dir)  # before any work, for every split
    if flip_label_map_file is not None:
        parsed.flip_label_map = read_flip_label_map(flip_label_map_file, parsed.class_names)
    segments = annotations.load_segment_files(segments_dir, parsed.class_names) if segments_dir else None
    if boxes is not None or segments is not None:
        counts = annotations.attach(parsed, boxes=boxes, segments=segments)
        logging.info(
            "Ground truth attached: boxes for %d videos (%s), segments for %d videos (%s).",
            counts["boxes"],
            boxes_pkl,
            counts["segments"],
            segments_dir,
        )
    return parsed


def _fingerprint(
    dataset_name: str, split: str, tasks: list[VideoTask], class_names: list[str], options: dict, num_shards: int
) -> str:
    """Hash of everything that decides the split's records (not workers, not task partitioning)."""
    content = json.dumps(
        {
            "dataset": dataset_name,
            "split": split,
            "videos": [(t.video_id, list(t.labels)) for t in tasks],
            "classes": class_names,
            "options": options,
            "num_shards": num_shards,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(content.encode()).hexdigest()[:16]


def _options_dict(options: extract_lib.ExtractOptions) -> dict[str, Any]:
    values = dataclasses.asdict(options)
    if isinstance(values["frame_size"], tuple):
        values["frame_size"] = list(values["frame_size"])
    return values


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


@dataclasses.dataclass(frozen=True)
class SplitPlan:
    """How one split is cut into shards and where they go: decided once, before any work, by every path.

    Both `prepare_split` (local processes, ``--task_index/--num_tasks``) and `data.beam_prepare` (an Apache Beam
    pipeline) work from a plan, so they write the same files. It holds no videos (``tasks`` are passed beside it):
    it is small enough to ship to every Beam worker.

    Attributes:
      split: output split name ("train" / "test").
      split_dir: ``out_dir/<split>`` (local path or any `tf.io.gfile` URL such as ``gs://``).
      dataset_name: recorded in the manifest.
      class_names: the dataset's classes.
      multi_label: recorded in the manifest.
      options: extraction options.
      raw_dir: root that record ``video/source`` paths are made relative to.
      num_shards: shards of the split; video i of the split goes to shard ``i % num_shards``.
      fingerprint: hash of everything that decides the records (`_fingerprint`).
      flip_label_map: recorded in the manifest (not in the fingerprint: it changes no record).
    """

    split: str
    split_dir: str
    dataset_name: str
    class_names: list[str]
    multi_label: bool
    options: extract_lib.ExtractOptions
    raw_dir: str
    num_shards: int
    fingerprint: str
    flip_label_map: dict[str, str | None] | None = None

    @property
    def options_dict(self) -> dict[str, Any]:
        """The extraction options as recorded in the manifest."""
        return _options_dict(self.options)

    def shard_tasks(self, tasks: list[VideoTask], index: int) -> list[VideoTask]:
        """The videos of shard ``index``, in the order they are written: every ``num_shards``-th of the split."""
        return tasks[index :: self.num_shards]

    def shard_paths(self, index: int) -> tuple[str, str]:
        """(record path, ``.json`` index path) of shard ``index``."""
        from data import records

        base = os.path.join(self.split_dir, records.shard_name(self.split, index, self.num_shards))
        return base + records.RECORD_SUFFIX, base + ".json"


def plan_split(
    tasks: list[VideoTask],
    *,
    split: str,
    out_dir: str,
    dataset_name: str,
    class_names: list[str],
    multi_label: bool,
    options: extract_lib.ExtractOptions,
    raw_dir: str = "",
    videos_per_shard: int = 50,
    flip_label_map: dict[str, str | None] | None = None,
) -> SplitPlan:
    """Checks a split's videos and output folder and decides its shards (creates ``out_dir/<split>``).

    Args:
      tasks: the split's videos, in list order.
      split: output split name.
      out_dir: output root (local path or `tf.io.gfile` URL).
      dataset_name: recorded in the manifest.
      class_names: the dataset's classes.
      multi_label: recorded in the manifest.
      options: extraction options.
      raw_dir: root that record ``video/source`` paths are made relative to.
      videos_per_shard: videos per shard (the last shards may hold one fewer).
      flip_label_map: recorded in the manifest.

    Returns:
      the split's `SplitPlan`.

    Raises:
      DatasetLayoutError: two videos of the split share an id.
      ValueError: ``out_dir/<split>`` holds shards prepared with other settings.
    """
    from data import records

    check_unique_video_ids(split, tasks, raw_dir)
    if videos_per_shard < 1:
        raise ValueError(f"videos_per_shard must be >= 1, got {videos_per_shard}")
    split_dir = os.path.join(out_dir, split)
    gfile = _gfile()
    gfile.makedirs(split_dir)
    num_shards = max(1, math.ceil(len(tasks) / videos_per_shard))
    fingerprint = _fingerprint(dataset_name, split, tasks, class_names, _options_dict(options), num_shards)
    plan = SplitPlan(
        split=split,
        split_dir=split_dir,
        dataset_name=dataset_name,
        class_names=list(class_names),
        multi_label=multi_label,
        options=options,
        raw_dir=raw_dir,
        num_shards=num_shards,
        fingerprint=fingerprint,
        flip_label_map=flip_label_map or None,
    )
    names = [n for n in sorted(gfile.listdir(split_dir)) if n.endswith(".json") and n != records.MANIFEST_NAME]
    with concurrent.futures.ThreadPoolExecutor(32) as pool:  # thousands of small reads on gs:// when resuming
        indices = pool.map(_read_index, [os.path.join(split_dir, name) for name in names])
        stale = [
            name for name, index in zip(names, indices) if (index or {}).get("fingerprint", fingerprint) != fingerprint
        ]
    if stale:
        raise ValueError(
            f"{split_dir} holds shards prepared with other settings (dataset, split, videos, classes, flow, frame "
            f"size, JPEG quality, fps or videos_per_shard differ; e.g. {stale[0]}). Use another "
            "--out_dir, or delete that directory to start over."
        )
    return plan


def _read_index(path: str) -> dict | None:
    import tensorflow as tf

    try:
        with tf.io.gfile.GFile(path, "r") as f:
            return json.load(f)
    except (OSError, ValueError, tf.errors.OpError):
        return None


def completed_shard(plan: SplitPlan, index: int, *, retry_failed: bool = False) -> dict | None:
    """The ``.json`` index of shard ``index`` if the shard is complete and is to be kept, else None (write it).

    A shard is complete when its record file exists (it is renamed into place last) and its index reads back; with
    ``retry_failed`` a complete shard that recorded failures is written again.
    """
    record_path, index_path = plan.shard_paths(index)
    if not _gfile().exists(record_path):
        return None
    shard_index = _read_index(index_path)
    if shard_index is None or (retry_failed and shard_index["failures"]):
        return None
    return shard_index


def remove_leftovers(plan: SplitPlan, indices: list[int] | None = None) -> int:
    """Deletes temporary files that killed runs left (``<shard>.tfrecord.tmp-*``, ``.offsets.tmp-*``, ``.json.tmp-*``).

    Only call it while no other process writes the files concerned.

    Args:
      plan: the split.
      indices: the shards whose leftovers go; None: all of the split, and those of the manifest and failures list.

    Returns:
      the number of files deleted.
    """
    from data import records

    gfile = _gfile()
    shards = {
        records.shard_name(plan.split, s, plan.num_shards)
        for s in (range(plan.num_shards) if indices is None else indices)
    }
    summaries = {records.MANIFEST_NAME, records.FAILURES_NAME} if indices is None else set()
    removed = 0
    for name in gfile.listdir(plan.split_dir):
        final_name, temporary, _ = name.partition(records.TEMPORARY_INFIX)
        if temporary and (final_name in summaries or final_name.partition(".")[0] in shards):
            gfile.remove(os.path.join(plan.split_dir, name))  # half-written by a killed run
            removed += 1
    return removed


def write_shard(
    plan: SplitPlan, index: int, results: Iterable[extract_lib.ExtractedVideo | extract_lib.ExtractionFailure]
) -> dict:
    """Writes shard ``index``: records to a temporary name, its ``.offsets`` and ``.json`` index, then the rename.

    The single writer of both paths (local and Beam): the same results give the same bytes.

    Args:
      plan: the split.
      index: the shard.
      results: extraction results of `SplitPlan.shard_tasks`, in that order (failures go to the index); an
        iterator is consumed as the records are written (one video in memory at a time).

    Returns:
      the shard's ``.json`` index as written: ``{"shard", "fingerprint", "videos": [...], "failures": [...]}``.
    """
    import tensorflow as tf

    from data import frame_offsets, records

    record_path, index_path = plan.shard_paths(index)
    temporary = records.temporary_name(record_path)
    videos, failures = [], []
    offsets = frame_offsets.OffsetsIndex()
    with tf.io.TFRecordWriter(temporary) as writer:
        for result in results:
            task = result.task
            source = os.path.relpath(task.source, plan.raw_dir) if plan.raw_dir else task.source
            if isinstance(result, extract_lib.ExtractionFailure):
                failures.append({"video_id": task.video_id, "source": task.source, "reason": result.reason})
                continue
            example = records.make_sequence_example(
                video_id=task.video_id,
                labels=list(task.labels),
                label_names=[plan.class_names[i] for i in task.labels],
                frames=result.frames,
                fps=result.fps,
                height=result.height,
                width=result.width,
                flow_x=result.flow_x,
                flow_y=result.flow_y,
                source=source,
                boxes=result.boxes,
                segments=task.segments,
                segment_labels=task.segment_labels,
            )
            serialized = example.SerializeToString(deterministic=True)
            writer.write(serialized)
            offsets.add(serialized)
            videos.append(
                {
                    "video_id": task.video_id,
                    "labels": list(task.labels),
                    "num_frames": len(result.frames),
                    "num_flow_frames": len(result.flow_x),
                    "height": result.height,
                    "width": result.width,
                    "has_boxes": result.boxes is not None,
                    "has_segments": task.segments is not None and len(task.segments) > 0,
                }
            )
    offsets.write(frame_offsets.offsets_path(record_path))
    shard_index = {
        "shard": os.path.basename(record_path),
        "fingerprint": plan.fingerprint,
        "videos": videos,
        "failures": failures,
    }
    records.write_json_atomic(index_path, shard_index)
    tf.io.gfile.rename(temporary, record_path, overwrite=True)
    return shard_index


def finalize_split(plan: SplitPlan, flags: dict, shard_indices: list[dict] | None = None) -> bool:
    """Writes ``manifest.json`` and ``failures.txt`` if every shard of the split is complete. Returns whether it did.

    Args:
      plan: the split.
      flags: recorded in the manifest.
      shard_indices: the ``.json`` index of every shard, in shard order, when the caller has them all (a Beam
        pipeline collects them from its workers); None: read from ``split_dir``, checking every shard is there.
    """
    from data import records

    gfile = _gfile()
    if shard_indices is None:
        shard_indices = []
        for s in range(plan.num_shards):
            record_path, index_path = plan.shard_paths(s)
            shard_index = _read_index(index_path)
            if not gfile.exists(record_path) or shard_index is None:
                return False
            shard_indices.append(shard_index)
    if len(shard_indices) != plan.num_shards or any(i.get("fingerprint") != plan.fingerprint for i in shard_indices):
        return False
    class_names = plan.class_names
    options = plan.options_dict
    videos = [v for index in shard_indices for v in index["videos"]]
    failures = [f for index in shard_indices for f in index["failures"]]
    per_class = {name: 0 for name in class_names}
    for video in videos:
        for label in video["labels"]:
            per_class[class_names[label]] += 1
    manifest = {
        "format_version": records.FORMAT_VERSION,
        "dataset": plan.dataset_name,
        "split": plan.split,
        "class_names": class_names,
        "num_classes": len(class_names),
        "multi_label": plan.multi_label,
        **({"flip_label_map": plan.flip_label_map} if plan.flip_label_map else {}),
        "counts": {
            "videos": len(videos),
            "failed": len(failures),
            "frames": sum(v["num_frames"] for v in videos),
            "flow_frames": sum(v["num_flow_frames"] for v in videos),
            "per_class": per_class,
        },
        "num_shards": plan.num_shards,
        "shards": [os.path.basename(plan.shard_paths(s)[0]) for s in range(plan.num_shards)],
        "has_flow": any(v["num_flow_frames"] > 0 for v in videos),
        "has_boxes": any(v["has_boxes"] for v in videos),
        "has_segments": any(v["has_segments"] for v in videos),
        "flow": {
            "method": options["flow"],
            "bound": options["flow_bound"],
            "quantisation": "u8 = round(255 * (clip(v, -bound, bound) + bound) / (2 * bound)); JPEG per component",
        },
        "frame_size": options["frame_size"],
        "jpeg_quality": options["jpeg_quality"],
        "fps": options["target_fps"],
        "extract_options": options,
        "flags": flags,
        "fingerprint": plan.fingerprint,
    }
    failures_path = os.path.join(plan.split_dir, records.FAILURES_NAME)
    temporary = records.temporary_name(failures_path)
    with gfile.GFile(temporary, "w") as f:
        f.write("".join(f"{failure['source']}\t{failure['reason']}\n" for failure in failures))
    gfile.rename(temporary, failures_path, overwrite=True)
    records.write_manifest(plan.split_dir, manifest)
    return True


def prepare_split(
    tasks: list[VideoTask],
    *,
    split: str,
    out_dir: str,
    dataset_name: str,
    class_names: list[str],
    multi_label: bool,
    options: extract_lib.ExtractOptions,
    raw_dir: str = "",
    workers: int = 0,
    videos_per_shard: int = 50,
    task_index: int = 0,
    num_tasks: int = 1,
    retry_failed: bool = False,
    flags: dict | None = None,
    progress: bool = True,
    flip_label_map: dict[str, str | None] | None = None,
) -> SplitSummary:
    """Writes (or completes) ``out_dir/<split>/``: the shards of this task, then the manifest if all are complete.

    Args:
      tasks: the split's videos, in list order.
      split: output split name ("train" / "test").
      out_dir: output root.
      dataset_name: recorded in the manifest.
      class_names: the dataset's classes.
      multi_label: recorded in the manifest.
      options: extraction options.
      raw_dir: root that record ``video/source`` paths are made relative to.
      workers: worker processes (0: extract in this process).
      videos_per_shard: videos per shard (the last shards may hold one fewer).
      task_index: this task's index in [0, num_tasks).
      num_tasks: number of tasks sharing the work (machines of a cluster, or local processes).
      retry_failed: redo complete shards that recorded failures.
      flags: recorded in the manifest.
      progress: show a tqdm progress bar.
      flip_label_map: recorded in the manifest (`DatasetSplits.flip_label_map`).

    Returns:
      a `SplitSummary`.

    Raises:
      DatasetLayoutError: two videos of the split share an id.
      ValueError: bad task partition, or ``out_dir/<split>`` holds shards prepared with other settings.
    """
    from tqdm import tqdm

    if not 0 <= task_index < num_tasks:
        raise ValueError(f"--task_index must be in [0, --num_tasks={num_tasks}), got {task_index}")
    start_time = time.perf_counter()
    plan = plan_split(
        tasks,
        split=split,
        out_dir=out_dir,
        dataset_name=dataset_name,
        class_names=class_names,
        multi_label=multi_label,
        options=options,
        raw_dir=raw_dir,
        videos_per_shard=videos_per_shard,
        flip_label_map=flip_label_map,
    )
    summary = SplitSummary(split=split, num_shards=plan.num_shards)

    mine = list(range(task_index, plan.num_shards, num_tasks))
    remove_leftovers(plan, mine)  # shards (or their offsets) of this task half-written by a killed run
    todo: list[int] = []
    for s in mine:
        shard_index = completed_shard(plan, s, retry_failed=retry_failed)
        if shard_index is not None:
            summary.shards_skipped += 1
            summary.failures.extend((f["source"], f["reason"]) for f in shard_index["failures"])
        else:
            todo.append(s)
    shard_tasks = {s: plan.shard_tasks(tasks, s) for s in todo}
    ordered = [task for s in todo for task in shard_tasks[s]]
    if summary.shards_skipped:
        logging.info("%s: %d shard(s) already complete, skipped.", split, summary.shards_skipped)

    extract_fn = functools.partial(extract_lib.extract, options=options)
    pool = None
    if workers > 0 and ordered:
        pool = multiprocessing.get_context("spawn").Pool(
            min(workers, len(ordered)), initializer=extract_lib.init_worker
        )
        results_iter = pool.imap(extract_fn, ordered, chunksize=1)
    else:
        results_iter = map(extract_fn, ordered)
    bar = tqdm(total=len(ordered), desc=f"{split}", unit="video", disable=not progress or not ordered, smoothing=0.1)
    try:
        for s in todo:
            results = []
            for _ in shard_tasks[s]:
                result = next(results_iter)
                if isinstance(result, extract_lib.ExtractionFailure):
                    message = f"Skipping {result.task.source}: {result.reason}"
                    logging.warning(message)
                    if progress:
                        bar.write(message)
                else:
                    summary.frames_written += len(result.frames)
                results.append(result)
                bar.update(1)
                elapsed = time.perf_counter() - start_time
                bar.set_postfix(frames_per_s=f"{summary.frames_written / max(elapsed, 1e-9):.0f}", refresh=False)
            shard_index = write_shard(plan, s, results)
            summary.shards_written += 1
            summary.videos_written += len(shard_index["videos"])
            summary.failures.extend((f["source"], f["reason"]) for f in shard_index["failures"])
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    summary.manifest_written = finalize_split(plan, flags or {})
    summary.seconds = time.perf_counter() - start_time
    return summary


def check_flow_method(method: str) -> None:
    """Fails fast (before any work) on an unknown or unavailable flow method."""
    if method not in flow_lib.FLOW_METHODS:
        raise ValueError(f"--flow must be one of {', '.join(flow_lib.FLOW_METHODS)}; got {method!r}")
    if method != "none":
        flow_lib.make_flow_fn(method)
