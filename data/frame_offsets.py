"""Byte offsets of every encoded frame inside a record shard: the ``.offsets`` file beside each ``.tfrecord``.

A TSN clip needs K of a video's ~200 JPEGs, but a `tf.train.SequenceExample` can only be parsed whole, so reading
clips from the records alone reads and parses every frame of the video for each clip (a 175-frame UCF101-like
record with flow is 4.7 MB; a K = 3 RGB clip needs 50 KB of it, see ``benchmarks/pipeline.py``). The shards stay
the single copy of the data; this module adds, per shard ``<split>-SSSSS-of-NNNNN.tfrecord``, a small index
``<split>-SSSSS-of-NNNNN.offsets`` from which `data.pipeline` reads just the sampled JPEGs with positioned reads
(`data.clip_reader`).

The ``.offsets`` file is a TFRecord of `tf.train.Example`, one per video in shard order, with the context keys of the
record that the pipeline parses (``video/id``, ``video/num_frames``, ``video/fps``, ``video/height``,
``video/width``, ``clip/label/index``; see `data.records`) and, for each encoded-frame feature list
``image/encoded``, ``flow/x/encoded``, ``flow/y/encoded``:

  ``<key>/offset``   int64[T]  byte position of frame t's JPEG in the shard file
  ``<key>/length``   int64[T]  its size in bytes

plus ``shard/num_bytes`` (int64: size of the shard it indexes; a different size means the index is stale). It is
derived data: `write_offsets` rebuilds it from a shard at any time, and ``python -m data.frame_offsets
--records=DIR`` does so for every shard of a split (e.g. records written by another tool).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import numpy as np
import tensorflow as tf
from absl import app, flags

from data import records

OFFSETS_SUFFIX = ".offsets"
SHARD_BYTES = "shard/num_bytes"
FRAME_KEYS = (records.IMAGE, records.FLOW_X, records.FLOW_Y)
# Context keys copied from the record, so the pipeline parses both files with one spec.
CONTEXT_KEYS = (
    records.VIDEO_ID,
    records.NUM_FRAMES,
    records.FPS,
    records.HEIGHT,
    records.WIDTH,
    records.LABEL_INDEX,
)

# Protocol-buffer wire format: field numbers of the messages walked by `frame_byte_spans`.
_LENGTH_DELIMITED = 2
_SEQUENCE_EXAMPLE_FEATURE_LISTS = 2  # SequenceExample.feature_lists
_FEATURE_LISTS_ENTRY = 1  # FeatureLists.feature_list (map entries: key = 1, value = 2)
_FEATURE_LIST_FEATURE = 1  # FeatureList.feature
_FEATURE_BYTES_LIST = 1  # Feature.bytes_list
_BYTES_LIST_VALUE = 1  # BytesList.value


def offsets_path(shard_path: str) -> str:
    """``.../train-00000-of-00004.tfrecord`` -> ``.../train-00000-of-00004.offsets``."""
    base = shard_path[: -len(records.RECORD_SUFFIX)] if shard_path.endswith(records.RECORD_SUFFIX) else shard_path
    return base + OFFSETS_SUFFIX


def _varint(buffer: bytes, position: int) -> tuple[int, int]:
    """Decodes a base-128 varint at ``position``. Returns (value, position after it)."""
    value, shift = 0, 0
    while True:
        byte = buffer[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7


def _fields(buffer: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """Yields (field number, payload start, payload end) of each length-delimited field of a message.

    The message is ``buffer[start:end]``; fields of other wire types are skipped.
    """
    position = start
    while position < end:
        key, position = _varint(buffer, position)
        field, wire_type = key >> 3, key & 7
        if wire_type == _LENGTH_DELIMITED:
            size, position = _varint(buffer, position)
            yield field, position, position + size
            position += size
        elif wire_type == 0:
            _, position = _varint(buffer, position)
        elif wire_type == 1:
            position += 8
        elif wire_type == 5:
            position += 4
        else:
            raise ValueError(f"unsupported protocol-buffer wire type {wire_type} at byte {position}")


def frame_byte_spans(serialized: bytes, keys: tuple[str, ...] = FRAME_KEYS) -> dict[str, np.ndarray]:
    """Where each frame's encoded bytes lie in a serialized `tf.train.SequenceExample`.

    Walks the protocol-buffer wire format (SequenceExample -> FeatureLists -> FeatureList -> Feature -> BytesList),
    so the spans are exact whatever the field order or the sizes.

    Args:
      serialized: one record's bytes.
      keys: feature lists to locate; absent ones map to an empty array.

    Returns:
      {key: int64 (T, 2) of (offset within ``serialized``, length)} for each of ``keys``.

    Raises:
      ValueError: a frame feature that is not a single bytes value.
    """
    spans = {key: [] for key in keys}
    for field, start, end in _fields(serialized, 0, len(serialized)):
        if field != _SEQUENCE_EXAMPLE_FEATURE_LISTS:
            continue
        for entry_field, entry_start, entry_end in _fields(serialized, start, end):
            if entry_field != _FEATURE_LISTS_ENTRY:
                continue
            name, value = None, None
            for part, part_start, part_end in _fields(serialized, entry_start, entry_end):
                if part == 1:
                    name = serialized[part_start:part_end].decode("utf-8")
                elif part == 2:
                    value = (part_start, part_end)
            if name not in spans or value is None:
                continue
            for feature_field, feature_start, feature_end in _fields(serialized, *value):
                if feature_field != _FEATURE_LIST_FEATURE:
                    continue
                values = [
                    (value_start, value_end - value_start)
                    for kind, list_start, list_end in _fields(serialized, feature_start, feature_end)
                    if kind == _FEATURE_BYTES_LIST
                    for item, value_start, value_end in _fields(serialized, list_start, list_end)
                    if item == _BYTES_LIST_VALUE
                ]
                if len(values) != 1:
                    raise ValueError(f"a {name} frame holds {len(values)} byte strings, expected exactly one")
                spans[name].append(values[0])
    return {key: np.asarray(value, np.int64).reshape(-1, 2) for key, value in spans.items()}


def tfrecord_spans(path: str) -> Iterator[tuple[int, bytes]]:
    """Yields (file offset of the record's data, record bytes) for each record of a TFRecord file (uncompressed).

    TFRecord framing: uint64 length, uint32 masked CRC of the length, data, uint32 masked CRC of the data.
    """
    with tf.io.gfile.GFile(path, "rb") as f:
        position = 0
        while True:
            header = f.read(12)
            if not header:
                return
            if len(header) < 12:
                raise ValueError(f"{path} is truncated at byte {position}: re-create the file.")
            (length,) = struct.unpack("<Q", header[:8])
            data = f.read(length)
            if len(data) < length or len(f.read(4)) < 4:
                raise ValueError(f"{path} is truncated at byte {position}: re-create the file.")
            yield position + 12, data
            position += 12 + length + 4


def offsets_example(serialized: bytes, record_offset: int, shard_bytes: int | None = None) -> tf.train.Example:
    """The ``.offsets`` entry of one record.

    Args:
      serialized: the record's bytes.
      record_offset: where they start in the shard file.
      shard_bytes: the shard's size, stored as ``shard/num_bytes``; left out when None.
    """
    record = tf.train.SequenceExample.FromString(serialized)
    feature = {key: record.context.feature[key] for key in CONTEXT_KEYS if key in record.context.feature}
    for key, spans in frame_byte_spans(serialized).items():
        feature[f"{key}/offset"] = tf.train.Feature(
            int64_list=tf.train.Int64List(value=(spans[:, 0] + record_offset).tolist())
        )
        feature[f"{key}/length"] = tf.train.Feature(int64_list=tf.train.Int64List(value=spans[:, 1].tolist()))
    if shard_bytes is not None:
        feature[SHARD_BYTES] = tf.train.Feature(int64_list=tf.train.Int64List(value=[shard_bytes]))
    return tf.train.Example(features=tf.train.Features(feature=feature))


class OffsetsIndex:
    """Builds a shard's ``.offsets`` index record by record, while the shard is written (or read back).

    TFRecord framing is fixed for uncompressed files: 12 bytes (length + its CRC) before each record's data, 4 (the
    data's CRC) after, so the records' positions follow from their sizes.
    """

    def __init__(self):
        self._entries: list[tf.train.Example] = []
        self.num_bytes = 0  # size of the shard so far

    def add(self, serialized: bytes) -> None:
        """Indexes the next record of the shard."""
        self._entries.append(offsets_example(serialized, self.num_bytes + 12))
        self.num_bytes += 12 + len(serialized) + 4

    def write(self, destination: str) -> int:
        """Writes the index (to a temporary name, renamed when complete). Returns the number of videos."""
        temporary = records.temporary_name(destination)
        with tf.io.TFRecordWriter(temporary) as writer:
            for entry in self._entries:
                entry.features.feature[SHARD_BYTES].int64_list.value[:] = [self.num_bytes]
                writer.write(entry.SerializeToString(deterministic=True))
        tf.io.gfile.rename(temporary, destination, overwrite=True)
        return len(self._entries)


def write_offsets(shard_path: str, destination: str | None = None) -> int:
    """Writes the ``.offsets`` index of an existing shard (to a temporary name, renamed when complete).

    Args:
      shard_path: a finished ``.tfrecord`` shard.
      destination: where to write; default `offsets_path` (shard_path).

    Returns:
      the number of videos indexed.
    """
    index = OffsetsIndex()
    for _, data in tfrecord_spans(shard_path):
        index.add(data)
    return index.write(destination or offsets_path(shard_path))


def is_current(shard_path: str) -> bool:
    """Whether the shard has an ``.offsets`` index written for its current contents (same size in bytes)."""
    index = offsets_path(shard_path)
    if not tf.io.gfile.exists(index):
        return False
    shard_bytes = tf.io.gfile.stat(shard_path).length
    try:
        for _, data in tfrecord_spans(index):
            indexed = tf.train.Example.FromString(data).features.feature[SHARD_BYTES].int64_list.value
            return list(indexed) == [shard_bytes]
    except (ValueError, tf.errors.OpError):  # a truncated or unreadable index: rebuild it
        return False
    return shard_bytes == 0  # an index of no videos fits only an empty shard


def offsets_features(modality: str) -> dict[str, tf.io.FixedLenFeature | tf.io.VarLenFeature]:
    """Parsing spec of an ``.offsets`` entry.

    The record's context keys (`records.context_features`) and the offsets / lengths of ``modality``'s frame lists.
    """
    keys = (records.IMAGE,) if modality == "rgb" else (records.FLOW_X, records.FLOW_Y)
    spec = dict(records.context_features())
    for key in keys:
        spec[f"{key}/offset"] = tf.io.VarLenFeature(tf.int64)
        spec[f"{key}/length"] = tf.io.VarLenFeature(tf.int64)
    return spec


def parse_offsets(serialized: tf.Tensor, modality: str) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
    """Parses ``.offsets`` entries: one (scalar ``serialized``) or a batch (B,).

    Returns:
      (context, spans). One entry: context as `records.parse_sequence_example` returns it (``clip/label/index``
      dense (n,)), spans {frame key: int64 (T, 2) (offset, length)}. A batch: context values (B,), labels a
      `tf.RaggedTensor` (B, None), spans {frame key: int64 `tf.RaggedTensor` (B, None, 2)}.
    """
    single = serialized.shape.rank == 0
    batch = tf.reshape(serialized, [-1])  # (B,)
    parsed = tf.io.parse_example(batch, offsets_features(modality))
    context = {key: parsed[key] for key in records.context_features()}
    context[records.LABEL_INDEX] = tf.RaggedTensor.from_sparse(context[records.LABEL_INDEX])  # (B, None)
    keys = (records.IMAGE,) if modality == "rgb" else (records.FLOW_X, records.FLOW_Y)
    spans = {}
    for key in keys:
        offsets = tf.RaggedTensor.from_sparse(parsed[f"{key}/offset"])  # (B, None)
        lengths = tf.RaggedTensor.from_sparse(parsed[f"{key}/length"])
        spans[key] = offsets.with_values(tf.stack([offsets.values, lengths.values], axis=1))  # (B, None, 2)
    if single:
        return {key: value[0] for key, value in context.items()}, {key: value[0] for key, value in spans.items()}
    return context, spans


def main(argv):
    """``python -m data.frame_offsets --records=DIR``: (re)writes the ``.offsets`` index of every shard."""
    del argv
    from tqdm import tqdm

    if not flags.FLAGS.records:
        raise app.UsageError("--records is required: a split directory written by `python -m data.prepare`.")
    shards = records.record_files(flags.FLAGS.records)
    videos = 0
    for shard in tqdm(shards, desc="offsets", unit="shard"):
        videos += write_offsets(shard)
    print(f"wrote {len(shards)} .offsets files ({videos} videos)")


if __name__ == "__main__":
    flags.DEFINE_string("records", None, "A split directory (or glob of shards) to (re)write the .offsets files of.")
    app.run(main)
