"""Classifying one's own videos with trained runs or SavedModels: the library of `python -m stpa.predict`.

In a notebook, two lines:

    predictor = Predictor.load("runs/rgb", "runs/flow")   # one run directory or SavedModel per stream
    result = predictor.predict("clip.mp4")                # or uint8 RGB frames (T, H, W, 3)
    result.top()                                          # [(class name, probability), ...] best first

Per stream, the video becomes what the run was trained on (`data.video_clips`: `data.prepare`'s own extraction with
the settings its records manifest recorded: frame size, JPEG quality, frame rate, flow method and bound), the K test
samples are taken at the segment centres and cropped (`data.augment.eval_crops`: 1, 3 or 10 crops), normalised
(`engine.inference.run_preprocess`; a SavedModel's `serve_frames` normalises in-graph) and run through the family's
outputs model; the crops' logits are averaged as `stpa.evaluate` averages them (`engine.evaluation.fold_crops` /
`average_crops`, 10 crops through the run's flip label map), and the streams are fused by `engine.fusion.fuse_scores`,
the function of `stpa.fuse`. The scores therefore equal what `stpa.evaluate` and `stpa.fuse` give on records prepared
from the same video (tests/stpa/test_predict.py). The attention of the centre crop comes from the same forward pass
and is drawn by the family (`ModelFamily.attention_frames`) into an animated GIF (and an mp4) per stream.

Where the extraction settings come from, per stream: the manifest of `records_dir` when given (the `data.prepare
--out_dir` the run was trained on), else that of the run's own `--records_dir` (its flags.txt). Without either, an
RGB stream uses `data.prepare`'s defaults (340x256, JPEG quality 95, every frame; a note says so) and a flow stream
stops with one line naming the flags to pass (`records_dir`, or `flow` for the method).
"""

from __future__ import annotations

import csv
import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from data import augment, files, video_clips, video_io
from data import extract as extract_lib
from data import records as record_format
from stpa.engine import checkpoints, evaluation, fusion, inference, inputs, serving
from stpa.engine import family as family_lib
from stpa.engine.score_files import ScoreSet

# K when a run records none: `stpa.evaluate`'s default, the paper's test protocol (Sec. 3.4).
DEFAULT_TEST_FRAMES = 25
# The centre crop among the crops of `data.augment.eval_crops` (1: centre; 3: side, centre, side; 10: four corners
# and the centre, each followed by its mirror): the crop whose attention is drawn.
CENTRE_CROP = {1: 0, 3: 1, 10: 8}
OUTPUT_FORMATS = (".csv", ".json")

ForwardFn = Callable[[tf.Tensor], tuple[tf.Tensor, dict[str, tf.Tensor]]]


def source_kind(source: str) -> str:
    """The kind of `source`: "run" (a `stpa.train` run directory) or "saved_model" (a `stpa.export` SavedModel).

    Raises:
      FileNotFoundError: neither, naming the path and what it should hold.
    """
    if os.path.isfile(os.path.join(source, checkpoints.CONFIG_FILE)):
        return "run"
    if os.path.isfile(os.path.join(source, serving.EXPORT_CONFIG)):
        return "saved_model"
    raise FileNotFoundError(
        f"{source} is neither a run directory of `python -m stpa.train` (no {checkpoints.CONFIG_FILE}) nor a "
        f"SavedModel of `python -m stpa.export` (no {serving.EXPORT_CONFIG})."
    )


def read_flags_file(model_dir: str) -> dict[str, str]:
    """The `--name=value` lines of a run's flags.txt as {name: value} ({} without the file)."""
    path = os.path.join(model_dir, checkpoints.FLAGS_FILE)
    if not os.path.isfile(path):
        return {}
    values = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("--") and "=" in line:
                name, value = line[2:].split("=", 1)
                values[name] = value
    return values


