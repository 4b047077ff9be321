"""A procedurally generated action benchmark with ground truth, written as a raw UCF101-layout dataset.

    python -m data.synthetic --out_dir=DIR [--seed=0 --num_classes=8 --train_per_class=30 --test_per_class=8]
    python -m data.synthetic --out_dir=DIR --preset=study [--cue=motion ...]   # the study benchmark (BUILD.md)

Each video shows a textured, noisy background that drifts slowly (camera motion), a few distractors (grey shapes
wandering at random), and ONE small actor. The actor idles (grey, still) before and after its action; during the
action it takes its class colour and performs its class motion (move right / left / up / down, pulse, spin, shake,
bounce, ...). So the class is in both streams: the colour (RGB stream) and the motion pattern (flow stream), but only
in a small part of the frame and of the clip - what spatial and temporal attention are for. The actor's position
is random, not centred.

Those are the defaults (the quickstart's benchmark). Settings move the class and the difficulty: ``cue`` (the class
in the actor's colour and shape, in its motion, or both), the distractors' number, size and look (``class_parts``:
class colours and shapes in combinations no class has), the actor's size range, static clutter, camera drift and the
action's length as a fraction of the clip. ``preset("study")`` is the benchmark of ``experiments.reproduce``. The
defaults render byte-identical videos to the first version (extra random numbers are drawn only for other settings).

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
  DIR/flip_label_map.json                           {class: mirrored class or null}: the class of a left-right
                                                     mirrored video (`flip_label_map`), for training's flip
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
from data.datasets.base import FLIP_LABEL_MAP_FILE

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
# The motion a left-right mirror turns each motion into. The shapes are all mirror-symmetric; a mirrored spin or orbit
# turns the other way, which no class tells apart (no class spins or orbits the other way), so they stay themselves.
MIRRORED_MOTIONS = {
    "right": "left", "left": "right", "up": "up", "down": "down", "up_right": "up_left", "down_left": "down_right",
    "pulse": "pulse", "spin": "spin", "shake": "shake", "bounce": "bounce", "orbit": "orbit", "zigzag": "zigzag_left",
}  # fmt: skip
SHAPES = ("square", "triangle", "diamond", "circle", "cross")
SUBPIXEL_BITS = 4  # cv2 drawing with 1/16 pixel precision: smooth motion, clean flow
# The actor's dark outline: whatever its colour, it has luminance edges, which is what (grayscale) optical flow tracks.
ACTOR_OUTLINE = 15.0


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Generation parameters, recorded in ``synthetic.json`` (the later settings only when not at their default)."""

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
    # Where the class lives and how hard it is to see (the defaults are the quickstart benchmark; see CUES, LOOKS).
    cue: str = "both"
    distractor_look: str = "grey"
    distractor_radius: tuple[float, float] = (4.0, 6.5)
    actor_radius_range: tuple[float, float] | None = None  # None: every actor has actor_radius
    clutter: int = 0
    camera_drift: float = 0.3
    action_fraction: tuple[float, float] = (0.45, 0.6)
    decoy_probability: float = 0.0  # chance that a distractor is a decoy: it performs another class's motion


# Where the class lives: "both" - the actor's colour and shape (RGB) and its motion (flow) are the class's;
# "appearance" - colour and shape are the class's, the motion is a random one of the benchmark's classes;
# "motion" - the motion is the class's, colour and shape are random (the benchmark's class colours, any shape).
CUES = ("both", "appearance", "motion")
# How the distractors look: "grey" - grey shapes without outline (the quickstart); "class_parts" - the colours and
# shapes of the benchmark's classes in combinations that no class has, outlined like the actor, so one frame holds
# several class colours and shapes and only their conjunction (and the actor's motion) says which is the actor.
LOOKS = ("grey", "class_parts")
# Settings added after the first version; written into synthetic.json only when not at their default, so the
# parameters of benchmarks written before stay equal (a re-run finds them complete).
_LATER_FIELDS = (
    "cue",
    "distractor_look",
    "distractor_radius",
    "actor_radius_range",
    "clutter",
    "camera_drift",
    "action_fraction",
    "decoy_probability",
)

