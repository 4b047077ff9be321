"""Pictures of ST-attn's attention: Fig. 4-style strips and Fig. 5-style boxes, as PNG, animated GIF and TensorBoard.

    python -m st_attn.visualize --model_dir=RUN --records_dir=PREPARED [--split=test --num_videos=4 --out_dir=DIR]

Fig. 4 of Meng et al.: a row of frames, the spatial attention as a heat map over each (red = important), and the
temporal attention as a grey tile per frame (the brighter, the more important). Fig. 5: the box localised from the
mask (red) and the ground-truth boxes (blue). Everything is drawn on what the network saw (the test centre crop).

Library functions (NumPy / Pillow, no flags): `attention_strip`, `draw_boxes`, `box_strip`,
`animation_frames`, `save_png`, `save_gif`, and `attention_images` (the ST-attn family's TensorBoard pictures).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw

from data import files
from st_attn import localization as loc
from stpa.engine import pictures

PREDICTED_COLOUR = (230, 30, 30)  # red, as in Fig. 5
GROUND_TRUTH_COLOUR = (30, 80, 240)  # blue


def displayable(frames: np.ndarray, min_side: int = 96) -> np.ndarray:
    """Frames (n, H, W, C) in [0, 255] -> (n, H', W', 3) uint8 RGB for display.

    Flow stacks are shown as colour-coded flow; frames are enlarged (nearest neighbour) so that the short side is at
    least `min_side`.
    """
    return pictures.enlarge(pictures.displayable(frames), min_side)


def frame_brightness(weights: np.ndarray) -> np.ndarray:
    """Per-frame temporal attention in [0, 1] for display: weights (n_steps, n) or (n,) -> (n,) min-max normalised."""
    weights = np.asarray(weights, np.float64)
    importance = loc.frame_importance(weights) if weights.ndim == 2 else weights
    return loc.normalize_unit_interval(importance)


def attention_strip(
    frames: np.ndarray,
    mask: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    *,
    max_frames: int | None = None,
    gap: int = 2,
) -> np.ndarray:
    """Fig. 4: frames (top), spatial attention heat maps (middle), temporal attention as grey tiles (bottom).

    Args:
      frames: (n, H, W, 3) uint8 (see `displayable`).
      mask: (n, h, w) or (n, h, w, 1) spatial attention, or None.
      weights: (n_steps, n) temporal attention (or (n,) per-frame values), or None.
      max_frames: show this many frames, evenly spaced (None: all).
      gap: pixels between tiles.

    Returns:
      (H', W', 3) uint8.
    """
    n = len(frames)
    chosen = np.arange(n) if not max_frames or max_frames >= n else np.linspace(0, n - 1, max_frames).round()
    chosen = chosen.astype(int)
    rows = [pictures.tile_row([frames[i] for i in chosen], gap)]
    if mask is not None:
        rows.append(pictures.tile_row([pictures.overlay_mask(frames[i], mask[i]) for i in chosen], gap))
    if weights is not None:
        brightness = frame_brightness(weights)
        height, width = frames.shape[1] // 3, frames.shape[2]
        tiles = [np.full((height, width, 3), int(round(255 * brightness[i])), np.uint8) for i in chosen]
        rows.append(pictures.tile_row(tiles, gap))
    return pictures.tile_column(rows, gap)


def draw_boxes(
    frame: np.ndarray,
    predicted: np.ndarray | None = None,
    ground_truth: Sequence[np.ndarray] | np.ndarray = (),
    thickness: int | None = None,
) -> np.ndarray:
    """Fig. 5: ground-truth boxes (blue) and the predicted box (red), normalised (x1, y1, x2, y2), on a frame copy."""
    image = Image.fromarray(np.ascontiguousarray(frame))
    draw = ImageDraw.Draw(image)
    height, width = frame.shape[:2]
    thickness = thickness or max(1, min(height, width) // 48)
    scale = np.array([width, height, width, height], np.float64)

    def rectangle(box, colour):
        x1, y1, x2, y2 = np.asarray(box, np.float64) * scale
        draw.rectangle([x1, y1, max(x2 - 1, x1), max(y2 - 1, y1)], outline=colour, width=thickness)

    for box in np.asarray(ground_truth, np.float64).reshape(-1, 4):
        rectangle(box, GROUND_TRUTH_COLOUR)
    if predicted is not None:
        rectangle(predicted, PREDICTED_COLOUR)
    return np.asarray(image)


def box_strip(
    frames: np.ndarray,
    predicted: Sequence[np.ndarray | None],
    ground_truth: Sequence[np.ndarray],
    gap: int = 2,
) -> np.ndarray:
    """A row of frames with their predicted (red) and ground-truth (blue) boxes."""
    return pictures.tile_row([draw_boxes(f, p, g) for f, p, g in zip(frames, predicted, ground_truth)], gap)


def to_crop_coordinates(boxes: np.ndarray, window: Sequence[float]) -> np.ndarray:
    """Normalised frame boxes (m, 4) -> normalised boxes of the crop `window` (x1, y1, x2, y2), clipped to it."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    x1, y1, x2, y2 = window
    origin = np.array([x1, y1, x1, y1])
    size = np.array([x2 - x1, y2 - y1, x2 - x1, y2 - y1])
    return np.clip((boxes - origin) / size, 0.0, 1.0)


