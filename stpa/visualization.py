"""Figures 4 and 5 of Du et al. for trained models (library of `python -m stpa.visualize`).

Clips are taken with the test protocol (K segment centres, centre crop; `data.pipeline` without preprocessing, or
`serving.sample_test_clip` for a video file), run through each model's attention-outputs model, and drawn with
`stpa.saliency`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from data import files
from stpa import saliency
from stpa.engine import pictures as engine_pictures


def figure_path(out_dir: str, video_id: str, figure: int) -> str:
    """`<out_dir>/<video_id>_fig<figure>.png`; a UCF101-style id "Class/v_Class_g01_c01" keeps its class subfolder.

    Raises:
      ValueError: the id would leave `out_dir` (absolute, or with "..").
    """
    relative = os.path.normpath(f"{video_id}_fig{figure}.png")
    if os.path.isabs(relative) or relative.split(os.sep)[0] == os.pardir:
        raise ValueError(f"video id {video_id!r} would be written outside --out_dir={out_dir!r}.")
    return os.path.join(out_dir, relative)


def load_clips(
    config: dict,
    *,
    records_dir: str | None,
    split: str = "test",
    video_ids: Sequence[str] | None = None,
    num_videos: int = 1,
    video: str | None = None,
    num_frames: int = 5,
) -> list[tuple[str, np.ndarray]]:
    """Test clips in [0, 255] (not normalised) for the models described by `config`.

    Args:
      config: a run's config.json dict (modality, input_size, flow_length).
      records_dir: prepared dataset (unless `video`).
      split: split directory.
      video_ids: videos to take (default: the first `num_videos`).
      num_videos: how many when `video_ids` is None.
      video: a video file to use instead of the records (RGB only).
      num_frames: K.

    Returns:
      [(video id, float32 (K, S, S, C))].
    """
    size, modality, flow_length = int(config["input_size"]), config["modality"], int(config["flow_length"])
    if video is not None:
        if modality != "rgb":
            raise ValueError(
                "--video needs RGB models (flow would have to be computed first; prepare the video "
                "with data.prepare and use --records_dir)."
            )
        from data import video_io
        from stpa.engine import serving

        frames, _ = video_io.read_video(video)
        clip, _ = serving.sample_test_clip(
            tf.constant(frames), test_frames=num_frames, input_size=size, modality="rgb", flow_length=flow_length
        )
        return [(os.path.splitext(os.path.basename(video))[0], clip.numpy())]
    if not records_dir:
        raise ValueError("give --records_dir (a prepared dataset) or --video.")
    from data import pipeline

    dataset = pipeline.build_dataset(
        os.path.join(records_dir, split),
        training=False,
        num_frames=num_frames,
        batch_size=1,
        modality=modality,
        flow_length=flow_length,
        input_size=size,
        with_metadata=True,
    )
    wanted = set(video_ids or [])
    clips = []
    for frames, _, metadata in dataset:
        video_id = metadata["video_id"].numpy()[0].decode()
        if wanted and video_id not in wanted:
            continue
        clips.append((video_id, frames.numpy()[0]))
        if (wanted and len(clips) == len(wanted)) or (not wanted and len(clips) >= num_videos):
            break
    missing = wanted - {video_id for video_id, _ in clips}
    if missing:
        raise ValueError(f"videos {sorted(missing)} are not in {os.path.join(records_dir, split)}.")
    return clips


def attention_maps(outputs_models: Sequence, preprocess, frames: np.ndarray) -> list[np.ndarray]:
    """The attention A (d, K*H*W) of each model for one clip (K, S, S, C) in [0, 255]."""
    batch = preprocess(tf.constant(frames[None], tf.float32))
    return [np.asarray(model(batch, training=False)["attention"][0], np.float64) for model in outputs_models]


def visualize(
    model_dirs: Sequence[str],
    *,
    records_dir: str | None = None,
    split: str = "test",
    which: str = "last",
    video_ids: Sequence[str] | None = None,
    num_videos: int = 1,
    video: str | None = None,
    num_frames: int = 5,
    figure: int = 4,
    positions: Sequence[int] | None = (),
    frame_index: int = 0,
    threshold: float | None = None,
    out_dir: str = "figures",
    tensorboard_dir: str | None = None,
) -> list[str]:
    """Draws Fig. 4 or Fig. 5 for each clip. Returns the PNG paths, each written (`figure_path`).

    Args:
      model_dirs: run directories (STPA models sharing modality, input size and backbone).
      records_dir: prepared dataset.
      split: split directory.
      which: "best" or "last" weights.
      video_ids: videos to draw.
      num_videos: how many videos when `video_ids` is None.
      video: a video file instead of records.
      num_frames: K.
      figure: 4 or 5.
      positions: output positions m; empty for the figure's default (Fig. 4: m = 0; Fig. 5: up to 16 spread over
        the map), None for all.
      frame_index: the frame of Fig. 5.
      threshold: salience threshold (default 0.5 for Fig. 4, 0.7 for Fig. 5).
      out_dir: PNG directory.
      tensorboard_dir: optional summary directory.

    Raises:
      data.files.WriteError: a PNG cannot be written (its path is named).
    """
    from stpa import models
    from stpa.engine import checkpoints

    if not model_dirs:
        raise ValueError("--model_dirs needs at least one run directory.")
    configs = [checkpoints.load_run_config(d) for d in model_dirs]
    for key in ("modality", "input_size", "backbone", "flow_length"):
        values = {c[key] for c in configs}
        if len(values) > 1:
            raise ValueError(
                f"--model_dirs disagree on {key}: {sorted(map(str, values))}; compare models of one "
                "stream and input size."
            )
    outputs_models = []
    for model_dir in model_dirs:
        outputs_model = models.attention_outputs_model(checkpoints.load_model(model_dir, which))
        if "attention" not in outputs_model.output:
            raise ValueError(
                f"{model_dir} is not an STPA model (no pyramid attention); for ST-attn models use "
                "`python -m st_attn.visualize`."
            )
        outputs_models.append(outputs_model)
    preprocess = models.preprocess_for(configs[0]["backbone"], configs[0]["modality"])
    if threshold is None:
        threshold = 0.5 if figure == 4 else 0.7
    if frame_index >= num_frames:
        raise ValueError(f"--frame_index={frame_index} must be < --frames={num_frames}.")
    clips = load_clips(
        configs[0],
        records_dir=records_dir,
        split=split,
        video_ids=video_ids,
        num_videos=num_videos,
        video=video,
        num_frames=num_frames,
    )
    writer = tf.summary.create_file_writer(tensorboard_dir) if tensorboard_dir else None
    paths = []
    for video_id, frames in clips:
        attentions = attention_maps(outputs_models, preprocess, frames)
        pictures = engine_pictures.enlarge(engine_pictures.displayable(frames))
        if figure == 4:
            chosen = 0 if positions is not None and not positions else positions
            image = saliency.render_salient_fields(pictures, attentions, threshold=threshold, positions=chosen)
        else:
            d = attentions[-1].shape[0]
            if positions is None:
                chosen = list(range(d))
            else:
                chosen = list(positions) or [int(m) for m in np.unique(np.linspace(0, d - 1, min(d, 16)).astype(int))]
            bad = [m for m in chosen if not 0 <= m < d]
            if bad:
                raise ValueError(f"--positions {bad} out of range: the attention has d = {d} output positions.")
            image = saliency.render_positions(
                pictures[frame_index], attentions[-1], frame_index, chosen, num_frames=num_frames, threshold=threshold
            )
        path = files.write_image(figure_path(out_dir, video_id, figure), image)  # (H, W, 3) RGB
        paths.append(path)
        if writer is not None:
            with writer.as_default(step=0):
                tf.summary.image(f"{video_id}/fig{figure}", image[None])
    if writer is not None:
        writer.flush()
    return paths
