r"""Export a trained model as a SavedModel: `python -m stpa.export`.

  python -m stpa.export --model_dir=runs/ucf101_rgb [--export_dir=runs/ucf101_rgb/saved_model] [--test_frames=25]

Signatures (see `stpa.engine.serving`):

  serve_frames         (B, K, S, S, C) float frames in [0, 255], K free -> probabilities, logits, attention.
  serve_video          one whole decoded uint8 video of any length -> in-graph TSN test sampling of K frames, centre
                       crop, normalisation -> probabilities, logits, frame_indices, attention.
  serve_encoded_video  the same video as JPEG bytes, one string per frame (`frames_bytes`; flow models:
                       `flow_x_bytes`, `flow_y_bytes`) -> only the K sampled frames are decoded in-graph; same outputs.

Use it from any TensorFlow program:

  model = tf.saved_model.load("runs/ucf101_rgb/saved_model")
  probabilities = model.serve_video(video)["probabilities"]
  probabilities = model.signatures["serve_encoded_video"](frames_bytes=tf.constant(jpegs))["probabilities"]

or from TF Serving (REST: {"signature_name": "serve_encoded_video", "inputs": {"frames_bytes": [{"b64": ...}, ...]}}).
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import app, flags

import stpa.families  # noqa: F401 - the composition root: registers the model families.
from stpa.engine import flags as stpa_flags
from stpa.engine import serving

_MODEL_DIR = flags.DEFINE_string("model_dir", None, "Run directory written by stpa.train.")
_CHECKPOINT = flags.DEFINE_enum(
    "checkpoint",
    "last",
    ["best", "last"],
    "Which weights of --model_dir: the last checkpoint or the best on validation.",
)
_EXPORT_DIR = flags.DEFINE_string(
    "export_dir", None, "Where to write the SavedModel (default: <model_dir>/saved_model)."
)
_TEST_FRAMES = flags.DEFINE_integer(
    "test_frames", 25, "K sampled by serve_video and serve_encoded_video (Sec. 3.4: 25).", lower_bound=1
)


def main(argv: Sequence[str]) -> None:
    """Exports from the flags and prints where the SavedModel is."""
    del argv
    stpa_flags.quiet_logs()
    try:
        path = serving.export_run(
            _MODEL_DIR.value, _EXPORT_DIR.value, which=_CHECKPOINT.value, test_frames=_TEST_FRAMES.value
        )
    except (ValueError, FileNotFoundError) as error:
        raise app.UsageError(str(error)) from error
    print(f"SavedModel written to {path} (signatures: serve_frames, serve_video, serve_encoded_video)")


if __name__ == "__main__":
    flags.mark_flag_as_required("model_dir")
    app.run(main)
