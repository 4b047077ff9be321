"""ST-attn: Interpretable Spatio-temporal Attention for Video Action Recognition (Meng et al., 2019).

Sub-modules:
  layers: the spatial attention mask (Eq. 1, Table 1) and the temporal-attention ConvLSTM (Eq. 2-5).
  losses: the total-variation, contrast and unimodality regularisers (Eq. 7-9).
  models: `build_st_attn_network` (frames through a backbone, or cached features) and its attention endpoints.
  family: the ST-attn `ModelFamily` (typed options, network, Eq. 6 objective, pictures, the cached-feature input),
    registered by the command lines' composition root `stpa.families`.
  feature_cache: cached-feature mode (backbone features extracted once into TFRecords, a `tf.data` dataset over
    them); its command line is `python -m st_attn.features` (features).
  fine_tuned_trunk: Sec. 3.1's trunk: a TSN run's backbone weights as the feature extractor.
  localization: weakly-supervised localisation metrics in NumPy (mask -> box, weights -> segments, detection AP).
  localization_tables: Tables 5-6 from a trained model's attention; command line `python -m st_attn.localize`.
  attention_runs: the model / test-clip set-up `st_attn.localize` and `st_attn.visualize` share.
  visualize: Fig. 4 / Fig. 5 pictures (PNG, GIF, TensorBoard); `python -m st_attn.visualize`.
  features, localize: the thin command-line modules (flags, main; the library names re-exported for old callers).
"""

from data import startup as _startup

_startup.quiet_command_line_start()  # `python -m` without --verbosity: TensorFlow's C++ start-up lines stay hidden.
