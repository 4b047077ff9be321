"""Family options are per family: another family's option fails naming its family; helps are the owners'."""

from __future__ import annotations

import pytest
from absl import flags

import stpa.families  # noqa: F401 - registers the project's families.
from stpa.engine import config as config_lib


@pytest.fixture()
def flag_values():
    values = flags.FlagValues()
    config_lib.define_flags(values)
    return values


def _parse(values, *argv):
    values.unparse_flags()
    values(["prog", "--model_dir=x", *argv])
    return config_lib.from_flags(values)


def test_another_familys_option_fails_naming_its_family(flag_values):
    with pytest.raises(ValueError, match=r"^--lambda_tv is an option of --model=st_attn, not of --model=stpa"):
        _parse(flag_values, "--model=stpa", "--lambda_tv=0.5")
    with pytest.raises(ValueError, match=r"^--scales is an option of --model=stpa, tsn, not of --model=st_attn"):
        _parse(flag_values, "--model=st_attn", "--scales=2")
    with pytest.raises(ValueError, match="--frozen_bn is an option of --model=stpa, tsn"):
        _parse(flag_values, "--model=st_attn", "--frozen_bn")


def test_own_and_shared_options_are_read(flag_values):
    config = _parse(flag_values, "--model=tsn", "--beta=0", "--backbone=tiny")
    assert (config.family.beta, config.family.backbone) == (0.0, "tiny")
    config = _parse(flag_values, "--model=st_attn", "--lambda_tv=0.5", "--backbone=tiny")
    assert (config.family.lambda_tv, config.family.backbone) == (0.5, "tiny")


def test_an_old_flat_flags_txt_with_every_option_at_its_default_still_parses(flag_values):
    # flags.txt before the families had their own flags (commit 59a130b) held every option for every run.
    old_st_attn = [
        "--model=st_attn",
        "--scales=3",
        "--top=C",
        "--fusion=mul",
        "--beta=0.0001",
        "--gamma=0.0001",
        "--lambda_tv=1e-05",
        "--backbone=tiny",
    ]
    config = _parse(flag_values, *old_st_attn)
    assert config.family.lambda_tv == 1e-5 and not hasattr(config.family, "scales")
    old_stpa = ["--model=stpa", "--scales=2", "--lambda_tv=1e-05", "--lambda_contrast=0.0001", "--lambda_unimodal=1.0"]
    assert _parse(flag_values, *old_stpa).family.scales == 2
    with pytest.raises(ValueError, match="--beta is an option of --model=stpa, tsn"):
        _parse(flag_values, "--model=st_attn", "--beta=0.5")


def test_helps_are_the_owning_familys(flag_values):
    assert flag_values["lambda_tv"].help.startswith("(--model=st_attn) ST-attn: weight of the total-variation")
    assert flag_values["scales"].help == "(--model=stpa, tsn) Number of pyramid layers N (Table 1(b))."
    assert flag_values["backbone"].help == "Backbone CNN (see stpa.models.BACKBONES)."


def test_the_attention_option_is_stpas_and_stored_only_when_not_learned(flag_values):
    from stpa.engine import family as family_lib

    config = _parse(flag_values, "--model=stpa", "--backbone=tiny", "--attention=uniform")
    family = family_lib.get_family("stpa")
    assert family.build_kwargs(config.family, 3, config.data)["attention"] == "uniform"
    learned = _parse(flag_values, "--model=stpa", "--backbone=tiny")
    assert "attention" not in family.build_kwargs(learned.family, 3, learned.data)
