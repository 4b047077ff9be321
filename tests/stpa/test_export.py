"""stpa.export: the SavedModel reloaded in a fresh process gives the Keras model's outputs (K = 3 and 25).

`serve_encoded_video` (JPEG bytes) is tested on a real video in tests/stpa/test_serving.py.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from stpa import models
from stpa.engine import checkpoints, evaluation, score_files, serving
from tests.helpers.clip_reference import reference_clip as _reference_clip
from tests.stpa.cli_fixtures import make_run_dir, write_tiny_records

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")

RELOAD_SCRIPT = r"""
import sys
import numpy as np
import tensorflow as tf

export_dir, inputs_path, outputs_path = sys.argv[1:4]
inputs = np.load(inputs_path)
loaded = tf.saved_model.load(export_dir)
assert set(loaded.signatures) >= {"serve_frames", "serve_video", "serve_encoded_video"}, list(loaded.signatures)
results = {}
for key in inputs.files:
    if key.startswith("frames"):
        out = loaded.signatures["serve_frames"](frames=tf.constant(inputs[key]))
    else:
        out = loaded.signatures["serve_video"](video=tf.constant(inputs[key]))
    for name, value in out.items():
        results[f"{key}/{name}"] = value.numpy()
np.savez(outputs_path, **results)
"""


def _reload_in_fresh_process(export_dir, inputs, tmp_path):
    np.savez(tmp_path / "inputs.npz", **inputs)
    script = tmp_path / "reload.py"
    script.write_text(RELOAD_SCRIPT)
    out = subprocess.run(
        [sys.executable, str(script), export_dir, str(tmp_path / "inputs.npz"), str(tmp_path / "outputs.npz")],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return dict(np.load(tmp_path / "outputs.npz"))


@pytest.mark.slow
@pytest.mark.parametrize("modality", ["rgb", "flow"])
def test_saved_model_matches_keras_in_a_fresh_process(tmp_path, modality):
    run_dir = make_run_dir(str(tmp_path / "run"), modality=modality, flow_length=2, seed=7)
    export_dir = serving.export_run(run_dir, str(tmp_path / "saved"), test_frames=5)
    config = serving.read_export_config(export_dir)
    assert config["test_frames"] == 5 and config["modality"] == modality

    channels = 3 if modality == "rgb" else 4
    rng = np.random.default_rng(0)
    inputs = {f"frames_k{k}": rng.uniform(0, 255, (2, k, 32, 32, channels)).astype(np.float32) for k in (3, 25)}
    inputs["video"] = rng.integers(0, 256, (23, 40, 44, 3 if modality == "rgb" else 2), dtype=np.uint8)
    outputs = _reload_in_fresh_process(export_dir, inputs, tmp_path)

    model = checkpoints.load_model(run_dir, "best")
    outputs_model = models.attention_outputs_model(model)
    preprocess = models.preprocess_for("tiny", modality)
    for k in (3, 25):
        expected = outputs_model(preprocess(tf.constant(inputs[f"frames_k{k}"])), training=False)
        logits = expected["logits"].numpy()
        np.testing.assert_allclose(outputs[f"frames_k{k}/logits"], logits, rtol=1e-4, atol=1e-5)
        probabilities = np.exp(logits - logits.max(1, keepdims=True))
        probabilities /= probabilities.sum(1, keepdims=True)
        np.testing.assert_allclose(outputs[f"frames_k{k}/probabilities"], probabilities, rtol=1e-4, atol=1e-6)
        # The mul-fused scores (Eq. 3) are products of three float32 sums: a graph and an eager run round them
        # differently, so the softmax of nearly-equal scores agrees to ~1e-3 (the logits above to 1e-4).
        np.testing.assert_allclose(outputs[f"frames_k{k}/attention"], expected["attention"].numpy(), atol=2e-3)
        np.testing.assert_allclose(np.sum(outputs[f"frames_k{k}/attention"] ** 2, axis=-1), 1.0, rtol=1e-5)
        assert outputs[f"frames_k{k}/attention"].shape == (2, 4, k * 4)  # d = 2x2 top at 32 px, n = K*d

    clip, offsets = _reference_clip(inputs["video"], 5, 32, None if modality == "rgb" else 2)
    expected = model(preprocess(tf.constant(clip[None])), training=False).numpy()[0]
    np.testing.assert_array_equal(outputs["video/frame_indices"], offsets)
    np.testing.assert_allclose(outputs["video/logits"], expected, rtol=1e-4, atol=1e-4)
    assert outputs["video/probabilities"].shape == (3,)
    assert outputs["video/probabilities"].sum() == pytest.approx(1.0, abs=1e-5)


def test_evaluate_saved_model_equals_run_dir(tmp_path_factory, tmp_path):
    records = write_tiny_records(str(tmp_path_factory.getbasetemp() / "stpa_cli_records"))
    run_dir = make_run_dir(str(tmp_path / "run"), seed=1)
    export_dir = serving.export_run(run_dir, str(tmp_path / "saved"))
    a = evaluation.evaluate(
        records_dir=records, model_dir=run_dir, test_frames=3, output=str(tmp_path / "a.npz"), progress=False
    )
    b = evaluation.evaluate(
        records_dir=records, saved_model=export_dir, test_frames=3, output=str(tmp_path / "b.npz"), progress=False
    )
    np.testing.assert_allclose(
        score_files.load_scores(b["scores_file"]).scores,
        score_files.load_scores(a["scores_file"]).scores,
        rtol=1e-4,
        atol=1e-5,
    )
    assert a["top1"] == b["top1"]


@pytest.mark.slow
def test_export_command_line(tmp_path):
    run_dir = make_run_dir(str(tmp_path / "run"))
    out = subprocess.run(
        [sys.executable, "-m", "stpa.export", f"--model_dir={run_dir}", "--test_frames=7"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert os.path.exists(os.path.join(run_dir, "saved_model", "saved_model.pb"))
    assert json.loads(open(os.path.join(run_dir, "saved_model", serving.EXPORT_CONFIG)).read())["test_frames"] == 7
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        serving.export_run(str(tmp_path / "missing"))
