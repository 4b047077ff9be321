r"""Salient receptive fields of trained STPA models (Sec. 4.4, Fig. 4-5 of Du et al.): `python -m stpa.visualize`.

Fig. 4 (one row per model, e.g. 1-, 2- and 3-scale models side by side; K = 5 frames; output position m = 0;
threshold 0.5; blue / green / red):

  python -m stpa.visualize --model_dirs=runs/s1,runs/s2,runs/s3 --records_dir=data/ucf101 --num_videos=4 \
      --out_dir=runs/figures

Fig. 5 (one frame, one tile per output position m, threshold 0.7, the last model):

  python -m stpa.visualize --model_dirs=runs/s3 --records_dir=data/ucf101 --figure=5 --positions=0,5,10,15

`--positions=all` uses every output position. `--video=clip.avi` visualises a video file instead of records (RGB
models). PNGs go to --out_dir as `<video_id>_fig<4|5>.png` (a UCF101 id "Class/v_Class_g01_c01" writes into the
class subfolder), and with --tensorboard_dir also image summaries. Each printed path has been written; a file that
cannot be written stops the command with a one-line error naming it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from absl import app, flags

import stpa.families  # noqa: F401 - the composition root: registers the model families.
from data import files
from stpa.engine import flags as stpa_flags

_MODEL_DIRS = flags.DEFINE_list(
    "model_dirs",
    None,
    "Run directories of stpa.train (STPA models with the same "
    "modality and input size), drawn bottom to top in Fig. 4's colours.",
)
_CHECKPOINT = flags.DEFINE_enum("checkpoint", "last", ["best", "last"], "Which weights of each run.")
_RECORDS_DIR = flags.DEFINE_string("records_dir", None, "Prepared dataset (data.prepare --out_dir).")
_SPLIT = flags.DEFINE_string("split", "test", "Split directory under --records_dir.")
_VIDEO_IDS = flags.DEFINE_list("video_ids", None, "Videos to draw (default: the first --num_videos).")
_NUM_VIDEOS = flags.DEFINE_integer("num_videos", 1, "How many videos when --video_ids is not given.", lower_bound=1)
_VIDEO = flags.DEFINE_string("video", None, "A video file to visualise instead of records (RGB models).")
_FRAMES = flags.DEFINE_integer("frames", 5, "K frames per video (Fig. 4 shows 5).", lower_bound=1)
_FIGURE = flags.DEFINE_enum(
    "figure",
    "4",
    ["4", "5"],
    "4: all frames for output position(s) --positions; 5: one frame (--frame_index), one tile per output position.",
)
_POSITIONS = flags.DEFINE_list(
    "positions",
    None,
    "Output positions m (row-major h*W + w) or 'all' (default: 0 for Fig. 4, every position for Fig. 5, at most 16).",
)
_FRAME_INDEX = flags.DEFINE_integer("frame_index", 0, "The frame k of Fig. 5.", lower_bound=0)
_THRESHOLD = flags.DEFINE_float(
    "threshold", None, "Salience threshold on A[m, (k, h, w)] (default 0.5 for Fig. 4, 0.7 for Fig. 5)."
)
_OUT_DIR = flags.DEFINE_string("out_dir", "figures", "Where to write the PNGs.")
_TENSORBOARD_DIR = flags.DEFINE_string("tensorboard_dir", None, "Also write the images as TensorBoard summaries.")


def parse_positions(values: Sequence[str] | None) -> list[int] | None:
    """--positions -> list of ints, or None for all."""
    if not values:
        return []
    if len(values) == 1 and values[0].lower() == "all":
        return None
    try:
        return [int(v) for v in values]
    except ValueError as error:
        raise ValueError(f"--positions takes integers or 'all', got {values}.") from error


def main(argv: Sequence[str]) -> None:
    """Draws the figures from the flags."""
    del argv
    stpa_flags.quiet_logs()
    from stpa import visualization

    try:
        paths = visualization.visualize(
            _MODEL_DIRS.value,
            records_dir=_RECORDS_DIR.value,
            split=_SPLIT.value,
            which=_CHECKPOINT.value,
            video_ids=_VIDEO_IDS.value,
            num_videos=_NUM_VIDEOS.value,
            video=_VIDEO.value,
            num_frames=_FRAMES.value,
            figure=int(_FIGURE.value),
            positions=parse_positions(_POSITIONS.value),
            frame_index=_FRAME_INDEX.value,
            threshold=_THRESHOLD.value,
            out_dir=_OUT_DIR.value,
            tensorboard_dir=_TENSORBOARD_DIR.value,
        )
    except (ValueError, FileNotFoundError) as error:
        raise app.UsageError(str(error)) from error
    except files.WriteError as error:
        sys.exit(f"stpa.visualize: {error}")
    for path in paths:
        print(os.path.abspath(path))


if __name__ == "__main__":
    flags.mark_flag_as_required("model_dirs")
    app.run(main)
