r"""Same numbers before and after: fixed-seed tiny runs whose weights and scores must stay bit-identical.

  python benchmarks/same_numbers.py --repo=/work/before --out_dir=/tmp/same/before
  python benchmarks/same_numbers.py --repo=/work/after --out_dir=/tmp/same/after \
      --compare=/tmp/same/before/digests.json

Everything runs as subprocesses with `PYTHONPATH=<repo>` and the working directory `<repo>`, so the source tree under
test (`--repo`, e.g. a `git worktree` of an older commit) is what writes the records, trains, evaluates and reloads
the checkpoints; the Python interpreter is this one (`sys.executable`). Steps:

  1. tiny synthetic records with that tree's `tests.stpa.cli_fixtures.write_tiny_records` (3 classes, 2 train /
     1 test videos per class: 6 train / 3 test videos, 36 px, 10 frames, seed 0);
  2. `stpa.train` of experiments/synthetic/stpa_tiny_rgb.cfg, stpa_tiny_tsn_rgb.cfg and st_attn_tiny_rgb.cfg with
     `--max_steps=20 --eval_every=20 --deterministic --eval_frames=3 --batch_size=4 --seed=1`;
  3. `stpa.evaluate --test_frames=3` of each run (last checkpoint);
  4. digests: sha256 over every tensor of `stpa.engine.checkpoints.load_model(run)` (name, dtype, shape and bytes,
     in the model's weight order), sha256 over the score file's arrays (sorted keys; name, dtype, shape, bytes) and
     sha256 over the records (sorted relative paths; each SequenceExample re-serialised with
     `deterministic=True`, since protobuf writes the feature maps in no fixed order and the same tree writes
     different bytes for equal records from run to run; other files byte for byte), first 16 hex digits.

Prints a table (run, weights, scores, top-1) and writes `<out_dir>/digests.json`. With `--compare=JSON` (a previous
digests.json) it prints every digest that differs and exits 1 if any does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence

RUNS = (
    ("stpa_tiny_rgb.cfg", "stpa_rgb"),
    ("stpa_tiny_tsn_rgb.cfg", "tsn_rgb"),
    ("st_attn_tiny_rgb.cfg", "st_attn_rgb"),
)
TRAIN_FLAGS = (
    "--max_steps=20",
    "--eval_every=20",
    "--deterministic",
    "--eval_frames=3",
    "--batch_size=4",
    "--seed=1",
    "--noprogress",
)
TEST_FRAMES = 3
DIGEST_HEX = 16

_RECORDS_CODE = """
import sys
from tests.stpa.cli_fixtures import write_tiny_records
write_tiny_records(sys.argv[1], train_per_class=2, test_per_class=1)
"""

_RECORDS_DIGEST_CODE = """
import hashlib, os, sys
import tensorflow as tf

root = sys.argv[1]
digest = hashlib.sha256()
for directory, _, names in sorted(os.walk(root)):
    for name in sorted(names):
        path = os.path.join(directory, name)
        digest.update(os.path.relpath(path, root).encode() + b"\\0")
        if name.endswith(".tfrecord"):
            for record in tf.data.TFRecordDataset(path):
                example = tf.train.SequenceExample.FromString(record.numpy())
                digest.update(example.SerializeToString(deterministic=True))
        else:
            with open(path, "rb") as handle:
                digest.update(handle.read())
print(digest.hexdigest())
"""


_DIGEST_CODE = """
import hashlib, json, sys
import numpy as np
from stpa.engine import checkpoints
import stpa.families  # noqa: F401 - registers the model families.

def update(digest, name, array):
    array = np.ascontiguousarray(array)
    digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
    digest.update(array.tobytes())

model = checkpoints.load_model(sys.argv[1])
weights = hashlib.sha256()
for variable in model.weights:
    update(weights, variable.path if hasattr(variable, "path") else variable.name, np.asarray(variable))
scores = hashlib.sha256()
with np.load(sys.argv[2], allow_pickle=False) as data:
    for key in sorted(data.files):
        update(scores, key, data[key])
