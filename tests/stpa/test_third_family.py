"""A third paper fits: a toy family, defined here in a few lines, trains, evaluates and exports through the
unchanged command lines (`python -m stpa.train / stpa.evaluate / stpa.export`), loaded by the plugin hook
`STPA_FAMILY_MODULES=tests.stpa.test_third_family:register` of the composition root (`stpa.families`).

The toy network: the clip's mean over frames and pixels (B, C_in) -> dense ReLU (toy_width) -> dense logits; its
objective is the engine's default, cross-entropy (with --weight_decay=0 the only term).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from stpa.engine import family as family_lib
from stpa.engine.config import option
from tests.stpa.cli_fixtures import NUM_CLASSES, write_tiny_records

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGIN = "tests.stpa.test_third_family:register"


# ------------------------------------------------------------------------------------------------ the toy family
@dataclasses.dataclass
class ToyConfig:
    """The toy family's one option (it becomes the flag --toy_width)."""

    toy_width: int = option(8, "Toy family: hidden units.", lower=1)


class ToyFamily(family_lib.ModelFamily):
    """Global average pooling over the clip + an MLP; the engine's default objective (cross-entropy)."""

    name = "toy_gap"
    config_class = ToyConfig

    def default_input_size(self, config: ToyConfig) -> int:  # noqa: D102
        return 16

    def build(self, config: ToyConfig, num_classes: int, data, *, feature_shape=None) -> keras.Model:  # noqa: D102
        spec = self.input_spec(config, data)
        clip = keras.Input((None, spec.size, spec.size, spec.channels), name="frames")  # (B, K, S, S, C)
        pooled = keras.layers.GlobalAveragePooling3D(name="pool")(clip)  # (B, C): mean over K, S, S
        hidden = keras.layers.Dense(config.toy_width, activation="relu", name="hidden")(pooled)
        logits = keras.layers.Dense(num_classes, dtype="float32", name="logits")(hidden)
        return keras.Model(clip, logits, name="toy_gap")

    def add_signatures(self, archive, outputs_model, run_config) -> None:  # noqa: D102
        size = int(run_config["input_size"])
        archive.add_endpoint(
            "serve_clip_mean",
            lambda frames: {"mean": tf.reduce_mean(frames, axis=[1, 2, 3])},
            input_signature=[tf.TensorSpec([None, None, size, size, 3], tf.float32, name="frames")],
        )


def register() -> None:
    """The plugin entry: adds the toy family to the registry of the command line that imports it."""
    family_lib.register_family(ToyFamily())


# ---------------------------------------------------------------------------------------------------------- tests
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", STPA_FAMILY_MODULES=PLUGIN)


def _run(module: str, *args: str, env=ENV) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=300
    )


def _reference_logits(frames: np.ndarray, weights: list[np.ndarray]) -> np.ndarray:
    """float64 NumPy: frames (B, K, S, S, C) in [0, 255] -> x/127.5 - 1 -> mean -> relu(W1) -> W2 logits."""
    w1, b1, w2, b2 = (np.asarray(w, np.float64) for w in weights)
    pooled = (frames.astype(np.float64) / 127.5 - 1.0).mean(axis=(1, 2, 3))  # (B, C)
    return np.maximum(pooled @ w1 + b1, 0.0) @ w2 + b2  # (B, classes)


@pytest.fixture
def toy_family():
    """The toy family registered in this process for one test, and removed again afterwards."""
    family = family_lib.register_family(ToyFamily())
    try:
        yield family
    finally:
        family_lib.unregister_family(family.name)


