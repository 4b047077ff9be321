r"""The pilot that chooses the pre-registered benchmark's settings, from the baselines only.

    python -m experiments.pilot --out_dir=runs/pilot [--candidates=A,B,C]

Written and committed before it ran. It looks at the BASELINES only, never at a claim: TSN RGB
(`study_stpa_tsn_rgb`), TSN flow (`study_stpa_tsn_flow`) and the ST-attn full model on the paper's chain (the TSN
RGB run's fine-tuned trunk -> `st_attn.features` -> `study_st_attn_chain`, Meng et al. Sec. 3.1). It runs on a
benchmark instance of its own (generation seed `PILOT_SEED`, never used by a study), one training seed per run, and
reads the training accuracy (K = 25 centre-crop test sampling on the first `TRAIN_VIDEOS` training videos) and the
validation accuracy (the pilot instance's test split, 50 videos per class).

Candidates (cheapest first). Every candidate uses 50 validation videos per class, the flip label map
(`--flip_label_map`), and the step rule: the schedule keeps the current number of epochs (TSN: 600 steps x 16
clips over 360 videos = 26.7 epochs; ST-attn: 400 steps x 8 over 360 = 8.9 epochs), so steps scale with the
training videos per class; the learning rate drops 10x at 75 % of the steps as now.

  A  the current study preset (60 training videos per class)                      TSN 600 steps, ST-attn 400
  B  150 training videos per class                                                 TSN 1500, ST-attn 1000
  C  B with larger actors (radius 5-10 px instead of 3-10)                         TSN 1500, ST-attn 1000

Decision rule (stated before any run): the first candidate, in the order above, whose TSN RGB and TSN flow
validation top-1 both lie in [45, 80] % and whose ST-attn validation top-1 is >= 36.7 % (20 points above chance)
becomes the benchmark of `experiments/preregistration.md`. If none qualifies, none is chosen: the report says so
and the next pilot (a new committed candidate list) runs before any study.

Round 1 (A-C, `experiments/results/pilot/pilot.csv`) chose none: TSN flow was at 79-98 % validation and TSN RGB at
27-44 %, and every setting tried moved both streams the same way. Round 2 (`--round=2`, committed before it ran,
`pilot2.csv`) therefore moves them separately, starting from C (the candidate closest to the band): larger actors
raise RGB (C over B: RGB +11.6, flow +2.6 points), and stronger pixel noise (`noise_sigma`, 6 grey levels in C)
degrades the Farneback flow far more than the actor's colour. Same step rule, same decision rule; the candidates run
in the order below and the round stops at the first that qualifies (the ST-attn chain runs only where both TSN
streams are in the band, since otherwise the candidate cannot qualify):

  D  150 per class, actor radius 7-10 px, noise_sigma 20                         TSN 1500 steps, ST-attn 1000
  E  150 per class, actor radius 7-10 px, noise_sigma 32                         TSN 1500, ST-attn 1000
  F  150 per class, actor radius 7-10 px, noise_sigma 44                         TSN 1500, ST-attn 1000
  G  150 per class, actor radius 5-10 px, noise_sigma 20                         TSN 1500, ST-attn 1000
  H  150 per class, actor radius 5-10 px, noise_sigma 32                         TSN 1500, ST-attn 1000
  I  150 per class, actor radius 5-10 px, noise_sigma 44                         TSN 1500, ST-attn 1000

Round 2 (`pilot2.csv`) chose none either: larger actors put TSN RGB in the band (67.3 % validation in D), but pixel
noise left TSN flow at 93-99 % even at noise_sigma 44, because the flow stream sees only one thing that moves like
a class: the actor. Round 3 (`--round=3`, committed before it ran, `pilot3.csv`) gives the flow stream what
class_parts distractors give the RGB stream, things that look like a class and are not: each distractor is, with
probability `decoy_probability`, a decoy that performs the motion of another class over a window like the actor's
(`data.synthetic`), so only the actor's conjunction of look and motion tells the class. Its base is D (the
candidate with RGB in the band); same step and decision rules; stops at the first that qualifies:

  J  D with decoy_probability 0.25                                               TSN 1500 steps, ST-attn 1000
  K  D with decoy_probability 0.5                                                TSN 1500, ST-attn 1000
  L  D with decoy_probability 1.0                                                TSN 1500, ST-attn 1000
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time

from experiments import schedules

PILOT_SEED = 1000
TRAIN_VIDEOS = 300
VALIDATION_PER_CLASS = 50
FLAGFILES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "synthetic")
# name: (data.synthetic overrides of --preset=study, the schedule: steps per schedule group of the rows' families,
# spelled as a pre-registration's `schedule:` line, `experiments.schedules`)
CANDIDATES: dict[str, tuple[dict[str, str], str]] = {
    "A": ({"train_per_class": "60"}, "stpa=600, st_attn=400"),
    "B": ({"train_per_class": "150"}, "stpa=1500, st_attn=1000"),
    "C": ({"train_per_class": "150", "actor_radius_range": "5,10"}, "stpa=1500, st_attn=1000"),
}
ROUND2: dict[str, tuple[dict[str, str], str]] = {
    name: ({"train_per_class": "150", "actor_radius_range": radius, "noise_sigma": sigma}, "stpa=1500, st_attn=1000")
    for name, radius, sigma in (
        ("D", "7,10", "20"),
        ("E", "7,10", "32"),
        ("F", "7,10", "44"),
        ("G", "5,10", "20"),
        ("H", "5,10", "32"),
        ("I", "5,10", "44"),
    )
}
ROUND3: dict[str, tuple[dict[str, str], str]] = {
    name: ({**ROUND2["D"][0], "decoy_probability": p}, "stpa=1500, st_attn=1000")
    for name, p in (("J", "0.25"), ("K", "0.5"), ("L", "1.0"))
}
ROUNDS = {1: CANDIDATES, 2: ROUND2, 3: ROUND3}
# The baselines (run name: flagfile stem); the run names prefix pilot.csv's columns. STREAMS must both lie in the
# band; CHAIN's head trains on the features that FEATURES extracts with the trunk of the run TRUNK.
STREAMS = {"tsn_rgb": "study_stpa_tsn_rgb", "tsn_flow": "study_stpa_tsn_flow"}
CHAIN, CHAIN_FLAGFILE = "st_attn_chain", "study_st_attn_chain"
FEATURES, TRUNK = "study_st_attn_features", "tsn_rgb"
STREAM_TEST_FRAMES, CHAIN_TEST_FRAMES = 25, 6  # K of the evaluations
BASELINES = (*STREAMS, CHAIN)


def _run(command: list[str], log: str) -> None:
    """Runs a command (stdout and stderr to ``log``); raises with the log's path when it fails."""
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with open(log, "a") as out:
        out.write("$ " + " ".join(command) + "\n")
        out.flush()
        code = subprocess.call(
            command, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        )
    if code:
        raise RuntimeError(f"{' '.join(command[:3])} failed (exit {code}); see {log}")


