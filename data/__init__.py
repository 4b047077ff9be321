"""The video data layer shared by both models.

Raw videos -> frames + optical flow -> sharded `tf.train.SequenceExample` records (`data.prepare`), their checker
(`data.check`), the TSN `tf.data` pipeline (`data.pipeline`) and the synthetic benchmark (`data.synthetic`).
"""