# The study benchmark of `python -m experiments.reproduce` (BUILD.md, "Reproducing the papers' findings": what each
# setting is for). Fixed before any study was run; do not retune it after seeing which way a claim goes. One
# adjustment was made for the TSN baseline only, before any study: with 4 distractors and 30 training videos per
# class the calibration run (TSN RGB, tiny, seed 0) reached 20.8 % test top-1 (chance 16.7 %; 78.9 % on the training
# split): at chance, so 2 distractors and 60 training videos per class.
STUDY_PRESET_FIELDS: dict = {
    "num_classes": 6,
    "train_per_class": 60,
    "test_per_class": 16,
    "num_distractors": 2,
    "distractor_look": "class_parts",
    "distractor_radius": (3.0, 10.0),
    "actor_radius_range": (3.0, 10.0),
    "clutter": 6,
    "camera_drift": 0.6,
    "action_fraction": (0.25, 0.4),
    "cue": "both",
}


@dataclasses.dataclass
class GeneratedVideo:
    """One video's frames and ground truth."""

    frames: np.ndarray  # uint8 (T, H, W, 3) RGB
    boxes: np.ndarray  # float32 (n, 5): frame (1-based), x1, y1, x2, y2 (pixels) over the action frames
    action: tuple[int, int]  # [start, end) frame indices (0-based)
    actor_masks: np.ndarray | None = None  # bool (T, H, W): the actor's pixels, with generate_video(masks=True)


def preset(name: str, **overrides) -> SyntheticConfig:
    """A named benchmark: "default" (the quickstart's) or "study" (`STUDY_PRESET_FIELDS`), with `overrides`."""
    if name == "default":
        return SyntheticConfig(**overrides)
    if name == "study":
        return SyntheticConfig(**{**STUDY_PRESET_FIELDS, **overrides})
    raise ValueError(f"unknown preset {name!r}; choose one of ['default', 'study'].")


def config_params(config: SyntheticConfig) -> dict:
    """The parameters written to synthetic.json: the later settings only where they differ from their defaults."""
    defaults = SyntheticConfig()
    params = dataclasses.asdict(config)
    for name in _LATER_FIELDS:
        value = params[name]
        if value == getattr(defaults, name):
            del params[name]
        elif isinstance(value, tuple):
            params[name] = list(value)
    return params


def flip_label_map(config: SyntheticConfig) -> dict[str, str | None]:
    """The class of a mirrored video of each class whose mirror is not itself: another class, or None (no class).

    What a mirror does depends on where the class lives (``cue``): with "motion" a mirrored MoveRight is a MoveLeft
    (colour and shape are random), so the two swap; with "both" it is a MoveRight-coloured actor moving left, which
    is no class, so MoveRight and MoveLeft are never mirrored; with "appearance" the class is the colour and shape,
    which a mirror keeps (identity). A motion whose mirror is no class's motion (up-right, zig-zag) is never
    mirrored except under "appearance".
    """
    if config.cue == "appearance":
        return {}
    classes = CLASSES[: config.num_classes]
    by_motion = {motion: name for name, motion, _, _ in classes}
    mapping: dict[str, str | None] = {}
    for name, motion, _, _ in classes:
        mirrored = MIRRORED_MOTIONS[motion]
        if mirrored != motion:
            mapping[name] = by_motion.get(mirrored) if config.cue == "motion" else None
    return mapping


def _polygon(shape: str, cx: float, cy: float, radius: float, angle: float) -> np.ndarray:
    """Vertices (N, 2) of a shape of circumradius ``radius`` centred at (cx, cy), rotated by ``angle``."""
    if shape == "circle":
        t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        points = np.stack([np.cos(t), np.sin(t)], -1) * radius
    elif shape == "cross":
        a, b = 1.0, 0.38
        points = (
            np.array(
                [
                    (-b, -a),
                    (b, -a),
                    (b, -b),
                    (a, -b),
                    (a, b),
                    (b, b),
                    (b, a),
                    (-b, a),
                    (-b, b),
                    (-a, b),
                    (-a, -b),
                    (-b, -b),
                ]
            )
            * radius
        )
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


