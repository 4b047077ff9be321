"""STPA: Interaction-aware Spatio-temporal Pyramid Attention Networks (Du et al., ECCV 2018).

Sub-modules:
  layers: `PyramidAttention`, the interaction-aware spatio-temporal pyramid attention layer (Eq. 1-4).
  losses: the interaction-aware loss (Eq. 6) and the attention loss (Eq. 7-8).
  models: the STPA and TSN networks (Sec. 3.4) and the `build_model` factory.
  family: the STPA and TSN `ModelFamily` objects (typed options, objective, pictures).
  blocks: model-building blocks any family may use (backbones with their pyramid taps, time folding, input
    normalisation per backbone).
  engine: what every family shares (training and inference loops, checkpoints, serving, config and flags, ...).
  families: the composition root that registers the families (STPA, TSN, ST-attn) for the command lines.
  train / evaluate / fuse / export / visualize / quickstart: the command lines.
"""

from data import startup as _startup

_startup.quiet_command_line_start()  # `python -m` without --verbosity: TensorFlow's C++ start-up lines stay hidden.
