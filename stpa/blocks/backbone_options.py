"""The backbone options every backbone-based family shares, and the family methods that go with them.

`BackboneOptions` is the dataclass of the four options STPA / TSN (`stpa.family.StpaConfig`) and ST-attn
(`st_attn.family.StAttnConfig`) both have -- backbone, dropout, weights, partial_bn -- so each is declared once, with
one help text; the family configs inherit it, so the fields stay flat (the flags `--backbone`, `--dropout`,
`--weights`, `--partial_bn`, and config.json's "build" keys are unchanged).

`BackboneFamily` is a mixin for an `engine.family.ModelFamily` whose config is a `BackboneOptions`: the input size and
normalisation of its backbone (`input_spec`), what a rebuild from config.json overrides (`rebuild_overrides`: no
weight download, the checkpoint holds the weights) and config.json's top-level "backbone" entry
(`run_config_entries`). The engine asks the family for these through `ModelFamily`'s hooks, so it never names a
backbone option.

The blocks import neither the engine nor a family: the fields carry the engine's flag metadata
(`stpa.engine.config.option`'s keys: help, kind, choices, lower, upper, flag, build) written out by `_option` below;
tests/stpa/test_family_flags.py checks that it equals what `option` would make.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from stpa.blocks import backbones as backbones_lib
from stpa.blocks.preprocessing import preprocess_for

# What a rebuild from config.json sets, whatever the run was trained from: the weights come from the checkpoint.
REBUILD_OVERRIDES: Mapping[str, Any] = {"weights": None}


def _option(
    default: Any,
    help: str,
    *,
    kind: str,
    lower: float | None = None,  # noqa: A002
    upper: float | None = None,
) -> Any:
    """A dataclass field with `stpa.engine.config.option`'s metadata (a flag of `stpa.train`, a build argument)."""
    metadata = {
        "help": help,
        "kind": kind,
        "choices": None,
        "lower": lower,
        "upper": upper,
        "flag": True,
        "build": True,
    }
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class BackboneOptions:
    """The options of a family built on a `stpa.blocks.backbones` CNN (flags of `stpa.train`)."""

    backbone: str = _option("inception_resnet_v2", "Backbone CNN (see stpa.models.BACKBONES).", kind="string")
    dropout: float | None = _option(
        None,
        "Dropout before the classifier (default: 0.5 RGB, 0.7 flow, Sec. 3.4).",
        kind="float",
        lower=0.0,
        upper=1.0,
    )
    weights: str | None = _option(
        None, "Backbone initialisation: 'imagenet', a local weights file, or none.", kind="string"
    )
    partial_bn: bool = _option(
        False, "Freeze every batch normalisation of the backbone but the first (TSN's partial BN).", kind="boolean"
    )


class BackboneFamily:
    """Mixin for a `ModelFamily` whose config is a `BackboneOptions` (put it before `ModelFamily` in the bases)."""

    def default_input_size(self, config: BackboneOptions) -> int:
        """The square frame size the backbone was pretrained at (299 for Inception-ResNet-V2, 224, 64 for tiny)."""
        return backbones_lib.get_spec(config.backbone).default_input_size

    def input_spec(self, config: BackboneOptions, data: Any) -> Any:
        """`ModelFamily.input_spec` with the backbone's normalisation of the stream (`preprocess_for`)."""
        spec = super().input_spec(config, data)
        return dataclasses.replace(spec, preprocess=preprocess_for(config.backbone, data.modality))

    def rebuild_overrides(self) -> dict[str, Any]:
        """What a rebuild from config.json sets: `weights=None` (no download; the checkpoint holds the weights)."""
        return dict(REBUILD_OVERRIDES)

    def run_config_entries(self, config: BackboneOptions) -> dict[str, Any]:
        """config.json's top-level entries of the family: "backbone" (format 1; read by `stpa.visualize`)."""
        return {"backbone": config.backbone}