def _validate(config: SyntheticConfig) -> None:
    """Raises ValueError naming the first bad setting."""
    if not 2 <= config.num_classes <= MAX_CLASSES:
        raise ValueError(f"num_classes must be in [2, {MAX_CLASSES}], got {config.num_classes}")
    if config.train_per_class < 1 or config.test_per_class < 1:
        raise ValueError("train_per_class and test_per_class must be >= 1")
    if config.num_frames < 12 or min(config.width, config.height) < 48:
        raise ValueError("num_frames must be >= 12 and width, height >= 48 (the actor must fit and move)")
    if config.cue not in CUES:
        raise ValueError(f"cue must be one of {list(CUES)}, got {config.cue!r}")
    if config.distractor_look not in LOOKS:
        raise ValueError(f"distractor_look must be one of {list(LOOKS)}, got {config.distractor_look!r}")
    for name in ("distractor_radius", "actor_radius_range"):
        low_high = getattr(config, name)
        if low_high is not None and not (len(low_high) == 2 and 1.5 <= low_high[0] <= low_high[1] <= 10.0):
            raise ValueError(f"{name} must be (low, high) with 1.5 <= low <= high <= 10 pixels, got {low_high}")
    low, high = config.action_fraction
    if not 0.1 <= low <= high <= 0.8:
        raise ValueError(f"action_fraction must be (low, high) with 0.1 <= low <= high <= 0.8, got {(low, high)}")
    if config.num_distractors < 0 or config.clutter < 0 or not 0 <= config.camera_drift <= 1.0:
        raise ValueError("num_distractors and clutter must be >= 0 and camera_drift in [0, 1] pixels per frame")
    if not 0 <= config.decoy_probability <= 1:
        raise ValueError(f"decoy_probability must be in [0, 1], got {config.decoy_probability}")
    if not 0 <= config.noise_sigma <= 64:
        raise ValueError(f"noise_sigma must be in [0, 64] grey levels, got {config.noise_sigma}")


def _class_parts(rng: np.random.Generator, num_classes: int) -> tuple[str, tuple[int, int, int]]:
    """A (shape, colour) of two of the benchmark's classes that is no class's own combination."""
    pairs = {(c[2], c[3]) for c in CLASSES[:num_classes]}
    while True:
        shape = CLASSES[rng.integers(num_classes)][2]
        colour = CLASSES[rng.integers(num_classes)][3]
        if (shape, colour) not in pairs:
            return shape, colour


def _add_clutter(rng: np.random.Generator, background: np.ndarray, count: int) -> None:
    """Paints ``count`` static, muted, outline-free blobs into the background (they move with the camera)."""
    big_h, big_w = background.shape[:2]
    for _ in range(count):
        shape = SHAPES[rng.integers(len(SHAPES))]
        centre = rng.uniform([0, 0], [big_w, big_h])
        colour = tuple(float(c) for c in rng.uniform(50, 190, size=3))
        _draw(background, _polygon(shape, *centre, rng.uniform(3.0, 9.0), rng.uniform(0, np.pi)), colour)


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


def _make_decoy(rng: np.random.Generator, config: SyntheticConfig, distractor: dict, actor_motion: str) -> None:
    """Turns a distractor into a decoy: still, then the motion of another class over a window like the actor's.

    A decoy keeps its look; it idles where its motion starts, performs the motion of a class other than the
    actor's (drawn from the benchmark's classes) over a window drawn as the actor's action is, and stays where the
    motion ends. The flow stream then sees class motions that are not the class, as class_parts distractors show
    the RGB stream class colours and shapes that are not the class: only the actor's conjunction of look and
    motion tells the class.
    """
    motions = [c[1] for c in CLASSES[: config.num_classes] if c[1] != actor_motion]
    motion = motions[rng.integers(len(motions))]
    length = int(round(rng.uniform(*config.action_fraction) * config.num_frames))
    start = int(rng.integers(1, config.num_frames - length))
    reach = distractor["radius"] * 1.7
    min_dx, min_dy, max_dx, max_dy = _excursion(motion, config)
    anchor = rng.uniform(
        [reach - min_dx, reach - min_dy], [config.width - reach - max_dx, config.height - reach - max_dy]
    )
    distractor["decoy"] = {"motion": motion, "start": start, "length": length, "anchor": anchor}


