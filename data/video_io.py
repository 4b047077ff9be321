"""Video decoding with OpenCV, frame resizing and JPEG coding, with errors that say what is wrong with which file.

No TensorFlow here: this module runs inside the `data.prepare` worker processes.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's own warnings; our errors name file and reason.

import cv2  # noqa: E402
import numpy as np  # noqa: E402

# A container may announce a few more frames than it holds; more missing than this means the file is truncated.
TRUNCATION_TOLERANCE = 0.05
TRUNCATION_MIN_MISSING = 3

FrameSize = tuple[int, int] | int | None  # (width, height), short side, or keep the source size


class VideoReadError(Exception):
    """A video (or frame) that cannot be used, with its path and the reason."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video (before decoding)."""

    fps: float
    frame_count: int
    width: int
    height: int


def parse_frame_size(value: str | int | None) -> FrameSize:
    """Parses the ``--frame_size`` flag: ``"340x256"`` (width x height), ``"256"`` (short side) or ``"none"``/``0``.

    Raises:
      ValueError: malformed value.
    """
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in ("", "none", "0", "original"):
        return None
    try:
        if "x" in text:
            width, height = (int(part) for part in text.split("x"))
            if width <= 0 or height <= 0:
                raise ValueError
            return (width, height)
        short = int(text)
        if short <= 0:
            raise ValueError
        return short
    except ValueError:
        raise ValueError(
            f"Bad frame size {value!r}: use WIDTHxHEIGHT (e.g. 340x256, as TSN), a short side (e.g. 256) or none."
        ) from None


def output_size(width: int, height: int, frame_size: FrameSize) -> tuple[int, int]:
    """(width, height) of frames after `resize_frame` with ``frame_size``."""
    if frame_size is None:
        return width, height
    if isinstance(frame_size, tuple):
        return frame_size
    scale = frame_size / min(width, height)
    return max(int(round(width * scale)), 1), max(int(round(height * scale)), 1)


def resize_frame(frame: np.ndarray, frame_size: FrameSize) -> np.ndarray:
    """Resizes (H, W, C) or (H, W) to ``frame_size`` with bilinear interpolation (as dense_flow)."""
    height, width = frame.shape[:2]
    size = output_size(width, height, frame_size)
    if size == (width, height):
        return frame
    return cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)


def probe(path: str) -> VideoInfo:
    """Opens ``path`` and reports fps, frame count and size without decoding.

    Raises:
      VideoReadError: missing, empty or not openable file.
    """
    capture = _open(path)
    try:
        return _info(capture)
    finally:
        capture.release()


def _open(path: str) -> cv2.VideoCapture:
    if not os.path.exists(path):
        raise VideoReadError(path, "file not found")
    if os.path.isdir(path):
        raise VideoReadError(path, "is a directory, not a video file")
    if os.path.getsize(path) == 0:
        raise VideoReadError(path, "empty file (0 bytes)")
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise VideoReadError(path, "OpenCV/FFmpeg cannot open it: not a video, corrupt header or unsupported codec")
    return capture


def _info(capture: cv2.VideoCapture) -> VideoInfo:
    return VideoInfo(
        fps=float(capture.get(cv2.CAP_PROP_FPS) or 0.0),
        frame_count=max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0),
        width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
        height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
    )


def iter_frames(
    path: str, *, target_fps: float | None = None, default_fps: float = 25.0
) -> Iterator[tuple[int, np.ndarray]]:
    """Decodes a video frame by frame.

    Args:
      path: video file.
      target_fps: if set and lower than the video's fps, keeps the frames closest to a ``target_fps`` grid
        (source frame i is kept when ``floor(i * target / fps)`` increases), e.g. 10 fps for THUMOS14 as Meng et al.
      default_fps: fps assumed when the container reports none.

    Yields:
      (source frame index (0-based), (H, W, 3) uint8 RGB frame).

    Raises:
      VideoReadError: the file cannot be opened, holds no decodable frame, or is truncated (decoding stops more than
        `TRUNCATION_TOLERANCE` of the frames before the frame count the container announces).
    """
    capture = _open(path)
    try:
        info = _info(capture)
        fps = info.fps if info.fps > 0 else default_fps
        step = target_fps / fps if target_fps and target_fps < fps else 1.0
        decoded = 0
        last_slot = -1
        while True:
            ok, frame = capture.read()
            if not ok or frame is None:
                break
            index = decoded
            decoded += 1
            slot = int(np.floor(index * step + 1e-9))
            if slot == last_slot:
                continue
            last_slot = slot
            yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()
    if decoded == 0:
        raise VideoReadError(path, "no decodable frame (corrupt or truncated stream)")
    missing = info.frame_count - decoded
    if missing >= TRUNCATION_MIN_MISSING and missing > TRUNCATION_TOLERANCE * info.frame_count:
        raise VideoReadError(
            path, f"truncated: decoded {decoded} of the {info.frame_count} frames the container announces"
        )


def output_fps(source_fps: float, target_fps: float | None, default_fps: float = 25.0) -> float:
    """Fps of the frames `iter_frames` yields."""
    fps = source_fps if source_fps > 0 else default_fps
    return float(target_fps) if target_fps and target_fps < fps else float(fps)


def read_video(path: str, *, target_fps: float | None = None) -> tuple[np.ndarray, float]:
    """Decodes a whole video into memory (for short clips, tests and tools; `data.prepare` streams instead).

    Returns:
      (frames uint8 (T, H, W, 3) RGB, fps of the returned frames).

    Raises:
      VideoReadError: see `iter_frames`.
    """
    info = probe(path)
    frames = [frame for _, frame in iter_frames(path, target_fps=target_fps)]
    return np.stack(frames), output_fps(info.fps, target_fps)


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """Encodes (H, W, 3) RGB or (H, W) gray uint8 to JPEG bytes (OpenCV / libjpeg, deterministic)."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {image.shape}")
    return buffer.tobytes()


def decode_jpeg(data: bytes, *, grayscale: bool = False) -> np.ndarray:
    """Decodes JPEG bytes to (H, W, 3) RGB or (H, W) gray uint8.

    Raises:
      ValueError: not a decodable image.
    """
    array = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(array, cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("not a decodable JPEG/PNG image")
    return image if grayscale else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_video(path: str, frames_rgb: np.ndarray, fps: float = 25.0) -> None:
    """Writes (T, H, W, 3) uint8 RGB frames as MJPG ``.avi`` or ``mp4v`` ``.mp4`` (by extension) with OpenCV."""
    fourcc = "mp4v" if path.lower().endswith(".mp4") else "MJPG"
    height, width = frames_rgb.shape[1:3]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), float(fps), (int(width), int(height)))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {path} with codec {fourcc}")
    try:
        for frame in frames_rgb:
            writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
