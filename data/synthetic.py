"""A procedurally generated action benchmark with ground truth, written as a raw UCF101-layout dataset.

    python -m data.synthetic --out_dir=DIR [--seed=0 --num_classes=8 --train_per_class=30 --test_per_class=8]

Each video shows a textured, noisy background that drifts slowly (camera motion), a few distractors (grey shapes
wandering at random), and ONE small actor. The actor idles (grey, still) before and after its action; during the
action it takes its class colour and performs its class motion (move right / left / up / down, pulse, spin, shake,
bounce, ...). So the class is in both streams: the colour (RGB stream) and the motion pattern (flow stream), but only
in a small part of the frame and of the clip - what spatial and temporal attention are for. The actor's position
is random, not centred.

Written, deterministically from ``--seed``:
  DIR/UCF-101/<Class>/v_<Class>_gGG_c01.avi        MJPG videos (test videos are groups 1..test_per_class, as
                                                     UCF101's split 1 keeps low groups for testing)
  DIR/ucfTrainTestlist/classInd.txt                 ``1 MoveRight`` ...
  DIR/ucfTrainTestlist/trainlist01.txt              ``MoveRight/v_MoveRight_g05_c01.avi 1``
  DIR/ucfTrainTestlist/testlist01.txt               ``MoveRight/v_MoveRight_g01_c01.avi``
  DIR/UCF101v2-GT.pkl                               UCF101-24 style: labels, gttubes (per video {label: [(n, 5)
                                                     array: frame (1-based), x1, y1, x2, y2 in pixels]}), nframes,
                                                     resolution (h, w), train_videos [[...]], test_videos [[...]]
  DIR/annotations/<Class>_val.txt, <Class>_test.txt THUMOS14 style ``v_MoveRight_g05_c01 0.52 1.24`` (seconds;
                                                     val = training videos, test = test videos)
  DIR/synthetic.json                                the generation parameters (written last: marks completion)

Prepare it with ``python -m data.prepare --dataset=ucf101 --raw_dir=DIR --out_dir=OUT --flow=dis --frame_size=none``
(the ground-truth files are picked up from DIR).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import sys

import cv2
import numpy as np

from data import video_io

# name, motion, shape, RGB colour. The first 8 are the default benchmark.
CLASSES: tuple[tuple[str, str, str, tuple[int, int, int]], ...] = (
    ("MoveRight", "right", "square", (230, 40, 40)),
    ("MoveLeft", "left", "triangle", (40, 200, 60)),
    ("MoveUp", "up", "diamond", (50, 90, 245)),
    ("MoveDown", "down", "circle", (245, 225, 30)),
    ("Pulse", "pulse", "circle", (225, 50, 225)),
    ("Spin", "spin", "cross", (30, 225, 225)),
    ("Shake", "shake", "square", (250, 140, 20)),
    ("Bounce", "bounce", "triangle", (255, 120, 170)),
    ("MoveUpRight", "up_right", "diamond", (150, 245, 40)),
    ("MoveDownLeft", "down_left", "cross", (0, 140, 120)),
    ("Orbit", "orbit", "square", (30, 30, 150)),
    ("ZigZag", "zigzag", "circle", (250, 250, 250)),
)
MAX_CLASSES = len(CLASSES)
SHAPES = ("square", "triangle", "diamond", "circle", "cross")
SUBPIXEL_BITS = 4  # cv2 drawing with 1/16 pixel precision: smooth motion, clean flow
# The actor's dark outline: whatever its colour, it has luminance edges, which is what (grayscale) optical flow tracks.
ACTOR_OUTLINE = 15.0


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Generation parameters (all recorded in ``synthetic.json``)."""

    seed: int = 0
    num_classes: int = 8
    train_per_class: int = 30
    test_per_class: int = 8
    num_frames: int = 40
    width: int = 96
    height: int = 72
    fps: float = 25.0
    num_distractors: int = 3
    actor_radius: float = 7.0
    noise_sigma: float = 6.0