def recorded_test_frames(source: str, config: Mapping[str, Any]) -> int:
    """The K a run tests with: a SavedModel's export K, a run's --eval_frames (flags.txt), else 25 (Sec. 3.4)."""
    recorded = config.get("test_frames") or read_flags_file(source).get("eval_frames")
    return int(recorded) if recorded else DEFAULT_TEST_FRAMES


def find_manifest(source: str, records_dir: str | None = None) -> tuple[str | None, str]:
    """The records manifest that says how a stream's frames and flow were extracted.

    Args:
      source: the run directory or SavedModel.
      records_dir: a prepared dataset (`data.prepare --out_dir`, or one of its split folders) to read instead of the
        run's own `--records_dir` (flags.txt).

    Returns:
      (the split folder holding manifest.json, or None; where it was looked for, for messages).
    """
    if records_dir:
        roots, splits, origin = [records_dir], ["train", "test"], f"--records_dir={records_dir}"
    else:
        recorded = read_flags_file(source)
        if not recorded.get("records_dir"):
            return None, f"{source} records no --records_dir (flags.txt)"
        roots = [recorded["records_dir"]]
        splits = [recorded.get("train_split") or "train", recorded.get("eval_split") or "test"]
        origin = f"its --records_dir={recorded['records_dir']} (flags.txt)"
    for root in roots:
        for folder in (root, *(os.path.join(root, split) for split in splits)):
            if os.path.isfile(os.path.join(folder, record_format.MANIFEST_NAME)):
                return folder, origin
    return None, f"no {record_format.MANIFEST_NAME} under {origin}"


def extraction_options(
    source: str, config: Mapping[str, Any], *, records_dir: str | None = None, flow: str | None = None
) -> tuple[extract_lib.ExtractOptions, str | None]:
    """How a stream's videos are decoded, resized, JPEG-coded and (flow) turned into quantised flow.

    Args:
      source: the run directory or SavedModel.
      config: its config.json (or export config): "modality".
      records_dir: the prepared dataset whose manifest to read (default: the run's own, from flags.txt).
      flow: the flow method, instead of the manifest's (`data.flow.FLOW_METHODS`).

    Returns:
      (`data.extract.ExtractOptions`, with flow "none" for an RGB stream; a note for the user, or None).

    Raises:
      ValueError: a flow stream whose flow method is known neither from a manifest nor from `flow`.
    """
    folder, origin = find_manifest(source, records_dir)
    options = video_clips.recorded_options(record_format.read_manifest(folder)) if folder else None
    note = None
    if options is None:
        why = origin if folder is None else f"{folder}/{record_format.MANIFEST_NAME} records no extraction settings"
        if config["modality"] == "flow" and not flow:
            raise ValueError(
                f"{source}: cannot tell which flow this run was trained on ({why}); pass --records_dir=<the "
                "data.prepare --out_dir it was trained on> (its manifest records the flow), or "
                "--flow=tvl1|dis|farneback."
            )
        options = extract_lib.ExtractOptions()
        note = (
            f"{source}: {why}; frames are extracted with data.prepare's defaults (340x256, JPEG quality 95, every "
            "frame). Pass --records_dir=<the data.prepare --out_dir it was trained on> to use the run's settings."
        )
    if flow:
        options = dataclasses.replace(options, flow=flow)
    if config["modality"] == "rgb":
        return dataclasses.replace(options, flow="none"), note
    if options.flow == "none":
        raise ValueError(f"{source}: its records manifest ({folder}) says flow 'none'; pass --flow=tvl1|dis|farneback.")
    return options, note