print(json.dumps({"weights": weights.hexdigest(), "scores": scores.hexdigest(), "num_tensors": len(model.weights)}))
"""


def _run(repo: str, args: Sequence[str], log_path: str) -> str:
    """Runs `python <args>` in `repo` with PYTHONPATH=repo; returns stdout.

    Args:
      repo: the source tree under test (working directory and PYTHONPATH).
      args: arguments after the interpreter.
      log_path: where stdout and stderr are written.

    Returns:
      The process's stdout.

    Raises:
      RuntimeError: the process failed (the message names the log).
    """
    env = dict(os.environ, PYTHONPATH=repo, PYTHONHASHSEED="0", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, *args], cwd=repo, env=env, capture_output=True, text=True, check=False)
    with open(log_path, "w") as log:
        log.write(result.stdout + "\n--- stderr ---\n" + result.stderr)
    if result.returncode:
        raise RuntimeError(f"{' '.join(args[:3])} failed ({result.returncode}); see {log_path}")
    return result.stdout


def measure(repo: str, out_dir: str) -> dict:
    """Writes records, trains, evaluates and digests every run of `RUNS` with the tree `repo`.

    Args:
      repo: the source tree under test.
      out_dir: where records, runs, logs and digests.json go (a fresh directory per tree).

    Returns:
      {"repo", "commit", "records": sha256, "runs": {flagfile: {"weights", "scores", "top1", "num_tensors"}}}.
    """
    repo = os.path.abspath(repo)
    out_dir = os.path.abspath(out_dir)
    logs = os.path.join(out_dir, "logs")
    os.makedirs(logs, exist_ok=True)
    records = os.path.join(out_dir, "records")
    _run(repo, ["-c", _RECORDS_CODE, records], os.path.join(logs, "records.log"))
    commit = subprocess.run(
        ["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    result = {
        "repo": repo,
        "commit": commit,
        "records": _run(repo, ["-c", _RECORDS_DIGEST_CODE, records], os.path.join(logs, "records_digest.log")).split()[
            -1
        ],
        "runs": {},
    }
    for flagfile, name in RUNS:
        model_dir = os.path.join(out_dir, "runs", name)
        scores = os.path.join(out_dir, "eval", f"{name}.npz")
        _run(
            repo,
            [
                "-m",
                "stpa.train",
                f"--flagfile=experiments/synthetic/{flagfile}",
                f"--records_dir={records}",
                f"--model_dir={model_dir}",
                *TRAIN_FLAGS,
            ],
            os.path.join(logs, f"train_{name}.log"),
        )
        _run(
            repo,
            [
                "-m",
                "stpa.evaluate",
                f"--model_dir={model_dir}",
                f"--records_dir={records}",
                f"--test_frames={TEST_FRAMES}",
                f"--output={scores}",
            ],
            os.path.join(logs, f"evaluate_{name}.log"),
        )
        digests = json.loads(
            _run(repo, ["-c", _DIGEST_CODE, model_dir, scores], os.path.join(logs, f"digest_{name}.log"))
            .strip()
            .splitlines()[-1]
        )
        with open(scores[: -len(".npz")] + ".json") as handle:
            digests["top1"] = json.load(handle)["top1"]
        result["runs"][flagfile] = digests
    with open(os.path.join(out_dir, "digests.json"), "w") as handle:
        json.dump(result, handle, indent=2, sort_keys=True)
    return result


def format_table(result: dict) -> str:
    """The Markdown table: run, weights, scores (first DIGEST_HEX hex digits), top-1."""
    lines = [
        f"tree {result['repo']} at {result['commit'][:7]}; records {result['records'][:DIGEST_HEX]}",
        "| run | weights | scores | top-1 |",
        "|---|---|---|---|",
    ]
    for flagfile, digests in result["runs"].items():
        top1 = digests["top1"]
        top1 = top1 * 100 if top1 <= 1 else top1
        lines.append(
            f"| {flagfile} | {digests['weights'][:DIGEST_HEX]} | {digests['scores'][:DIGEST_HEX]} | {top1:.2f} % |"
        )
    return "\n".join(lines)


def compare(result: dict, previous: dict) -> list[str]:
    """Every digest of `result` that differs from `previous`, as lines "<run> <digest>: <old> -> <new>"."""
    differences = []
    if result["records"] != previous["records"]:
        differences.append(f"records: {previous['records'][:DIGEST_HEX]} -> {result['records'][:DIGEST_HEX]}")
    for flagfile, digests in result["runs"].items():
        old = previous["runs"].get(flagfile)
        if old is None:
            differences.append(f"{flagfile}: missing from the previous digests")
            continue
        for key in ("weights", "scores"):
            if digests[key] != old[key]:
                differences.append(f"{flagfile} {key}: {old[key][:DIGEST_HEX]} -> {digests[key][:DIGEST_HEX]}")
        if digests["top1"] != old["top1"]:
            differences.append(f"{flagfile} top1: {old['top1']} -> {digests['top1']}")
    return differences


def main(argv: Sequence[str] | None = None) -> int:
    """Measures `--repo`, prints the table, and compares with `--compare` when given. Returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser.add_argument("--out_dir", required=True, help="Fresh directory for records, runs, logs, digests.json.")
    parser.add_argument("--compare", default=None, help="A previous digests.json; exit 1 if any digest differs.")
    args = parser.parse_args(argv)
    result = measure(args.repo, args.out_dir)
    print(format_table(result))
    if args.compare:
        with open(args.compare) as handle:
            previous = json.load(handle)
        differences = compare(result, previous)
        print(f"compared with {args.compare} ({previous['commit'][:7]}):")
        print("\n".join(differences) if differences else "all digests identical")
        return 1 if differences else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