@dataclasses.dataclass
class GeneratedVideo:
    """One video's frames and ground truth."""

    frames: np.ndarray  # uint8 (T, H, W, 3) RGB
    boxes: np.ndarray  # float32 (n, 5): frame (1-based), x1, y1, x2, y2 (pixels) over the action frames
    action: tuple[int, int]  # [start, end) frame indices (0-based)


def _polygon(shape: str, cx: float, cy: float, radius: float, angle: float) -> np.ndarray:
    """Vertices (N, 2) of a shape of circumradius ``radius`` centred at (cx, cy), rotated by ``angle``."""
    if shape == "circle":
        t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        points = np.stack([np.cos(t), np.sin(t)], -1) * radius
    elif shape == "cross":
        a, b = 1.0, 0.38
        points = np.array(
            [(-b, -a), (b, -a), (b, -b), (a, -b), (a, b), (b, b), (b, a), (-b, a), (-b, b), (-a, b), (-a, -b), (-b, -b)]
        ) * radius
    else:
        sides, offset = {"square": (4, np.pi / 4), "diamond": (4, 0.0), "triangle": (3, -np.pi / 2)}[shape]
        t = offset + np.arange(sides) * 2 * np.pi / sides
        points = np.stack([np.cos(t), np.sin(t)], -1) * radius
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return points @ rotation.T + np.array([cx, cy])


def _draw(image: np.ndarray, polygon: np.ndarray, colour: tuple[int, int, int], outline: float | None = None) -> None:
    """Fills a polygon (anti-aliased, sub-pixel); ``outline`` draws a dark border of that grey level around it."""
    points = np.round(polygon * (1 << SUBPIXEL_BITS)).astype(np.int32)[None]
    cv2.fillPoly(image, points, tuple(float(c) for c in colour), lineType=cv2.LINE_AA, shift=SUBPIXEL_BITS)
    if outline is not None:
        cv2.polylines(image, points, True, (outline,) * 3, thickness=1, lineType=cv2.LINE_AA, shift=SUBPIXEL_BITS)


