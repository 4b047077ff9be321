"""The ST-attn flagfiles: one per table row, and their model options are arguments of `build_st_attn_network`.

(That every flag parses and validates is `tests/stpa/test_flagfiles.py`'s job, for all flagfiles.)
"""

import glob
import inspect
import os

from absl import flags

from st_attn import models
from stpa.engine.config import parse_options

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _st_attn_flagfiles():
    return sorted(
        glob.glob(os.path.join(REPO, "experiments", "st_attn", "*.cfg"))
        + glob.glob(os.path.join(REPO, "experiments", "synthetic", "st_attn_*.cfg"))
    )


def test_a_flagfile_for_every_table_row():
    names = {os.path.basename(p)[:-4] for p in _st_attn_flagfiles()}
    for dataset in ("hmdb51", "ucf101"):
        rows = ("full", "no_spatial", "no_temporal", "no_tv", "no_contrast", "no_unimodal", "resnet101_imagenet")
        assert {f"table2_{dataset}_{row}" for row in rows} <= names
    assert "table3_moments_n15" in names
    assert {
        f"table4_hmdb51_{b}_{w}" for b in ("resnet50", "resnet101", "resnet152") for w in ("attention", "no_attention")
    } <= names
    assert {
        "table5_ucf101_24_train",
        "table5_ucf101_24_localize",
        "table6_thumos14_train",
        "table6_thumos14_localize",
        "st_attn_tiny_rgb",
        "st_attn_tiny_rgb_localize",
    } <= names


def test_model_options_are_network_arguments():
    allowed = set(inspect.signature(models.build_st_attn_network).parameters) - {"num_classes", "feature_extractor"}
    parser = flags.ListParser()
    seen = 0
    for path in _st_attn_flagfiles():
        with open(path) as f:
            lines = [line.strip() for line in f if line.startswith("--model_options=")]
        for line in lines:
            options = parse_options(parser.parse(line.split("=", 1)[1]), "model_options")
            assert set(options) <= allowed, (path, set(options) - allowed)
            seen += 1
    assert seen >= 6
