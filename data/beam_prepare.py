r"""Raw videos -> records as an Apache Beam pipeline: ``data.prepare`` on many machines, through any Beam runner.

    # Local processes (DirectRunner), e.g. to try it:
    python -m data.beam_prepare --dataset=ucf101 --raw_dir=/data/UCF101 --out_dir=/data/records/ucf101_s1 \
        --flow=tvl1 --direct_running_mode=multi_processing --direct_num_workers=16
    # Dataflow (pip install -e '.[dataflow]'), Flink, Spark: the same flags plus the runner's options, e.g.
    python -m data.beam_prepare ... --worker_raw_dir=gs://BUCKET/UCF101 --out_dir=gs://BUCKET/records/ucf101_s1 \
        --runner=DataflowRunner --project=PROJECT --region=REGION --temp_location=gs://BUCKET/tmp \
        --setup_file=./setup.py

The flags are those of ``data.prepare`` (`data.prepare.define_dataset_flags`) less ``--workers``, ``--task_index``,
``--num_tasks`` and ``--progress``; every other ``--flag`` is a Beam pipeline option. The output is the local path's,
byte for byte: the same shards (``<split>-SSSSS-of-NNNNN.tfrecord``), ``.offsets`` and ``.json`` indexes,
``manifest.json`` and ``failures.txt`` (see `data.preparation`), because both paths share the plan
(`data.preparation.plan_split`: which video goes to which shard, the fingerprint, the refusals), the extraction
(`data.extract.extract`) and the writers (`data.preparation.write_shard`, `data.preparation.finalize_split`).

Pipeline, per split::

    Create(shard jobs)     one element per shard: (index, its videos), as the plan assigns them (video i -> shard
                           i % num_shards), redistributed over the workers
    -> WriteShards         a complete shard (a previous run's) is skipped; the others are extracted video by video
                           and written by the shared writer (videos that cannot be read recorded as failures)
    -> ToList -> Finalize  once every shard is in place: leftovers of killed runs removed, manifest + failures.txt

Parallelism is one shard per core: ``--videos_per_shard`` sets how many elements there are to spread. The shard
jobs travel inside the pipeline description, or, past about 14k videos and when ``--temp_location`` is set,
as files staged there (`_shard_jobs`).

Resuming: a shard file exists only once complete (it is renamed into place last), so re-running the same command
after a kill (or a failed job) extracts only the videos of the shards that are missing. Videos that cannot be read
are recorded exactly as on the local path (``failures.txt``, exit status 1) and do not fail the job.

Paths under ``--out_dir`` go through `tf.io.gfile` (``gs://`` works). The launching machine reads ``--raw_dir`` (list
files, folder layout) to plan the shards; the workers read the videos there too, or, with ``--worker_raw_dir=URL``
(e.g. ``gs://BUCKET/UCF101``, a copy of the same tree), copy each one from there to a local temporary file first.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pickle
import sys
import tempfile
from collections.abc import Iterable, Iterator

import apache_beam as beam
from absl import app, flags
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

from data import extract as extract_lib
from data import preparation, records
from data.datasets.base import DatasetLayoutError, DatasetSplits, VideoTask

_METRICS = "data.beam_prepare"


def fetch(remote: str, local: str) -> bool:
    """Copies a video file, or a rawframe folder's files, from any `tf.io.gfile` path to a local path.

    Returns:
      whether ``remote`` existed (when not, nothing is written and extraction reports "file not found" as the
      local path does).
    """
    import tensorflow as tf

    if tf.io.gfile.isdir(remote):
        os.makedirs(local)
        for name in tf.io.gfile.listdir(remote):
            if not name.endswith("/"):  # files only: a rawframe folder is flat
                tf.io.gfile.copy(os.path.join(remote, name), os.path.join(local, name))
        return True
    if not tf.io.gfile.exists(remote):
        return False
    tf.io.gfile.copy(remote, local)
    return True


def extract_video(
    task: VideoTask, options: extract_lib.ExtractOptions, raw_dir: str = "", worker_raw_dir: str | None = None
) -> extract_lib.ExtractedVideo | extract_lib.ExtractionFailure:
    """`data.extract.extract`, optionally reading the video from ``worker_raw_dir`` instead of under ``raw_dir``.

    With ``worker_raw_dir`` (e.g. ``gs://BUCKET/UCF101``) the video (or rawframe folder) at
    ``worker_raw_dir/<its path relative to raw_dir>`` is copied to a local temporary folder, extracted there and
    deleted; the result keeps the planned ``task`` (id, labels, ``video/source``), so the records do not change.
    Never raises for a bad input (an `ExtractionFailure` names the reason).
    """
    if not worker_raw_dir:
        return extract_lib.extract(task, options)
    relative = os.path.relpath(task.source, raw_dir)
    with tempfile.TemporaryDirectory(prefix="beam_prepare_") as local_dir:
        local = os.path.join(local_dir, os.path.basename(task.source.rstrip("/")) or "video")
        try:
            fetch(os.path.join(worker_raw_dir, relative), local)
        except Exception as e:  # noqa: BLE001 - an unreadable remote file is one failed video, as a local one.
            return extract_lib.ExtractionFailure(task, f"cannot copy from {worker_raw_dir}: {type(e).__name__}: {e}")
        result = extract_lib.extract(dataclasses.replace(task, source=local), options)
    result.task = task
    return result


class WriteShardFn(beam.DoFn):
    """(shard index, its videos) -> (index, the shard's ``.json`` index): writes the shard unless already complete.

    One element is one shard, extracted video by video (one OpenCV thread, as the local path's worker processes) and
    streamed into `data.preparation.write_shard`, the local path's writer. Shards are independent: each one is in
    place as soon as its element is done, so a killed job resumes from the shards it completed.
    """

    def __init__(self, plan: preparation.SplitPlan, retry_failed: bool = False, worker_raw_dir: str | None = None):
        self._plan = plan
        self._retry_failed = retry_failed
        self._worker_raw_dir = worker_raw_dir

    def setup(self) -> None:
        """One OpenCV thread per extraction: the runner runs one element per core."""
        extract_lib.init_worker()

    def _extract(self, tasks: list[VideoTask]) -> Iterator[extract_lib.ExtractedVideo | extract_lib.ExtractionFailure]:
        for task in tasks:
            result = extract_video(task, self._plan.options, self._plan.raw_dir, self._worker_raw_dir)
            if isinstance(result, extract_lib.ExtractionFailure):
                logging.warning("Skipping %s: %s", task.source, result.reason)
                beam.metrics.Metrics.counter(_METRICS, "videos_failed").inc()
            else:
                beam.metrics.Metrics.counter(_METRICS, "videos_extracted").inc()
                beam.metrics.Metrics.counter(_METRICS, "frames_extracted").inc(len(result.frames))
            yield result

    def process(self, job: tuple[int, list[VideoTask]]) -> Iterator[tuple[int, dict]]:
        """Skips a complete shard (a previous run's) or writes it; yields (index, its ``.json`` index)."""
        index, tasks = job
        shard_index = preparation.completed_shard(self._plan, index, retry_failed=self._retry_failed)
        if shard_index is not None:
            beam.metrics.Metrics.counter(_METRICS, "shards_skipped").inc()
        else:
            shard_index = preparation.write_shard(self._plan, index, self._extract(tasks))
            beam.metrics.Metrics.counter(_METRICS, "shards_written").inc()
        yield index, shard_index


class FinalizeFn(beam.DoFn):
    """All shards' (index, ``.json`` index) -> manifest.json + failures.txt (`data.preparation.finalize_split`)."""

    def __init__(self, plan: preparation.SplitPlan, flags_to_record: dict):
        self._plan = plan
        self._flags = flags_to_record

    def process(self, outcomes: list[tuple[int, dict]]) -> Iterator[dict]:
        """Removes leftovers of killed runs and writes the split's manifest; yields it (JSON-ready)."""
        by_index = dict(outcomes)
        if sorted(by_index) != list(range(self._plan.num_shards)):
            missing = sorted(set(range(self._plan.num_shards)) - set(by_index))
            raise RuntimeError(f"{self._plan.split}: shards {missing[:10]} were neither written nor complete")
        preparation.remove_leftovers(self._plan)  # every shard is in place: no writer of this run is left
        shard_indices = [by_index[s] for s in range(self._plan.num_shards)]
        if not preparation.finalize_split(self._plan, self._flags, shard_indices):
            raise RuntimeError(f"{self._plan.split_dir}: the shard indexes do not match the plan's fingerprint")
        yield read_manifest(self._plan.split_dir)


# Pickled shard jobs embedded in the pipeline at most (~146 bytes a video; ~260 once in the pipeline description:
# ~14k videos make ~3.8 MB of it); more are staged (see `_shard_jobs`).
INLINE_JOBS_LIMIT = 2 << 20
_SHARDS_PER_STAGED_FILE = 100


def _read_staged_jobs(path: str) -> list[tuple[int, list[VideoTask]]]:
    import tensorflow as tf

    with tf.io.gfile.GFile(path, "rb") as f:
        return pickle.load(f)


def _shard_jobs(
    root: beam.Pipeline, plan: preparation.SplitPlan, tasks: list[VideoTask], staging_dir: str | None, limit: int
) -> tuple[beam.PCollection, list[str]]:
    """The split's shard jobs (index, its videos) as a PCollection, one element per shard, spread over the workers.

    A pipeline carries the elements of `beam.Create` in its description (Dataflow refuses descriptions over ~10 MB;
    UCF101's 13k videos make ~3.5 MB of it, 1M videos ~260 MB). Past ``limit`` pickled bytes, and when a staging folder
    is given (the pipeline's ``--temp_location``), the jobs are written there in files of
    `_SHARDS_PER_STAGED_FILE` shards that the workers read; only the file names travel in the pipeline.

    Returns:
      (the jobs, the staged files to delete once the pipeline has run).
    """
    import tensorflow as tf

    name = plan.split
    jobs = [(s, plan.shard_tasks(tasks, s)) for s in range(plan.num_shards)]
    encoded = len(pickle.dumps(jobs, protocol=pickle.HIGHEST_PROTOCOL))
    if staging_dir is None or encoded <= limit:
        return root | f"{name}/Shards" >> beam.Create(jobs), []  # Create redistributes its elements
    folder = os.path.join(staging_dir, f"beam_prepare-{plan.fingerprint}-{name}")
    tf.io.gfile.makedirs(folder)
    staged = []
    for start in range(0, len(jobs), _SHARDS_PER_STAGED_FILE):
        path = os.path.join(folder, f"jobs-{start // _SHARDS_PER_STAGED_FILE:05d}.pkl")
        with tf.io.gfile.GFile(path, "wb") as f:
            pickle.dump(jobs[start : start + _SHARDS_PER_STAGED_FILE], f, protocol=pickle.HIGHEST_PROTOCOL)
        staged.append(path)
    logging.info("%s: %d bytes of shard jobs staged in %d file(s) under %s", name, encoded, len(staged), folder)
    collection = (
        root
        | f"{name}/StagedShards" >> beam.Create(staged)
        | f"{name}/ReadShards" >> beam.FlatMap(_read_staged_jobs)
        | f"{name}/Distribute" >> beam.Reshuffle()
    )
    return collection, staged


def add_split(
    root: beam.Pipeline,
    plan: preparation.SplitPlan,
    tasks: list[VideoTask],
    *,
    retry_failed: bool = False,
    flags_to_record: dict | None = None,
    worker_raw_dir: str | None = None,
    staging_dir: str | None = None,
    inline_jobs_limit: int = INLINE_JOBS_LIMIT,
) -> tuple[beam.PCollection, list[str]]:
    """Adds the steps that write (or complete) one split to a pipeline.

    Args:
      root: the pipeline.
      plan: the split's plan (`data.preparation.plan_split`).
      tasks: the split's videos, in list order (the plan assigns them to shards).
      retry_failed: redo complete shards that recorded failures.
      flags_to_record: recorded in the manifest.
      worker_raw_dir: where the workers read the raw videos (`extract_video`); None: at their planned paths.
      staging_dir: where shard jobs too large to embed in the pipeline are written (`_shard_jobs`); None: embed.
      inline_jobs_limit: bytes of shard jobs embedded at most when ``staging_dir`` is given.

    Returns:
      (a PCollection holding the split's manifest once written (one dict), the staged files to delete after the run).
    """
    name = plan.split
    jobs, staged = _shard_jobs(root, plan, tasks, staging_dir, inline_jobs_limit)
    manifest = (
        jobs
        | f"{name}/WriteShards" >> beam.ParDo(WriteShardFn(plan, retry_failed, worker_raw_dir))
        | f"{name}/Collect" >> beam.combiners.ToList()
        | f"{name}/Finalize" >> beam.ParDo(FinalizeFn(plan, flags_to_record or {}))
    )
    return manifest, staged


@dataclasses.dataclass
class SplitResult:
    """What a pipeline run left in one split: its manifest and its failures ((source, reason), failures.txt order)."""

    split: str
    split_dir: str
    manifest: dict
    failures: list[tuple[str, str]]


def read_manifest(split_dir: str) -> dict:
    """``split_dir/manifest.json`` read through `tf.io.gfile` (local or remote)."""
    import tensorflow as tf

    with tf.io.gfile.GFile(os.path.join(split_dir, records.MANIFEST_NAME)) as f:
        return json.load(f)


def _read_failures(split_dir: str) -> list[tuple[str, str]]:
    import tensorflow as tf

    with tf.io.gfile.GFile(os.path.join(split_dir, records.FAILURES_NAME)) as f:
        return [tuple(line.rstrip("\n").split("\t", 1)) for line in f.read().splitlines() if line]


def prepare_with_beam(
    dataset: DatasetSplits,
    *,
    out_dir: str,
    dataset_name: str,
    options: extract_lib.ExtractOptions,
    pipeline_options: PipelineOptions | list[str] | None = None,
    splits: Iterable[str] = preparation.SPLIT_NAMES,
    raw_dir: str = "",
    videos_per_shard: int = 50,
    retry_failed: bool = False,
    flags_to_record: dict | None = None,
    worker_raw_dir: str | None = None,
    inline_jobs_limit: int = INLINE_JOBS_LIMIT,
) -> dict[str, SplitResult]:
    """Writes (or completes) ``out_dir/<split>/`` for each split with one Beam pipeline; returns once it has run.

    The arguments mean what they mean for `data.preparation.prepare_split`, whose output this reproduces.

    Args:
      dataset: the parsed dataset (`data.preparation.load_dataset`).
      out_dir: output root (local path or `tf.io.gfile` URL).
      dataset_name: recorded in the manifests.
      options: extraction options.
      pipeline_options: Beam pipeline options (runner, workers ...); None: the DirectRunner's defaults.
      splits: the splits to prepare (those without videos are skipped).
      raw_dir: root that record ``video/source`` paths are made relative to.
      videos_per_shard: videos per shard.
      retry_failed: redo complete shards that recorded failures.
      flags_to_record: recorded in the manifests.
      worker_raw_dir: where the workers read the raw videos, e.g. ``gs://BUCKET/UCF101`` holding the tree of
        ``raw_dir`` (see `extract_video`); None: at their paths under ``raw_dir``.
      inline_jobs_limit: past this many bytes of shard jobs, and when the pipeline options set ``--temp_location``,
        the jobs are staged there rather than embedded in the pipeline (`_shard_jobs`).

    Returns:
      {split: `SplitResult`} of the splits prepared.

    Raises:
      DatasetLayoutError: two videos of a split share an id (before any work).
      ValueError: an output split directory holds shards prepared with other settings (before any work).
    """
    plans = []
    for split in splits:
        tasks = dataset.splits.get(split, [])
        if tasks:
            plan = preparation.plan_split(
                tasks,
                split=split,
                out_dir=out_dir,
                dataset_name=dataset_name,
                class_names=dataset.class_names,
                multi_label=dataset.multi_label,
                options=options,
                raw_dir=raw_dir,
                videos_per_shard=videos_per_shard,
                flip_label_map=dataset.flip_label_map,
            )
            plans.append((plan, tasks))
    if not isinstance(pipeline_options, PipelineOptions):
        pipeline_options = PipelineOptions(pipeline_options or [])
    staging_dir = pipeline_options.view_as(GoogleCloudOptions).temp_location
    staged: list[str] = []
    with beam.Pipeline(options=pipeline_options) as root:
        for plan, tasks in plans:
            _, split_staged = add_split(
                root,
                plan,
                tasks,
                retry_failed=retry_failed,
                flags_to_record=flags_to_record,
                worker_raw_dir=worker_raw_dir,
                staging_dir=staging_dir,
                inline_jobs_limit=inline_jobs_limit,
            )
            staged.extend(split_staged)
    if staged:
        import tensorflow as tf

        for folder in sorted({os.path.dirname(path) for path in staged}):
            tf.io.gfile.rmtree(folder)
    return {
        plan.split: SplitResult(
            split=plan.split,
            split_dir=plan.split_dir,
            manifest=read_manifest(plan.split_dir),
            failures=_read_failures(plan.split_dir),
        )
        for plan, _ in plans
    }


def unknown_pipeline_options(args: list[str]) -> list[str]:
    """The ``--options`` among ``args`` that no Beam options class knows (typos of this module's flags, mostly)."""
    parsed = PipelineOptions(args)
    known = parsed.get_all_options()
    every = parsed.get_all_options(retain_unknown_options=True)
    return sorted(f"--{name}" for name in set(every) - set(known))


def main(argv: list[str]) -> int:
    """Command-line entry point; ``argv[1:]`` are the Beam pipeline options. Returns the exit status."""
    from data import prepare

    pipeline_args = argv[1:]
    f = flags.FLAGS
    try:
        unknown = unknown_pipeline_options(pipeline_args)
        if unknown:
            raise ValueError(
                f"unknown flag(s) {', '.join(unknown)}: neither a data.beam_prepare flag (--helpfull) nor a Beam "
                "pipeline option"
            )
        dataset, options, recorded_flags = prepare.load_from_flags(f)
        results = prepare_with_beam(
            dataset,
            out_dir=f.out_dir,
            dataset_name=f.dataset,
            options=options,
            pipeline_options=pipeline_args,
            splits=f.splits,
            raw_dir=f.raw_dir,
            videos_per_shard=f.videos_per_shard,
            retry_failed=f.retry_failed,
            flags_to_record=recorded_flags,
            worker_raw_dir=f.worker_raw_dir,
        )
    except (ValueError, ImportError, DatasetLayoutError) as e:
        print(f"data.beam_prepare: {e}", file=sys.stderr)
        return 2
    lines = []
    failed = 0
    for split in f.splits:
        if split not in results:
            lines.append(f"{split}: no videos in this dataset/split, skipped")
            continue
        result = results[split]
        counts = result.manifest["counts"]
        failed += len(result.failures)
        lines.append(
            f"{split}: {counts['videos']} videos ({counts['frames']} frames) in {result.manifest['num_shards']} "
            f"shard(s); {counts['failed']} failed; manifest written -> {result.split_dir}"
        )
        lines.extend(f"    FAILED {source}: {reason}" for source, reason in result.failures[:20])
        if len(result.failures) > 20:
            lines.append(f"    ... and {len(result.failures) - 20} more in {result.split_dir}/failures.txt")
    print("data.beam_prepare summary:\n  " + "\n  ".join(lines))
    if failed:
        print(
            f"data.beam_prepare: {failed} video(s) could not be used (listed in failures.txt); the rest is in the "
            "records.",
            file=sys.stderr,
        )
        return 1
    return 0


def run() -> None:
    """Defines the flags and runs `main`; flags that are not this module's go to Beam as pipeline options."""
    from data import prepare

    prepare.define_dataset_flags()
    flags.DEFINE_string(
        "worker_raw_dir",
        None,
        "Where the workers read the raw videos, e.g. gs://BUCKET/UCF101 holding the tree of --raw_dir (which the "
        "launching machine reads to plan the shards); default: --raw_dir itself (a path every worker sees).",
    )
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=lambda argv: flags.FLAGS(argv, known_only=True))


if __name__ == "__main__":
    # Build the pipeline from the module imported by name, so that its DoFns pickle as data.beam_prepare.* (which
    # the workers import) rather than __main__.*.
    from data import beam_prepare

    beam_prepare.run()
