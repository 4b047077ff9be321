"""Runs studies through the user-facing command lines, resumably: the tasks, their order, their state on disk.

Every value of a study comes from the commands a user runs (`data.synthetic`, `data.prepare`, `stpa.train`,
`stpa.evaluate`, `stpa.fuse`, `st_attn.localize`), each started as a subprocess with a row's flagfile. The work is
a graph of `Task`s (data → train → evaluate → fuse / localize), shared between studies (Table 1(c)'s "mul" row is
Table 1(b)'s "3 scales" run). A finished task leaves `<out_dir>/state/<task>.json`; a re-run skips it, so a killed
study resumes (`stpa.train` itself resumes a half-trained run from its checkpoint). A failed task (e.g. a run
stopped on a non-finite loss) is recorded as failed with its log, its dependants are skipped, and the cells that
need it are reported as failed; `retry_failed=True` runs it again.

Layout of `out_dir`:
  data/raw, data/records              the study benchmark (`data.synthetic --preset=study`, seed 0) and its records
  data/val_raw, data/val_records      the validation set (seed 1) that `stpa.fuse --tune_on` tunes on
  runs/<flagfile stem>/seed<s>/       run directories (checkpoints, TensorBoard, eval/test_K<K>.json and .npz (the
                                      per-video scores), eval/val_*, eval/train_* (train accuracy, optional),
                                      localization.json)
  fusion/<rgb>__<flow>/seed<s>/       equal.json, softmax.json, tuned.json (`stpa.fuse` metrics) and .npz (fused
                                      per-video scores)
  state/, logs/                       one JSON / log per task
  reproduce.json                      the schedule (full or quick) the directory was started with

Per-video results (`collect_per_video`): every top-1 cell's per-video predictions (video id, label, predicted
class) from the score files, so the reports' intervals can resample the test videos. Train / validation accuracy
(`collect_accuracy`): the validation set's top-1 where it was evaluated, and, with `Options.train_accuracy_videos`
= N, `stpa.evaluate --split=train --max_videos=N` of every top-1 run (the first N train videos in record order, centre
crop and K test frames, no augmentation: about N / test-set-size of a test evaluation's time).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import glob
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence

from data import files
from experiments import schedules
from experiments import studies as studies_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGFILE_DIR = os.path.join(REPO, "experiments", "synthetic")
RUNNING_FILE = "train_running_top1.json"  # `train_running_top1` kept where the events are not
VALIDATION_SEED = 1  # generation seed of the validation set (the benchmark itself is seed 0)
# A fused measure's file stem under fusion/<rgb>__<flow>/seed<s>/ and its `stpa.fuse --normalize`.
FUSIONS = {"fused": ("equal", "none"), "fused_softmax": ("softmax", "softmax"), "fused_tuned": ("tuned", "none")}


@dataclasses.dataclass(frozen=True)
class Task:
    """One command of the graph.

    Attributes:
      key: unique name, e.g. "train/study_stpa_scales1_rgb/seed0"; also names its state and log files.
      command: the argv (a user-facing `python -m ...` command line).
      deps: keys of the tasks that must have finished first.
      output: the file the command writes that the results are read from ("" for none).
    """

    key: str
    command: tuple[str, ...]
    deps: tuple[str, ...] = ()
    output: str = ""


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where everything of a study directory is (see the module docstring)."""

    out_dir: str

    @property
    def raw(self) -> str:
        """The study benchmark as generated (raw videos, ground truth)."""
        return os.path.join(self.out_dir, "data", "raw")

    @property
    def records(self) -> str:
        """Its prepared records (train/, test/)."""
        return os.path.join(self.out_dir, "data", "records")

    @property
    def val_raw(self) -> str:
        """The validation set as generated."""
        return os.path.join(self.out_dir, "data", "val_raw")

    @property
    def val_records(self) -> str:
        """Its prepared records (its test/ split is the validation set)."""
        return os.path.join(self.out_dir, "data", "val_records")

    def run_dir(self, stem: str, seed: int) -> str:
        """The run directory of a flagfile at a seed."""
        return os.path.join(self.out_dir, "runs", stem, f"seed{seed}")

    def eval_json(self, stem: str, seed: int, test_frames: int, split: str = "test") -> str:
        """The metrics JSON of `stpa.evaluate` (split "test" or "val"); the score file is the same stem .npz."""
        return os.path.join(self.run_dir(stem, seed), "eval", f"{split}_K{test_frames}.json")

    def fusion_dir(self, rgb: str, flow: str, seed: int) -> str:
        """Where `stpa.fuse` writes equal.json / tuned.json for two runs at a seed."""
        return os.path.join(self.out_dir, "fusion", f"{rgb}__{flow}", f"seed{seed}")

    def features_dir(self, trunk: str, seed: int) -> str:
        """The cached features (`st_attn.features`, one directory per split) extracted with a run's trunk."""
        return os.path.join(self.out_dir, "features", trunk, f"seed{seed}")

    def localization_json(self, stem: str, seed: int) -> str:
        """The output of `st_attn.localize` for a run."""
        return os.path.join(self.run_dir(stem, seed), "localization.json")

    def state(self, key: str) -> str:
        """The state file of a task."""
        return os.path.join(self.out_dir, "state", key.replace("/", "__") + ".json")

    def log(self, key: str) -> str:
        """The log file of a task (its command's stdout and stderr)."""
        return os.path.join(self.out_dir, "logs", key.replace("/", "__") + ".log")