def _background(rng: np.random.Generator, height: int, width: int, margin: int) -> np.ndarray:
    """A muted, textured background larger than the frame by ``margin`` on each side: float32 (H', W', 3)."""
    big_h, big_w = height + 2 * margin, width + 2 * margin
    coarse = rng.random((big_h // 6 + 2, big_w // 6 + 2, 1)).astype(np.float32)
    texture = cv2.resize(coarse, (big_w, big_h), interpolation=cv2.INTER_CUBIC)[..., None]
    fine = rng.random((big_h, big_w, 1)).astype(np.float32)
    tint = rng.uniform(0.75, 1.0, size=(1, 1, 3)).astype(np.float32)
    base = rng.uniform(70, 120)
    return (base + 70 * texture + 35 * fine) * tint


def _actor_motion(motion: str, phase: float, steps: int, config: SyntheticConfig) -> tuple[float, float, float, float]:
    """(dx, dy, radius scale, angle) of the actor at ``phase`` in [0, 1] of its action (``steps`` frames long)."""
    travel_x, travel_y = 0.4 * config.width, 0.45 * config.height
    t = phase * steps
    if motion == "right":
        return travel_x * phase, 0.0, 1.0, 0.0
    if motion == "left":
        return -travel_x * phase, 0.0, 1.0, 0.0
    if motion == "up":
        return 0.0, -travel_y * phase, 1.0, 0.0
    if motion == "down":
        return 0.0, travel_y * phase, 1.0, 0.0
    if motion == "up_right":
        return 0.75 * travel_x * phase, -0.75 * travel_y * phase, 1.0, 0.0
    if motion == "down_left":
        return -0.75 * travel_x * phase, 0.75 * travel_y * phase, 1.0, 0.0
    if motion == "pulse":
        return 0.0, 0.0, 1.0 + 0.6 * np.sin(2 * np.pi * t / 8.0), 0.0
    if motion == "spin":
        return 0.0, 0.0, 1.0, 2 * np.pi * t / 12.0
    if motion == "shake":
        return 5.0 * np.sin(2 * np.pi * t / 6.0), 0.0, 1.0, 0.0
    if motion == "bounce":
        return 0.0, -12.0 * abs(np.sin(np.pi * t / 10.0)), 1.0, 0.0
    if motion == "orbit":
        return 10.0 * (np.cos(2 * np.pi * t / 16.0) - 1.0), 10.0 * np.sin(2 * np.pi * t / 16.0), 1.0, 0.0
    if motion == "zigzag":
        return travel_x * phase, 6.0 * np.sin(2 * np.pi * t / 8.0), 1.0, 0.0
    raise ValueError(f"unknown motion {motion!r}")


def _excursion(motion: str, config: SyntheticConfig) -> tuple[float, float, float, float]:
    """Bounding box (min dx, min dy, max dx, max dy) of the actor's centre over its action."""
    phases = np.linspace(0.0, 1.0, 200)
    moves = np.array([_actor_motion(motion, p, 50, config)[:2] for p in phases])
    return moves[:, 0].min(), moves[:, 1].min(), moves[:, 0].max(), moves[:, 1].max()


def generate_video(class_index: int, rng: np.random.Generator, config: SyntheticConfig) -> GeneratedVideo:
    """Renders one video of class ``class_index``."""
    _, motion, shape, colour = CLASSES[class_index]
    num_frames, height, width = config.num_frames, config.height, config.width
    margin = int(np.ceil(0.3 * num_frames)) + 2  # room for the camera drift
    background = _background(rng, height, width, margin)
    drift = rng.uniform(-0.3, 0.3, size=2)  # camera drift, pixels per frame

    # The action: where and when.
    length = int(round(rng.uniform(0.45, 0.6) * num_frames))
    start = int(round(rng.uniform(0.15, 0.9 * (num_frames - length) / num_frames) * num_frames))
    start = int(np.clip(start, 1, num_frames - length - 1))
    end = start + length
    radius = config.actor_radius
    reach = radius * 1.7
    min_dx, min_dy, max_dx, max_dy = _excursion(motion, config)
    cx0 = rng.uniform(reach - min_dx, width - reach - max_dx)
    cy0 = rng.uniform(reach - min_dy, height - reach - max_dy)
    idle_grey = rng.uniform(100, 170)
    base_angle = rng.uniform(0, np.pi / 6) if shape != "circle" else 0.0

    distractors = []
    for _ in range(config.num_distractors):
        distractors.append(
            {
                "shape": SHAPES[rng.integers(len(SHAPES))],
                "pos": rng.uniform([8, 8], [width - 8, height - 8]),
                "vel": rng.normal(0, 0.5, size=2),
                "radius": rng.uniform(4.0, 6.5),
                "grey": rng.uniform(60, 200),
                "tint": rng.uniform(0.9, 1.1, size=3),
            }
        )

    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    boxes = []
    for t in range(num_frames):
        matrix = np.float32([[1, 0, -margin + drift[0] * t], [0, 1, -margin + drift[1] * t]])
        image = cv2.warpAffine(
            background, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )
        for d in distractors:
            d["vel"] = np.clip(0.85 * d["vel"] + rng.normal(0, 0.25, size=2), -0.9, 0.9)
            d["pos"] = d["pos"] + d["vel"]
            for axis, limit in ((0, width), (1, height)):
                if not 6 <= d["pos"][axis] <= limit - 6:
                    d["vel"][axis] = -d["vel"][axis]
                    d["pos"][axis] = np.clip(d["pos"][axis], 6, limit - 6)
            grey = tuple(float(np.clip(d["grey"] * k, 0, 255)) for k in d["tint"])
            _draw(image, _polygon(d["shape"], *d["pos"], d["radius"], 0.0), grey)
        if start <= t < end:
            dx, dy, scale, angle = _actor_motion(motion, (t - start) / max(length - 1, 1), length, config)
            polygon = _polygon(shape, cx0 + dx, cy0 + dy, radius * scale, base_angle + angle)
            _draw(image, polygon, colour, outline=ACTOR_OUTLINE)
            x1, y1 = np.clip(polygon.min(0), 0, [width - 1, height - 1])
            x2, y2 = np.clip(polygon.max(0), 0, [width - 1, height - 1])
            boxes.append((t + 1, x1, y1, x2, y2))
        else:
            # Idle: grey and still, where the action starts (before) or ends (after).
            phase = 0.0 if t < start else 1.0
            dx, dy, scale, angle = _actor_motion(motion, phase, length, config)
            polygon = _polygon(shape, cx0 + dx, cy0 + dy, radius * scale, base_angle + angle)
            _draw(image, polygon, (idle_grey,) * 3, outline=ACTOR_OUTLINE)
        image += rng.normal(0, config.noise_sigma, size=image.shape).astype(np.float32)
        frames[t] = np.clip(image, 0, 255).astype(np.uint8)
    return GeneratedVideo(frames=frames, boxes=np.asarray(boxes, np.float32), action=(start, end))


def _video_name(class_name: str, group: int) -> str:
    return f"v_{class_name}_g{group:02d}_c01"


def generate(out_dir: str, config: SyntheticConfig = SyntheticConfig(), *, overwrite: bool = False) -> dict:
    """Writes the benchmark (layout in the module docstring) and returns its parameters.

    A directory that already holds a complete benchmark with the same parameters is left as it is.

    Raises:
      ValueError: bad parameters, or ``out_dir`` holds a benchmark with other parameters (and not ``overwrite``).
    """
    if not 2 <= config.num_classes <= MAX_CLASSES:
        raise ValueError(f"num_classes must be in [2, {MAX_CLASSES}], got {config.num_classes}")
    if config.train_per_class < 1 or config.test_per_class < 1:
        raise ValueError("train_per_class and test_per_class must be >= 1")
    if config.num_frames < 12 or min(config.width, config.height) < 48:
        raise ValueError("num_frames must be >= 12 and width, height >= 48 (the actor must fit and move)")
    params = {"format": "ucf101", "generator": "data.synthetic", **dataclasses.asdict(config)}
    marker = os.path.join(out_dir, "synthetic.json")
    if os.path.isfile(marker):
        with open(marker) as f:
            existing = json.load(f)
        if existing == params:
            return params
        if not overwrite:
            raise ValueError(
                f"{out_dir} already holds a synthetic benchmark with other parameters ({existing}); "
                "choose another --out_dir or pass --overwrite."
            )
        os.remove(marker)

    names = [c[0] for c in CLASSES[: config.num_classes]]
    video_root = os.path.join(out_dir, "UCF-101")
    list_dir = os.path.join(out_dir, "ucfTrainTestlist")
    annotation_dir = os.path.join(out_dir, "annotations")
    for directory in [list_dir, annotation_dir] + [os.path.join(video_root, n) for n in names]:
        os.makedirs(directory, exist_ok=True)

    gttubes, nframes, resolution = {}, {}, {}
    train_videos, test_videos, train_lines, test_lines = [], [], [], []
    segments: dict[tuple[str, str], list[str]] = {}
    groups = config.test_per_class + config.train_per_class
    for class_index, name in enumerate(names):
        for group in range(1, groups + 1):
            rng = np.random.default_rng([config.seed, class_index, group])
            video = generate_video(class_index, rng, config)
            stem = _video_name(name, group)
            relative = f"{name}/{stem}.avi"
            video_io.write_video(os.path.join(video_root, relative), video.frames, config.fps)
            key = f"{name}/{stem}"
            gttubes[key] = {class_index: [video.boxes]}
            nframes[key] = config.num_frames
            resolution[key] = (config.height, config.width)
            is_test = group <= config.test_per_class
            (test_videos if is_test else train_videos).append(key)
            if is_test:
                test_lines.append(relative)
            else:
                train_lines.append(f"{relative} {class_index + 1}")
            start_s, end_s = video.action[0] / config.fps, video.action[1] / config.fps
            subset = "test" if is_test else "val"
            segments.setdefault((name, subset), []).append(f"{stem} {start_s:.3f} {end_s:.3f}")

    def write_lines(path: str, lines: list[str]) -> None:
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")

    write_lines(os.path.join(list_dir, "classInd.txt"), [f"{i + 1} {n}" for i, n in enumerate(names)])
    write_lines(os.path.join(list_dir, "trainlist01.txt"), train_lines)
    write_lines(os.path.join(list_dir, "testlist01.txt"), test_lines)
    for (name, subset), lines in segments.items():
        write_lines(os.path.join(annotation_dir, f"{name}_{subset}.txt"), lines)
    ground_truth = {
        "labels": names,
        "gttubes": gttubes,
        "nframes": nframes,
        "resolution": resolution,
        "train_videos": [train_videos],
        "test_videos": [test_videos],
    }
    with open(os.path.join(out_dir, "UCF101v2-GT.pkl"), "wb") as f:
        pickle.dump(ground_truth, f, protocol=4)
    with open(marker, "w") as f:
        json.dump(params, f, indent=1, sort_keys=True)
    return params


def _define_flags() -> None:
    from absl import flags

    defaults = SyntheticConfig()
    flags.DEFINE_string("out_dir", None, "Directory to write the raw benchmark to.", required=True)
    flags.DEFINE_integer("seed", defaults.seed, "Seed: the same seed writes the same videos.")
    flags.DEFINE_integer("num_classes", defaults.num_classes, f"Classes (2..{MAX_CLASSES}).")
    flags.DEFINE_integer("train_per_class", defaults.train_per_class, "Training videos per class.")
    flags.DEFINE_integer("test_per_class", defaults.test_per_class, "Test videos per class.")
    flags.DEFINE_integer("num_frames", defaults.num_frames, "Frames per video.")
    flags.DEFINE_integer("width", defaults.width, "Frame width.")
    flags.DEFINE_integer("height", defaults.height, "Frame height.")
    flags.DEFINE_float("fps", defaults.fps, "Frames per second written into the videos.")
    flags.DEFINE_integer("num_distractors", defaults.num_distractors, "Distracting shapes per video.")
    flags.DEFINE_bool("overwrite", False, "Regenerate over a benchmark written with other parameters.")


def main(argv: list[str]) -> int:
    """Command-line entry point; returns the exit status."""
    del argv
    import time

    from absl import flags

    f = flags.FLAGS
    config = SyntheticConfig(
        seed=f.seed,
        num_classes=f.num_classes,
        train_per_class=f.train_per_class,
        test_per_class=f.test_per_class,
        num_frames=f.num_frames,
        width=f.width,
        height=f.height,
        fps=f.fps,
        num_distractors=f.num_distractors,
    )
    start = time.perf_counter()
    existed = os.path.isfile(os.path.join(f.out_dir, "synthetic.json"))
    try:
        generate(f.out_dir, config, overwrite=f.overwrite)
    except ValueError as e:
        print(f"data.synthetic: {e}", file=sys.stderr)
        return 2
    videos = config.num_classes * (config.train_per_class + config.test_per_class)
    if existed:
        print(f"Synthetic benchmark in {f.out_dir} already complete with these parameters; nothing to do.")
        return 0
    print(
        f"Synthetic benchmark in {f.out_dir}: {config.num_classes} classes, {videos} videos "
        f"({config.num_frames} frames, {config.width}x{config.height}) in {time.perf_counter() - start:.1f} s."
    )
    return 0


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(lambda argv: sys.exit(main(argv)))
