"""ST-attn the paper's way (Meng et al. Sec. 3.1), as one chain of commands at toy size.

TSN fine-tuning of the trunk (`stpa.train --model=tsn`) -> features with that trunk (`st_attn.features
--weights=RUN_DIR`) -> the attention trained on the cached features (`stpa.train --model=st_attn --features_dir`)
-> localisation (`st_attn.localize`).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import stpa.families  # noqa: F401 - registers the families a run directory is rebuilt with.
from data import pipeline
from st_attn import features
from stpa.blocks import backbones
from stpa.blocks.preprocessing import preprocess_for
from stpa.engine import checkpoints
from tests.st_attn import records_helper

SIZE = 32
FRAMES = 4
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")


def _run(*args: str) -> subprocess.CompletedProcess:
    completed = subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain_records")
    for split, count in (("train", 6), ("test", 4)):
        examples = [
            records_helper.video(f"{split}{i}", i % 2, num_frames=10 + i, seed=i + 10 * (split == "test"))
            for i in range(count)
        ]
        records_helper.write_split(str(root / split), examples)
    return str(root)


def _trunk_features(run_dir: str, split_dir: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per video id: the fine-tuned TSN network's own trunk output `(n, h, w, C)` on the test pipeline's frames;
    and those frames `(B, n, S, S, 3)`."""
    tsn = checkpoints.load_model(run_dir)
    feature_layer = backbones.feature_extractor("tiny", input_size=SIZE).layers[-1].name
    # The layer is shared by the backbone's own graph and the TSN graph: take its call inside the TSN graph (last).
    folded = tsn.get_layer(feature_layer)._inbound_nodes[-1].outputs[0]
    trunk = keras.Model(tsn.input, folded)  # frames (B, K, ...) -> (B*K, h, w, C)
    dataset = pipeline.build_dataset(
        split_dir,
        training=False,
        num_frames=FRAMES,
        batch_size=8,
        input_size=SIZE,
        preprocess=preprocess_for("tiny", "rgb"),
        with_metadata=True,
    )
    frames, _, metadata = next(iter(dataset))
    maps = trunk(frames, training=False).numpy()
    maps = maps.reshape(frames.shape[0], FRAMES, *maps.shape[1:])  # (B, K, h, w, C)
    return {vid.decode(): maps[i] for i, vid in enumerate(metadata["video_id"].numpy())}, frames.numpy()


@pytest.mark.slow
def test_fine_tune_features_attention_localize_chain(records_dir, tmp_path):
    tsn_dir = str(tmp_path / "tsn")
    _run(
        "stpa.train",
        "--model=tsn",
        "--backbone=tiny",
        f"--input_size={SIZE}",
        f"--records_dir={records_dir}",
        f"--model_dir={tsn_dir}",
        "--train_frames=2",
        "--batch_size=2",
        "--learning_rate=0.05",
        "--max_steps=3",
        "--eval_every=0",
        "--eval_split=",
        "--progress=false",
    )

    features_dir = str(tmp_path / "features")
    _run(
        "st_attn.features",
        f"--records_dir={records_dir}",
        f"--out_dir={features_dir}",
        "--splits=train,test",
        "--backbone=tiny",
        f"--weights={tsn_dir}",
        f"--num_frames={FRAMES}",
        "--batch_size=2",
        "--dtype=float32",
    )
    manifest = features.read_feature_manifest(os.path.join(features_dir, "test"))
    assert manifest["extractor"]["weights"] == "run" and manifest["extractor"]["run_dir"] == os.path.abspath(tsn_dir)
    assert manifest["extractor"]["input_size"] == SIZE  # Taken from the run's config.json.

    # The cached features are the fine-tuned trunk's outputs on the same frames, not those of a fresh trunk.
    expected, frames = _trunk_features(tsn_dir, os.path.join(records_dir, "test"))
    seen = 0
    for feats, _, meta in features.feature_dataset(
        os.path.join(features_dir, "test"), training=False, batch_size=2, with_metadata=True
    ):
        for i, vid in enumerate(meta["video_id"].numpy()):
            np.testing.assert_allclose(feats[i].numpy(), expected[vid.decode()], rtol=1e-4, atol=1e-5)
            seen += 1
    assert seen == 4
    # A trunk at its initialisation (same seed as the run's default) gives other features: the weights came from
    # the run's checkpoint, not from a fresh build.
    keras.utils.set_random_seed(0)
    fresh = backbones.feature_extractor("tiny", input_size=SIZE)
    fresh_maps = fresh(frames.reshape(-1, *frames.shape[2:]), training=False).numpy()
    tuned_maps = np.concatenate([v for v in expected.values()])
    assert np.abs(np.sort(fresh_maps.ravel()) - np.sort(tuned_maps.ravel())).max() > 1e-3

    attention_dir = str(tmp_path / "st_attn")
    _run(
        "stpa.train",
        "--model=st_attn",
        "--backbone=tiny",
        f"--features_dir={features_dir}",
        f"--model_dir={attention_dir}",
        "--train_frames=3",
        f"--eval_frames={FRAMES}",
        "--batch_size=2",
        "--max_steps=2",
        "--eval_every=0",
        "--eval_split=",
        "--progress=false",
        '--model_options="mask_filters=(8,8)",lstm_units=8,init_filters=8,attention_units=8',
    )

    output = str(tmp_path / "localization.json")
    _run(
        "st_attn.localize",
        f"--model_dir={attention_dir}",
        f"--features_dir={features_dir}",
        f"--records_dir={records_dir}",
        "--split=test",
        f"--num_frames={FRAMES}",
        f"--output={output}",
    )
    with open(output) as f:
        result = json.load(f)
    assert result["classification"]["videos"] == 4
    for table in (result["spatial"], result["temporal"]):
        for values in table["rows"].values():
            assert values and all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values)


def test_run_dir_must_match_the_asked_backbone(records_dir, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    build = {"model": "tsn", "backbone": "tiny", "modality": "rgb", "input_size": SIZE, "flow_length": 5}
    (run_dir / "config.json").write_text(json.dumps({"build": build}))
    assert features.is_run_dir(str(run_dir)) and not features.is_run_dir("imagenet")
    with pytest.raises(ValueError, match=r"--backbone='resnet101' but the run has 'tiny'"):
        features.run_feature_extractor(str(run_dir), backbone="resnet101", modality="rgb")
    with pytest.raises(ValueError, match=r"--input_size=64 but the run has 32"):
        features.run_feature_extractor(str(run_dir), backbone="tiny", modality="rgb", input_size=64)
    (run_dir / "config.json").write_text(json.dumps({"build": {**build, "model": "stpa"}}))
    with pytest.raises(ValueError, match="comes from a `python -m stpa.train --model=tsn` run"):
        features.run_feature_extractor(str(run_dir), backbone="tiny", modality="rgb")
