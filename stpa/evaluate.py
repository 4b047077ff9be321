r"""Test a trained model with the protocol of Sec. 3.4: `python -m stpa.evaluate`.

  python -m stpa.evaluate --model_dir=runs/ucf101_rgb --records_dir=data/ucf101 --test_frames=25 --crops=1

K = `--test_frames` frames per video at the segment centres (TSN test sampling), centre / 3 / 10 crops with the
crop scores averaged. Prints and writes (JSON) top-1, top-5 and mean class accuracy — or, for multi-label data
(Charades), mAP and wAP as in the Charades/ActionVLAD protocol — and saves the per-video scores (`.npz`: scores
(N, C), labels, video_ids; input of `stpa.fuse`) and, next to it (`<stem>` = the score file without `.npz`):

  <stem>.json                metrics and the paths below
  <stem>_confusion.png       labelled confusion matrix, rows normalised, colour bar (single-label only)
  <stem>_per_class.png/.csv  per-class top-1 accuracy (single-label) or average precision (multi-label)
  <model_dir>/training_curves.png   loss / accuracy / learning rate from the run's TensorBoard events

Each path is printed after its file was written. `--saved_model` evaluates an exported SavedModel (`stpa.export`)
through its `serve_frames` signature instead of a run directory (no training curves then).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from absl import app, flags

import stpa.families  # noqa: F401 - the composition root: registers the model families.
from data import files
from stpa.engine import evaluation
from stpa.engine import flags as stpa_flags

stpa_flags.define_eval_flags()
FLAGS = flags.FLAGS


def main(argv: Sequence[str]) -> None:
    """Evaluates from the flags and prints the metrics."""
    del argv
    stpa_flags.quiet_logs()
    if not FLAGS.records_dir:
        raise app.UsageError("--records_dir is required (the --out_dir of data.prepare).")
    try:
        report = evaluation.evaluate(
            records_dir=FLAGS.records_dir,
            model_dir=FLAGS.model_dir,
            saved_model=FLAGS.saved_model,
            which=FLAGS.checkpoint,
            split=FLAGS.split,
            test_frames=FLAGS.test_frames,
            crops=int(FLAGS.crops),
            batch_size=FLAGS.batch_size,
            max_videos=FLAGS.max_videos,
            output=FLAGS.output,
            jit_compile=FLAGS.jit_compile,
        )
    except (ValueError, FileNotFoundError) as error:
        raise app.UsageError(str(error)) from error
    except files.WriteError as error:
        sys.exit(f"stpa.evaluate: {error}")
    print(evaluation.format_report(report))


if __name__ == "__main__":
    app.run(main)
