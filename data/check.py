r"""Checks prepared records or rawframe folders and prints a report (command line and library).

    python -m data.check --records=OUT                 # OUT/train, OUT/test (or one split directory)
    python -m data.check --rawframes=FRAMES --list=FRAMES/train_list.txt [--num_classes=101]

Records: video count against the manifest, labels in range, duplicate ids, the frame count against the stored frames,
flow x/y counts agreeing (and T - 1 or T of them), every JPEG decodable at the recorded size, boxes and segments
well formed, and each shard's ``.offsets`` index (`data.frame_offsets`): a missing or stale one is a warning (derived
data: the pipeline then reads whole records, slower), a current one whose spans do not hold the record's JPEG bytes
(or whose context differs from the record's) is a problem, since the fast reader would feed wrong pixels.
Rawframe folders (TSN / mmaction2 layout): the folder of each list line exists, frame counts agree with the list, no
frame is missing in the middle, flow x/y counts agree with each other and with the RGB frames, every JPEG decodes.
Exits with status 1 when anything is wrong (warnings do not count).
"""

from __future__ import annotations

import dataclasses
import os
import sys

import numpy as np

from data import extract, video_io


@dataclasses.dataclass
class CheckReport:
    """What was checked and what is wrong."""

    name: str
    facts: list[str] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)  # worth fixing, but the data is usable as it is

    @property
    def ok(self) -> bool:
        """True when no problem was found (warnings allowed)."""
        return not self.problems

    def format(self, max_problems: int = 50) -> str:
        """The report as text."""
        status = "OK" if self.ok else f"{len(self.problems)} PROBLEM(S)"
        if self.warnings:
            status += f", {len(self.warnings)} WARNING(S)"
        lines = [f"{self.name}: {status}"]
        lines += [f"  {fact}" for fact in self.facts]
        lines += [f"  WARNING {w}" for w in self.warnings[:max_problems]]
        lines += [f"  PROBLEM {p}" for p in self.problems[:max_problems]]
        if len(self.problems) > max_problems:
            lines.append(f"  ... and {len(self.problems) - max_problems} more problems")
        return "\n".join(lines)


def _decodes(data: bytes, *, grayscale: bool) -> tuple[int, int] | None:
    try:
        return video_io.decode_jpeg(data, grayscale=grayscale).shape[:2]
    except ValueError:
        return None


