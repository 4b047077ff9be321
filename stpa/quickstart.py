r"""The README's main job: the whole STPA pipeline on the synthetic benchmark, in minutes on a CPU.

  python -m stpa.quickstart --out_dir=runs/quickstart

1. `python -m data.synthetic` writes the benchmark (8 classes, real .avi videos in the UCF101 layout) if absent;
2. `python -m data.prepare` turns it into records (RGB frames + optical flow, `--flow`), if not done yet;
3. trains an STPA network (`tiny` backbone, 3-scale pyramid attention, mul fusion, cross-entropy + lambda sum w^2 +
   gamma l_attn of Eq. 9) on the RGB stream and one on the flow stream (K = 3 segments, Adam), mirroring clips as
   the benchmark's flip label map allows (a mirrored MoveRight is no class of it, so those clips are never mirrored);
4. evaluates both with K = 25 test frames and fuses their scores by averaging (Sec. 4.1);
5. exports each as a SavedModel (`serve_frames`, `serve_video`, `serve_encoded_video`);
6. prints the accuracies and where the TensorBoard logs and SavedModels are.

Every step skips what is already done, and training resumes from its checkpoints, so a re-run after an interruption
continues. The commands each step corresponds to are printed, so they can be run one by one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence

from absl import app, flags

import stpa.families  # noqa: F401 - the composition root: registers the model families.
from data import files
from data.datasets.base import FLIP_LABEL_MAP_FILE

_OUT_DIR = flags.DEFINE_string("out_dir", "runs/quickstart", "Where everything goes (raw/, records/, runs/).")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 600, "Training steps per stream.", lower_bound=1)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 16, "Training batch size.", lower_bound=1)
_TEST_FRAMES = flags.DEFINE_integer("test_frames", 25, "K at test time (Sec. 3.4).", lower_bound=1)
_WORKERS = flags.DEFINE_integer("workers", 2, "Processes for data.prepare.", lower_bound=0)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the benchmark and of training.")
_FLOW = flags.DEFINE_enum(
    "flow",
    "farneback",
    ["farneback", "dis", "tvl1"],
    "Optical flow of data.prepare. "
    "Farneback by default: on the benchmark's small, slow actor OpenCV's DIS finds about a third "
    "of the motion (see BUILD.md) and TV-L1 is ~300x slower.",
)
_PROGRESS = flags.DEFINE_boolean("progress", True, "Show progress bars.")

# The benchmark: 8 classes, 30 training and 8 test videos per class (the data.synthetic default of 12 training videos
# per class leaves a large train/test gap for a network trained from scratch).
SYNTHETIC = {"train_per_class": 30, "test_per_class": 8}
# Both streams: tiny backbone at 64 px, 3-scale pyramid topped at C, mul fusion (the paper's defaults), no dropout
# (the tiny network underfits), gamma * l_attn on, beta * l_inter off (Eq. 6 is unbounded below in the feature scale;
# on the batch-normalised tiny network it grows without bound, see BUILD.md). Adam instead of the paper's SGD: the
# paper fine-tunes ImageNet networks, the tiny one learns from scratch, where SGD needs several times more steps
# (measured: SGD 0.003-0.02 for 600 steps reached 20-60% RGB top-1, Adam 0.001 90%).
STREAM_SETTINGS = {
    "rgb": {"optimizer": "adam", "learning_rate": 0.001},
    "flow": {"optimizer": "adam", "learning_rate": 0.001},
}


def _run(command: list[str]) -> None:
    print("$ " + " ".join(command), flush=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    subprocess.run(command, check=True, env=env)


def _prepared(raw_dir: str, split_dir: str) -> bool:
    """Whether a split's records are complete and record the benchmark's flip label map."""
    manifest_path, map_path = os.path.join(split_dir, "manifest.json"), os.path.join(raw_dir, FLIP_LABEL_MAP_FILE)
    if not os.path.exists(manifest_path):
        return False
    with open(manifest_path) as f:
        recorded = json.load(f).get("flip_label_map") or {}
    with open(map_path) as f:
        return recorded == json.load(f)


def prepare_data(out_dir: str, *, seed: int, workers: int, flow: str = "farneback") -> str:
    """Steps 1-2: the synthetic benchmark and its records. Returns the records directory."""
    raw_dir = os.path.join(out_dir, "raw")
    records_dir = os.path.join(out_dir, "records")
    if not all(os.path.exists(os.path.join(raw_dir, name)) for name in ("synthetic.json", FLIP_LABEL_MAP_FILE)):
        _run(
            [
                sys.executable,
                "-m",
                "data.synthetic",
                f"--out_dir={raw_dir}",
                f"--seed={seed}",
                *(f"--{key}={value}" for key, value in SYNTHETIC.items()),
            ]
        )
    else:
        print(f"synthetic benchmark: {raw_dir} (already there)")
    if not all(_prepared(raw_dir, os.path.join(records_dir, split)) for split in ("train", "test")):
        # data.prepare skips the shards already written (and rewrites the manifests: e.g. to add the flip label map
        # to records prepared before it existed).
        _run(
            [
                sys.executable,
                "-m",
                "data.prepare",
                "--dataset=ucf101",
                f"--raw_dir={raw_dir}",
                f"--out_dir={records_dir}",
                f"--flow={flow}",
                "--frame_size=none",
                f"--workers={workers}",
            ]
        )
    else:
        print(f"records: {records_dir} (already prepared)")
    return records_dir


def stream_config(
    stream: str,
    records_dir: str,
    runs_dir: str,
    *,
    steps: int,
    batch_size: int,
    seed: int,
    test_frames: int,
    progress: bool,
):
    """The RunConfig of one stream."""
    from stpa.engine import config as config_lib

    settings = STREAM_SETTINGS[stream]
    return config_lib.from_values(
        dict(
            model_dir=os.path.join(runs_dir, stream),
            records_dir=records_dir,
            model="stpa",
            backbone="tiny",
            modality=stream,
            scales=3,
            top="C",
            fusion="mul",
            input_size=64,
            dropout=0.0,
            beta=0.0,
            gamma=1e-4,
            train_frames=3,
            batch_size=batch_size,
            optimizer=settings["optimizer"],
            learning_rate=settings["learning_rate"],
            lr_boundaries=(max(int(steps * 0.75), 1),),
            max_steps=steps,
            eval_every=max(steps // 3, 1),
            eval_frames=test_frames,
            eval_batch_size=8,
            log_every=10,
            keep_checkpoints=2,
            seed=seed,
            progress=progress,
        )
    )


def train_command(config) -> str:
    """The `python -m stpa.train` command equivalent to a RunConfig (printed for the user)."""
    return f"python -m stpa.train --flagfile={os.path.join(config.model_dir, 'flags.txt')}"


def run_quickstart(
    out_dir: str,
    *,
    steps: int = 600,
    batch_size: int = 16,
    test_frames: int = 25,
    workers: int = 2,
    seed: int = 0,
    progress: bool = True,
    flow: str = "farneback",
) -> dict:
    """Runs steps 1-6. Returns the summary (also written to <out_dir>/quickstart.json)."""
    start = time.time()
    records_dir = prepare_data(out_dir, seed=seed, workers=workers, flow=flow)
    from data import pipeline
    from stpa.engine import evaluation, fusion, serving, trainer

    runs_dir = os.path.join(out_dir, "runs")
    num_classes = pipeline.read_manifest(os.path.join(records_dir, "train"))["num_classes"]
    summary = {"streams": {}, "chance": 1.0 / num_classes, "runs_dir": runs_dir}
    score_files = []
    for stream in ("rgb", "flow"):
        config = stream_config(
            stream,
            records_dir,
            runs_dir,
            steps=steps,
            batch_size=batch_size,
            seed=seed,
            test_frames=test_frames,
            progress=progress,
        )
        result = trainer.train(config)
        print(f"(trained as: {train_command(config)})", flush=True)
        print(
            f"$ python -m stpa.evaluate --model_dir={config.model_dir} --records_dir={records_dir} "
            f"--test_frames={test_frames}",
            flush=True,
        )
        report = evaluation.evaluate(
            records_dir=records_dir,
            model_dir=config.model_dir,
            test_frames=test_frames,
            batch_size=8,
            progress=progress,
        )
        print(evaluation.format_report(report), flush=True)
        print(f"$ python -m stpa.export --model_dir={config.model_dir}", flush=True)
        saved_model = serving.export_run(config.model_dir, test_frames=test_frames)
        score_files.append(report["scores_file"])
        summary["streams"][stream] = {
            "top1": report["top1"],
            "top5": report["top5"],
            "mean_class_accuracy": report["mean_class_accuracy"],
            "steps": result.step,
            "model_dir": config.model_dir,
            "saved_model": saved_model,
            "scores_file": report["scores_file"],
        }
    print(f"$ python -m stpa.fuse --scores={','.join(score_files)}", flush=True)
    fused = fusion.run_fusion(
        score_files,
        output=os.path.join(runs_dir, "fused_scores.npz"),
        metrics_output=os.path.join(runs_dir, "fused.json"),
    )
    summary["fused"] = fused["fused"]
    summary["seconds"] = time.time() - start
    files.write_json(os.path.join(out_dir, "quickstart.json"), summary)
    return summary


def format_summary(summary: dict) -> str:
    """The closing report."""
    chance = 100 * summary["chance"]
    lines = [
        f"\nQuickstart finished in {summary['seconds'] / 60:.1f} min. Test accuracy on the synthetic benchmark "
        f"(K = 25 frames per video; chance {chance:.1f}%):"
    ]
    for stream, values in summary["streams"].items():
        lines.append(
            f"  STPA {stream:<5} top-1 {100 * values['top1']:5.1f}%   top-5 {100 * values['top5']:5.1f}%   "
            f"mean class accuracy {100 * values['mean_class_accuracy']:5.1f}%"
        )
    fused = summary["fused"]
    lines.append(
        f"  fused      top-1 {100 * fused['top1']:5.1f}%   top-5 {100 * fused['top5']:5.1f}%   "
        f"mean class accuracy {100 * fused['mean_class_accuracy']:5.1f}%   (average of the two streams)"
    )
    lines.append(f"TensorBoard logs: tensorboard --logdir={summary['runs_dir']}")
    for stream, values in summary["streams"].items():
        lines.append(
            f"SavedModel ({stream}): {values['saved_model']}  "
            "(signatures serve_frames, serve_video, serve_encoded_video)"
        )
    return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
    """Runs the quickstart from the flags."""
    del argv
    from stpa.engine import flags as stpa_flags

    stpa_flags.quiet_logs()
    summary = run_quickstart(
        _OUT_DIR.value,
        steps=_TRAIN_STEPS.value,
        batch_size=_BATCH_SIZE.value,
        test_frames=_TEST_FRAMES.value,
        workers=_WORKERS.value,
        seed=_SEED.value,
        progress=_PROGRESS.value,
        flow=_FLOW.value,
    )
    print(format_summary(summary))


if __name__ == "__main__":
    app.run(main)
