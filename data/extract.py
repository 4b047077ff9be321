"""Turns one video (file or rawframe folder) into encoded frames + quantised flow: the `data.prepare` worker job.

No TensorFlow here (the workers are plain processes); the parent process turns an `ExtractedVideo` into a record.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import time

import numpy as np

from data import flow as flow_lib
from data import video_io
from data.datasets.base import VideoTask

# One flow algorithm object per process and method (creating TV-L1 is not free).


@dataclasses.dataclass(frozen=True)
class ExtractOptions:
    """How frames are extracted (the options that change the records; recorded in the manifest).

    Attributes:
      flow: one of `data.flow.FLOW_METHODS`.
      frame_size: `data.video_io.FrameSize` for decoded videos (rawframes are copied byte for byte).
      jpeg_quality: JPEG quality of stored RGB and flow frames.
      target_fps: resample videos to this fps (None keeps every frame).
      flow_bound: flow clipping bound in pixels for the quantisation.
      rgb_template / flow_x_template / flow_y_template: rawframe file names (``str.format`` with the frame number).
      rawframes_start_index: number of the first rawframe (1 for TSN/mmaction2 folders).
      rawframes_fps: fps recorded for rawframe folders (they carry none).
    """

    flow: str = "tvl1"
    frame_size: video_io.FrameSize = (340, 256)
    jpeg_quality: int = 95
    target_fps: float | None = None
    flow_bound: float = flow_lib.FLOW_BOUND
    rgb_template: str = "img_{:05d}.jpg"
    flow_x_template: str = "flow_x_{:05d}.jpg"
    flow_y_template: str = "flow_y_{:05d}.jpg"
    rawframes_start_index: int = 1
    rawframes_fps: float = 25.0


@dataclasses.dataclass
class ExtractedVideo:
    """Everything one record holds, as bytes and NumPy (see `data.records` for the keys)."""

    task: VideoTask
    fps: float
    height: int
    width: int
    frames: list[bytes]
    flow_x: list[bytes]
    flow_y: list[bytes]
    boxes: dict[int, tuple[np.ndarray, np.ndarray]] | None  # output frame index -> (boxes (n, 4), labels (n,))
    seconds: float = 0.0  # time spent extracting


@dataclasses.dataclass
class ExtractionFailure:
    """A video that was skipped, with the reason (goes to failures.txt)."""

    task: VideoTask
    reason: str


def init_worker() -> None:
    """Pool initializer: one OpenCV thread per worker process (the pool provides the parallelism)."""
    import cv2

    cv2.setNumThreads(1)


def extract(task: VideoTask, options: ExtractOptions) -> ExtractedVideo | ExtractionFailure:
    """Extracts one video; never raises for a bad input (returns an `ExtractionFailure` naming the reason)."""
    start = time.perf_counter()
    try:
        if os.path.isdir(task.source):
            result = _extract_rawframes(task, options)
        else:
            result = _extract_video_file(task, options)
    except video_io.VideoReadError as e:
        return ExtractionFailure(task, e.reason)
    except Exception as e:  # noqa: BLE001 - one bad video must not stop the others; the reason is recorded.
        return ExtractionFailure(task, f"{type(e).__name__}: {e}")
    result.seconds = time.perf_counter() - start
    return result


def encode_flow(flow: np.ndarray, options: ExtractOptions) -> tuple[bytes, bytes]:
    """Quantises one flow field (H, W, 2) (`data.flow.quantize_flow`, ``options.flow_bound``) to its x and y JPEGs."""
    quantized = flow_lib.quantize_flow(flow, options.flow_bound)  # (H, W, 2) uint8
    return (
        video_io.encode_jpeg(np.ascontiguousarray(quantized[..., 0]), options.jpeg_quality),
        video_io.encode_jpeg(np.ascontiguousarray(quantized[..., 1]), options.jpeg_quality),
    )


def _extract_video_file(task: VideoTask, options: ExtractOptions) -> ExtractedVideo:
    info = video_io.probe(task.source)
    # A new flow object per video: OpenCV's DIS keeps state sized by the first pair it sees, so a reused object
    # would make a video's flow depend on the videos extracted before it in the same process.
    flow_fn = flow_lib.make_flow_fn(options.flow) if options.flow != "none" else None
    frames: list[bytes] = []
    flow_x: list[bytes] = []
    flow_y: list[bytes] = []
    kept_source_indices: list[int] = []
    previous_gray = None
    height = width = 0
    for source_index, frame in video_io.iter_frames(task.source, target_fps=options.target_fps):
        frame = video_io.resize_frame(frame, options.frame_size)
        height, width = frame.shape[:2]
        frames.append(video_io.encode_jpeg(frame, options.jpeg_quality))
        kept_source_indices.append(source_index)
        if flow_fn is not None:
            gray = flow_lib.to_gray(frame)
            if previous_gray is not None:
                x, y = encode_flow(flow_fn(previous_gray, gray), options)
                flow_x.append(x)
                flow_y.append(y)
            previous_gray = gray
    if flow_fn is not None and len(frames) < 2:
        raise video_io.VideoReadError(task.source, f"only {len(frames)} frame: flow needs at least 2")
    return ExtractedVideo(
        task=task,
        fps=video_io.output_fps(info.fps, options.target_fps),
        height=height,
        width=width,
        frames=frames,
        flow_x=flow_x,
        flow_y=flow_y,
        boxes=_remap_boxes(task.boxes, kept_source_indices),
    )


def _remap_boxes(
    boxes: dict[int, tuple[np.ndarray, np.ndarray]] | None, kept_source_indices: list[int]
) -> dict[int, tuple[np.ndarray, np.ndarray]] | None:
    """Source frame indices -> output frame indices (frames dropped by fps resampling lose their boxes)."""
    if boxes is None:
        return None
    position = {source: output for output, source in enumerate(kept_source_indices)}
    return {position[f]: value for f, value in boxes.items() if f in position}


def count_rawframes(directory: str, template: str, start_index: int) -> int:
    """Number of consecutive files ``template.format(start_index + i)`` present in ``directory``."""
    count = 0
    while os.path.isfile(os.path.join(directory, template.format(start_index + count))):
        count += 1
    return count


def count_template_files(directory: str, template: str) -> int:
    """Number of files in ``directory`` matching ``template`` with its ``{...}`` field as a wildcard."""
    return len(glob.glob(os.path.join(glob.escape(directory), re.sub(r"\{[^}]*\}", "*", template))))


def missing_rawframe(directory: str, template: str, start_index: int) -> str | None:
    """Name of the first missing frame when frames exist after a gap (e.g. a deleted flow_x_00007.jpg), else None."""
    consecutive = count_rawframes(directory, template, start_index)
    if count_template_files(directory, template) > consecutive:
        return template.format(start_index + consecutive)
    return None


def _read_checked(path: str, *, grayscale: bool) -> tuple[bytes, tuple[int, int]]:
    with open(path, "rb") as f:
        data = f.read()
    try:
        image = video_io.decode_jpeg(data, grayscale=grayscale)
    except ValueError:
        raise video_io.VideoReadError(path, "not a decodable image (corrupt or truncated JPEG)") from None
    return data, image.shape[:2]


def _extract_rawframes(task: VideoTask, options: ExtractOptions) -> ExtractedVideo:
    """Copies a TSN/mmaction2 frame folder byte for byte (every JPEG is checked to decode).

    Flow is computed from the RGB frames only when the folder has none and ``options.flow`` asks for it.
    """
    directory = task.source
    start = options.rawframes_start_index
    num_rgb = count_rawframes(directory, options.rgb_template, start)
    if num_rgb == 0:
        present = sorted(os.path.basename(p) for p in glob.glob(os.path.join(directory, "*")))[:3]
        raise video_io.VideoReadError(
            directory,
            f"no frame named {options.rgb_template.format(start)} (found {present or 'nothing'}); "
            "set --rgb_template / --rawframes_start_index to the folder's naming",
        )
    frames: list[bytes] = []
    size = None
    for i in range(num_rgb):
        data, shape = _read_checked(os.path.join(directory, options.rgb_template.format(start + i)), grayscale=False)
        if size is not None and shape != size:
            raise video_io.VideoReadError(directory, f"frame {start + i} is {shape}, the first frame {size}")
        size = shape
        frames.append(data)
    for template in (options.rgb_template, options.flow_x_template, options.flow_y_template):
        missing = missing_rawframe(directory, template, start)
        if missing is not None:
            raise video_io.VideoReadError(directory, f"{missing} is missing (later frames exist)")
    flow_x: list[bytes] = []
    flow_y: list[bytes] = []
    num_flow = count_rawframes(directory, options.flow_x_template, start)
    num_flow_y = count_rawframes(directory, options.flow_y_template, start)
    if num_flow != num_flow_y:
        raise video_io.VideoReadError(directory, f"{num_flow} flow_x frames but {num_flow_y} flow_y frames")
    if num_flow > 0:
        for i in range(num_flow):
            flow_x.append(
                _read_checked(os.path.join(directory, options.flow_x_template.format(start + i)), grayscale=True)[0]
            )
            flow_y.append(
                _read_checked(os.path.join(directory, options.flow_y_template.format(start + i)), grayscale=True)[0]
            )
    elif options.flow != "none":
        if num_rgb < 2:
            raise video_io.VideoReadError(directory, "only 1 frame: flow needs at least 2")
        flow_fn = flow_lib.make_flow_fn(options.flow)  # per video, see _extract_video_file
        previous = flow_lib.to_gray(video_io.decode_jpeg(frames[0]))
        for data in frames[1:]:
            gray = flow_lib.to_gray(video_io.decode_jpeg(data))
            x, y = encode_flow(flow_fn(previous, gray), options)
            flow_x.append(x)
            flow_y.append(y)
            previous = gray
    if task.num_frames_hint is not None and task.num_frames_hint not in (num_rgb, num_flow):
        raise video_io.VideoReadError(
            directory,
            f"the list file says {task.num_frames_hint} frames, the folder has {num_rgb} RGB / {num_flow} flow",
        )
    return ExtractedVideo(
        task=task,
        fps=float(options.rawframes_fps),
        height=int(size[0]),
        width=int(size[1]),
        frames=frames,
        flow_x=flow_x,
        flow_y=flow_y,
        boxes=_remap_boxes(task.boxes, list(range(num_rgb))),
    )
