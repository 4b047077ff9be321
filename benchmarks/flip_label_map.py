r"""Does the flip label map matter? Two direction classes, told apart by motion only, trained with and without it.

    python benchmarks/flip_label_map.py [--out_dir=runs/bench_flip --steps=1000 --seeds=0]

The benchmark: `data.synthetic` with MoveRight and MoveLeft only, ``cue=motion`` (colour and shape are random, so
the direction of motion is the only thing that tells the classes apart), 30 training and 16 test videos per class,
Farneback flow. The network: TSN on the flow stream (`tiny` backbone, 64 px, K = 3, Adam 1e-3), tested with K = 25
centre crops. Three arms per seed, differing only in the training flip:

  map        the benchmark's flip label map (a mirrored MoveRight clip is labelled MoveLeft and vice versa)
  identity   TSN's flip, which keeps the label: half the mirrored clips of each class move the other class's way
  no flip    never mirrored (the reference: nothing is mirrored, nothing is mislabelled)

The claim: "map" separates the two classes (as "no flip" does), "identity" cannot (its training labels carry no
information about the direction of a mirrored clip, so about half the clips of each class teach the opposite).
Prints per-class test accuracy of every arm and seed. A benchmark, not a test: about 2-3 minutes per arm and seed on
2 CPU cores. At 300 steps no arm learns (the no-flip reference included: BUILD.md), hence 1000.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np

ARMS = {"map": {"flip_label_map": "manifest"}, "identity": {"flip_label_map": "identity"}, "no flip": {"flip": False}}


def _run(command: list[str]) -> None:
    print("$ " + " ".join(command), flush=True)
    subprocess.run(command, check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))


def prepare(out_dir: str) -> str:
    """The two-class motion benchmark and its records (skipped when already there). Returns the records dir."""
    raw, records = os.path.join(out_dir, "raw"), os.path.join(out_dir, "records")
    _run(
        [
            sys.executable,
            "-m",
            "data.synthetic",
            f"--out_dir={raw}",
            "--num_classes=2",
            "--cue=motion",
            "--train_per_class=30",
            "--test_per_class=16",
            "--seed=0",
        ]
    )
    if not os.path.exists(os.path.join(records, "test", "manifest.json")):
        _run(
            [
                sys.executable,
                "-m",
                "data.prepare",
                "--dataset=ucf101",
                f"--raw_dir={raw}",
                f"--out_dir={records}",
                "--flow=farneback",
                "--frame_size=none",
                "--workers=2",
                "--noprogress",
            ]
        )
    return records


def train_and_test(records: str, model_dir: str, *, steps: int, seed: int, arm: dict) -> np.ndarray:
    """Trains one arm and tests it; returns its per-class top-1 accuracy (C,)."""
    import stpa.families  # noqa: F401 - registers the families
    from stpa.engine import config as config_lib
    from stpa.engine import evaluation, trainer

    config = config_lib.from_values(dict(
        model_dir=model_dir, records_dir=records, model="tsn", backbone="tiny", modality="flow", input_size=64,
        dropout=0.0, train_frames=3, batch_size=16, optimizer="adam", learning_rate=1e-3,
        lr_boundaries=(int(steps * 0.75),), max_steps=steps, eval_every=0, eval_split=None, seed=seed,
        deterministic=True, progress=False, **arm))  # fmt: skip
    trainer.train(config)
    report = evaluation.evaluate(records_dir=records, model_dir=model_dir, test_frames=25, batch_size=8, progress=False)
    with np.load(report["scores_file"]) as scores:
        predicted, labels = scores["scores"].argmax(axis=1), scores["labels"]
    return np.array([np.mean(predicted[labels == c] == c) for c in range(2)])


def main() -> None:
    """Runs every arm and seed and prints the per-class accuracy table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out_dir", default="runs/bench_flip")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seeds", default="0")
    args = parser.parse_args()
    from stpa.engine import flags as stpa_flags

    stpa_flags.quiet_logs()
    records = prepare(args.out_dir)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for name, arm in ARMS.items():
        for seed in seeds:
            model_dir = os.path.join(args.out_dir, "runs", f"{name.replace(' ', '_')}_seed{seed}")
            rows.append((name, seed, train_and_test(records, model_dir, steps=args.steps, seed=seed, arm=arm)))
    print(f"\nTSN flow, {args.steps} steps, test K = 25: per-class top-1 (%) on 16 test videos per class")
    print(f"{'arm':<10} {'seed':>4} {'MoveRight':>10} {'MoveLeft':>9} {'mean':>6}")
    for name, seed, accuracy in rows:
        right, left, mean = 100 * accuracy[0], 100 * accuracy[1], 100 * accuracy.mean()
        print(f"{name:<10} {seed:>4} {right:>10.1f} {left:>9.1f} {mean:>6.1f}")


if __name__ == "__main__":
    main()
