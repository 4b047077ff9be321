"""Run directories written before the model-family refactor (#11) still load, resume-check, evaluate and export.

Their config.json is written here verbatim in the layout of that version (ST-attn's network options merged into
"build" from --model_options, and STPA's scales / top / fusion in every build). The network each rebuilds is
checked against the weight count and parameter count the previous version built from the same JSON (measured with
commit a25e8ba: `checkpoints.build_from_config(json)` -> len(model.weights), model.count_params()).
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from stpa.engine import checkpoints, evaluation, serving
from stpa.engine import config as config_lib
from stpa.engine import family as family_lib
from tests.stpa.cli_fixtures import write_tiny_records

CLASSES = ["MoveRight", "MoveLeft", "MoveUp"]
COMMON = {
    "backbone": "tiny",
    "class_names": CLASSES,
    "flow_length": 5,
    "input": "frames",
    "input_size": 32,
    "modality": "rgb",
    "multi_label": False,
    "train_frames": 3,
}
OLD_CONFIGS = {
    "stpa": {
        **COMMON,
        "model": "stpa",
        "build": {
            "backbone": "tiny",
            "dropout": 0.0,
            "flow_length": 5,
            "fusion": "mul",
            "input_size": 32,
            "modality": "rgb",
            "model": "stpa",
            "num_classes": 3,
            "partial_bn": False,
            "scales": 3,
            "top": "C",
            "weights": None,
        },
    },
    "st_attn": {
        **COMMON,
        "model": "st_attn",
        "build": {
            "attention_units": 16,
            "backbone": "tiny",
            "dropout": 0.0,
            "flow_length": 5,
            "fusion": "mul",
            "init_filters": 32,
            "initial_mask": 0.2,
            "input_size": 32,
            "lstm_units": 32,
            "mask_filters": [32, 16],
            "modality": "rgb",
            "model": "st_attn",
            "num_classes": 3,
            "partial_bn": False,
            "scales": 3,
            "top": "C",
            "weights": None,
        },
    },
}
# (number of weights, parameters) the previous version built from each config.json.
PREVIOUS_NETWORK = {"stpa": (43, 148287), "st_attn": (75, 468596)}
# The flags that resume each run with today's command line (its old flags.txt, as far as the network goes).
RESUME_FLAGS = {
    "stpa": dict(model="stpa", backbone="tiny", input_size=32, dropout=0.0),
    "st_attn": dict(
        model="st_attn",
        backbone="tiny",
        input_size=32,
        dropout=0.0,
        model_options=[
            "mask_filters=(32,16)",
            "lstm_units=32",
            "init_filters=32",
            "attention_units=16",
            "initial_mask=0.2",
        ],
    ),
}


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return write_tiny_records(str(tmp_path_factory.getbasetemp() / "old_run_records"))


def _old_run_dir(root, model: str) -> str:
    """A run directory as the previous version left it: its config.json, a checkpoint of (seeded) weights."""
    model_dir = str(root / model)
    os.makedirs(model_dir)
    with open(os.path.join(model_dir, checkpoints.CONFIG_FILE), "w") as f:
        json.dump(OLD_CONFIGS[model], f)
    keras.utils.set_random_seed(7)
    network = checkpoints.build_from_config(OLD_CONFIGS[model])
    tf.train.CheckpointManager(
        checkpoints.weights_checkpoint(network, step=tf.Variable(1, dtype=tf.int64)),
        os.path.join(model_dir, checkpoints.CHECKPOINT_DIR),
        max_to_keep=1,
    ).save(1)
    return model_dir


@pytest.mark.parametrize("model", ["stpa", "st_attn"])
def test_an_old_run_directory_rebuilds_evaluates_and_exports(model, records, tmp_path):
    model_dir = _old_run_dir(tmp_path, model)
    network = checkpoints.load_model(model_dir)
    assert (len(network.weights), network.count_params()) == PREVIOUS_NETWORK[model]
    assert network.name == f"{model}_tiny_rgb"

    # Resuming it with today's flags: the same network (defaults filled in on both sides), no refusal.
    run = config_lib.from_values({"model_dir": model_dir, **RESUME_FLAGS[model]})
    family = family_lib.get_family(model)
    new_build = family.build_kwargs(run.family, 3, run.data)
    checkpoints.check_same_architecture(model_dir, {"build": new_build})
    with pytest.raises(ValueError, match="another network"):
        checkpoints.check_same_architecture(model_dir, {"build": {**new_build, "input_size": 64}})

    # Evaluate: the score file holds the model's logits on the test clips (recomputed here), top-1 from them.
    report = evaluation.evaluate(
        records_dir=records,
        model_dir=model_dir,
        test_frames=3,
        batch_size=3,
        output=str(tmp_path / f"{model}.npz"),
        progress=False,
    )
    scores = np.load(report["scores_file"])
    preprocess = family.input_spec(family.make_config(OLD_CONFIGS[model]["build"]), run.data).preprocess
    from data import pipeline

    dataset = pipeline.build_dataset(
        os.path.join(records, "test"),
        training=False,
        num_frames=3,
        batch_size=3,
        modality="rgb",
        flow_length=5,
        input_size=32,
        preprocess=preprocess,
        with_metadata=True,
    )
    logits = np.concatenate([network(frames, training=False).numpy() for frames, _, _ in dataset])
    np.testing.assert_allclose(scores["scores"], logits, rtol=1e-5, atol=1e-6)
    assert report["top1"] == pytest.approx(np.mean(np.argmax(logits, axis=1) == scores["labels"]))

    # Export: serve_frames normalises in-graph and returns the same logits plus the family's attention outputs.
    export_dir = serving.export_run(model_dir, str(tmp_path / f"{model}_saved_model"), test_frames=3)
    frames = np.random.default_rng(0).uniform(0, 255, (1, 3, 32, 32, 3)).astype(np.float32)
    served = tf.saved_model.load(export_dir).signatures["serve_frames"](frames=tf.constant(frames))
    expected = network(preprocess(tf.constant(frames)), training=False).numpy()
    np.testing.assert_allclose(served["logits"].numpy(), expected, rtol=1e-5, atol=1e-5)
    assert set(family.attention_outputs) <= set(served)


def test_a_checkpoint_that_does_not_fit_the_rebuilt_network_fails_with_one_line_naming_the_migration(tmp_path):
    # A run whose network changed between versions (e.g. Table 1(a)'s former 1x1 "fc" reading): config.json now
    # rebuilds a network the checkpoint's variables do not fit. Simulated by editing the class count.
    from tests.stpa.cli_fixtures import make_run_dir

    run = make_run_dir(str(tmp_path / "run"), scales=1)
    path = os.path.join(run, checkpoints.CONFIG_FILE)
    config = json.load(open(path))
    config["build"]["num_classes"] += 2
    with open(path, "w") as f:
        json.dump(config, f)
    with pytest.raises(ValueError) as caught:
        checkpoints.load_model(run)
    message = str(caught.value)
    assert "does not fit the network" in message and "must be retrained (BUILD.md, 'Migration')" in message
    assert "\n" not in message and run in message