@pytest.mark.slow
def test_a_registered_toy_family_trains_evaluates_and_exports_through_the_command_lines(tmp_path, request):
    records = write_tiny_records(str(tmp_path / "records"))
    run_dir, export_dir = str(tmp_path / "run"), str(tmp_path / "saved_model")

    refused = _run(
        "stpa.train",
        "--model=toy_gap",
        f"--model_dir={run_dir}",
        f"--records_dir={records}",
        env={k: v for k, v in ENV.items() if k != "STPA_FAMILY_MODULES"},
    )
    assert refused.returncode != 0
    assert "unknown --model 'toy_gap'; registered model families: ['stpa', 'tsn', 'st_attn']" in refused.stderr

    trained = _run(
        "stpa.train",
        "--model=toy_gap",
        "--toy_width=6",
        f"--model_dir={run_dir}",
        f"--records_dir={records}",
        "--train_frames=2",
        "--eval_frames=3",
        "--batch_size=4",
        "--eval_batch_size=6",
        "--optimizer=adam",
        "--learning_rate=0.01",
        "--weight_decay=0",
        "--max_steps=6",
        "--eval_every=0",
        "--log_every=2",
        "--noprogress",
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert f"{run_dir}: steps 0 -> 6" in trained.stdout
    flags_txt = open(os.path.join(run_dir, "flags.txt")).read().splitlines()
    assert "--model=toy_gap" in flags_txt and "--toy_width=6" in flags_txt and "--input_size=16" not in flags_txt
    config = json.load(open(os.path.join(run_dir, "config.json")))
    assert config["build"] == {
        "model": "toy_gap",
        "num_classes": NUM_CLASSES,
        "modality": "rgb",
        "flow_length": 5,
        "input_size": 16,
        "toy_width": 6,
    }

    scores_file = str(tmp_path / "eval" / "scores.npz")
    evaluated = _run(
        "stpa.evaluate",
        f"--model_dir={run_dir}",
        f"--records_dir={records}",
        "--test_frames=3",
        f"--output={scores_file}",
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    report = json.load(open(scores_file.replace(".npz", ".json")))
    scores = np.load(scores_file)
    assert report["num_videos"] == len(scores["labels"]) == 2 * NUM_CLASSES
    assert report["top1"] == pytest.approx(np.mean(np.argmax(scores["scores"], axis=1) == scores["labels"]))

    exported = _run("stpa.export", f"--model_dir={run_dir}", f"--export_dir={export_dir}", "--test_frames=3")
    assert exported.returncode == 0, exported.stderr[-3000:]

    # The SavedModel (normalisation in-graph) and the float64 reference of the trained weights agree.
    request.getfixturevalue("toy_family")  # this process rebuilds the network from config.json as the CLIs did
    from stpa.engine import checkpoints

    model = checkpoints.load_model(run_dir)
    frames = np.random.default_rng(0).uniform(0, 255, (2, 3, 16, 16, 3)).astype(np.float32)
    saved = tf.saved_model.load(export_dir)
    served = saved.signatures["serve_frames"](frames=tf.constant(frames))
    expected = _reference_logits(frames, model.get_weights())
    np.testing.assert_allclose(served["logits"].numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model(frames / 127.5 - 1.0, training=False).numpy(), expected, rtol=1e-5, atol=1e-5)
    assert sorted(served) == ["logits", "probabilities"]  # no attention outputs declared
    # The family's own endpoint, beside the engine's three.
    assert {"serve_frames", "serve_video", "serve_encoded_video", "serve_clip_mean"} <= set(saved.signatures)
    mean = saved.signatures["serve_clip_mean"](frames=tf.constant(frames))["mean"].numpy()
    np.testing.assert_allclose(mean, frames.astype(np.float64).mean(axis=(1, 2, 3)), rtol=1e-5)


def test_a_family_without_build_or_a_source_without_dataset_fails_at_instantiation():
    from stpa.engine import inputs

    class NoBuild(family_lib.ModelFamily):
        name, config_class = "no_build", ToyConfig

    class NoDataset(inputs.InputSource):
        name = "no_dataset"

    with pytest.raises(TypeError, match="abstract .*build"):
        family_lib.register_family(NoBuild())
    with pytest.raises(TypeError, match="abstract .*dataset"):
        NoDataset("/tmp")
    assert "no_build" not in family_lib.family_names() and ToyFamily().name == "toy_gap"


def test_the_toy_family_fixture_leaves_the_registry_as_it_found_it(toy_family):
    assert family_lib.get_family("toy_gap") is toy_family
    assert family_lib.family_names()[-1] == "toy_gap"


def test_after_the_fixture_the_toy_family_is_gone():
    assert "toy_gap" not in family_lib.family_names()
