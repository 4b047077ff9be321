"""Optical flow between consecutive frames and its 8-bit quantisation (the TSN / dense_flow storage format).

Both papers' flow streams use TV-L1 flow stored as two grayscale JPEGs per frame pair (x and y), as produced by
``dense_flow`` (Wang et al.'s extractor used by TSN and mmaction2): each component is clipped to [-bound, bound]
(bound = 20 pixels) and mapped linearly to 0..255,

    u8 = round(255 * (clip(v, -20, 20) + 20) / 40),

so 127.5 is zero motion, and ``255 - u8`` is exactly the negated flow (used by the horizontal flip). Storing the same
format means flow pre-extracted by TSN/mmaction2 imports losslessly.

Methods (OpenCV, CPU):
  ``tvl1``      `cv2.optflow.DualTVL1OpticalFlow_create` with OpenCV's defaults, as dense_flow (about 1 s per
                340x256 pair on one CPU core);
  ``dis``       `cv2.DISOpticalFlow_create` (PRESET_MEDIUM), ~50x faster;
  ``farneback`` `cv2.calcOpticalFlowFarneback` with the parameters of OpenCV's samples.

No TensorFlow here: this module runs inside the `data.prepare` worker processes.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

FLOW_METHODS = ("tvl1", "dis", "farneback", "none")
FLOW_BOUND = 20.0

FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def quantize_flow(flow: np.ndarray, bound: float = FLOW_BOUND) -> np.ndarray:
    """Clips flow to [-bound, bound] and maps it linearly to uint8 (dense_flow's ``convertFlowToImage``).

    Args:
      flow: float array of any shape (pixels per frame).
      bound: clipping bound in pixels.

    Returns:
      uint8 array of the same shape, ``round(255 * (clip(v, -bound, bound) + bound) / (2 * bound))``.
    """
    clipped = np.clip(np.asarray(flow, dtype=np.float64), -bound, bound)
    return np.round(255.0 * (clipped + bound) / (2.0 * bound)).astype(np.uint8)


def dequantize_flow(quantized: np.ndarray, bound: float = FLOW_BOUND) -> np.ndarray:
    """Inverse of `quantize_flow` (up to the rounding step of 2 * bound / 255 pixels).

    Returns:
      float32 array of the same shape, in pixels.
    """
    return (np.asarray(quantized, dtype=np.float32) * (2.0 * bound / 255.0) - bound).astype(np.float32)


def make_flow_fn(method: str) -> FlowFn:
    """Returns ``fn(prev_gray, next_gray) -> float32 (H, W, 2)`` flow (x, y) for one of `FLOW_METHODS` but ``none``.

    The OpenCV algorithm object is created once here and reused for every pair of ONE video (creating TV-L1 is not
    free). Make a new one per video: OpenCV's DIS keeps internal state sized by the first pair it sees, so pairs of
    another size would get different flow from a reused object than from a fresh one.

    Raises:
      ValueError: unknown method.
    """
    if method == "tvl1":
        if not hasattr(cv2, "optflow"):
            raise ImportError(
                "TV-L1 flow needs cv2.optflow, which only opencv-contrib ships: "
                "pip install opencv-contrib-python-headless (and uninstall opencv-python), or use --flow=dis."
            )
        algorithm = cv2.optflow.DualTVL1OpticalFlow_create()
        return lambda prev, nxt: algorithm.calc(prev, nxt, None)
    if method == "dis":
        algorithm = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        return lambda prev, nxt: algorithm.calc(prev, nxt, None)
    if method == "farneback":
        return lambda prev, nxt: cv2.calcOpticalFlowFarneback(
            prev, nxt, None, pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0
        )
    choices = ", ".join(m for m in FLOW_METHODS if m != "none")
    raise ValueError(f"Unknown flow method {method!r}; choose one of {choices}.")


def to_gray(frame_rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) uint8 gray, the input of every flow method."""
    return cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY)


def compute_flow(prev_rgb: np.ndarray, next_rgb: np.ndarray, method: str = "tvl1") -> np.ndarray:
    """Flow from ``prev_rgb`` to ``next_rgb`` (convenience wrapper; batch work should reuse `make_flow_fn`).

    Args:
      prev_rgb: (H, W, 3) uint8.
      next_rgb: (H, W, 3) uint8.
      method: one of `FLOW_METHODS` except ``none``.

    Returns:
      float32 (H, W, 2): x (horizontal) and y (vertical) displacement in pixels.
    """
    return make_flow_fn(method)(to_gray(prev_rgb), to_gray(next_rgb))
