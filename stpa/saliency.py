"""Salient receptive fields of the pyramid attention (Sec. 4.4, Fig. 4-5 of Du et al.), in NumPy + OpenCV.

The attention A of one video is `(d, K*H*W)` with d = H*W; column j is the position (k, h, w) of the top pyramid
layer, row-major, and row m = h_m*W + w_m is an output position of M' (stpa.layers). A[m, (k, h, w)] is how much the
local feature at (h, w) of frame k contributes to output position m. A position is *salient* for m when
A[m, (k, h, w)] > threshold (0.5 in Fig. 4, 0.7 in Fig. 5); it is drawn as the centre of its receptive field,
approximated by the centre of the feature cell in the input frame: x = (w + 0.5) * frame_width / W,
y = (h + 0.5) * frame_height / H.

Fig. 4: for output position m = 0 (w_m = h_m = 1 in the paper's 1-based notation), the salient fields on all K
frames, for 1-, 2- and 3-scale models (blue, green, red). Fig. 5: for one frame, the salient fields of several
output positions m, one picture per m.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from stpa.engine.pictures import tile_column, tile_row

# Fig. 4's colours for 1, 2, 3 scales (RGB), then more for further models.
SCALE_COLOURS = ((40, 80, 255), (40, 200, 40), (255, 40, 40), (255, 200, 0), (200, 0, 200), (0, 200, 200))


def feature_grid(attention: np.ndarray, num_frames: int) -> tuple[int, int]:
    """(H, W) of the top pyramid layer from A `(d, K*H*W)` and K (square maps, d = H*W)."""
    d, n = attention.shape
    if n != num_frames * d:
        raise ValueError(f"attention of shape {attention.shape} does not have K*d = {num_frames}*{d} columns.")
    side = int(round(np.sqrt(d)))
    if side * side != d:
        raise ValueError(f"d = {d} is not a square; pass the feature map size explicitly.")
    return side, side


def salient_positions(
    attention: np.ndarray,
    num_frames: int,
    threshold: float,
    positions: int | Sequence[int] | None = None,
    grid: tuple[int, int] | None = None,
) -> np.ndarray:
    """Positions (k, h, w) whose attention score for the output positions `positions` exceeds `threshold`.

    Args:
      attention: (d, K*H*W) attention of one video.
      num_frames: K.
      threshold: e.g. 0.5 (Fig. 4) or 0.7 (Fig. 5).
      positions: an output position m, a list of them, or None for all d.
      grid: (H, W) of the top layer (default: square from d).

    Returns:
      int (P, 3) array of unique (k, h, w), sorted.
    """
    attention = np.asarray(attention)
    height, width = grid or feature_grid(attention, num_frames)
    rows = range(attention.shape[0]) if positions is None else np.atleast_1d(positions)
    columns = np.flatnonzero(np.any(attention[np.asarray(list(rows))] > threshold, axis=0))
    k, rest = np.divmod(columns, height * width)
    h, w = np.divmod(rest, width)
    return np.stack([k, h, w], axis=1).astype(np.int64) if len(columns) else np.zeros((0, 3), np.int64)


def receptive_field_centres(hw: np.ndarray, grid: tuple[int, int], image_size: tuple[int, int]) -> np.ndarray:
    """Pixel centres (x, y) of feature cells (h, w) of a (H, W) map in an image of (height, width).

    Args:
      hw: int (P, 2) feature positions (h, w).
      grid: (H, W) of the feature map.
      image_size: (height, width) of the frame.

    Returns:
      float (P, 2) array of (x, y).
    """
    hw = np.asarray(hw, np.float64).reshape(-1, 2)
    y = (hw[:, 0] + 0.5) * image_size[0] / grid[0]
    x = (hw[:, 1] + 0.5) * image_size[1] / grid[1]
    return np.stack([x, y], axis=1)


def draw_centres(
    frame: np.ndarray, centres: np.ndarray, colour: Sequence[int], radius: int | None = None
) -> np.ndarray:
    """Draws filled discs (with a dark rim) at `centres` (P, 2) (x, y) on a copy of `frame` (H, W, 3) uint8."""
    image = np.ascontiguousarray(frame.copy())
    radius = radius or max(2, min(image.shape[:2]) // 24)
    for x, y in np.round(centres).astype(int):
        cv2.circle(image, (int(x), int(y)), radius + 1, (0, 0, 0), -1, lineType=cv2.LINE_AA)
        cv2.circle(image, (int(x), int(y)), radius, tuple(int(c) for c in colour), -1, lineType=cv2.LINE_AA)
    return image


def render_salient_fields(
    frames: np.ndarray,
    attentions: Sequence[np.ndarray],
    *,
    threshold: float = 0.5,
    positions: int | Sequence[int] | None = 0,
    colours: Sequence[Sequence[int]] | None = None,
    gap: int = 2,
) -> np.ndarray:
    """Fig. 4 layout: one row per model (e.g. 1, 2, 3 scales), K frames per row, salient centres drawn.

    Args:
      frames: (K, H, W, 3) uint8 frames (see `displayable`).
      attentions: one (d_i, K*H_i*W_i) attention per model (models may have different top sizes).
      threshold: salience threshold.
      positions: output position(s) m, or None for all.
      colours: one RGB colour per model (default `SCALE_COLOURS`).
      gap: pixels between tiles.

    Returns:
      (rows*H + gaps, K*W + gaps, 3) uint8 image.
    """
    colours = colours or SCALE_COLOURS
    num_frames = frames.shape[0]
    rows = []
    for index, attention in enumerate(attentions):
        grid = feature_grid(attention, num_frames)
        salient = salient_positions(attention, num_frames, threshold, positions, grid)
        tiles = []
        for k in range(num_frames):
            centres = receptive_field_centres(salient[salient[:, 0] == k, 1:], grid, frames.shape[1:3])
            tiles.append(draw_centres(frames[k], centres, colours[index % len(colours)]))
        rows.append(tile_row(tiles, gap))
    return tile_column(rows, gap)


def render_positions(
    frame: np.ndarray,
    attention: np.ndarray,
    frame_index: int,
    output_positions: Sequence[int],
    *,
    num_frames: int,
    threshold: float = 0.7,
    colour: Sequence[int] = SCALE_COLOURS[2],
    gap: int = 2,
) -> np.ndarray:
    """Fig. 5 layout: for one frame k, one tile per output position m with the fields salient for that m.

    The output position m itself is marked with a white ring.

    Args:
      frame: (H, W, 3) uint8 frame k.
      attention: (d, K*H*W) attention of the video.
      frame_index: k.
      output_positions: the m to show.
      num_frames: K.
      threshold: salience threshold (0.7 in Fig. 5).
      colour: RGB colour of the salient centres.
      gap: pixels between tiles.

    Returns:
      (H, len(output_positions)*W + gaps, 3) uint8 image.
    """
    grid = feature_grid(attention, num_frames)
    tiles = []
    for m in output_positions:
        salient = salient_positions(attention, num_frames, threshold, m, grid)
        centres = receptive_field_centres(salient[salient[:, 0] == frame_index, 1:], grid, frame.shape[:2])
        tile = draw_centres(frame, centres, colour)
        ((x, y),) = receptive_field_centres(np.array([divmod(int(m), grid[1])]), grid, frame.shape[:2])
        cv2.circle(
            tile,
            (int(round(x)), int(round(y))),
            max(4, min(frame.shape[:2]) // 12),
            (255, 255, 255),
            1,
            lineType=cv2.LINE_AA,
        )
        tiles.append(tile)
    return tile_row(tiles, gap)
