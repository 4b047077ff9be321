"""Reference optical flow for the data tests, written against OpenCV directly (not `data.flow`).

The dense_flow storage rule is re-stated here: ``u8 = round(255 * (clip(v, -20, 20) + 20) / 40)`` per component.
"""

import cv2
import numpy as np

BOUND = 20.0


def dis_flow(prev_rgb: np.ndarray, next_rgb: np.ndarray) -> np.ndarray:
    """float32 (H, W, 2) (x, y) DIS flow (PRESET_MEDIUM) of two uint8 (H, W, 3) RGB frames, a fresh OpenCV object."""
    gray = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in (prev_rgb, next_rgb)]
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(gray[0], gray[1], None)


def quantized(flow: np.ndarray) -> np.ndarray:
    """uint8 of the same shape: float64 clip to [-20, 20], map linearly to [0, 255], round."""
    clipped = np.clip(np.asarray(flow, np.float64), -BOUND, BOUND)
    return np.round(255.0 * (clipped + BOUND) / (2.0 * BOUND)).astype(np.uint8)