def split_dirs(path: str) -> list[str]:
    """``path`` itself if it holds a manifest or shards, else its subdirectories that do (``OUT/train`` ...)."""
    from data import records

    def is_split(directory: str) -> bool:
        return os.path.isfile(os.path.join(directory, records.MANIFEST_NAME)) or any(
            name.endswith(records.RECORD_SUFFIX) for name in os.listdir(directory)
        )

    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path} is not a directory of prepared records")
    if is_split(path):
        return [path]
    found = sorted(os.path.join(path, d) for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
    found = [d for d in found if is_split(d)]
    if not found:
        raise FileNotFoundError(f"No prepared split (manifest.json / *.tfrecord) in {path} or its subdirectories")
    return found


def check_split(split_dir: str, *, decode: str = "all") -> CheckReport:
    """Checks one split directory written by `data.prepare`.

    Args:
      split_dir: the directory.
      decode: "all" JPEGs, the "first" of each list, or "none".

    Returns:
      the report.
    """
    import tensorflow as tf

    from data import frame_offsets, records

    report = CheckReport(name=split_dir)
    try:
        manifest = records.read_manifest(split_dir)
    except (FileNotFoundError, ValueError) as e:
        report.problems.append(str(e))
        manifest = {}
    num_classes = manifest.get("num_classes")
    seen: set[str] = set()
    totals = {"videos": 0, "frames": 0, "flow_frames": 0, "boxes": 0, "segments": 0}
    try:
        shards = records.record_files(split_dir)
    except FileNotFoundError as e:
        report.problems.append(str(e))
        shards = []
    indexed = 0
    for shard in shards:
        index = _offsets_index(shard, split_dir, report)
        indexed += index is not None
        count = 0
        try:
            for raw in tf.data.TFRecordDataset(shard).as_numpy_iterator():
                example = tf.train.SequenceExample.FromString(raw)
                entry = records.example_to_dict(example, with_frames=True)
                video = entry["video_id"]
                problems = _check_entry(entry, manifest, num_classes, decode)
                if video in seen:
                    problems.append("duplicate video id")
                if index is not None and count < len(index):
                    problems.extend(_check_offsets(shard, index[count], example, entry, split_dir))
                seen.add(video)
                report.problems.extend(f"{video}: {p}" for p in problems)
                count += 1
                totals["videos"] += 1
                totals["frames"] += len(entry["frames"])
                totals["flow_frames"] += len(entry["flow_x"])
                totals["boxes"] += bool(entry["boxes"])
                totals["segments"] += bool(len(entry["segments"]))
        except Exception as e:  # noqa: BLE001 - a corrupt shard is a finding, not a crash.
            report.problems.append(f"{shard}: unreadable records ({type(e).__name__}: {e})")
            continue
        if index is not None and len(index) != count:
            report.problems.append(
                f"{shard}: its {frame_offsets.OFFSETS_SUFFIX} index lists {len(index)} videos, the shard holds "
                f"{count}: "
                f"{_offsets_fix(split_dir)}"
            )
    expected = manifest.get("counts", {}).get("videos")
    if expected is not None and expected != totals["videos"]:
        report.problems.append(f"manifest says {expected} videos, the shards hold {totals['videos']}")
    report.facts.append(
        f"{totals['videos']} videos, {totals['frames']} frames, {totals['flow_frames']} flow frames, "
        f"{num_classes} classes; {totals['boxes']} videos with boxes, {totals['segments']} with segments"
    )
    if shards:
        report.facts.append(
            f"{indexed} of {len(shards)} shards with a current {frame_offsets.OFFSETS_SUFFIX} index (spans verified)"
        )
    failures = os.path.join(split_dir, records.FAILURES_NAME)
    if os.path.isfile(failures):
        with open(failures) as f:
            failed = [line for line in f if line.strip()]
        if failed:
            report.facts.append(f"{len(failed)} raw videos could not be used when preparing (see {failures})")
    return report


def _offsets_fix(split_dir: str) -> str:
    return f"rewrite the index with `python -m data.frame_offsets --records={split_dir}`"


def _offsets_index(shard: str, split_dir: str, report: CheckReport) -> list | None:
    """The entries (`tf.train.Example`) of a shard's ``.offsets`` index, or None (reported) when it cannot be used.

    Missing or stale (written for a shard of another size): a warning, as the pipeline then reads whole records.
    Unreadable: a problem, as the pipeline would fail on it.
    """
    import tensorflow as tf

    from data import frame_offsets

    path = frame_offsets.offsets_path(shard)
    try:
        if not tf.io.gfile.exists(path):
            report.warnings.append(
                f"{shard} has no {frame_offsets.OFFSETS_SUFFIX} index (the pipeline reads whole records, several "
                "times slower): "
                f"write it with `python -m data.frame_offsets --records={split_dir}`"
            )
            return None
        if not frame_offsets.is_current(shard):
            report.warnings.append(
                f"{path} is stale (written for a shard of another size; the pipeline reads whole records meanwhile): "
                f"{_offsets_fix(split_dir)}"
            )
            return None
        return [tf.train.Example.FromString(data) for data in tf.data.TFRecordDataset(path).as_numpy_iterator()]
    except Exception as e:  # noqa: BLE001 - a corrupt index is a finding, not a crash.
        report.problems.append(f"{path} is unreadable ({type(e).__name__}: {e}): {_offsets_fix(split_dir)}")
        return None


def _check_offsets(shard: str, index_entry, example, entry: dict, split_dir: str) -> list[str]:
    """Compares a video's ``.offsets`` entry with its record (what the pipeline's fast reader would read).

    The context keys the pipeline reads from the index must equal the record's, and the bytes at the stored spans of
    the shard must be the record's JPEGs.

    Args:
      shard: the shard file.
      index_entry: the video's `tf.train.Example` in the shard's ``.offsets`` index.
      example: the record (`tf.train.SequenceExample`).
      entry: `records.example_to_dict` (example, with_frames=True).
      split_dir: for the fix in the message.

    Returns:
      the problems found (one line per frame key at most).
    """
    from data import clip_reader, frame_offsets, records

    features, context = index_entry.features.feature, example.context.feature
    name = os.path.basename(frame_offsets.offsets_path(shard))
    problems = []
    differing = [
        key
        for key in frame_offsets.CONTEXT_KEYS
        if (features[key] if key in features else None) != (context[key] if key in context else None)
    ]
    if differing:
        problems.append(f"{name} holds another {', '.join(differing)} than the record")
    frame_lists = {records.IMAGE: entry["frames"], records.FLOW_X: entry["flow_x"], records.FLOW_Y: entry["flow_y"]}
    for key, frames in frame_lists.items():
        offsets = features[f"{key}/offset"].int64_list.value if f"{key}/offset" in features else []
        lengths = features[f"{key}/length"].int64_list.value if f"{key}/length" in features else []
        if len(offsets) != len(frames) or len(lengths) != len(frames):
            problems.append(f"{name} lists {len(offsets)} {key} spans, the record holds {len(frames)} frames")
            continue
        spans = np.stack([np.asarray(offsets, np.int64), np.asarray(lengths, np.int64)], axis=-1).reshape(-1, 2)
        try:
            stored = clip_reader.read_spans(shard, spans)
        except OSError as e:  # e.g. a negative offset
            problems.append(f"{name} has {key} spans that cannot be read ({e})")
            continue
        wrong = [t for t, (data, frame) in enumerate(zip(stored, frames)) if data != frame]
        if wrong:
            offset, length = spans[wrong[0]]
            problems.append(
                f"{len(wrong)} of the {len(frames)} {key} spans in {name} are not the record's JPEG bytes (first: "
                f"frame {wrong[0]}, {length} bytes at byte {offset})"
            )
    return [f"{p}: {_offsets_fix(split_dir)}" for p in problems]


def _check_entry(entry: dict, manifest: dict, num_classes: int | None, decode: str) -> list[str]:
    problems = []
    labels = entry["labels"]
    if num_classes is not None and any(not 0 <= label < num_classes for label in labels):
        problems.append(f"label(s) {labels} outside [0, {num_classes})")
    if not manifest.get("multi_label", False) and len(labels) != 1:
        problems.append(f"{len(labels)} labels in a single-label dataset")
    num_frames, frames = entry["num_frames"], entry["frames"]
    if num_frames != len(frames) or not frames:
        problems.append(f"video/num_frames is {num_frames} but {len(frames)} frames are stored")
    flow_x, flow_y = entry["flow_x"], entry["flow_y"]
    if len(flow_x) != len(flow_y):
        problems.append(f"{len(flow_x)} x flow frames but {len(flow_y)} y flow frames")
    if manifest.get("has_flow") and not flow_x:
        problems.append("no flow frames (the manifest says the split has flow)")
    if flow_x and len(flow_x) not in (len(frames) - 1, len(frames)):
        problems.append(f"{len(flow_x)} flow frames for {len(frames)} RGB frames (expected T - 1 or T)")
    if decode != "none":
        for name, items, gray, size in (
            ("RGB", frames, False, (entry["height"], entry["width"])),
            ("flow x", flow_x, True, None),
            ("flow y", flow_y, True, None),
        ):
            for t, data in enumerate(items if decode == "all" else items[:1]):
                shape = _decodes(data, grayscale=gray)
                if shape is None:
                    problems.append(f"{name} frame {t} is not a decodable JPEG")
                elif size is not None and shape != size:
                    problems.append(f"{name} frame {t} is {shape[1]}x{shape[0]}, the record says {size[1]}x{size[0]}")
    for t, boxes in entry["boxes"].items():
        if not 0 <= t < num_frames:
            problems.append(f"boxes on frame {t}, outside [0, {num_frames})")
        if boxes.size and (np.any(boxes < 0) or np.any(boxes > 1) or np.any(boxes[:, 2:] < boxes[:, :2])):
            problems.append(f"frame {t}: boxes not normalised (x1, y1, x2, y2) in [0, 1]")
    segments = entry["segments"]
    if len(segments) and np.any(segments[:, 1] < segments[:, 0]):
        problems.append("a segment ends before it starts")
    if len(entry["segment_labels"]) != len(segments):
        problems.append("segments and segment labels differ in number")
    return problems


def check_rawframes(
    root: str,
    list_file: str,
    *,
    rgb_template: str = "img_{:05d}.jpg",
    flow_x_template: str = "flow_x_{:05d}.jpg",
    flow_y_template: str = "flow_y_{:05d}.jpg",
    start_index: int = 1,
    num_classes: int | None = None,
    decode: str = "all",
) -> CheckReport:
    """Checks rawframe folders named by a ``folder num_frames label ...`` list file.

    Returns:
      the report.
    """
    from data.datasets import lists

    report = CheckReport(name=f"{root} ({os.path.basename(list_file)})")
    try:
        rows = lists.parse_list_file(list_file, with_num_frames=True)
    except ValueError as e:
        report.problems.append(str(e))
        return report
    totals = {"rgb": 0, "flow": 0, "with_flow": 0}
    for relative, listed, labels in rows:
        directory = os.path.join(root, relative)
        if not os.path.isdir(directory):
            report.problems.append(f"{relative}: folder not found ({directory})")
            continue
        counts = {}
        for name, template in (("RGB", rgb_template), ("flow x", flow_x_template), ("flow y", flow_y_template)):
            counts[name] = extract.count_rawframes(directory, template, start_index)
            missing = extract.missing_rawframe(directory, template, start_index)
            if missing is not None:
                report.problems.append(f"{relative}: {missing} is missing ({name} frames exist after it)")
        rgb, fx, fy = counts["RGB"], counts["flow x"], counts["flow y"]
        if rgb == 0:
            report.problems.append(f"{relative}: no {rgb_template.format(start_index)}")
        if listed not in (rgb, fx):
            report.problems.append(f"{relative}: the list says {listed} frames, the folder has {rgb} RGB, {fx} flow")
        if fx != fy:
            report.problems.append(f"{relative}: {fx} flow x frames but {fy} flow y frames")
        if fx and rgb and fx not in (rgb - 1, rgb):
            report.problems.append(f"{relative}: {fx} flow frames for {rgb} RGB frames (expected T - 1 or T)")
        if num_classes is not None and any(not 0 <= label < num_classes for label in labels):
            report.problems.append(f"{relative}: label(s) {list(labels)} outside [0, {num_classes})")
        if decode != "none":
            kinds = ((rgb_template, rgb, False), (flow_x_template, fx, True), (flow_y_template, fy, True))
            for template, count, gray in kinds:
                for i in range(count if decode == "all" else min(count, 1)):
                    path = os.path.join(directory, template.format(start_index + i))
                    with open(path, "rb") as f:
                        if _decodes(f.read(), grayscale=gray) is None:
                            report.problems.append(f"{relative}: {os.path.basename(path)} is not a decodable JPEG")
        totals["rgb"] += rgb
        totals["flow"] += fx
        totals["with_flow"] += fx > 0
    report.facts.append(
        f"{len(rows)} folders, {totals['rgb']} RGB frames, {totals['flow']} flow frame pairs "
        f"({totals['with_flow']} folders with flow)"
    )
    return report


def _define_flags() -> None:
    from absl import flags

    flags.DEFINE_string("records", None, "Prepared records: an output root (OUT) or one split directory (OUT/train).")
    flags.DEFINE_string("rawframes", None, "Root of rawframe folders (TSN / mmaction2 layout).")
    flags.DEFINE_string("list", None, "List file of --rawframes: 'folder num_frames label ...' per line.")
    flags.DEFINE_integer("num_classes", None, "--rawframes: labels must be below this.")
    flags.DEFINE_enum("decode", "all", ["all", "first", "none"], "Which JPEGs to decode.")
    flags.DEFINE_string("rgb_template", "img_{:05d}.jpg", "--rawframes: RGB frame names.")
    flags.DEFINE_string("flow_x_template", "flow_x_{:05d}.jpg", "--rawframes: x flow names.")
    flags.DEFINE_string("flow_y_template", "flow_y_{:05d}.jpg", "--rawframes: y flow names.")
    flags.DEFINE_integer("start_index", 1, "--rawframes: number of the first frame file.")


def main(argv: list[str]) -> int:
    """Command-line entry point; returns the exit status."""
    del argv
    from absl import flags

    f = flags.FLAGS
    if bool(f.records) == bool(f.rawframes):
        print("data.check: pass either --records=DIR or --rawframes=DIR --list=FILE", file=sys.stderr)
        return 2
    if f.records:
        try:
            reports = [check_split(d, decode=f.decode) for d in split_dirs(f.records)]
        except FileNotFoundError as e:
            print(f"data.check: {e}", file=sys.stderr)
            return 2
    else:
        if not f.list:
            print("data.check: --rawframes needs --list=FILE", file=sys.stderr)
            return 2
        reports = [
            check_rawframes(
                f.rawframes,
                f.list,
                rgb_template=f.rgb_template,
                flow_x_template=f.flow_x_template,
                flow_y_template=f.flow_y_template,
                start_index=f.start_index,
                num_classes=f.num_classes,
                decode=f.decode,
            )
        ]
    for report in reports:
        print(report.format())
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(lambda argv: sys.exit(main(argv)))