def _decoy_pose(decoy: dict, t: int, config: SyntheticConfig) -> tuple[np.ndarray, float, float]:
    """A decoy's (centre (2,), radius scale, angle) at frame ``t``: idle before and after its window."""
    phase = float(np.clip((t - decoy["start"]) / max(decoy["length"] - 1, 1), 0.0, 1.0))
    dx, dy, scale, angle = _actor_motion(decoy["motion"], phase, decoy["length"], config)
    return decoy["anchor"] + np.array([dx, dy]), scale, angle


@dataclasses.dataclass
class _VideoPlan:
    """Everything about one video drawn before its first frame: the camera, the actor and the distractors."""

    motion: str  # the actor's motion (CLASSES)
    shape: str  # the actor's shape (SHAPES)
    colour: tuple[int, int, int]  # the actor's RGB colour during its action
    margin: int  # pixels of background beyond each side of the frame, for the camera drift
    background: np.ndarray  # float32 (H + 2 margin, W + 2 margin, 3)
    drift: np.ndarray  # float64 (2,): camera drift (x, y), pixels per frame
    start: int  # first action frame (0-based)
    length: int  # action frames
    radius: float  # the actor's radius, pixels
    centre: tuple[float, float]  # (cx0, cy0): the actor's centre where its motion starts, pixels
    idle_grey: float  # the actor's grey level while idle
    base_angle: float  # the actor's rotation, radians
    distractors: list[dict]  # per distractor: its look, position and velocity (the frame loop moves them)


def _sample_distractor(rng: np.random.Generator, config: SyntheticConfig, actor_motion: str) -> dict:
    """One distractor's look, position and velocity (a decoy's motion window too, with ``decoy_probability``).

    Args:
      rng: the video's generator.
      config: the settings.
      actor_motion: the actor's motion (a decoy performs another one).

    Returns:
      {"shape", "pos" float64 (2,), "vel" float64 (2,), "radius", "grey", "tint" float64 (3,)}, plus "colour" and
      "angle" for class-part looks and "decoy" for decoys.
    """
    width, height = config.width, config.height
    distractor = {
        "shape": SHAPES[rng.integers(len(SHAPES))],
        "pos": rng.uniform([8, 8], [width - 8, height - 8]),
        "vel": rng.normal(0, 0.5, size=2),
        "radius": rng.uniform(*config.distractor_radius),
        "grey": rng.uniform(60, 200),
        "tint": rng.uniform(0.9, 1.1, size=3),
    }
    if config.distractor_look == "class_parts":
        distractor["shape"], distractor["colour"] = _class_parts(rng, config.num_classes)
        distractor["angle"] = rng.uniform(0, np.pi / 6)
    if config.decoy_probability and rng.random() < config.decoy_probability:
        _make_decoy(rng, config, distractor, actor_motion)
    return distractor


