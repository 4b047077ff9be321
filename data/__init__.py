"""The video data layer shared by both models.

Raw videos -> frames + optical flow -> sharded `tf.train.SequenceExample` records (`data.prepare`), their checker
(`data.check`), the TSN `tf.data` pipeline (`data.pipeline`) and the synthetic benchmark (`data.synthetic`).

Modules: `prepare` / `preparation` (command line / library), `extract` (the worker job), `video_io`, `flow`,
`datasets` (official layouts and ground-truth files), `records` (the format), `sampling` and `augment` (TSN),
`pipeline`, `check`, `synthetic`, `tfds_builder` (TFDS over the same shards). Formats: BUILD.md, "Data".
"""

from data import startup as _startup

_startup.quiet_command_line_start()  # `python -m` without --verbosity: TensorFlow's C++ start-up lines stay hidden.