def animation_frames(
    frames: np.ndarray,
    mask: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    predicted: Sequence[np.ndarray | None] | None = None,
    ground_truth: Sequence[np.ndarray] | None = None,
    gap: int = 2,
) -> list[np.ndarray]:
    """One picture per frame for an animated GIF: [frame with boxes | heat map] above a temporal-attention bar."""
    animation = []
    brightness = frame_brightness(weights) if weights is not None else None
    for t, frame in enumerate(frames):
        left = frame
        if predicted is not None or ground_truth is not None:
            left = draw_boxes(
                frame, None if predicted is None else predicted[t], () if ground_truth is None else ground_truth[t]
            )
        panels = [left] + ([pictures.overlay_mask(frame, mask[t])] if mask is not None else [])
        picture = pictures.tile_row(panels, gap)
        if brightness is not None:
            bar = np.full((max(frame.shape[0] // 8, 4), picture.shape[1], 3), 40, np.uint8)
            filled = int(round(brightness[t] * picture.shape[1]))
            bar[:, :filled] = int(round(80 + 175 * brightness[t]))
            picture = pictures.tile_column([picture, bar], gap)
        animation.append(picture)
    return animation


def save_png(image: np.ndarray, path: str) -> str:
    """Writes an (H, W, 3) uint8 image as PNG (folder created, atomic). Returns the path.

    Raises:
      data.files.WriteError: naming `path`, when it cannot be written.
    """
    return files.write_atomic(path, lambda temporary: Image.fromarray(image).save(temporary, format="PNG"))


def save_gif(images: Sequence[np.ndarray], path: str, duration_ms: int = 250) -> str:
    """Writes (H, W, 3) uint8 images as a looping animated GIF (folder created, atomic). Returns the path.

    Raises:
      ValueError: no images.
      data.files.WriteError: naming `path`, when it cannot be written.
    """
    if len(images) == 0:
        raise ValueError(f"no frames to write to {path}.")
    images_pil = [Image.fromarray(image) for image in images]
    return files.write_atomic(
        path,
        lambda temporary: images_pil[0].save(
            temporary, format="GIF", save_all=True, append_images=images_pil[1:], duration=duration_ms, loop=0
        ),
    )


def attention_images(outputs: dict, frames: np.ndarray, max_frames: int = 10) -> dict[str, np.ndarray]:
    """TensorBoard pictures of one clip (the ST-attn family's `summary_images`).

    Args:
      outputs: attention-outputs dict for a batch whose first clip is shown ("mask" (B, n, h, w, 1) optional,
        "temporal_weights" (B, n_steps, n)), NumPy values.
      frames: (n, H, W, C) frames of that clip in [0, 255].
      max_frames: frames shown.

    Returns:
      {"attention/st_attn_strip": (H', W', 3) uint8}.
    """
    mask = np.asarray(outputs["mask"])[0] if "mask" in outputs else None
    weights = np.asarray(outputs["temporal_weights"])[0] if "temporal_weights" in outputs else None
    strip = attention_strip(displayable(frames), mask, weights, max_frames=max_frames)
    return {"attention/st_attn_strip": strip}


# ---------------------------------------------------------------------------------------------------- command line


def _define_flags() -> None:
    from absl import flags

    from st_attn.attention_runs import define_run_flags

    define_run_flags(records_required=True)
    flags.DEFINE_list("video_ids", None, "Videos to draw (default: the first --num_videos).")
    flags.DEFINE_integer("num_videos", 4, "Videos to draw when --video_ids is not given.", lower_bound=1)
    flags.DEFINE_integer("max_frames", 10, "Frames shown in a strip (evenly spaced; the GIF shows all).", lower_bound=1)
    flags.DEFINE_integer("gif_ms", 250, "GIF frame duration (ms).", lower_bound=10)
    flags.DEFINE_string("out_dir", None, "Output directory (default: <model_dir>/pictures).")


def _clip_frames(entry: dict, frame_indices: np.ndarray, input_size: int) -> np.ndarray:
    """The network's view of a clip: frames decoded from a record, short side resized, centre crop (uint8)."""
    from st_attn.localization_tables import centre_crop_window

    frames = []
    for index in frame_indices:
        image = cv2.imdecode(np.frombuffer(entry["frames"][int(index)], np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
        height, width = image.shape[:2]
        x1, y1, x2, y2 = centre_crop_window(height, width, input_size)
        crop = image[int(round(y1 * height)) : int(round(y2 * height)), int(round(x1 * width)) : int(round(x2 * width))]
        frames.append(cv2.resize(crop, (input_size, input_size), interpolation=cv2.INTER_LINEAR))
    return np.stack(frames)


def main(argv: Sequence[str]) -> None:
    """Draws strips, boxes and GIFs for the chosen videos."""
    del argv
    from absl import flags

    import stpa.families  # noqa: F401 - the composition root: a run directory's family rebuilds its network.
    from data import records as record_format
    from st_attn.attention_runs import open_attention_run
    from st_attn.localization_tables import collect_attention

    config = flags.FLAGS
    run = open_attention_run(config, batch_size=1)
    records_split, input_size, dataset = run.records_split, run.input_size, run.dataset
    wanted = set(config.video_ids or [])
    if wanted:
        dataset = dataset.filter(lambda inputs, labels, metadata: _is_wanted(metadata["video_id"][0], wanted))
    videos = collect_attention(run.probe, dataset, max_videos=len(wanted) if wanted else config.num_videos)
    entries = {}
    for example in record_format.iterate_sequence_examples(records_split):
        entry = record_format.example_to_dict(example, with_frames=False)
        if entry["video_id"] in {v.video_id for v in videos}:
            entries[entry["video_id"]] = record_format.example_to_dict(example, with_frames=True)
    out_dir = config.out_dir or os.path.join(
        config.model_dir or os.path.dirname(os.path.abspath(config.model_path)), "pictures"
    )
    try:
        for video in videos:
            _draw_video(video, entries[video.video_id], input_size, out_dir, config.max_frames, config.gif_ms)
    except files.WriteError as error:
        raise SystemExit(f"st_attn.visualize: {error}") from error


def _draw_video(video, entry: dict, input_size: int, out_dir: str, max_frames: int, gif_ms: int) -> None:
    """Writes one video's attention strip, GIF and box strip, then prints their paths."""
    from st_attn.localization_tables import centre_crop_window

    frames = _clip_frames(entry, video.frame_indices, input_size)  # (n, S, S, 3)
    shown = displayable(frames)
    window = centre_crop_window(video.height, video.width, input_size)
    truth = [to_crop_coordinates(entry["boxes"].get(int(i), np.zeros((0, 4))), window) for i in video.frame_indices]
    predicted = [None] * len(frames)
    if video.mask is not None:
        predicted = [loc.box_from_mask(m, (input_size, input_size)) for m in video.mask]
    name = video.video_id.replace("/", "_")
    written = [
        save_png(
            attention_strip(shown, video.mask, video.weights, max_frames=max_frames),
            os.path.join(out_dir, f"{name}_attention.png"),
        ),
        save_gif(
            animation_frames(shown, video.mask, video.weights, predicted, truth),
            os.path.join(out_dir, f"{name}_attention.gif"),
            gif_ms,
        ),
    ]
    if video.mask is not None:
        chosen = np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int)
        written.append(
            save_png(
                box_strip(shown[chosen], [predicted[i] for i in chosen], [truth[i] for i in chosen]),
                os.path.join(out_dir, f"{name}_boxes.png"),
            )
        )
    print(f"{video.video_id}: " + ", ".join(written))


def _is_wanted(video_id, wanted: set[str]):
    import tensorflow as tf

    return tf.reduce_any(tf.equal(video_id, tf.constant(sorted(wanted))))


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