def _sample_plan(class_index: int, rng: np.random.Generator, config: SyntheticConfig) -> _VideoPlan:
    """Draws one video's background, camera drift, actor (look, action window, place) and distractors.

    Args:
      class_index: the class (index into CLASSES).
      rng: the video's generator (the draws are the first ones of `generate_video`, in its order).
      config: the settings.

    Returns:
      The video's plan; the frames then draw only the distractors' steps and the pixel noise.
    """
    _, motion, shape, colour = CLASSES[class_index]
    num_frames, height, width = config.num_frames, config.height, config.width
    margin = int(np.ceil(max(0.3, config.camera_drift) * num_frames)) + 2  # room for the camera drift
    background = _background(rng, height, width, margin)
    if config.clutter:
        _add_clutter(rng, background, config.clutter)
    drift = rng.uniform(-config.camera_drift, config.camera_drift, size=2)  # camera drift, pixels per frame
    if config.cue == "appearance":  # the motion of any class: only colour and shape tell the class
        motion = CLASSES[rng.integers(config.num_classes)][1]
    elif config.cue == "motion":  # colour and shape of any class: only the motion tells the class
        colour = CLASSES[rng.integers(config.num_classes)][3]
        shape = SHAPES[rng.integers(len(SHAPES))]

    # The action: where and when.
    length = int(round(rng.uniform(*config.action_fraction) * num_frames))
    start = int(round(rng.uniform(0.15, 0.9 * (num_frames - length) / num_frames) * num_frames))
    start = int(np.clip(start, 1, num_frames - length - 1))
    radius = config.actor_radius if config.actor_radius_range is None else rng.uniform(*config.actor_radius_range)
    reach = radius * 1.7
    min_dx, min_dy, max_dx, max_dy = _excursion(motion, config)
    cx0 = rng.uniform(reach - min_dx, width - reach - max_dx)
    cy0 = rng.uniform(reach - min_dy, height - reach - max_dy)
    idle_grey = rng.uniform(100, 170)
    base_angle = rng.uniform(0, np.pi / 6) if shape != "circle" else 0.0
    distractors = [_sample_distractor(rng, config, motion) for _ in range(config.num_distractors)]
    return _VideoPlan(
        motion=motion, shape=shape, colour=colour, margin=margin, background=background, drift=drift,
        start=start, length=length, radius=radius, centre=(cx0, cy0), idle_grey=idle_grey,
        base_angle=base_angle, distractors=distractors,
    )  # fmt: skip


def _step_and_draw_distractor(
    image: np.ndarray, distractor: dict, t: int, rng: np.random.Generator, config: SyntheticConfig
) -> None:
    """Moves a distractor one frame (a random-walk step, bounced off the borders) and paints it into ``image``.

    Args:
      image: float32 (H, W, 3) frame, painted in place.
      distractor: a `_sample_distractor` dict; its "pos" and "vel" are updated in place.
      t: the frame index (0-based), for a decoy's pose.
      rng: the video's generator (two normal draws, for decoys too).
      config: the settings.
    """
    d, width, height = distractor, config.width, config.height
    d["vel"] = np.clip(0.85 * d["vel"] + rng.normal(0, 0.25, size=2), -0.9, 0.9)  # drawn for decoys too
    d["pos"] = d["pos"] + d["vel"]
    for axis, limit in ((0, width), (1, height)):
        if not 6 <= d["pos"][axis] <= limit - 6:
            d["vel"][axis] = -d["vel"][axis]
            d["pos"][axis] = np.clip(d["pos"][axis], 6, limit - 6)
    pos, radius_scale, turn = d["pos"], 1.0, 0.0
    if "decoy" in d:
        pos, radius_scale, turn = _decoy_pose(d["decoy"], t, config)
    if "colour" in d:
        _draw(
            image,
            _polygon(d["shape"], *pos, d["radius"] * radius_scale, d["angle"] + turn),
            d["colour"],
            ACTOR_OUTLINE,
        )
    else:
        grey = tuple(float(np.clip(d["grey"] * k, 0, 255)) for k in d["tint"])
        _draw(image, _polygon(d["shape"], *pos, d["radius"] * radius_scale, turn), grey)


def _draw_actor(image: np.ndarray, plan: _VideoPlan, t: int, config: SyntheticConfig) -> tuple[np.ndarray, bool]:
    """Paints the actor into frame ``t``: its class colour and motion during its action, grey and still otherwise.

    Args:
      image: float32 (H, W, 3) frame, painted in place.
      plan: the video's plan.
      t: the frame index (0-based).
      config: the settings.

    Returns:
      ``(polygon, acting)``: the actor's outline float (n, 2) (x, y) pixels, and whether ``t`` is an action frame.
    """
    (cx0, cy0), start, length = plan.centre, plan.start, plan.length
    acting = start <= t < start + length
    if acting:
        phase = (t - start) / max(length - 1, 1)
        colour = plan.colour
    else:
        # Idle: grey and still, where the action starts (before) or ends (after).
        phase = 0.0 if t < start else 1.0
        colour = (plan.idle_grey,) * 3
    dx, dy, scale, angle = _actor_motion(plan.motion, phase, length, config)
    polygon = _polygon(plan.shape, cx0 + dx, cy0 + dy, plan.radius * scale, plan.base_angle + angle)
    _draw(image, polygon, colour, outline=ACTOR_OUTLINE)
    return polygon, acting


