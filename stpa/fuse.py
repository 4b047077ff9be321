r"""Late fusion of two or more streams' score files: `python -m stpa.fuse`.

The paper (Sec. 4.1, Table 1(d)-(e)) averages the RGB and flow scores:

  python -m stpa.fuse --scores=runs/rgb/eval/scores.npz,runs/flow/eval/scores.npz --weights=1,1

With `--tune_on` (validation score files of the same streams, same order) the weights are searched on the validation
set and the test accuracy is reported with them:

  python -m stpa.fuse --scores=rgb_test.npz,flow_test.npz --tune_on=rgb_val.npz,flow_val.npz

Prints each stream's and the fused metrics; `--output` writes the fused score file, `--metrics_output` a JSON.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from absl import app, flags

from data import files
from stpa.engine import fusion

_SCORES = flags.DEFINE_list("scores", None, "Score files (.npz from stpa.evaluate) to fuse, comma separated.")
_WEIGHTS = flags.DEFINE_list("weights", None, "One weight per score file (default: all 1, the paper's average).")
_NORMALIZE = flags.DEFINE_enum(
    "normalize",
    "none",
    list(fusion.NORMALIZATIONS),
    "Applied to each stream's scores before averaging (TSN averages raw scores).",
)
_TUNE_ON = flags.DEFINE_list(
    "tune_on",
    None,
    "Validation score files (same streams, same order): search the "
    "weights there and report --scores' metrics with them.",
)
_GRID_STEP = flags.DEFINE_float("grid_step", 0.05, "Spacing of the weight grid searched with --tune_on.")
_OUTPUT = flags.DEFINE_string("output", None, "Where to write the fused score file (.npz).")
_METRICS_OUTPUT = flags.DEFINE_string("metrics_output", None, "Where to write the metrics (JSON).")


def main(argv: Sequence[str]) -> None:
    """Runs the fusion from the flags and prints the table."""
    del argv
    weights = [float(w) for w in _WEIGHTS.value] if _WEIGHTS.value else None
    try:
        result = fusion.run_fusion(
            _SCORES.value or [],
            weights=weights,
            normalize=_NORMALIZE.value,
            tune_on=_TUNE_ON.value,
            grid_step=_GRID_STEP.value,
            output=_OUTPUT.value,
            metrics_output=_METRICS_OUTPUT.value,
        )
    except (ValueError, FileNotFoundError) as error:
        raise app.UsageError(str(error)) from error
    except files.WriteError as error:
        sys.exit(f"stpa.fuse: {error}")
    print(fusion.format_report(result))
    for path in (_OUTPUT.value, _METRICS_OUTPUT.value):
        if path:
            print(f"wrote {path}")


if __name__ == "__main__":
    flags.mark_flag_as_required("scores")
    app.run(main)