@dataclasses.dataclass
class Options:
    """How the tasks are built.

    Attributes:
      seeds: training seeds; every row of a study is trained with each of them (pairs share the seed).
      quick: shorter schedules, one seed: each row its schedule group's quick steps (`experiments.schedules`).
      flagfile_dir: where the rows' flagfiles are.
      benchmark_flags: extra `data.synthetic` flags on top of `--preset=study` (tests use a tiny benchmark).
      prepare_flags: `data.prepare` flags.
      train_overrides: extra `stpa.train` flags for every run (tests: a few steps).
      deterministic: every run with `stpa.train --deterministic` (fixed input order, deterministic ops), so a seed
        reproduces its run bit for bit. Measured on the tiny rows: no slower. Without it, the same seed gave
        test scores that differ by up to 7.0 logits between two runs.
      python: the interpreter the commands run with.
      train_accuracy_videos: None (default): no train accuracy; N: every top-1 run is also evaluated on its first N
        train videos (`accuracy.csv`'s train_top1).
      val_accuracy: every top-1 run is also evaluated on the validation set (`accuracy.csv`'s val_top1; the tuned
        fusion rows evaluate their streams there anyway). Rows trained on cached features are not: their features
        exist for the benchmark only.
      generation_seed: `data.synthetic --seed` of the benchmark (another value: another instance of it).
      validation_seed: `data.synthetic --seed` of the validation set.
      validation_flags: extra `data.synthetic` flags of the validation set only (e.g. a smaller --test_per_class).
      steps: the full schedule's steps by schedule group ({"stpa": N, "st_attn": M}, the group of each row's
        `--model`, `experiments.schedules`; the learning rate drops 10x at 75 % of them), instead of the flagfiles'
        own; None: the flagfiles' (--quick has its own).
    """

    seeds: Sequence[int] = (0, 1, 2)
    quick: bool = False
    flagfile_dir: str = FLAGFILE_DIR
    benchmark_flags: Sequence[str] = ()
    prepare_flags: Sequence[str] = ("--flow=farneback", "--frame_size=none", "--workers=2")
    train_overrides: Sequence[str] = ()
    deterministic: bool = True
    python: str = sys.executable
    train_accuracy_videos: int | None = None
    val_accuracy: bool = False
    generation_seed: int = 0
    validation_seed: int = VALIDATION_SEED
    validation_flags: Sequence[str] = ()
    steps: Mapping[str, int] | None = None


def _module(*args: str, python: str) -> tuple[str, ...]:
    return (python, "-m", *args)


def schedule_overrides(
    stem: str, quick: bool, steps: Mapping[str, int] | None = None, flagfile_dir: str = FLAGFILE_DIR
) -> list[str]:
    """`stpa.train` flags of a row's schedule: its schedule group's quick steps, `steps`' or none (the flagfile's).

    The group is that of the family the row's flagfile names (`experiments.schedules.overrides`), or of the row
    `studies.SAME_SCHEDULE_AS` names for it. Either way the learning rate drops 10x at 75 % of the steps, as in the
    flagfiles.
    """
    like = studies_lib.SAME_SCHEDULE_AS.get(stem, stem)
    return schedules.overrides(os.path.join(flagfile_dir, like + ".cfg"), quick, steps)