def _render_frame(
    plan: _VideoPlan, t: int, rng: np.random.Generator, config: SyntheticConfig, *, masks: bool
) -> tuple[np.ndarray, tuple | None, np.ndarray | None]:
    """Renders frame ``t``: the drifted background, the distractors (moved one step), the actor and pixel noise.

    Args:
      plan: the video's plan (its distractors move, in place).
      t: the frame index (0-based); frames must be rendered in order.
      rng: the video's generator (the distractors' steps, then the noise).
      config: the settings.
      masks: also return the actor's pixels.

    Returns:
      ``(frame, box, mask)``: uint8 (H, W, 3) RGB; (t + 1, x1, y1, x2, y2) of the actor in pixels on an action
      frame, else None; bool (H, W) actor pixels (at least half covered) with ``masks``, else None.
    """
    width, height, margin, drift = config.width, config.height, plan.margin, plan.drift
    matrix = np.float32([[1, 0, -margin + drift[0] * t], [0, 1, -margin + drift[1] * t]])
    image = cv2.warpAffine(
        plan.background, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )
    for distractor in plan.distractors:
        _step_and_draw_distractor(image, distractor, t, rng, config)
    polygon, acting = _draw_actor(image, plan, t, config)
    box = None
    if acting:
        x1, y1 = np.clip(polygon.min(0), 0, [width - 1, height - 1])
        x2, y2 = np.clip(polygon.max(0), 0, [width - 1, height - 1])
        box = (t + 1, x1, y1, x2, y2)
    mask = None
    if masks:
        canvas = np.zeros((height, width, 3), np.float32)
        _draw(canvas, polygon, (255.0,) * 3, outline=255.0)
        mask = canvas[..., 0] > 127  # at least half covered
    image += rng.normal(0, config.noise_sigma, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), box, mask


def generate_video(
    class_index: int, rng: np.random.Generator, config: SyntheticConfig, *, masks: bool = False
) -> GeneratedVideo:
    """Renders one video of class ``class_index``.

    Random numbers beyond the first version's are drawn only for settings away from their defaults, so a default
    config renders exactly the videos it always did.

    Args:
      class_index: the class (index into CLASSES).
      rng: the video's generator.
      config: the settings.
      masks: also return the actor's pixels per frame (for tests of the ground truth).

    Returns:
      The frames (T, H, W, 3), the actor's boxes over its action and the action's frame range.
    """
    plan = _sample_plan(class_index, rng, config)
    num_frames, height, width = config.num_frames, config.height, config.width
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    actor_masks = np.zeros((num_frames, height, width), bool) if masks else None
    boxes = []
    for t in range(num_frames):
        frames[t], box, mask = _render_frame(plan, t, rng, config, masks=masks)
        if box is not None:
            boxes.append(box)
        if actor_masks is not None:
            actor_masks[t] = mask
    return GeneratedVideo(
        frames=frames,
        boxes=np.asarray(boxes, np.float32),
        action=(plan.start, plan.start + plan.length),
        actor_masks=actor_masks,
    )


# The still-image task that stands in for ImageNet pretraining (`stpa.pretrain_backbone`): one frame of a video
# during its action, labelled with the actor's shape and colour (len(SHAPES) x MAX_CLASSES labels), not its motion.
# Colour and shape are drawn independently of the class (cue "motion"), the distractors are grey (the actor is the
# one coloured, outlined object), and the frame is square.
STILLS_FIELDS: dict = {
    "num_classes": MAX_CLASSES,
    "num_frames": 16,
    "width": 72,
    "height": 72,
    "num_distractors": 2,
    "distractor_look": "grey",
    "distractor_radius": (3.0, 10.0),
    "actor_radius_range": (7.0, 10.0),
    "noise_sigma": 20.0,
    "clutter": 6,
    "camera_drift": 0.6,
    "action_fraction": (0.25, 0.4),
    "cue": "motion",
}
NUM_STILL_LABELS = len(SHAPES) * MAX_CLASSES


