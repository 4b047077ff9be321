"""The fine-tuned trunk of Sec. 3.1 of Meng et al.: a TSN run's backbone weights as a feature extractor.

`run_feature_extractor(run_dir, ...)` rebuilds a `stpa.train` run of a backbone family without attention (TSN) from
its config.json (the run's family must be registered: the command line imports `stpa.families`), restores its
checkpoint and copies its backbone trunk, layer by layer, into `stpa.blocks.backbones.feature_extractor`.
"""

from __future__ import annotations

import os


def is_run_dir(weights: str | None) -> bool:
    """True when `weights` names a run directory of `stpa.train` (a directory holding config.json)."""
    return bool(weights) and os.path.isfile(os.path.join(weights, "config.json"))


def run_feature_extractor(
    run_dir: str,
    *,
    backbone: str,
    modality: str,
    input_size: int | None = None,
    flow_length: int = 5,
    which: str = "last",
):
    """The feature extractor of a fine-tuned trunk: Sec. 3.1 of Meng et al. (TSN fine-tuning, then features).

    Rebuilds the `stpa.train --model=tsn` run in `run_dir` from its config.json, restores its `which` checkpoint
    and copies its backbone trunk's weights, layer by layer, into `stpa.blocks.backbones.feature_extractor`.

    Args:
      run_dir: `--model_dir` of a `python -m stpa.train --model=tsn` run.
      backbone: the backbone the features are asked of; must be the run's.
      modality: "rgb" or "flow"; must be the run's.
      input_size: frame size; None takes the run's, another value must equal it.
      flow_length: flow frames per stack; must be the run's for flow.
      which: "last" or "best" checkpoint (`stpa.engine.checkpoints.load_model`).

    Returns:
      `(extractor, info)`: the `keras.Model` frames `(B', S, S, C_in)` -> `(B', h, w, C)` and a dict for the manifest
      (run directory, checkpoint, input size).

    Raises:
      ValueError: the run is not a TSN run, or its backbone / modality / input size / flow length differ.
      FileNotFoundError: no config.json or no checkpoint.
    """
    from stpa.blocks.backbone_options import BackboneFamily
    from stpa.blocks.backbones import feature_extractor
    from stpa.engine import checkpoints
    from stpa.engine import family as family_lib

    config = checkpoints.load_run_config(run_dir)
    build = config.get("build", {})
    family = family_lib.get_family(build["model"]) if build.get("model") in family_lib.family_names() else None
    if not isinstance(family, BackboneFamily) or family.attention_outputs:
        # The trunk is copied layer by layer: a backbone family's run without an attention layer (TSN's).
        raise ValueError(
            f"--weights={run_dir} is a run of --model={build.get('model')!r}; the fine-tuned trunk of "
            "Sec. 3.1 comes from a `python -m stpa.train --model=tsn` run."
        )
    wanted = {
        "backbone": backbone,
        "modality": modality,
        "input_size": int(build["input_size"]) if input_size is None else int(input_size),
    }
    if modality == "flow":
        wanted["flow_length"] = int(flow_length)
    differing = {key: (value, build.get(key)) for key, value in wanted.items() if value != build.get(key)}
    if differing:
        details = ", ".join(f"--{key}={asked!r} but the run has {had!r}" for key, (asked, had) in differing.items())
        raise ValueError(f"--weights={run_dir}: {details}; pass the run's values (its flags.txt) or another run.")
    model = checkpoints.load_model(run_dir, which)
    extractor = feature_extractor(
        backbone,
        input_size=wanted["input_size"],
        modality=modality,
        flow_length=build.get("flow_length", flow_length),
        weights=None,
    )
    trained = {layer.name: layer for layer in model.layers}
    for layer in extractor.layers:
        if not layer.weights:
            continue
        if layer.name not in trained:
            raise ValueError(
                f"--weights={run_dir}: the run's network has no layer {layer.name!r} of the {backbone} "
                "trunk (a run of another code version?); re-run its fine-tuning."
            )
        layer.set_weights(trained[layer.name].get_weights())
    path = checkpoints.latest_checkpoint(run_dir, which) or checkpoints.latest_checkpoint(run_dir, "last")
    return extractor, {"run_dir": os.path.abspath(run_dir), "checkpoint": path, "input_size": wanted["input_size"]}
