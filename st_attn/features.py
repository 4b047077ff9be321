"""Command line of the cached-feature mode: extract backbone features once (`st_attn.feature_cache`).

  python -m st_attn.features --records_dir=PREPARED --out_dir=FEATURES --backbone=resnet101 --weights=RUN_DIR

Sec. 3.1 of Meng et al. extracts with the trunk fine-tuned on the dataset first: --weights=RUN_DIR, the --model_dir
of a `python -m stpa.train --model=tsn` run (its backbone, modality and input size are checked;
`st_attn.fine_tuned_trunk`); --weights=imagenet is the explicitly named alternative of ImageNet features. The format,
the extraction and the reader are `st_attn.feature_cache`'s (its names are re-exported here for older callers).
Flags are defined only when run as a program.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from st_attn.feature_cache import (  # noqa: F401 - re-exported for callers of the module before the split
    DTYPES,
    FEATURES_FORMAT,
    FORMAT_VERSION,
    MANIFEST_NAME,
    extract_features,
    feature_dataset,
    read_feature_manifest,
)
from st_attn.fine_tuned_trunk import is_run_dir, run_feature_extractor


def _define_flags() -> None:
    from absl import flags

    flags.DEFINE_string(
        "records_dir", None, "Prepared dataset (--out_dir of data.prepare) with one directory per split.", required=True
    )
    flags.DEFINE_string("out_dir", None, "Where to write the features: one directory per split.", required=True)
    flags.DEFINE_list("splits", ["train", "test"], "Splits of --records_dir to extract.")
    flags.DEFINE_string(
        "backbone",
        "resnet101",
        "Backbone (stpa.models.BACKBONES); its last feature map is "
        "extracted (ResNet: the last conv block, 7x7x2048 at 224).",
    )
    flags.DEFINE_string(
        "weights",
        "imagenet",
        "The trunk: a `stpa.train --model=tsn` run directory (Sec. 3.1: the fine-tuned trunk; backbone, modality "
        "and input size must be the run's), or 'imagenet', a local weights file, or none.",
    )
    flags.DEFINE_enum("checkpoint", "last", ["last", "best"], "With a run directory as --weights: its checkpoint.")
    flags.DEFINE_enum("modality", "rgb", ["rgb", "flow"], "Stream.")
    flags.DEFINE_integer("flow_length", 5, "Flow frames per stack.", lower_bound=1)
    flags.DEFINE_integer("num_frames", 25, "n, frames per video (paper: 25; Moments in Time: 15).", lower_bound=1)
    flags.DEFINE_integer("input_size", None, "Centre-crop side (default: the backbone's, 224 for ResNets).")
    flags.DEFINE_integer("batch_size", 4, "Videos per extractor call.", lower_bound=1)
    flags.DEFINE_enum("dtype", "float16", list(DTYPES), "Storage precision of the features.")


def main(argv: Sequence[str]) -> None:
    """Extracts the features of every --splits split."""
    del argv
    from absl import flags

    from stpa.blocks.backbones import feature_extractor, get_spec
    from stpa.blocks.preprocessing import preprocess_for

    config = flags.FLAGS
    if is_run_dir(config.weights):
        import stpa.families  # noqa: F401 - the composition root: the run's family rebuilds its network.

        extractor, trunk = run_feature_extractor(
            config.weights,
            backbone=config.backbone,
            modality=config.modality,
            input_size=config.input_size,
            flow_length=config.flow_length,
            which=config.checkpoint,
        )
        input_size = trunk["input_size"]
        extractor_config = {"backbone": config.backbone, "weights": "run", **trunk}
    else:
        input_size = config.input_size or get_spec(config.backbone).default_input_size
        extractor = feature_extractor(
            config.backbone,
            input_size=input_size,
            modality=config.modality,
            flow_length=config.flow_length,
            weights=config.weights,
        )
        extractor_config = {"backbone": config.backbone, "weights": config.weights}
    preprocess = preprocess_for(config.backbone, config.modality)
    for split in config.splits:
        manifest = extract_features(
            os.path.join(config.records_dir, split),
            os.path.join(config.out_dir, split),
            extractor,
            num_frames=config.num_frames,
            input_size=input_size,
            preprocess=preprocess,
            modality=config.modality,
            flow_length=config.flow_length,
            batch_size=config.batch_size,
            dtype=config.dtype,
            extractor_config=extractor_config,
        )
        print(
            f"{split}: {manifest['count']} videos, features {manifest['num_frames']} x "
            f"{tuple(manifest['feature_shape'])} ({manifest['dtype']}) in {os.path.join(config.out_dir, split)}"
        )


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