def still_label(shape: str, colour: tuple[int, int, int]) -> int:
    """The label of an actor's look: ``shape index * MAX_CLASSES + colour index`` (colours of `CLASSES`)."""
    colours = [c[3] for c in CLASSES]
    return SHAPES.index(shape) * MAX_CLASSES + colours.index(tuple(colour))


def render_stills(seed: int, count: int, frames_per_video: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Still frames of the pretraining task (`STILLS_FIELDS`), deterministic in ``seed``.

    Each video (generator ``np.random.default_rng([seed, video])``, a random motion class) gives
    ``frames_per_video`` distinct frames from its action window, all with the video's label.

    Args:
      seed: the generation seed (use one no benchmark uses).
      count: number of frames (a multiple of ``frames_per_video``).
      frames_per_video: frames taken from each video.

    Returns:
      ``(frames, labels)``: uint8 (count, 72, 72, 3) RGB and int32 (count,) in [0, `NUM_STILL_LABELS`).
    """
    if count % frames_per_video:
        raise ValueError(f"count={count} must be a multiple of frames_per_video={frames_per_video}.")
    config = SyntheticConfig(seed=seed, **STILLS_FIELDS)
    _validate(config)
    frames = np.zeros((count, config.height, config.width, 3), np.uint8)
    labels = np.zeros((count,), np.int32)
    for video in range(count // frames_per_video):
        rng = np.random.default_rng([seed, video])
        plan = _sample_plan(int(rng.integers(config.num_classes)), rng, config)
        chosen = set(rng.choice(plan.length, size=frames_per_video, replace=False) + plan.start)
        taken = video * frames_per_video
        for t in range(max(chosen) + 1):
            image, _, _ = _render_frame(plan, t, rng, config, masks=False)
            if t in chosen:
                frames[taken], labels[taken] = image, still_label(plan.shape, plan.colour)
                taken += 1
    return frames, labels


def _video_name(class_name: str, group: int) -> str:
    return f"v_{class_name}_g{group:02d}_c01"


def generate(out_dir: str, config: SyntheticConfig = SyntheticConfig(), *, overwrite: bool = False) -> dict:
    """Writes the benchmark (layout in the module docstring) and returns its parameters.

    A directory that already holds a complete benchmark with the same parameters is left as it is.

    Raises:
      ValueError: bad parameters, or ``out_dir`` holds a benchmark with other parameters (and not ``overwrite``).
    """
    _validate(config)
    params = {"format": "ucf101", "generator": "data.synthetic", **config_params(config)}
    marker = os.path.join(out_dir, "synthetic.json")
    if os.path.isfile(marker):
        with open(marker) as f:
            existing = json.load(f)
        if existing == params:
            _write_flip_label_map(out_dir, config)  # benchmarks written before the map existed get it too
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
    _write_flip_label_map(out_dir, config)
    with open(marker, "w") as f:
        json.dump(params, f, indent=1, sort_keys=True)
    return params


def _write_flip_label_map(out_dir: str, config: SyntheticConfig) -> None:
    with open(os.path.join(out_dir, FLIP_LABEL_MAP_FILE), "w") as f:
        json.dump(flip_label_map(config), f, indent=1, sort_keys=True)


def _define_flags(flag_values=None) -> None:
    """Defines the command's flags on ``flag_values`` (absl's global FLAGS by default)."""
    from absl import flags

    fv = flag_values if flag_values is not None else flags.FLAGS

    defaults = SyntheticConfig()
    flags.DEFINE_string("out_dir", None, "Directory to write the raw benchmark to.", required=True, flag_values=fv)
    flags.DEFINE_integer("seed", defaults.seed, "Seed: the same seed writes the same videos.", flag_values=fv)
    flags.DEFINE_integer("num_classes", defaults.num_classes, f"Classes (2..{MAX_CLASSES}).", flag_values=fv)
    flags.DEFINE_integer("train_per_class", defaults.train_per_class, "Training videos per class.", flag_values=fv)
    flags.DEFINE_integer("test_per_class", defaults.test_per_class, "Test videos per class.", flag_values=fv)
    flags.DEFINE_integer("num_frames", defaults.num_frames, "Frames per video.", flag_values=fv)
    flags.DEFINE_integer("width", defaults.width, "Frame width.", flag_values=fv)
    flags.DEFINE_integer("height", defaults.height, "Frame height.", flag_values=fv)
    flags.DEFINE_float("fps", defaults.fps, "Frames per second written into the videos.", flag_values=fv)
    flags.DEFINE_integer("num_distractors", defaults.num_distractors, "Distracting shapes per video.", flag_values=fv)
    flags.DEFINE_enum(
        "preset",
        "default",
        ["default", "study"],
        "Start from a named benchmark: 'default' (the "
        "quickstart's) or 'study' (experiments.reproduce's; BUILD.md). Flags given explicitly override "
        "it.",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "cue",
        defaults.cue,
        list(CUES),
        "Where the class lives: the actor's colour and shape (appearance), its motion, or both.",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "distractor_look",
        defaults.distractor_look,
        list(LOOKS),
        "grey shapes, or class_parts: class colours and shapes in combinations no class has, outlined like the actor.",
        flag_values=fv,
    )
    flags.DEFINE_list(
        "distractor_radius",
        list(map(str, defaults.distractor_radius)),
        "low,high radius of the distractors in pixels.",
        flag_values=fv,
    )
    flags.DEFINE_list(
        "actor_radius_range",
        None,
        "low,high radius of the actor in pixels, drawn per video (default: every actor 7 px).",
        flag_values=fv,
    )
    flags.DEFINE_integer("clutter", defaults.clutter, "Static blobs painted into the background.", flag_values=fv)
    flags.DEFINE_float(
        "decoy_probability",
        defaults.decoy_probability,
        "Chance that a distractor is a decoy: it "
        "performs the motion of another class (the flow stream's counterpart of class_parts).",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "noise_sigma",
        defaults.noise_sigma,
        "Standard deviation of the Gaussian pixel noise added to "
        "every frame (grey levels, 0-255); it blurs optical flow more than colour.",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "camera_drift", defaults.camera_drift, "Largest camera drift, pixels per frame per axis.", flag_values=fv
    )
    flags.DEFINE_list(
        "action_fraction",
        list(map(str, defaults.action_fraction)),
        "low,high length of the action as a fraction of the clip.",
        flag_values=fv,
    )
    flags.DEFINE_bool("overwrite", False, "Regenerate over a benchmark written with other parameters.", flag_values=fv)


def _pair(values: list[str] | None, name: str) -> tuple[float, float] | None:
    if values is None:
        return None
    try:
        low, high = (float(v) for v in values)
    except ValueError as error:
        raise ValueError(f"--{name} takes two numbers low,high, got {','.join(values)}") from error
    return low, high


def config_from_flags(flag_values) -> SyntheticConfig:
    """The SyntheticConfig of the parsed flags: the --preset, with every explicitly given flag on top."""
    names = [field.name for field in dataclasses.fields(SyntheticConfig)]
    overrides = {}
    for name in names:
        if name in flag_values and (flag_values[name].present or flag_values.preset == "default"):
            value = flag_values[name].value
            if name in ("distractor_radius", "actor_radius_range", "action_fraction"):
                value = _pair(value, name)
            overrides[name] = value
    return preset(flag_values.preset, **overrides)


def main(argv: list[str]) -> int:
    """Command-line entry point; returns the exit status."""
    del argv
    import time

    from absl import flags

    f = flags.FLAGS
    start = time.perf_counter()
    existed = os.path.isfile(os.path.join(f.out_dir, "synthetic.json"))
    try:
        config = config_from_flags(f)
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
