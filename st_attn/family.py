"""The ST-attn family (Meng et al., 2019) as an `engine.family.ModelFamily`: network, objective, pictures, inputs.

Network: `st_attn.models.build_st_attn_network` on a backbone's last feature map (frames input) or on cached
features (`--features_dir`, the "features" input source). Objective, Eq. 6 of Meng et al.:
`L = CE + lambda_tv L_TV + lambda_contrast L_contrast + lambda_unimodal L_unimodal` (+ lambda sum w^2). Its network
options are typed fields (flags of `stpa.train`); old flagfiles' `--model_options=key=value` items read into them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from typing_extensions import override

from st_attn import feature_cache as features_lib
from st_attn import losses as st_losses
from st_attn import models as st_models
from stpa.blocks import backbones as backbones_lib
from stpa.blocks.backbone_options import BackboneFamily, BackboneOptions
from stpa.engine import family as family_lib
from stpa.engine import inputs
from stpa.engine.config import option

FEATURES = "features"


@dataclasses.dataclass
class StAttnConfig(BackboneOptions):
    """ST-attn's network, loss and input options (the flags of `stpa.train` for --model=st_attn).

    The backbone options (backbone, dropout, weights, partial_bn) are `stpa.blocks.backbone_options.BackboneOptions`'s.
    """

    pooling: str = option(
        "attention",
        "ST-attn: how frame features become the clip vector: attention (the model) or average (Table 2's "
        "w/o attention baseline: mean over frames and positions, then the same classifier; no attention losses).",
        choices=st_models.POOLINGS,
    )
    spatial_attention: bool = option(True, "ST-attn: the spatial mask (False: Table 2's w/o spatial attention).")
    temporal_attention: bool = option(
        True, "ST-attn: the temporal attention (False: Table 2's w/o temporal attention)."
    )
    mask_filters: tuple[int, ...] = option(
        (1024, 512), "ST-attn: widths of the mask's hidden convolutions (Table 1).", kind="int_list"
    )
    initial_mask: float = option(0.5, "ST-attn: the mask's value at initialisation.", lower=0.0, upper=1.0)
    lstm_units: int = option(512, "ST-attn: ConvLSTM hidden channels (Sec. 4.1).", lower=1)
    init_filters: int = option(1024, "ST-attn: width of the first conv of g_c / g_h (Eq. 5).", lower=1)
    attention_units: int = option(256, "ST-attn: width of Phi_H / Phi_X (Eq. 2).", lower=1)
    energy: str = option("tanh", "ST-attn: attention energy of Eq. 2.", choices=("tanh", "linear"))
    project_frames: bool = option(True, "ST-attn: the ConvLSTM's input convolution once over all frames.")
    parallel_iterations: int = option(1, "ST-attn: the ConvLSTM loop's parallel iterations.", lower=1)
    lambda_tv: float = option(
        1e-5, "ST-attn: weight of the total-variation mask loss (Eq. 7 of Meng et al.).", lower=0.0, build=False
    )
    lambda_contrast: float = option(
        1e-4, "ST-attn: weight of the contrast mask loss (Eq. 8 of Meng et al.).", lower=0.0, build=False
    )
    lambda_unimodal: float = option(
        1.0, "ST-attn: weight of the unimodality loss (Eq. 9 of Meng et al.).", lower=0.0, build=False
    )
    features_dir: str | None = option(
        None,
        "ST-attn cached-feature mode: records of backbone features "
        "(st_attn.features); the attention head is trained on them instead of on "
        "frames.",
        kind="string",
        build=False,
    )


# Options that are not `build_st_attn_network` arguments.
_NOT_NETWORK = (
    *(f.name for f in dataclasses.fields(BackboneOptions)),
    "lambda_tv",
    "lambda_contrast",
    "lambda_unimodal",
    "features_dir",
)


class CachedFeatures(inputs.InputSource):
    """Backbone features extracted once (`python -m st_attn.features`), how the authors trained."""

    name = FEATURES
    what_to_run = "extract them with `python -m st_attn.features --out_dir="

    @override
    def read_manifest(self, split: str) -> dict:
        return features_lib.read_feature_manifest(self.split_dir(split))

    @override
    def feature_shape(self, manifest: dict) -> list[int]:
        return [int(v) for v in manifest["feature_shape"]]

    @override
    def dataset(
        self,
        split,
        *,
        training,
        num_frames,
        batch_size,
        multi_label,
        num_classes,
        seed=None,
        deterministic=False,
        input_context=None,
        skip=0,
        with_metadata=False,
        preprocess=None,
        crops=1,
        raw=False,
    ):
        del preprocess, raw  # Features are already the backbone's output.
        if crops != 1:
            raise ValueError("cached features were extracted from one centre crop; use --crops=1.")
        extra = dict(seed=seed, deterministic=deterministic, input_context=input_context, skip=skip) if training else {}
        return features_lib.feature_dataset(
            self.split_dir(split),
            training=training,
            batch_size=batch_size,
            num_frames=num_frames,
            multi_label=multi_label,
            num_classes=num_classes,
            with_metadata=with_metadata,
            **extra,
        )


class StAttnFamily(BackboneFamily, family_lib.ModelFamily):
    """Spatial mask -> attentive ConvLSTM -> logits on a backbone's last feature map (Fig. 1 of Meng et al.)."""

    name = "st_attn"
    config_class = StAttnConfig
    attention_outputs = ("mask", "temporal_weights")
    # Flags every run's flags.txt carried before the families had their own (flat) flags (commit 59a130b).
    old_shared_flags = ("lambda_tv", "lambda_contrast", "lambda_unimodal", "features_dir")
    # Study schedules: the ST-attn heads have a group of their own; --quick studies train them 150 steps.
    schedule_group = family_lib.ScheduleGroup("st_attn", quick_steps=150)

    @override
    def validate(self, config: StAttnConfig, data: Any) -> None:
        spec = backbones_lib.get_spec(config.backbone)
        backbones_lib.check_input_size(spec, data.input_size)

    def build_kwargs(self, config: StAttnConfig, num_classes: int, data: Any, *, feature_shape=None) -> dict:
        """config.json "build": the frame-family layout of format 1 plus the network options."""
        build = super().build_kwargs(config, num_classes, data, feature_shape=feature_shape)
        build["mask_filters"] = list(config.mask_filters)
        return build

    def build(self, config: StAttnConfig, num_classes: int, data: Any, *, feature_shape=None) -> keras.Model:
        """Eq. 1-5 of Meng et al. on frames `(B, n, S, S, C_in)`, or on cached features `(B, n, h, w, C)`."""
        options = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name not in _NOT_NETWORK}
        options["mask_filters"] = tuple(options["mask_filters"])
        if config.dropout is not None:
            options["dropout"] = config.dropout
        options["name"] = f"st_attn_{config.backbone}_{data.modality}"
        if feature_shape is not None:  # Cached backbone features: no backbone in the model.
            return st_models.build_st_attn_network(num_classes, feature_shape=tuple(feature_shape), **options)
        extractor = backbones_lib.feature_extractor(
            config.backbone,
            input_size=data.input_size,
            modality=data.modality,
            flow_length=data.flow_length,
            weights=config.weights,
            partial_bn=config.partial_bn,
        )
        return st_models.build_st_attn_network(num_classes, feature_extractor=extractor, **options)

    @override
    def outputs_model(self, model: keras.Model) -> keras.Model:
        return st_models.attention_model(model)

    def loss_terms(
        self,
        config: StAttnConfig,
        outputs: Mapping[str, tf.Tensor],
        labels: tf.Tensor,
        model: keras.Model,
        *,
        multi_label: bool,
        weight_decay: float,
    ) -> dict[str, tf.Tensor]:
        """Eq. 6 of Meng et al.: CE + lambda_tv L_TV + lambda_contrast L_contrast + lambda_unimodal L_unimodal.

        L_TV is Eq. 7, L_contrast Eq. 8, L_unimodal Eq. 9, plus lambda sum w^2; the mask terms exist only with spatial
        attention, the unimodal term only with temporal weights (none for pooling="average"), and a 0 weight drops
        its term.
        """
        terms = super().loss_terms(config, outputs, labels, model, multi_label=multi_label, weight_decay=weight_decay)
        if "mask" in outputs and config.lambda_tv:
            terms["tv"] = config.lambda_tv * st_losses.total_variation_loss(outputs["mask"])
        if "mask" in outputs and config.lambda_contrast:
            terms["contrast"] = config.lambda_contrast * st_losses.contrast_loss(outputs["mask"])
        if "temporal_weights" in outputs and config.lambda_unimodal:
            terms["unimodal"] = config.lambda_unimodal * st_losses.unimodality_loss(outputs["temporal_weights"])
        return terms

    def summary_images(self, outputs: Mapping[str, np.ndarray], frames: np.ndarray) -> dict[str, np.ndarray]:
        """Fig. 4 of Meng et al.: frames, the mask over each as a heat map, the temporal weights as grey tiles.

        None for the average-pooling baseline (no attention outputs).
        """
        if not any(name in outputs for name in self.attention_outputs):
            return {}
        from st_attn import visualize

        return visualize.attention_images(outputs, frames)

    def summary_histograms(self, outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The temporal weights (mean over the ConvLSTM steps) of the first clip."""
        if "temporal_weights" not in outputs:
            return {}
        return {"attention/temporal_weights": np.asarray(outputs["temporal_weights"])[0].mean(axis=0)}

    @override
    def attention_frames(self, attention: Mapping[str, np.ndarray], frames: np.ndarray) -> list[np.ndarray]:
        """Fig. 4 of Meng et al. per frame (`st_attn.visualize.animation_frames`), for `stpa.predict`'s animations.

        The frame beside its mask as a heat map, above a bar as long and bright as the frame's temporal weight (the
        clip's weights min-max scaled).

        Args:
          attention: {"mask": `(n, h, w, 1)`, "temporal_weights": `(n_steps, n)`} of one clip (either may be absent).
          frames: `(n, S, S, C)` in [0, 255].
        """
        from st_attn import visualize

        return visualize.animation_frames(
            visualize.displayable(frames), attention.get("mask"), attention.get("temporal_weights")
        )

    @override
    def input_sources(self) -> dict:
        return {FEATURES: CachedFeatures}

    @override
    def selected_input(self, config: StAttnConfig) -> tuple[str, str] | None:
        return (FEATURES, config.features_dir) if config.features_dir else None

    @override
    def export_error(self, run_config: Mapping[str, Any]) -> str | None:
        if run_config.get("input") == FEATURES:
            return (
                "this run was trained on cached backbone features (--features_dir): the model has no backbone, "
                "so it cannot serve frames or videos. Train with --records_dir to export."
            )
        return None


ST_ATTN = StAttnFamily()
