r"""Classify your own videos with trained runs: `python -m stpa.predict`.

  python -m stpa.predict clip.mp4 more_clips/ --model_dirs=runs/rgb,runs/flow --output=predictions.csv

One run directory (`--model_dirs`) or exported SavedModel (`--saved_models`) per stream; videos are files (anything
OpenCV reads) or folders (their video files, recursively). Per stream each video becomes what the run was trained
on: `data.prepare`'s own extraction with the settings its records manifest recorded (frame size, JPEG quality,
frame rate, and for a flow run the flow method and bound; the manifest of `--records_dir`, else of the run's own
--records_dir in flags.txt), then the test protocol of `stpa.evaluate` (K = `--test_frames` segment centres,
`--crops`), and the streams are fused as `stpa.fuse` fuses them (`--weights`, `--normalize`). Prints per video the
top-k classes with probabilities; `--output` writes them (.csv or .json), `--overlay_dir` an animated GIF (and an mp4)
per video and stream of the K frames with the model's attention drawn on them (STPA: the salient receptive fields
of Sec. 4.4; ST-attn: the mask as a heat map and the temporal weights as a bar). A video that cannot be read gets
one line naming it; the others are predicted and the command exits with status 1.

In Python (a notebook): `from stpa import predict; predict.Predictor.load("runs/rgb").predict("clip.mp4").top()`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from absl import app, flags

import stpa.families  # noqa: F401 - the composition root: registers the model families.
from data import files, video_clips, video_io
from stpa.engine import flags as stpa_flags
from stpa.engine import fusion
from stpa.engine import prediction as prediction_lib
from stpa.engine.prediction import Predictor, VideoPrediction  # the notebook entry: `predict.Predictor.load(...)`

__all__ = ["Predictor", "VideoPrediction", "main"]

_MODEL_DIRS = flags.DEFINE_list("model_dirs", None, "Run directories of stpa.train, one per stream (e.g. rgb,flow).")
_SAVED_MODELS = flags.DEFINE_list(
    "saved_models", None, "SavedModels of stpa.export, one per stream (after the --model_dirs streams)."
)
_CHECKPOINT = flags.DEFINE_enum("checkpoint", "last", ["best", "last"], "Which weights of each run directory.")
_RECORDS_DIR = flags.DEFINE_string(
    "records_dir",
    None,
    "The prepared dataset the runs were trained on (data.prepare --out_dir): its manifest says how frames and flow "
    "were extracted. Default: each run's own --records_dir (its flags.txt).",
)
_FLOW = flags.DEFINE_enum(
    "flow", None, ["tvl1", "dis", "farneback"], "Flow method of the flow streams, instead of the manifest's."
)
_TEST_FRAMES = flags.DEFINE_integer(
    "test_frames",
    None,
    "K, frames per video (default: the run's: a SavedModel's export K, a run's --eval_frames, else 25).",
    lower_bound=1,
)
_CROPS = flags.DEFINE_enum("crops", "1", list(stpa_flags.CROPS), "Centre crop, 3 crops or 10 crops (scores averaged).")
_WEIGHTS = flags.DEFINE_list("weights", None, "One fusion weight per stream (default: all 1, the paper's average).")
_NORMALIZE = flags.DEFINE_enum(
    "normalize", "none", list(fusion.NORMALIZATIONS), "Applied to each stream's scores before fusing (stpa.fuse)."
)
_TOP_K = flags.DEFINE_integer("top_k", 5, "Classes printed and written per video.", lower_bound=1)
_OUTPUT = flags.DEFINE_string("output", None, "Write the predictions here: .csv (one row per video) or .json.")
_OVERLAY_DIR = flags.DEFINE_string(
    "overlay_dir", None, "Write <video>_<stream>.gif (and .mp4) of the K frames with the attention drawn on them."
)
_FRAME_MS = flags.DEFINE_integer("frame_ms", 250, "Display time of one overlay frame (ms).", lower_bound=10)
_PROGRESS = flags.DEFINE_bool("progress", True, "Show a progress bar over the videos.")


def overlay_names(videos: Sequence[str]) -> list[str]:
    """File-name stems of the overlays: each video's name without extension, numbered when two share one."""
    stems: list[str] = []
    for video in videos:
        stem = os.path.splitext(os.path.basename(os.path.normpath(video)))[0]
        stems.append(stem if stem not in stems else f"{stem}_{len(stems) + 1}")
    return stems


def main(argv: Sequence[str]) -> None:
    """Predicts the videos named on the command line; exits with status 1 when one could not be read."""
    stpa_flags.quiet_logs()
    import tqdm

    if len(argv) < 2:
        raise app.UsageError("name one or more video files or folders, e.g. python -m stpa.predict clip.mp4 ...")
    sources = (_MODEL_DIRS.value or []) + (_SAVED_MODELS.value or [])
    if not sources:
        raise app.UsageError("give --model_dirs (run directories of stpa.train) or --saved_models (of stpa.export).")
    if _OUTPUT.value and os.path.splitext(_OUTPUT.value)[1].lower() not in (".csv", ".json"):
        raise app.UsageError(f"--output must end in .csv or .json, got {_OUTPUT.value!r}.")
    try:
        videos = video_clips.list_videos(argv[1:])
        weights = [float(w) for w in _WEIGHTS.value] if _WEIGHTS.value else None
        predictor = Predictor.load(
            sources,
            which=_CHECKPOINT.value,
            records_dir=_RECORDS_DIR.value,
            flow=_FLOW.value,
            test_frames=_TEST_FRAMES.value,
            crops=int(_CROPS.value),
            weights=weights,
            normalize=_NORMALIZE.value,
        )
    except (ValueError, FileNotFoundError) as error:  # a run that cannot take videos, unknown flow settings, ...
        sys.exit(f"stpa.predict: {error}")
    for note in predictor.notes:
        print(f"stpa.predict: {note}", file=sys.stderr)
    predictions: list[VideoPrediction] = []
    failures: list[tuple[str, str]] = []
    try:
        with tqdm.tqdm(videos, desc="predict", unit="video", disable=not _PROGRESS.value, leave=False) as bar:
            for video, stem in zip(bar, overlay_names(videos)):
                try:
                    prediction = predictor.predict(video)
                except video_io.VideoReadError as error:
                    failures.append((video, error.reason))
                    bar.write(f"stpa.predict: cannot read {video}: {error.reason}", file=sys.stderr)
                    continue
                predictions.append(prediction)
                bar.write(prediction_lib.format_prediction(prediction, _TOP_K.value))
                if _OVERLAY_DIR.value:
                    written = predictor.write_overlays(
                        prediction, _OVERLAY_DIR.value, name=stem, frame_ms=_FRAME_MS.value
                    )
                    for path in written:
                        bar.write(f"  overlay: {path}")
        if _OUTPUT.value:
            prediction_lib.write_predictions(_OUTPUT.value, predictions, failures, _TOP_K.value)
            print(f"wrote {_OUTPUT.value}")
    except files.WriteError as error:
        sys.exit(f"stpa.predict: {error}")
    if failures:
        print(f"stpa.predict: {len(failures)} of {len(videos)} videos could not be read.", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
