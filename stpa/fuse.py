r"""Late fusion of two or more streams' score files: `python -m stpa.fuse`.

The paper (Sec. 4.1, Table 1(d)-(e)) averages the RGB and flow scores:

  python -m stpa.fuse --scores=runs/rgb/eval/scores.npz,runs/flow/eval/scores.npz --weights=1,1

With `--tune_on` (validation score files of the same streams, same order) the weights are searched on the validation
set and the test accuracy is reported with them:

  python -m stpa.fuse --scores=rgb_test.npz,flow_test.npz --tune_on=rgb_val.npz,flow_val.npz

Prints each stream's and the fused metrics; `--output` writes the fused score file, `--metrics_output` a JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from absl import app, flags

from stpa import fusion, metrics, score_files

_SCORES = flags.DEFINE_list("scores", None, "Score files (.npz from stpa.evaluate) to fuse, comma separated.")
_WEIGHTS = flags.DEFINE_list("weights", None, "One weight per score file (default: all 1, the paper's average).")
_NORMALIZE = flags.DEFINE_enum("normalize", "none", list(fusion.NORMALIZATIONS),
                               "Applied to each stream's scores before averaging (TSN averages raw scores).")
_TUNE_ON = flags.DEFINE_list("tune_on", None, "Validation score files (same streams, same order): search the "
                             "weights there and report --scores' metrics with them.")
_GRID_STEP = flags.DEFINE_float("grid_step", 0.05, "Spacing of the weight grid searched with --tune_on.")
_OUTPUT = flags.DEFINE_string("output", None, "Where to write the fused score file (.npz).")
_METRICS_OUTPUT = flags.DEFINE_string("metrics_output", None, "Where to write the metrics (JSON).")


def run_fusion(scores: Sequence[str], *, weights: Sequence[float] | None = None, normalize: str = "none",
               tune_on: Sequence[str] | None = None, grid_step: float = 0.05, output: str | None = None,
               metrics_output: str | None = None) -> dict:
    """Fuses score files and reports metrics (the body of the command; also used by `stpa.train --streams`).

    Args:
      scores: paths of S score files.
      weights: S weights, or None (equal weights, or tuned when `tune_on` is given).
      normalize: "none" or "softmax".
      tune_on: S validation score files to search the weights on.
      grid_step: spacing of the weight grid.
      output: optional path of the fused score file.
      metrics_output: optional JSON path.

    Returns:
      {"streams": [per-file metrics], "weights": [...], "fused": metrics, "tuned_on": {...} | None}.
    """
    sets = [score_files.load_scores(path) for path in scores]
    if len(sets) < 2:
        raise ValueError(f"--scores needs two or more files to fuse, got {list(scores)}.")
    tuned = None
    if tune_on:
        if weights:
            raise ValueError("give either --weights or --tune_on, not both.")
        if len(tune_on) != len(sets):
            raise ValueError(f"--tune_on needs one file per --scores file ({len(sets)}), got {len(tune_on)}.")
        weights, value = fusion.tune_weights([score_files.load_scores(p) for p in tune_on], step=grid_step,
                                             normalize=normalize)
        tuned = {"files": list(tune_on), "metric": value}
    fused = fusion.fuse_scores(sets, weights, normalize)
    weights = [1.0] * len(sets) if weights is None else [float(w) for w in weights]
    result = {
        "streams": [
            {"file": path, **metrics.classification_report(s.scores, s.labels, multi_label=s.multi_label)}
            for path, s in zip(scores, sets)
        ],
        "weights": weights,
        "normalize": normalize,
        "fused": metrics.classification_report(fused.scores, fused.labels, multi_label=fused.multi_label),
        "tuned_on": tuned,
    }
    if output:
        score_files.save_scores(output, fused)
    if metrics_output:
        os.makedirs(os.path.dirname(os.path.abspath(metrics_output)), exist_ok=True)
        with open(metrics_output, "w") as f:
            json.dump(result, f, indent=2)
    return result


def format_report(result: dict) -> str:
    """A small table of each stream's and the fused metrics."""
    keys = [k for k in ("top1", "top5", "mean_class_accuracy", "mAP", "wAP") if k in result["fused"]]
    lines = [f"{'stream':<40}" + "".join(f"{k:>22}" for k in keys)]
    for stream in result["streams"]:
        lines.append(f"{os.path.basename(os.path.dirname(stream['file'])) + '/' + os.path.basename(stream['file']):<40}"
                     + "".join(f"{100 * stream[k]:>21.2f}%" for k in keys))
    label = "fused (weights " + ",".join(f"{w:g}" for w in result["weights"]) + ")"
    lines.append(f"{label:<40}" + "".join(f"{100 * result['fused'][k]:>21.2f}%" for k in keys))
    if result["tuned_on"]:
        lines.append(f"weights tuned on {result['tuned_on']['files']} (validation metric "
                     f"{100 * result['tuned_on']['metric']:.2f}%)")
    return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
    """Runs the fusion from the flags and prints the table."""
    del argv
    weights = [float(w) for w in _WEIGHTS.value] if _WEIGHTS.value else None
    try:
        result = run_fusion(_SCORES.value or [], weights=weights, normalize=_NORMALIZE.value, tune_on=_TUNE_ON.value,
                            grid_step=_GRID_STEP.value, output=_OUTPUT.value, metrics_output=_METRICS_OUTPUT.value)
    except (ValueError, FileNotFoundError) as error:
        raise app.UsageError(str(error)) from error
    print(format_report(result))


if __name__ == "__main__":
    flags.mark_flag_as_required("scores")
    app.run(main)
