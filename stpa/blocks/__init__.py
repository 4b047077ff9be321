"""Model-building blocks any model family may use.

  backbones      per-frame trunks (BN-Inception, Inception-ResNet-V2, VGG16, ResNet-50/101/152, `tiny`) with their
                 pyramid taps and final feature maps, weight loading and `feature_extractor`.
  video_ops      folding time into the batch and back (`FoldTime`, `UnfoldTime`, `FlattenPositions`): a reshape,
                 correct for any number of frames K, including K = None.
  preprocessing  each backbone's input normalisation of [0, 255] frames (`preprocess_for`).

Layering (checked by tests/test_architecture.py): the blocks import only Keras, TensorFlow, NumPy and `data`; neither
the engine (`stpa.engine`, its loops) nor any family (`stpa.family`, `stpa.models`, ..., `st_attn`). The families
import them; the engine does not (a family provides its input normalisation through `ModelFamily.input_spec`).
"""
