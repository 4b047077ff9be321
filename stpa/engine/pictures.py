"""Picture helpers every family's attention drawings use: displayable frames, tiling, heat-map overlays.

Pure NumPy / OpenCV on uint8 (H, W, 3) RGB images. `overlay_mask` upsamples with `upsample_bilinear` (float64,
half-pixel centres), the same upsampling `st_attn.localization` thresholds into boxes, so a drawn mask is exactly the
map the localisation used.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def flow_to_image(flow_stack: np.ndarray) -> np.ndarray:
    """A colour picture (H, W, 3) uint8 of the middle flow field of a stack (H, W, 2L) of quantised u8 x/y values."""
    stack = np.asarray(flow_stack, np.float32)
    middle = (stack.shape[-1] // 2) // 2 * 2
    dx, dy = stack[..., middle] - 127.5, stack[..., middle + 1] - 127.5
    magnitude, angle = cv2.cartToPolar(dx, dy, angleInDegrees=True)
    hsv = np.zeros((*stack.shape[:2], 3), np.uint8)
    hsv[..., 0] = np.uint8(angle / 2)
    hsv[..., 1] = 255
    hsv[..., 2] = np.uint8(np.clip(magnitude * 255.0 / max(float(magnitude.max()), 1e-6), 0, 255))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def displayable(frames: np.ndarray) -> np.ndarray:
    """(K, H, W, C) frames in [0, 255] -> (K, H, W, 3) uint8 RGB (flow stacks rendered by `flow_to_image`)."""
    frames = np.asarray(frames)
    if frames.shape[-1] == 3:
        return np.clip(np.round(frames), 0, 255).astype(np.uint8)
    return np.stack([flow_to_image(frame) for frame in frames])


def enlarge(frames: np.ndarray, min_side: int = 128) -> np.ndarray:
    """Nearest-neighbour upscaling of (K, H, W, 3) uint8 frames so the shorter side is at least `min_side`."""
    factor = int(np.ceil(min_side / min(frames.shape[1:3])))
    if factor <= 1:
        return frames
    return np.repeat(np.repeat(frames, factor, axis=1), factor, axis=2)


def tile_row(images: Sequence[np.ndarray], gap: int = 2) -> np.ndarray:
    """Concatenates (H, W_i, 3) images left to right with white gaps."""
    height = max(image.shape[0] for image in images)
    parts = []
    for i, image in enumerate(images):
        if i:
            parts.append(np.full((height, gap, 3), 255, np.uint8))
        parts.append(np.pad(image, ((0, height - image.shape[0]), (0, 0), (0, 0)), constant_values=255))
    return np.concatenate(parts, axis=1)


def tile_column(images: Sequence[np.ndarray], gap: int = 2) -> np.ndarray:
    """Concatenates (H_i, W, 3) images top to bottom with white gaps (`tile_row` on the transposed images)."""
    return tile_row([np.transpose(image, (1, 0, 2)) for image in images], gap).transpose(1, 0, 2)


def upsample_bilinear(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D map with half-pixel centres (as `cv2.INTER_LINEAR`, `tf.image.resize`).

    Args:
      image: (h, w) array.
      size: (H, W) output size.

    Returns:
      float64 (H, W).
    """
    image = np.asarray(image, np.float64)
    out_h, out_w = int(size[0]), int(size[1])

    def coordinates(out_len: int, in_len: int):
        centres = (np.arange(out_len) + 0.5) * in_len / out_len - 0.5
        centres = np.clip(centres, 0.0, in_len - 1)
        low = np.floor(centres).astype(np.int64)
        high = np.minimum(low + 1, in_len - 1)
        return low, high, centres - low

    y0, y1, fy = coordinates(out_h, image.shape[0])
    x0, x1, fx = coordinates(out_w, image.shape[1])
    rows = image[y0] * (1 - fy)[:, None] + image[y1] * fy[:, None]  # (H, w)
    return rows[:, x0] * (1 - fx)[None, :] + rows[:, x1] * fx[None, :]  # (H, W)


def heatmap(values: np.ndarray) -> np.ndarray:
    """Jet colour map of values in [0, 1]: (H, W) -> (H, W, 3) uint8 RGB (red = 1)."""
    scaled = np.clip(np.round(np.asarray(values, np.float64) * 255), 0, 255).astype(np.uint8)
    return cv2.applyColorMap(scaled, cv2.COLORMAP_JET)[..., ::-1]


def overlay_mask(frame: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """A mask (h, w) or (h, w, 1) in [0, 1], upsampled bilinearly to the frame (H, W, 3) uint8, blended over it.

    Returns:
      (H, W, 3) uint8: round((1 - alpha) * frame + alpha * jet(upsample_bilinear(mask))).
    """
    mask = np.asarray(mask, np.float64)
    if mask.ndim == 3:
        mask = mask[..., 0]
    colours = heatmap(upsample_bilinear(mask, frame.shape[:2])).astype(np.float64)
    return np.clip(np.round((1 - alpha) * np.asarray(frame, np.float64) + alpha * colours), 0, 255).astype(np.uint8)