class TaskGraph:
    """Builds the tasks of a set of studies (deduplicated by key, in dependency order)."""

    def __init__(self, layout: Layout, options: Options):
        self.layout = layout
        self.options = options
        self.tasks: dict[str, Task] = {}

    def _add(self, task: Task) -> str:
        self.tasks.setdefault(task.key, task)
        return task.key

    def _py(self, *args: str) -> tuple[str, ...]:
        return _module(*args, python=self.options.python)

    def data(self, validation: bool = False) -> str:
        """The benchmark (or the validation set) generated and prepared; returns the prepare task's key."""
        lay, opt = self.layout, self.options
        raw, records = (lay.val_raw, lay.val_records) if validation else (lay.raw, lay.records)
        name = "val" if validation else "benchmark"
        if validation:
            extra = [f"--seed={opt.validation_seed}", "--train_per_class=1", *opt.validation_flags]
        else:
            extra = [f"--seed={opt.generation_seed}"]
        generate = self._add(
            Task(
                f"data/{name}/generate",
                self._py("data.synthetic", "--preset=study", f"--out_dir={raw}", *opt.benchmark_flags, *extra),
            )
        )
        return self._add(
            Task(
                f"data/{name}/prepare",
                self._py(
                    "data.prepare", "--dataset=ucf101", f"--raw_dir={raw}", f"--out_dir={records}", *opt.prepare_flags
                ),
                deps=(generate,),
            )
        )

    def features(self, trunk: str, seed: int) -> str:
        """`st_attn.features` of the benchmark with the trunk of the TSN run `trunk` (Meng et al. Sec. 3.1)."""
        lay, opt = self.layout, self.options
        stem = studies_lib.FEATURE_FLAGFILES.get(trunk, studies_lib.FEATURES_FLAGFILE)
        flagfile = os.path.join(opt.flagfile_dir, stem + ".cfg")
        command = self._py(
            "st_attn.features",
            f"--flagfile={flagfile}",
            f"--records_dir={lay.records}",
            f"--out_dir={lay.features_dir(trunk, seed)}",
            f"--weights={lay.run_dir(trunk, seed)}",
        )
        return self._add(Task(f"features/{trunk}/seed{seed}", command, deps=(self.train(trunk, seed),)))

    def train(self, stem: str, seed: int) -> str:
        """`stpa.train` of a row's flagfile at a seed (quick: the shorter schedule); returns the task key.

        A row of `studies.FEATURE_TRUNKS` trains on the features its TSN run's trunk extracts (the chain
        fine-tune -> features -> attention), any other on the benchmark's records.
        """
        lay, opt = self.layout, self.options
        flagfile = os.path.join(opt.flagfile_dir, stem + ".cfg")
        if not os.path.isfile(flagfile):
            raise ValueError(f"no flagfile {flagfile} for the run {stem!r}.")
        trunk = studies_lib.FEATURE_TRUNKS.get(stem)
        if trunk is None:
            source, deps = f"--records_dir={lay.records}", (self.data(),)
        else:
            source, deps = f"--features_dir={lay.features_dir(trunk, seed)}", (self.features(trunk, seed),)
        command = self._py(
            "stpa.train",
            f"--flagfile={flagfile}",
            source,
            f"--model_dir={lay.run_dir(stem, seed)}",
            f"--seed={seed}",
            "--progress=false",
            *schedule_overrides(stem, opt.quick, opt.steps, opt.flagfile_dir),
            *(["--deterministic"] if opt.deterministic else []),
            *opt.train_overrides,
        )
        return self._add(Task(f"train/{stem}/seed{seed}", command, deps=deps))

    def evaluate(self, stem: str, seed: int, test_frames: int, split: str = "test") -> str:
        """`stpa.evaluate` of a run with K = `test_frames`: split "test", "val" (the validation set) or "train".

        "train" evaluates the first `Options.train_accuracy_videos` videos of the train split.
        """
        lay = self.layout
        records, deps = (lay.val_records, (self.data(validation=True),)) if split == "val" else (lay.records, ())
        trunk = studies_lib.FEATURE_TRUNKS.get(stem)
        if trunk is not None:  # a head trained on cached features is evaluated on the same features
            if split == "val":
                raise ValueError(f"{stem} is trained on cached features of the benchmark only: no validation set.")
            records = lay.features_dir(trunk, seed)
        output = lay.eval_json(stem, seed, test_frames, split)
        extra = []
        if split == "train":
            if not self.options.train_accuracy_videos:
                raise ValueError("a train-split evaluation needs Options.train_accuracy_videos (the videos to use).")
            extra = [f"--max_videos={self.options.train_accuracy_videos}"]
        command = self._py(
            "stpa.evaluate",
            f"--model_dir={lay.run_dir(stem, seed)}",
            f"--records_dir={records}",
            f"--split={'train' if split == 'train' else 'test'}",
            f"--test_frames={test_frames}",
            "--checkpoint=last",
            f"--output={output[: -len('.json')]}.npz",
            *extra,
        )
        return self._add(
            Task(
                f"evaluate/{stem}/seed{seed}/{split}_K{test_frames}",
                command,
                deps=(self.train(stem, seed), *deps),
                output=output,
            )
        )

    def fuse(self, rgb: str, flow: str, seed: int, kind: str = "fused") -> str:
        """`stpa.fuse` of an RGB and a flow run's test scores (`FUSIONS[kind]`).

        "fused": equal weights on the raw scores (the paper's); "fused_softmax": equal weights on each stream's
        soft-maxed scores; "fused_tuned": weights searched with `--tune_on` the validation set's scores.
        """
        lay = self.layout
        scores = [lay.eval_json(s, seed, studies_lib.STPA_TEST_FRAMES)[:-5] + ".npz" for s in (rgb, flow)]
        deps = [self.evaluate(s, seed, studies_lib.STPA_TEST_FRAMES) for s in (rgb, flow)]
        name, normalize = FUSIONS[kind]
        output = os.path.join(lay.fusion_dir(rgb, flow, seed), f"{name}.json")
        command = [
            "stpa.fuse",
            f"--scores={','.join(scores)}",
            f"--metrics_output={output}",
            f"--output={output[: -len('.json')]}.npz",
        ]
        if normalize != "none":
            command.append(f"--normalize={normalize}")
        if kind == "fused_tuned":
            val = [lay.eval_json(s, seed, studies_lib.STPA_TEST_FRAMES, "val")[:-5] + ".npz" for s in (rgb, flow)]
            deps += [self.evaluate(s, seed, studies_lib.STPA_TEST_FRAMES, "val") for s in (rgb, flow)]
            command.append(f"--tune_on={','.join(val)}")
        return self._add(
            Task(f"fuse/{rgb}__{flow}/seed{seed}/{name}", self._py(*command), deps=tuple(deps), output=output)
        )

    def localize(self, stem: str, seed: int) -> str:
        """`st_attn.localize` of a run with the study's localisation flagfile (Tables 5-6)."""
        lay, opt = self.layout, self.options
        output = lay.localization_json(stem, seed)
        flagfile = os.path.join(opt.flagfile_dir, "study_st_attn_localize.cfg")
        trunk = studies_lib.FEATURE_TRUNKS.get(stem)
        features = () if trunk is None else (f"--features_dir={lay.features_dir(trunk, seed)}",)
        command = self._py(
            "st_attn.localize",
            f"--flagfile={flagfile}",
            f"--model_dir={lay.run_dir(stem, seed)}",
            f"--records_dir={lay.records}",
            *features,
            f"--output={output}",
        )
        return self._add(Task(f"localize/{stem}/seed{seed}", command, deps=(self.train(stem, seed),), output=output))

    def measure(self, measure: studies_lib.Measure, seed: int) -> str:
        """The task whose output holds a cell's value at a seed.

        For top-1 cells it also adds the train / validation evaluations `Options` asks for.
        """
        if measure.kind == "top1":
            if self.options.train_accuracy_videos:
                self.evaluate(measure.runs[0], seed, measure.test_frames, "train")
            if self.options.val_accuracy and measure.runs[0] not in studies_lib.FEATURE_TRUNKS:
                self.evaluate(measure.runs[0], seed, measure.test_frames, "val")
            return self.evaluate(measure.runs[0], seed, measure.test_frames)
        if measure.kind in FUSIONS:
            return self.fuse(*measure.runs, seed, measure.kind)
        return self.localize(measure.runs[0], seed)

    def add_studies(self, chosen: Sequence[studies_lib.Study], columns: Sequence[str] | None = None) -> None:
        """Every task of the studies at every seed (rows first, seed by seed: early seeds complete first).

        With `columns`, only the cells of those columns (a part of a protocol, e.g. the RGB column).
        """
        for seed in self.options.seeds:
            for study in chosen:
                for cell in study.cells:
                    if columns is None or cell.column in columns:
                        self.measure(cell.measure, seed)

    def ordered(self) -> list[Task]:
        """The tasks in an order where every task comes after its dependencies."""
        done: set[str] = set()
        order: list[Task] = []

        def visit(key: str) -> None:
            if key in done:
                return
            for dep in self.tasks[key].deps:
                visit(dep)
            done.add(key)
            order.append(self.tasks[key])

        for key in list(self.tasks):
            visit(key)
        return order


