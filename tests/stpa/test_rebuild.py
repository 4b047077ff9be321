"""What a rebuild from config.json overrides is the family's (`ModelFamily.rebuild_overrides`), not the engine's."""

from __future__ import annotations

import dataclasses
import json

import pytest

import stpa.families  # noqa: F401 - registers the project's families.
from stpa.blocks.backbone_options import BackboneOptions
from stpa.engine import checkpoints
from stpa.engine import config as config_lib
from stpa.engine import family as family_lib


@dataclasses.dataclass
class _WeightsMeanSomethingElse:
    weights: str | None = config_lib.option("uniform", "How the toy's class weights are set.", kind="string")


class _Toy(family_lib.ModelFamily):
    name = "toy_rebuild"
    config_class = _WeightsMeanSomethingElse

    def __init__(self):
        self.built_with = []

    def build(self, config, num_classes, data, *, feature_shape=None):
        self.built_with.append(config.weights)
        return None


def test_a_third_familys_weights_is_not_set_to_none_on_rebuild():
    toy = _Toy()
    build = {
        "model": toy.name,
        "num_classes": 2,
        "modality": "rgb",
        "flow_length": 5,
        "input_size": 8,
        "weights": "balanced",
    }
    toy.from_build_kwargs(build)
    assert toy.built_with == ["balanced"]
    assert toy.rebuild_overrides() == {}


@pytest.mark.parametrize("model", ["stpa", "tsn", "st_attn"])
def test_backbone_families_rebuild_without_downloads(model):
    family = family_lib.get_family(model)
    assert family.rebuild_overrides() == {"weights": None}
    assert family.rebuild_kwargs({"weights": "imagenet", "backbone": "tiny"}) == {"weights": None, "backbone": "tiny"}
    config = family.make_config({"backbone": "tiny"})
    assert family.run_config_entries(config) == {"backbone": "tiny"}


def test_another_initial_weights_is_the_same_network_but_another_backbone_is_not(tmp_path):
    family = family_lib.get_family("stpa")
    data = config_lib.DataConfig(input_size=32)
    build = family.build_kwargs(family.make_config({"backbone": "tiny"}), 3, data)
    (tmp_path / checkpoints.CONFIG_FILE).write_text(json.dumps({"build": build}))
    checkpoints.check_same_architecture(str(tmp_path), {"build": {**build, "weights": "imagenet"}})
    with pytest.raises(ValueError, match="backbone"):
        checkpoints.check_same_architecture(str(tmp_path), {"build": {**build, "backbone": "vgg16"}})


def test_the_shared_backbone_options_carry_the_engines_flag_metadata():
    for field in dataclasses.fields(BackboneOptions):
        made = config_lib.option(
            field.default,
            field.metadata["help"],
            kind=field.metadata["kind"],
            lower=field.metadata["lower"],
            upper=field.metadata["upper"],
        )
        assert dict(field.metadata) == dict(made.metadata), field.name
    shared = {f.name for f in dataclasses.fields(BackboneOptions)}
    assert shared == {"backbone", "dropout", "weights", "partial_bn"}
    for model in ("stpa", "st_attn"):
        assert issubclass(family_lib.get_family(model).config_class, BackboneOptions)