def _py(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def _top1(report: str) -> float:
    with open(report) as f:
        return 100.0 * json.load(f)["top1"]


def _streams_in_band(result: dict[str, float]) -> bool:
    return all(45.0 <= result[f"{run}_val"] <= 80.0 for run in STREAMS)


def _train(flagfile: str, source: str, run: str, steps: dict[str, int], log: str) -> None:
    """`stpa.train` of a baseline at seed 0 with the schedule of its family's schedule group."""
    _run(
        _py(
            "stpa.train",
            f"--flagfile={flagfile}",
            source,
            f"--model_dir={run}",
            "--seed=0",
            "--deterministic",
            "--noprogress",
            *schedules.overrides(flagfile, False, steps),
        ),
        log,
    )


def _evaluate(run: str, records: str, test_frames: int, log: str) -> None:
    """`stpa.evaluate` of a run on the test split (kept as eval/val.json) and its first training videos."""
    for split, extra in (("test", []), ("train", [f"--max_videos={TRAIN_VIDEOS}"])):
        _run(
            _py(
                "stpa.evaluate",
                f"--model_dir={run}",
                f"--records_dir={records}",
                f"--split={split}",
                f"--test_frames={test_frames}",
                f"--output={run}/eval/{split}.npz",
                *extra,
            ),
            log,
        )
    os.replace(os.path.join(run, "eval", "test.json"), os.path.join(run, "eval", "val.json"))


def run_candidate(name: str, out_dir: str, *, chain_if_streams_fail: bool = True) -> dict[str, float]:
    """Generates, prepares, trains and evaluates one candidate's baselines; returns {measure: top-1 %}.

    With ``chain_if_streams_fail=False`` the chain is skipped (its measures absent) when a stream of `STREAMS` is
    outside the band, as the candidate cannot qualify then.
    """
    overrides, schedule = {**CANDIDATES, **ROUND2, **ROUND3}[name]
    steps = schedules.parse_schedule(schedule)
    root = os.path.join(out_dir, name)
    raw, records, log = os.path.join(root, "raw"), os.path.join(root, "records"), os.path.join(root, "log.txt")
    if not os.path.exists(os.path.join(records, "test", "manifest.json")):
        _run(
            _py(
                "data.synthetic",
                "--preset=study",
                f"--out_dir={raw}",
                f"--seed={PILOT_SEED}",
                f"--test_per_class={VALIDATION_PER_CLASS}",
                *(f"--{k}={v}" for k, v in overrides.items()),
            ),
            log,
        )
        _run(
            _py(
                "data.prepare",
                "--dataset=ucf101",
                f"--raw_dir={raw}",
                f"--out_dir={records}",
                "--flow=farneback",
                "--frame_size=none",
                "--workers=2",
                "--noprogress",
            ),
            log,
        )
    result = {}
    for stream, stem in STREAMS.items():
        run = os.path.join(root, "runs", stream)
        if not os.path.exists(os.path.join(run, "eval", "val.json")):
            _train(f"{FLAGFILES}/{stem}.cfg", f"--records_dir={records}", run, steps, log)
            _evaluate(run, records, STREAM_TEST_FRAMES, log)
        result[f"{stream}_train"] = _top1(os.path.join(run, "eval", "train.json"))
        result[f"{stream}_val"] = _top1(os.path.join(run, "eval", "val.json"))
    if not chain_if_streams_fail and not _streams_in_band(result):
        return result
    trunk, features = os.path.join(root, "runs", TRUNK), os.path.join(root, "features")
    run = os.path.join(root, "runs", CHAIN)
    if not os.path.exists(os.path.join(run, "eval", "val.json")):
        if not os.path.exists(os.path.join(features, "test", "manifest.json")):
            _run(
                _py(
                    "st_attn.features",
                    f"--flagfile={FLAGFILES}/{FEATURES}.cfg",
                    f"--records_dir={records}",
                    f"--out_dir={features}",
                    f"--weights={trunk}",
                ),
                log,
            )
        _train(f"{FLAGFILES}/{CHAIN_FLAGFILE}.cfg", f"--features_dir={features}", run, steps, log)
        _evaluate(run, features, CHAIN_TEST_FRAMES, log)
    result[f"{CHAIN}_train"] = _top1(os.path.join(run, "eval", "train.json"))
    result[f"{CHAIN}_val"] = _top1(os.path.join(run, "eval", "val.json"))
    return result


def qualifies(result: dict[str, float]) -> bool:
    """The decision rule of the module docstring."""
    return _streams_in_band(result) and result.get(f"{CHAIN}_val", 0.0) >= 100.0 / 6 + 20.0


def main() -> None:
    """Runs the chosen candidates (resumable) and writes pilot.csv and pilot.md under --results_dir."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out_dir", default="runs/pilot")
    parser.add_argument("--results_dir", default="experiments/results/pilot")
    parser.add_argument("--round", type=int, default=3, choices=sorted(ROUNDS))
    parser.add_argument("--candidates", default=None, help="default: the round's candidates, in order")
    args = parser.parse_args()
    candidates = ROUNDS[args.round]
    os.makedirs(args.results_dir, exist_ok=True)
    csv_path = os.path.join(args.results_dir, "pilot.csv" if args.round == 1 else f"pilot{args.round}.csv")
    fields = ["candidate", *(f"{b}_{s}" for b in BASELINES for s in ("train", "val")), "qualifies", "minutes"]
    rows = []
    for name in args.candidates.split(",") if args.candidates else candidates:
        start = time.time()
        print(f"candidate {name}: {candidates[name]}", flush=True)
        result = run_candidate(name, args.out_dir, chain_if_streams_fail=args.round == 1)
        rows.append(
            {
                "candidate": name,
                **{k: f"{v:.1f}" for k, v in result.items()},
                "qualifies": qualifies(result),
                "minutes": f"{(time.time() - start) / 60:.1f}",
            }
        )
        print(rows[-1], flush=True)
        with open(csv_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, restval="not run")
            writer.writeheader()
            writer.writerows(rows)
        if args.round > 1 and rows[-1]["qualifies"]:
            break  # the round stops at the first candidate that qualifies
    chosen = next((row["candidate"] for row in rows if row["qualifies"]), None)
    print(f"chosen: {chosen or 'none (run a new committed candidate list)'}")


if __name__ == "__main__":
    main()