def read_state(layout: Layout, key: str) -> dict | None:
    """The recorded state of a task ({"status": "done"|"failed", ...}) or None."""
    path = layout.state(key)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def run_task(task: Task, layout: Layout) -> dict:
    """Runs one task's command (output to its log) and records its state; returns the state."""
    log = layout.log(task.key)
    files.make_parent(log)
    start = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with open(log, "w") as out:
        out.write("$ " + " ".join(task.command) + "\n")
        out.flush()
        returncode = subprocess.call(list(task.command), stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env)
    state = {
        "status": "done" if returncode == 0 else "failed",
        "returncode": returncode,
        "seconds": round(time.perf_counter() - start, 1),
        "command": list(task.command),
        "log": log,
    }
    if returncode == 0 and task.output and not os.path.isfile(task.output):
        state.update(status="failed", returncode=None, reason=f"exit 0 but {task.output} was not written")
    if state["status"] == "failed":
        state["log_tail"] = _tail(log)
    files.write_json(layout.state(task.key), state)
    return state


def execute(
    tasks: Sequence[Task],
    layout: Layout,
    *,
    jobs: int = 1,
    retry_failed: bool = False,
    progress: bool = True,
    on_state: Callable[[Task, dict], None] | None = None,
) -> dict[str, dict]:
    """Runs the tasks not yet done, `jobs` at a time, each after its dependencies.

    A finished task is skipped (its output still exists); a failed one is skipped unless `retry_failed`, and its
    dependants are marked "skipped". Shows a progress bar over the tasks.

    Returns:
      key -> state for every task.
    """
    import tqdm

    states: dict[str, dict] = {}
    pending: list[Task] = []
    for task in tasks:
        state = read_state(layout, task.key)
        if state and state["status"] == "done" and (not task.output or os.path.isfile(task.output)):
            states[task.key] = state
        elif state and state["status"] == "failed" and not retry_failed:
            states[task.key] = state
        else:
            pending.append(task)
    bar = tqdm.tqdm(total=len(tasks), initial=len(states), unit="task", desc="studies", disable=not progress)
    running: dict[concurrent.futures.Future, Task] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        while pending or running:
            for task in list(pending):
                if len(running) >= max(1, jobs):
                    break
                dep_states = [states.get(d) for d in task.deps]
                if any(s is not None and s["status"] != "done" for s in dep_states):
                    states[task.key] = {
                        "status": "skipped",
                        "reason": "a dependency failed",
                        "deps": [d for d in task.deps if states[d]["status"] != "done"],
                    }
                    pending.remove(task)
                    bar.update(1)
                    continue
                if all(s is not None for s in dep_states):
                    pending.remove(task)
                    running[pool.submit(run_task, task, layout)] = task
                    bar.set_postfix_str(task.key, refresh=True)
            if not running:
                if pending:  # only tasks whose dependencies are not in the list: a bug in the graph
                    raise RuntimeError(f"tasks with unknown dependencies: {[t.key for t in pending]}")
                break
            finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in finished:
                task = running.pop(future)
                states[task.key] = future.result()
                bar.update(1)
                if on_state:
                    on_state(task, states[task.key])
    bar.close()
    return states


