"""ST-attn: Interpretable Spatio-temporal Attention for Video Action Recognition (Meng et al., 2019).

Sub-modules:
  layers: the spatial attention mask (Eq. 1, Table 1) and the temporal-attention ConvLSTM (Eq. 2-5).
  losses: the total-variation, contrast and unimodality regularisers (Eq. 7-9).
  localize / visualize: weakly-supervised spatial and temporal localisation, and its pictures.
"""
