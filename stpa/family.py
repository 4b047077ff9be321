"""The STPA family (Du et al., ECCV 2018) and its TSN baseline (Table 1(e)) as `engine.family.ModelFamily` objects.

Both build with `stpa.models.build_model`; STPA's objective is Eq. 9 (`stpa.models.loss_terms`: cross-entropy,
lambda sum w^2, beta l_interactive, gamma l_attn), TSN's is cross-entropy + lambda sum w^2. STPA's attention outputs
(A of Eq. 3, y^j of Eq. 2, the top features X of Eq. 4) drive its losses, serving's extra outputs and the salient
receptive fields of Sec. 4.4 in TensorBoard.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from typing_extensions import override

from stpa import attention_statistics, models, saliency
from stpa import losses as stpa_losses
from stpa.blocks.backbone_options import BackboneFamily, BackboneOptions
from stpa.engine import family as family_lib
from stpa.engine import pictures
from stpa.engine.config import option


@dataclasses.dataclass
class StpaConfig(BackboneOptions):
    """The network and loss options of STPA and TSN (the flags of `stpa.train` for --model=stpa / tsn).

    The backbone options (backbone, dropout, weights, partial_bn) are `stpa.blocks.backbone_options.BackboneOptions`'s.
    """

    scales: int = option(3, "Number of pyramid layers N (Table 1(b)).", lower=1)
    top: str = option("C", "Top layer of the pyramid (Table 1(a); per backbone, see stpa.models.TOPS).")
    fusion: str = option("mul", "Fusion F of the per-scale scores (Eq. 3, Table 1(c)).", choices=models.FUSIONS)
    frozen_bn: bool = option(
        False, "Freeze every batch normalisation of the backbone (each clip's output then depends on that clip only)."
    )
    attention: str = option(
        "learned",
        "STPA: 'learned' is STPA's pyramid attention; 'uniform' fixes A to Eq. 3's value for all-zero "
        "scores, 1/sqrt(n) per entry with n = K*H*W (the pooled-feature head without learned scores: the control "
        "between TSN and STPA).",
        choices=models.ATTENTIONS,
    )
    score_init: str = option(
        "glorot_uniform",
        "STPA: initialiser of the score kernels W_attn_j (Eq. 2). 'zeros' (with --fusion=sum or max) makes every "
        "score 0 at step 0, so A starts exactly as --attention=uniform's; the paper does not say (Keras' default).",
        choices=models.SCORE_INITS,
    )
    beta: float = option(
        1e-4, "beta of Eq. 9 (interaction-aware loss, Eq. 6); 0 switches it off.", lower=0.0, build=False
    )
    gamma: float = option(1e-4, "gamma of Eq. 9 (attention loss, Eq. 7-8); 0 switches it off.", lower=0.0, build=False)
    interaction_gradient: str = option(
        "attention",
        "Eq. 6: 'attention' treats X as data as in Eq. 5's argmin over A (no gradient into the "
        "features through l_interactive); 'both' also sends it into X (the behaviour before this flag).",
        choices=stpa_losses.INTERACTION_GRADIENTS,
        build=False,
    )
    interaction_normalization: str = option(
        "covariance",
        "Eq. 6: 'covariance' uses X X^T / C, the covariance of Sec. 3.1's Discussion, which keeps "
        "beta * l_interactive on the cross-entropy's scale; 'none' the printed X X^T (the behaviour before this flag).",
        choices=stpa_losses.INTERACTION_NORMALIZATIONS,
        build=False,
    )


class StpaFamily(BackboneFamily, family_lib.ModelFamily):
    """STPA: backbone -> pyramid attention (Eq. 1-4) -> the same backbone after the top tap -> logits."""

    name = "stpa"
    config_class = StpaConfig
    attention_outputs = ("attention",)
    # Flags every run's flags.txt carried before the families had their own (flat) flags (commit 59a130b).
    old_shared_flags = ("scales", "top", "fusion", "beta", "gamma")
    # Study schedules: STPA and TSN rows (TSN inherits this) share one group; --quick studies train them 200 steps.
    schedule_group = family_lib.ScheduleGroup("stpa", quick_steps=200)

    @override
    def validate(self, config: StpaConfig, data: Any) -> None:
        models.validate_config(
            self.name,
            config.backbone,
            config.scales,
            config.top,
            data.modality,
            fusion=config.fusion,
            input_size=data.input_size,
            flow_length=data.flow_length,
            attention=config.attention,
            score_init=config.score_init,
        )

    def build_kwargs(self, config: StpaConfig, num_classes: int, data: Any, *, feature_shape=None) -> dict:
        """`stpa.models.build_model`'s arguments (config.json "build", the layout of format 1)."""
        del feature_shape
        build = {
            "model": self.name,
            "backbone": config.backbone,
            "num_classes": int(num_classes),
            "modality": data.modality,
            "scales": config.scales,
            "top": config.top,
            "fusion": config.fusion,
            "flow_length": data.flow_length,
            "dropout": config.dropout,
            "weights": config.weights,
            "input_size": int(self.input_spec(config, data).size),
            "partial_bn": config.partial_bn,
        }
        if config.frozen_bn:
            build["frozen_bn"] = True
        if config.attention != "learned":  # config.json of a learned-attention run stays as it was (no key: learned)
            build["attention"] = config.attention
        if config.score_init != models.SCORE_INITS[0]:  # likewise: no key, Keras' default initialiser
            build["score_init"] = config.score_init
        return build

    @override
    def from_build_kwargs(self, build: Mapping[str, Any]) -> keras.Model:
        return models.build_model(**self.rebuild_kwargs(build))

    @override
    def build(self, config: StpaConfig, num_classes: int, data: Any, *, feature_shape=None) -> keras.Model:
        return models.build_model(**self.build_kwargs(config, num_classes, data))

    @override
    def outputs_model(self, model: keras.Model) -> keras.Model:
        return models.attention_outputs_model(model)

    def loss_terms(
        self,
        config: StpaConfig,
        outputs: Mapping[str, tf.Tensor],
        labels: tf.Tensor,
        model: keras.Model,
        *,
        multi_label: bool,
        weight_decay: float,
    ) -> dict[str, tf.Tensor]:
        """Eq. 9: CE + lambda sum w^2 + beta l_interactive (Eq. 6) + gamma l_attn (Eq. 7-8), each weighted."""
        terms = models.loss_terms(
            outputs,
            labels,
            model,
            weight_decay=weight_decay,
            beta=config.beta,
            gamma=config.gamma,
            multi_label=multi_label,
            interaction_gradient=config.interaction_gradient,
            interaction_normalization=config.interaction_normalization,
        )
        terms.pop("total")
        return terms

    def summary_images(self, outputs: Mapping[str, np.ndarray], frames: np.ndarray) -> dict[str, np.ndarray]:
        """Salient receptive fields (Sec. 4.4) for output position m = 0 (threshold 0.5) and all (threshold 0.7)."""
        if "attention" not in outputs:
            return {}
        shown = pictures.enlarge(pictures.displayable(frames))
        attention = np.asarray(outputs["attention"])[0]  # (d, K*H*W)
        return {
            "attention/salient_fields_m0_t0.5": saliency.render_salient_fields(
                shown, [attention], threshold=0.5, positions=0
            ),
            "attention/salient_fields_all_t0.7": saliency.render_salient_fields(
                shown, [attention], threshold=0.7, positions=None
            ),
        }

    @override
    def attention_frames(self, attention: Mapping[str, np.ndarray], frames: np.ndarray) -> list[np.ndarray]:
        """Per frame k, the salient receptive fields (Sec. 4.4) beside a heat map of A's mass on the frame.

        Left: the centres of the receptive fields salient for any output position m (A[m, (k, h, w)] > 0.5,
        `stpa.saliency`). Right: the mass sum_m |A[m, (k, h, w)]| each feature cell receives, scaled by the clip's
        largest, as a heat map.

        Args:
          attention: {"attention": A `(d, K*H*W)`} of one clip (TSN, without it: the frames alone).
          frames: `(K, S, S, C)` in [0, 255].

        Returns:
          K uint8 pictures `(H', 2 W' + 2, 3)`.
        """
        if "attention" not in attention:
            return super().attention_frames(attention, frames)
        shown = pictures.enlarge(pictures.displayable(frames))  # (K, H', W', 3)
        matrix = np.asarray(attention["attention"], np.float64)  # (d, K*H*W)
        num_frames = len(frames)
        grid = saliency.feature_grid(matrix, num_frames)
        salient = saliency.salient_positions(matrix, num_frames, 0.5, None, grid)  # (P, 3) (k, h, w)
        mass = np.abs(matrix).sum(axis=0).reshape(num_frames, *grid)  # (K, H, W)
        mass = mass / max(float(mass.max()), 1e-12)
        drawn = []
        for k, frame in enumerate(shown):
            centres = saliency.receptive_field_centres(salient[salient[:, 0] == k, 1:], grid, frame.shape[:2])
            fields = saliency.draw_centres(frame, centres, saliency.SCALE_COLOURS[2])
            drawn.append(pictures.tile_row([fields, pictures.overlay_mask(frame, mass[k])]))
        return drawn

    @override
    def attention_scalars(self, outputs: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Each clip's mean normalised entropy and L1 mass over the rows of A (`stpa.attention_statistics`).

        Args:
          outputs: the outputs model's outputs; "attention" is A `(B, d, n)` of Eq. 3 (learned, or the uniform
            control's, which gives entropy 1 and L1 mass sqrt(n)).

        Returns:
          {"entropy": float32 `(B,)`, "l1_mass": float32 `(B,)`}; {} without an "attention" output.
        """
        if "attention" not in outputs:
            return {}
        return attention_statistics.per_clip(outputs["attention"])


class TsnFamily(StpaFamily):
    """TSN (the "without our layer" baseline of Table 1(e)): per-frame backbone, averaged frame scores."""

    name = "tsn"
    attention_outputs = ()

    @override
    def summary_images(self, outputs, frames):
        del outputs, frames
        return {}

    @override
    def attention_scalars(self, outputs):
        del outputs
        return {}


STPA = StpaFamily()
TSN = TsnFamily()