# ---------------------------------------------------------------------------------------------------- the values
def _read_json(path: str) -> dict | None:
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def read_value(measure: studies_lib.Measure, seed: int, layout: Layout) -> float | None:
    """A cell's value (%) at a seed from the commands' output files, or None when it is missing (a failed run)."""
    if measure.kind == "top1":
        report = _read_json(layout.eval_json(measure.runs[0], seed, measure.test_frames))
        return None if report is None else 100.0 * report["top1"]
    if measure.kind in FUSIONS:
        report = _read_json(os.path.join(layout.fusion_dir(*measure.runs, seed), f"{FUSIONS[measure.kind][0]}.json"))
        return None if report is None else 100.0 * report["fused"]["top1"]
    report = _read_json(layout.localization_json(measure.runs[0], seed))
    table = None if report is None else report.get("spatial" if measure.kind == "frame_map" else "temporal")
    if not table:
        return None
    return 100.0 * table["rows"][studies_lib.LOCALIZE_METHODS[measure.kind][measure.method]][measure.index]


def collect(study: studies_lib.Study, layout: Layout, seeds: Sequence[int]) -> dict[tuple[str, str], dict]:
    """(row, column) -> {seed: value or None} for every cell of a study."""
    return {
        (cell.row, cell.column): {seed: read_value(cell.measure, seed, layout) for seed in seeds}
        for cell in study.cells
    }