def make_prediction_fn(
    outputs_model: Callable[..., Mapping[str, tf.Tensor]],
    attention_names: Sequence[str],
    flip_targets: np.ndarray | None,
) -> ForwardFn:
    """`engine.evaluation.make_forward_fn`'s pass, returning the attention outputs instead of their statistics.

    Args:
      outputs_model: frames `(B, K, S, S, C)` -> {"logits": `(B, C)`, attention outputs} (the family's
        `outputs_model`, or a SavedModel's `serve_frames`).
      attention_names: the family's `attention_outputs`.
      flip_targets: the run's flip label map (10 crops), or None.

    Returns:
      `fn(frames (B, K, S, S, C) or (B, crops, K, S, S, C)) -> (float32 (B, C) logits averaged over the crops,
      {name: float32 (B*crops, ...)} attention outputs, the crops of a video consecutive)`.
    """

    @tf.function(reduce_retracing=True)
    def forward_fn(frames: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        folded, crops = evaluation.fold_crops(frames)
        outputs = outputs_model(folded, training=False)
        logits = evaluation.average_crops(outputs["logits"], crops, flip_targets)  # (B, C)
        attention = {name: tf.cast(outputs[name], tf.float32) for name in attention_names if name in outputs}
        return logits, attention

    return forward_fn


@dataclasses.dataclass
class Stream:
    """One loaded model and how its input is made.

    Attributes:
      name: a short label (the source's folder name), in messages and file names.
      source: the run directory or SavedModel.
      config: config.json (a SavedModel's export config).
      family: the run's `engine.family.ModelFamily`.
      options: how videos are extracted for it (`extraction_options`).
      forward: `make_prediction_fn`'s function.
      preprocess: the run's normalisation of frames in [0, 255], or None (a SavedModel normalises in-graph).
      test_frames: K.
      note: what the user should know about the extraction settings, or None.
    """

    name: str
    source: str
    config: dict
    family: family_lib.ModelFamily
    options: extract_lib.ExtractOptions
    forward: ForwardFn
    preprocess: Callable[[tf.Tensor], tf.Tensor] | None
    test_frames: int
    note: str | None = None

    @property
    def modality(self) -> str:
        """The stream's input: "rgb" or "flow"."""
        return self.config["modality"]


def open_stream(
    source: str,
    *,
    which: str = "last",
    records_dir: str | None = None,
    flow: str | None = None,
    test_frames: int | None = None,
    name: str | None = None,
) -> Stream:
    """Loads a run directory's checkpoint or a SavedModel, and decides how its videos are extracted.

    Args:
      source: a run directory of `stpa.train` or a SavedModel of `stpa.export`.
      which: "best" or "last" checkpoint of a run directory.
      records_dir: the prepared dataset whose manifest says how frames and flow were extracted.
      flow: the flow method, instead of the manifest's.
      test_frames: K (default: the run's test protocol: a SavedModel's export K, a run directory's --eval_frames
        from flags.txt, else `DEFAULT_TEST_FRAMES`).
      name: the stream's label (default: the source's folder name).

    Raises:
      FileNotFoundError: not a run directory or SavedModel, or a run without checkpoint.
      ValueError: a run that does not read frames (cached features), or a flow stream without known flow settings.
    """
    kind = source_kind(source)
    config = checkpoints.load_run_config(source) if kind == "run" else serving.read_export_config(source)
    if config.get("input", inputs.FRAMES) != inputs.FRAMES:
        raise ValueError(
            f'{source} was trained on cached {config["input"]!r} inputs, not on frames (config.json "input"): its '
            "model has no backbone, so it cannot take videos. Train it on frames (--records_dir) to predict videos."
        )
    family = family_lib.get_family(config["build"]["model"])
    options, note = extraction_options(source, config, records_dir=records_dir, flow=flow)
    flip_targets = evaluation.run_flip_targets(config)
    if kind == "run":
        outputs_model = family.outputs_model(checkpoints.load_model(source, which))
        preprocess = inference.run_preprocess(config)
    else:
        loaded = tf.saved_model.load(source)  # held by the closure: a signature alone does not keep its variables

        def outputs_model(frames: tf.Tensor, training: bool = False) -> dict[str, tf.Tensor]:
            del training
            return loaded.signatures["serve_frames"](frames=frames)

        preprocess = None
    return Stream(
        name=name or os.path.basename(os.path.normpath(source)),
        source=source,
        config=config,
        family=family,
        options=options,
        forward=make_prediction_fn(outputs_model, family.attention_outputs, flip_targets),
        preprocess=preprocess,
        test_frames=int(test_frames or recorded_test_frames(source, config)),
        note=note,
    )


@dataclasses.dataclass
class StreamResult:
    """What one stream made of a video.

    Attributes:
      name: the stream's label.
      logits: float32 `(C,)`, averaged over the crops (a row of `stpa.evaluate`'s score file).
      frame_indices: int `(K,)` the sampled frames (flow: stack starts) of the extracted video.
      view: float32 `(K, S, S, C)` the centre crop as the network saw it, in [0, 255].
      attention: the family's attention outputs for the centre crop, without the batch axis ({} without any).
    """

    name: str
    logits: np.ndarray
    frame_indices: np.ndarray
    view: np.ndarray
    attention: dict[str, np.ndarray]


@dataclasses.dataclass
class VideoPrediction:
    """The fused prediction for one video.

    Attributes:
      video: the file path (or the name given to a frame array).
      class_names: the C class names.
      scores: float32 `(C,)` the fused scores (`engine.fusion.fuse_scores` of the streams' logits).
      probabilities: float64 `(C,)` softmax of the scores (sigmoid for multi-label runs; the scores themselves with
        normalize="softmax").
      streams: one `StreamResult` per stream.
      seconds: {"extract": decoding, resizing, JPEG coding and flow; "model": preprocessing and forward passes}.
    """

    video: str
    class_names: list[str]
    scores: np.ndarray
    probabilities: np.ndarray
    streams: list[StreamResult]
    seconds: dict[str, float]

    def ranked(self) -> np.ndarray:
        """Class indices from most to least likely (ties: lower index first, as `stpa.evaluate`'s top-k)."""
        return np.argsort(-self.scores, kind="stable")

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The k most likely (class name, probability), best first."""
        return [(self.class_names[i], float(self.probabilities[i])) for i in self.ranked()[:k]]

    def as_dict(self, k: int = 5) -> dict[str, Any]:
        """JSON-ready: video, top-k classes with probabilities, the fused scores and each stream's logits."""
        return {
            "video": self.video,
            "top": [{"class": name, "probability": p} for name, p in self.top(k)],
            "scores": [float(s) for s in self.scores],
            "streams": {s.name: [float(v) for v in s.logits] for s in self.streams},
            "seconds": self.seconds,
        }


def _probabilities(scores: np.ndarray, multi_label: bool, normalize: str) -> np.ndarray:
    """(C,) scores -> (C,) probabilities (softmax; sigmoid when multi-label; as they are after softmax fusion)."""
    scores = np.asarray(scores, np.float64)
    if normalize == "softmax":
        return scores
    if multi_label:
        return 1.0 / (1.0 + np.exp(-scores))
    shifted = np.exp(scores - scores.max())
    return shifted / shifted.sum()


class Predictor:
    """Classifies videos with one or more streams, fused as `stpa.fuse` fuses them. Build it with `Predictor.load`."""

    def __init__(
        self,
        streams: Sequence[Stream],
        *,
        crops: int = 1,
        weights: Sequence[float] | None = None,
        normalize: str = "none",
    ):
        """Checks that the streams agree on the classes.

        Args:
          streams: the loaded streams (`open_stream`).
          crops: 1, 3 or 10 test crops.
          weights: one fusion weight per stream (default: all 1, the paper's average).
          normalize: "none" (TSN fuses raw scores) or "softmax", as `stpa.fuse --normalize`.

        Raises:
          ValueError: no stream, a bad crop count or weights, or streams with other classes.
        """
        if not streams:
            raise ValueError("give at least one run directory or SavedModel.")
        if crops not in CENTRE_CROP:
            raise ValueError(f"--crops must be one of {sorted(CENTRE_CROP)}, got {crops}.")
        if weights is not None and len(weights) != len(streams):
            raise ValueError(f"--weights needs one weight per stream ({len(streams)}), got {list(weights)}.")
        if normalize not in fusion.NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {fusion.NORMALIZATIONS}, got {normalize!r}.")
        first = streams[0]
        for stream in streams[1:]:
            for key in ("class_names", "multi_label"):
                if stream.config.get(key) != first.config.get(key):
                    raise ValueError(
                        f"{stream.source} and {first.source} disagree on {key} ({stream.config.get(key)!r} vs "
                        f"{first.config.get(key)!r}); fuse streams trained on one dataset."
                    )
        self.streams = list(streams)
        self.crops = crops
        self.weights = None if weights is None else [float(w) for w in weights]
        self.normalize = normalize
        num_classes = int(first.config["build"]["num_classes"])
        self.class_names = list(first.config.get("class_names") or [f"class {i}" for i in range(num_classes)])
        self.multi_label = bool(first.config.get("multi_label", False))

    @classmethod
    def load(
        cls,
        *sources: str | Sequence[str],
        which: str = "last",
        records_dir: str | None = None,
        flow: str | None = None,
        test_frames: int | None = None,
        crops: int = 1,
        weights: Sequence[float] | None = None,
        normalize: str = "none",
    ) -> Predictor:
        """Loads one stream per run directory or SavedModel (told apart by their files).

        Args:
          *sources: run directories of `stpa.train` and / or SavedModels of `stpa.export`, or lists of them.
          which: "best" or "last" checkpoint of the run directories.
          records_dir: the prepared dataset whose manifest says how frames and flow were extracted (default: each
            run's own --records_dir, from its flags.txt).
          flow: the flow method, instead of the manifest's.
          test_frames: K for every stream (default: the run's test protocol, `open_stream`).
          crops: 1, 3 or 10.
          weights: fusion weights, one per stream.
          normalize: "none" or "softmax" (`stpa.fuse --normalize`).

        Returns:
          The Predictor.
        """
        paths = [p for s in sources for p in ([s] if isinstance(s, str) else list(s))]
        names: list[str] = []
        for path in paths:
            base = os.path.basename(os.path.normpath(path))
            names.append(base if base not in names else f"{base}_{len(names) + 1}")
        streams = [
            open_stream(p, which=which, records_dir=records_dir, flow=flow, test_frames=test_frames, name=n)
            for p, n in zip(paths, names)
        ]
        return cls(streams, crops=crops, weights=weights, normalize=normalize)

    @property
    def notes(self) -> list[str]:
        """What the user should know about how the streams' videos are extracted."""
        return [stream.note for stream in self.streams if stream.note]

    def _extract(self, video: str | np.ndarray, name: str) -> tuple[list[extract_lib.ExtractedVideo], float]:
        """Each stream's extracted video (streams with the same settings share one extraction) and the seconds."""
        start = time.perf_counter()
        done: list[tuple[extract_lib.ExtractOptions, extract_lib.ExtractedVideo]] = []
        # Flow streams first: their extraction holds the frames an RGB stream with the same settings needs.
        order = sorted(range(len(self.streams)), key=lambda i: self.streams[i].options.flow == "none")
        extracted: dict[int, extract_lib.ExtractedVideo] = {}
        for index in order:
            options = self.streams[index].options
            for other, result in done:
                if other == options or (options.flow == "none" and dataclasses.replace(other, flow="none") == options):
                    extracted[index] = result
                    break
            else:
                if isinstance(video, str):
                    result = video_clips.extract_video(video, options)
                else:
                    result = video_clips.encode_frames(video, options, name=name)
                done.append((options, result))
                extracted[index] = result
        return [extracted[i] for i in range(len(self.streams))], time.perf_counter() - start

    def run_stream(self, index: int, video: extract_lib.ExtractedVideo) -> StreamResult:
        """Stream `index`'s model part for one extracted video (what `predict` times as "model").

        The K test samples are decoded, cropped, normalised and run through the model; the crops' logits averaged.

        Args:
          index: the stream's position.
          video: the video extracted with that stream's options (`data.video_clips.extract_video`).

        Returns:
          The `StreamResult`.
        """
        stream = self.streams[index]
        frames, offsets = video_clips.clip_frames(
            video,
            modality=stream.modality,
            num_frames=stream.test_frames,
            flow_length=int(stream.config["flow_length"]),
        )  # uint8 (K, H, W, C)
        size = int(stream.config["input_size"])
        clip = tf.constant(frames.astype(np.float32))  # (K, H, W, C) in [0, 255], as data.pipeline casts it
        crops = augment.eval_crops(clip, size, self.crops, stream.modality)  # (crops, K, S, S, C)
        batch = crops[None] if self.crops > 1 else crops[:1]  # (1, crops, K, S, S, C) or (1, K, S, S, C)
        if stream.preprocess is not None:
            batch = stream.preprocess(batch)
        logits, attention = stream.forward(batch)
        centre = CENTRE_CROP[self.crops]
        return StreamResult(
            name=stream.name,
            logits=logits.numpy()[0],
            frame_indices=np.asarray(offsets),
            view=crops[centre].numpy(),
            attention={key: value.numpy()[centre] for key, value in attention.items()},
        )

    def predict(self, video: str | os.PathLike | np.ndarray, *, name: str | None = None) -> VideoPrediction:
        """Classifies one video.

        Args:
          video: a video file (anything OpenCV reads), or uint8 RGB frames `(T, H, W, 3)` at the frame rate the run
            was trained on (they go through the same resizing, JPEG coding and flow as a file's frames).
          name: the video's name in the result (default: the path, or "frames").

        Returns:
          The `VideoPrediction`.

        Raises:
          data.video_io.VideoReadError: a file that cannot be read, naming it and why.
          ValueError: frames of the wrong type or shape.
        """
        if isinstance(video, os.PathLike):
            video = os.fspath(video)
        name = name or (video if isinstance(video, str) else "frames")
        extracted, extract_seconds = self._extract(video, name)
        start = time.perf_counter()
        results = [self.run_stream(index, result) for index, result in enumerate(extracted)]
        model_seconds = time.perf_counter() - start
        score_sets = [
            ScoreSet(result.logits[None], labels=np.array([-1]), video_ids=np.array([name])) for result in results
        ]
        fused = fusion.fuse_scores(score_sets, self.weights, self.normalize).scores[0]  # (C,)
        return VideoPrediction(
            video=name,
            class_names=self.class_names,
            scores=fused,
            probabilities=_probabilities(fused, self.multi_label, self.normalize),
            streams=results,
            seconds={"extract": extract_seconds, "model": model_seconds},
        )

    def attention_frames(self, prediction: VideoPrediction) -> dict[str, list[np.ndarray]]:
        """{stream name: K uint8 (H, W, 3) pictures of the centre crop with the attention drawn by the family}."""
        return {
            result.name: stream.family.attention_frames(result.attention, result.view)
            for stream, result in zip(self.streams, prediction.streams)
        }

    def write_overlays(
        self, prediction: VideoPrediction, out_dir: str, *, name: str | None = None, frame_ms: int = 250
    ) -> list[str]:
        """Writes per stream `<out_dir>/<name>_<stream>.gif` (K frames) and `.mp4` where OpenCV can write one.

        Args:
          prediction: `predict`'s result.
          out_dir: the folder (created).
          name: the file-name stem (default: the video's file name without extension).
          frame_ms: display time of one frame.

        Returns:
          The paths written (each complete: `data.files.write_atomic`).

        Raises:
          data.files.WriteError: a GIF cannot be written (an mp4 that OpenCV cannot write is left out).
        """
        stem = name or os.path.splitext(os.path.basename(prediction.video))[0]
        written = []
        for stream_name, drawn in self.attention_frames(prediction).items():
            pictures = with_timeline(drawn)
            base = os.path.join(out_dir, f"{stem}_{stream_name}")
            written.append(write_gif(base + ".gif", pictures, frame_ms))
            try:
                written.append(
                    files.write_atomic(
                        base + ".mp4",
                        lambda temporary, p=pictures: video_io.write_video(temporary, np.stack(p), 1000.0 / frame_ms),
                    )
                )
            except files.WriteError:
                pass  # no mp4 encoder in this OpenCV build: the GIF is the overlay
        return written


def with_timeline(pictures: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each of K pictures above a thin bar that marks its place among the K (white segment k of K).

    The bar also keeps consecutive pictures apart: Pillow merges identical consecutive GIF frames, and an overlay
    must keep one frame per test frame (a still video would otherwise shrink to one).
    """
    count = len(pictures)
    marked = []
    for k, picture in enumerate(pictures):
        width = picture.shape[1]
        bar = np.full((max(picture.shape[0] // 32, 3), width, 3), 60, np.uint8)
        bar[:, k * width // count : max((k + 1) * width // count, k * width // count + 1)] = 255
        marked.append(np.concatenate([np.asarray(picture, np.uint8), bar], axis=0))
    return marked


def write_gif(path: str, pictures: Sequence[np.ndarray], frame_ms: int = 250) -> str:
    """Writes uint8 (H, W, 3) pictures as a looping animated GIF with Pillow (atomic). Returns the path.

    Raises:
      ValueError: no pictures.
      data.files.WriteError: naming `path`, when it cannot be written.
    """
    from PIL import Image

    if len(pictures) == 0:
        raise ValueError(f"no frames to write to {path}.")
    images = [Image.fromarray(np.ascontiguousarray(p)) for p in pictures]
    return files.write_atomic(
        path,
        lambda temporary: images[0].save(
            temporary, format="GIF", save_all=True, append_images=images[1:], duration=frame_ms, loop=0
        ),
    )


def format_prediction(prediction: VideoPrediction, k: int = 5) -> str:
    """The video's path, then its top-k classes with probabilities, one per line."""
    lines = [prediction.video]
    width = max(len(name) for name, _ in prediction.top(k))
    lines += [f"  {rank}. {name:<{width}}  {p:.4f}" for rank, (name, p) in enumerate(prediction.top(k), start=1)]
    return "\n".join(lines)


def write_predictions(
    path: str, predictions: Sequence[VideoPrediction], failures: Sequence[tuple[str, str]], k: int = 5
) -> str:
    """Writes the predictions as CSV or JSON (by extension; atomic). Returns the path.

    CSV: one row per video, `video, class_1, probability_1, ..., class_k, probability_k, error` (failed videos: the
    reason in `error`). JSON: {"predictions": [`VideoPrediction.as_dict`], "failures": [{"video", "error"}]}.

    Raises:
      ValueError: another extension.
      data.files.WriteError: naming `path`, when it cannot be written.
    """
    extension = os.path.splitext(path)[1].lower()
    if extension not in OUTPUT_FORMATS:
        raise ValueError(f"--output must end in {' or '.join(OUTPUT_FORMATS)}, got {path!r}.")
    if extension == ".json":
        return files.write_json(
            path,
            {
                "predictions": [p.as_dict(k) for p in predictions],
                "failures": [{"video": video, "error": reason} for video, reason in failures],
            },
        )
    with files.open_atomic(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        columns = [f"{key}_{i}" for i in range(1, k + 1) for key in ("class", "probability")]
        writer.writerow(["video", *columns, "error"])
        for prediction in predictions:
            top = prediction.top(k)
            cells = [value for name, p in top for value in (name, f"{p:.6f}")]
            writer.writerow([prediction.video, *cells, *[""] * (2 * (k - len(top))), ""])
        for video, reason in failures:
            writer.writerow([video, *[""] * (2 * k), reason])
    return path
