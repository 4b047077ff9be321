"""Weakly-supervised spatial and temporal localisation with a trained ST-attn model (Sec. 4.2, Tables 5-6).

    python -m st_attn.localize --model_dir=RUN --records_dir=PREPARED [--split=test --num_frames=25]
    python -m st_attn.localize --model_dir=RUN --features_dir=FEATURES        # a model trained on cached features

What it computes and how it scores (frame mAP of the mask boxes, Table 5; segment mAP of the temporal attention,
Table 6; the centred-box and whole-clip baselines; class-aware and class-agnostic AP): `st_attn.localization_tables`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from st_attn.attention_runs import (  # noqa: F401 - re-exported for callers of the module before the split
    AttentionRun,
    attention_dataset,
    define_run_flags,
    load_trained,
    open_attention_run,
)
from st_attn.localization_tables import (  # noqa: F401 - re-exported for callers of the module before the split
    VideoAttention,
    centre_crop_window,
    collect_attention,
    format_tables,
    localize,
    spatial_detections,
    temporal_detections,
)


def _define_flags() -> None:
    from absl import flags

    define_run_flags()
    flags.DEFINE_integer("batch_size", 4, "Clips per forward pass.", lower_bound=1)
    flags.DEFINE_float("threshold", 0.5, "Mask / normalised temporal attention threshold (Sec. 4.2).")
    flags.DEFINE_boolean("all_frames", False, "Score boxes on sampled frames without ground truth as false positives.")
    flags.DEFINE_integer("max_videos", None, "Only the first N videos (quick looks).")
    flags.DEFINE_string(
        "output", None, "JSON output (default: <model_dir or model_path dir>/localization_<split>.json)."
    )


def main(argv: Sequence[str]) -> None:
    """Collects the attention of the split, scores it, prints the tables and writes the JSON."""
    del argv
    from absl import flags

    import stpa.families  # noqa: F401 - the composition root: a run directory's family rebuilds its network.
    from data import files
    from data import records as record_format

    config = flags.FLAGS
    run = open_attention_run(config, batch_size=config.batch_size)
    records_split, input_size = run.records_split, run.input_size
    annotations = record_format.read_annotations(records_split)
    videos = collect_attention(run.probe, run.dataset, max_videos=config.max_videos)
    result = localize(
        videos, annotations, input_size=input_size, threshold=config.threshold, all_frames=config.all_frames
    )
    print(f"{len(videos)} videos, top-1 {100 * result['classification']['top1']:.1f}%\n")
    print(format_tables(result))
    output = config.output or os.path.join(
        config.model_dir or os.path.dirname(os.path.abspath(config.model_path)), f"localization_{config.split}.json"
    )
    try:
        files.write_json(output, result, indent=1, sort_keys=True)
    except files.WriteError as error:
        raise SystemExit(f"st_attn.localize: {error}") from error
    print(f"wrote {output}")


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