def scores_path(measure: studies_lib.Measure, seed: int, layout: Layout) -> str | None:
    """The per-video score file (.npz) behind a cell's value at a seed; None for localisation measures."""
    if measure.kind == "top1":
        return layout.eval_json(measure.runs[0], seed, measure.test_frames)[: -len(".json")] + ".npz"
    if measure.kind in FUSIONS:
        return os.path.join(layout.fusion_dir(*measure.runs, seed), f"{FUSIONS[measure.kind][0]}.npz")
    return None


def read_predictions(path: str) -> list[tuple[str, int, int]] | None:
    """(video_id, label, predicted class) per video of a single-label score file (argmax of the scores).

    In the file's order; None when the file is missing (a failed run, or one made before fused scores were kept).
    """
    if not os.path.isfile(path):
        return None
    import numpy as np

    with np.load(path, allow_pickle=False) as data:
        scores, labels, ids = data["scores"], data["labels"], data["video_ids"].astype(str)
    if labels.ndim != 1:
        raise ValueError(f"{path}: multi-label scores have no per-video top-1; the studies are single-label.")
    predicted = np.argmax(scores, axis=1)  # (N,)
    return [(str(v), int(label), int(p)) for v, label, p in zip(ids, labels, predicted)]


def collect_per_video(
    study: studies_lib.Study, layout: Layout, seeds: Sequence[int]
) -> dict[tuple[str, str], dict[int, list[tuple[str, int, int]]]]:
    """(row, column) -> {seed: [(video_id, label, predicted), ...]} for every top-1 / fused cell with score files.

    A seed without its score file is left out; a cell with none (localisation, or old runs) maps to {}.
    """
    per_video = {}
    for cell in study.cells:
        by_seed = {}
        for seed in seeds:
            path = scores_path(cell.measure, seed, layout)
            predictions = None if path is None else read_predictions(path)
            if predictions is not None:
                by_seed[seed] = predictions
        per_video[(cell.row, cell.column)] = by_seed
    return per_video


def collect_accuracy(
    study: studies_lib.Study, layout: Layout, seeds: Sequence[int]
) -> dict[tuple[str, str], dict[int, dict[str, float | None]]]:
    """(row, column) -> {seed: {"train_top1", "val_top1", "test_top1", "train_running_top1"}} (%, None: not measured).

    Of the top-1 cells. Train: the first `Options.train_accuracy_videos` train videos; val: the validation set;
    train_running: `train_running_top1` of the run's TensorBoard events.
    """
    accuracy = {}
    for cell in study.cells:
        if cell.measure.kind != "top1":
            continue
        stem, k = cell.measure.runs[0], cell.measure.test_frames
        by_seed = {}
        for seed in seeds:
            values = {}
            for split in ("train", "val", "test"):
                report = _read_json(layout.eval_json(stem, seed, k, split))
                values[f"{split}_top1"] = None if report is None else 100.0 * report["top1"]
            running = train_running_top1(layout.run_dir(stem, seed))
            values["train_running_top1"] = None if running is None else 100.0 * running
            by_seed[seed] = values
        accuracy[(cell.row, cell.column)] = by_seed
    return accuracy


def train_running_top1(run_dir: str, last: int = 10) -> float | None:
    """The training top-1 of the end of a run: the mean of its last `last` logged `top1` scalars (fraction).

    `stpa.train` logs `top1` (hits over clips since the previous log, training mode: augmented clips, dropout) every
    --log_every steps to `<run_dir>/train/`; without events, the value saved in `<run_dir>/RUNNING_FILE`; None
    when there is neither.
    """
    event_files = sorted(glob.glob(os.path.join(run_dir, "train", "events.out.tfevents.*")))
    if not event_files:  # a run restored from committed results (experiments.protocol.restore_results)
        saved = _read_json(os.path.join(run_dir, RUNNING_FILE))
        return None if saved is None else float(saved["train_running_top1"])
    import tensorflow as tf

    values: list[tuple[int, float]] = []
    for path in event_files:
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.tag == "top1":
                    number = tf.make_ndarray(value.tensor) if value.HasField("tensor") else value.simple_value
                    values.append((event.step, float(number)))
    if not values:
        return None
    tail = [number for _, number in sorted(values)[-last:]]
    return sum(tail) / len(tail)


def write_timings(tasks: Sequence[Task], layout: Layout, path: str) -> str:
    """A CSV of every task's recorded status and wall time (key, kind, status, seconds); returns its path."""
    lines = ["key,kind,status,seconds"]
    for task in tasks:
        state = read_state(layout, task.key) or {}
        seconds = state.get("seconds")
        lines.append(
            f"{task.key},{task.key.split('/', 1)[0]},{state.get('status', 'not run')},"
            f"{'' if seconds is None else seconds}"
        )
    return files.write_text(path, "\n".join(lines) + "\n")


def check_schedule(layout: Layout, options: Options) -> None:
    """Records the schedule of a new directory; refuses to mix full and --quick (or other settings) in one.

    A `reproduce.json` written before `deterministic` was recorded holds non-deterministic runs: it reads as
    `deterministic: false`, and continuing it needs `--nodeterministic`.
    """
    path = os.path.join(layout.out_dir, "reproduce.json")
    schedule = {
        "quick": bool(options.quick),
        "quick_steps": schedules.quick_steps() if options.quick else None,
        "train_overrides": list(options.train_overrides),
        "benchmark_flags": list(options.benchmark_flags),
        "deterministic": bool(options.deterministic),
    }
    # Recorded only when used, so directories made before they existed continue unchanged.
    if options.train_accuracy_videos:
        schedule["train_accuracy_videos"] = int(options.train_accuracy_videos)
    if options.val_accuracy:
        schedule["val_accuracy"] = True
    if options.generation_seed:
        schedule["generation_seed"] = int(options.generation_seed)
    if options.validation_seed != VALIDATION_SEED:
        schedule["validation_seed"] = int(options.validation_seed)
    if options.validation_flags:
        schedule["validation_flags"] = list(options.validation_flags)
    if options.steps:
        schedule["steps"] = {kind: int(count) for kind, count in sorted(options.steps.items())}
    existing = _read_json(path)
    if existing is not None:
        existing = {"deterministic": False, **existing}
    if existing is not None and existing != schedule:
        mode = "--quick" if existing["quick"] else "full"
        differing = sorted(key for key in schedule if existing.get(key) != schedule[key])
        made = ", ".join(f"{key}={existing.get(key)} (here {schedule[key]})" for key in differing)
        hint = ""
        if "deterministic" in differing:
            hint = " (a directory made before runs were deterministic: --nodeterministic)"
        raise ValueError(
            f"{layout.out_dir} holds {mode} runs made with {made}; continue it with the same settings"
            f"{hint}, or use another --out_dir for this schedule."
        )
    if existing is None:
        files.write_json(path, schedule)


def study_failures(study: studies_lib.Study, graph: TaskGraph, layout: Layout, seeds: Sequence[int]) -> list[str]:
    """The recorded failures among the tasks a study's cells need: "key (status): log" lines."""
    needed: list[str] = []

    def visit(key: str) -> None:
        if key in needed:
            return
        needed.append(key)
        for dep in graph.tasks[key].deps:
            visit(dep)

    for seed in seeds:
        for cell in study.cells:
            visit(graph.measure(cell.measure, seed))
    lines = []
    for key in needed:
        state = read_state(layout, key)
        if state and state["status"] != "done":
            lines.append(f"`{key}` ({state['status']}): {state.get('log', '')}")
    return lines
