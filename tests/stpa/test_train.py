"""stpa.train / stpa.engine.trainer: short real runs on a tiny prepared record set.

Covered: the learning-rate schedules of Sec. 3.4, loss decreasing, the run directory + TensorBoard scalars of every
Eq. 9 term, --streams (train both + fuse), resume after SIGKILL, MirroredStrategy vs one device, multi-worker
training with two local processes, NaN loss stopping with the step, bad flags failing before any work.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from stpa.engine import checkpoints, schedules, trainer
from stpa.engine import config as config_lib
from tests.stpa.cli_fixtures import NUM_CLASSES, write_tiny_records

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
TINY_FLAGS = [
    "--backbone=tiny",
    "--input_size=32",
    "--train_frames=2",
    "--eval_frames=3",
    "--batch_size=4",
    "--eval_batch_size=6",
    "--learning_rate=0.01",
    "--noprogress",
]


@pytest.fixture(scope="session")
def records(tmp_path_factory):
    return write_tiny_records(str(tmp_path_factory.getbasetemp() / "stpa_cli_records"))


def _config(model_dir, records_dir, **overrides):
    values = dict(
        model_dir=str(model_dir),
        records_dir=records_dir,
        backbone="tiny",
        input_size=32,
        train_frames=2,
        batch_size=4,
        learning_rate=0.01,
        max_steps=4,
        eval_every=0,
        eval_frames=3,
        eval_batch_size=6,
        log_every=2,
        progress=False,
        summary_images=False,
    )
    values.update(overrides)
    return config_lib.from_values(values)


def _run_cli(args, timeout=240):
    return subprocess.run(
        [sys.executable, "-m", "stpa.train", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )


# ---------------------------------------------------------------------------------------------------- schedules
def test_paper_schedules_and_boundaries():
    rgb = schedules.paper_schedule("rgb")
    assert rgb.values == (1e-3, 1e-4, 1e-5) and rgb.boundaries == (4000, 8000)
    flow = schedules.paper_schedule("flow")
    assert flow.values == (5e-3, 5e-4, 5e-5) and flow.boundaries == (12000, 24000) and flow.max_steps == 30000
    keras_schedule = flow.learning_rate()
    for step in (0, 11999, 12000, 12001, 23999, 24001, 29999):
        assert float(keras_schedule(step)) == pytest.approx(flow.value_at(step), rel=1e-6)
    assert flow.value_at(12001) == pytest.approx(5e-4) and flow.value_at(24001) == pytest.approx(5e-5)


def test_make_schedule_precedence_and_truncation():
    s = schedules.make_schedule("rgb", learning_rate=0.1, max_steps=6000)
    assert s.boundaries == (4000,) and s.values == pytest.approx((0.1, 0.01))  # the 8000 boundary is past the end
    s = schedules.make_schedule("flow", lr_boundaries=[10, 20], lr_values=[3.0, 2.0, 1.0], max_steps=30)
    assert s.values == (3.0, 2.0, 1.0)
    with pytest.raises(ValueError, match="one more entry"):
        schedules.make_schedule("rgb", lr_boundaries=[10], lr_values=[1.0])
    with pytest.raises(ValueError, match="increasing"):
        schedules.make_schedule("rgb", lr_boundaries=[10, 5])


# ------------------------------------------------------------------------------------------------- bad flags
def test_bad_config_fails_fast_with_allowed_values(records, tmp_path):
    with pytest.raises(ValueError, match="tiny"):  # the allowed backbones are listed
        trainer.validate_config(_config(tmp_path / "a", records, backbone="resnet9000"))
    with pytest.raises(ValueError, match=r"'A', 'B', 'C'"):
        trainer.validate_config(_config(tmp_path / "a", records, top="Z"))
    with pytest.raises(ValueError, match=r"allowed 1\.\.4"):
        trainer.validate_config(_config(tmp_path / "a", records, scales=7))
    with pytest.raises(ValueError, match="mixed_float16"):
        trainer.validate_config(_config(tmp_path / "a", records, mixed_precision="fp8"))
    with pytest.raises(ValueError, match="data.prepare"):
        trainer.validate_config(_config(tmp_path / "a", str(tmp_path / "nowhere")))
    assert not os.path.exists(tmp_path / "a")


def test_cli_rejects_bad_flags_before_any_work(records, tmp_path):
    out = _run_cli(
        [f"--model_dir={tmp_path}/run", f"--records_dir={records}", "--backbone=tiny", "--top=Q"], timeout=120
    )
    assert out.returncode != 0
    assert "top='Q'" in out.stderr and "allowed" in out.stderr
    assert not os.path.exists(tmp_path / "run")  # nothing was written


def test_flags_file_reproduces_the_config(tmp_path):
    from absl import flags as absl_flags

    from stpa import train as train_cli
    from stpa.engine import flags as stpa_flags

    config = config_lib.from_values(
        dict(
            model_dir=str(tmp_path / "run"),
            records_dir="data/x",
            eval_split=None,
            model="st_attn",
            backbone="tiny",
            modality="flow",
            dropout=0.0,
            model_options={"mask_filters": (8, 8), "spatial_attention": False},
            lr_boundaries=(10, 20),
            lr_values=(1.0, 0.1, 0.01),
            max_steps=30,
            lambda_tv=0.5,
            jit_compile=True,
        )
    )
    path = checkpoints.write_flags_file(config.model_dir, config_lib.flag_lines(config))
    flag_values = absl_flags.FlagValues()
    stpa_flags.define_train_flags(flag_values)
    flag_values(["train", f"--flagfile={path}"])
    assert train_cli.config_from_flags(flag_values) == config


# ----------------------------------------------------------------------------------------------- the step
def test_loss_decreases_on_a_repeated_batch(records, tmp_path):
    run = trainer.Trainer(_config(tmp_path / "run", records, learning_rate=0.05, beta=0.0, dropout=0.0))
    frames, labels = next(iter(run.eval_dataset(2, 6)))[:2]  # 6 videos (2 per class), preprocessed
    fixed = run.strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors((frames, labels)).repeat())
    iterator = iter(fixed)
    step_fn = run.make_train_step()
    losses = [float(step_fn(iterator)["classification"]) for _ in range(15)]
    assert all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3]), losses
    assert int(run.step.numpy()) == 15 and int(run.optimizer.iterations.numpy()) == 15


def test_mirrored_two_replicas_matches_single_device(records, tmp_path):
    """Two logical CPUs (tests/conftest.py). Batch norm normalises each replica's half, so the reference is one
    device stepping on each half from the same weights: the mirrored loss is the mean of the two, and the first
    SGD update is the mean of the two updates."""
    assert len(tf.config.list_logical_devices("CPU")) >= 2, "conftest.py should split the CPU in two"
    config = _config(tmp_path / "single", records, beta=1e-4, gamma=1e-4, dropout=0.0)  # no random masks
    single = trainer.Trainer(config, tf.distribute.get_strategy())
    frames, labels = next(iter(single.eval_dataset(2, 6)))[:2]
    frames, labels = frames[:4], labels[:4]
    initial = [w.copy() for w in single.model.get_weights()]
    trainable = [v.path for v in single.model.trainable_variables]
    halves = []
    for half in (slice(0, 2), slice(2, 4)):
        single.model.set_weights(initial)
        for variable in single.optimizer.variables:
            variable.assign(tf.zeros_like(variable))
        terms = single.first_step_terms(frames[half], labels[half])
        weights = {v.path: v.numpy() for v in single.model.trainable_variables}
        halves.append((terms, weights))

    mirrored = trainer.Trainer(
        _config(tmp_path / "mirrored", records, beta=1e-4, gamma=1e-4, dropout=0.0),
        tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]),
    )
    assert mirrored.strategy.num_replicas_in_sync == 2
    mirrored.model.set_weights(initial)
    terms = mirrored.first_step_terms(frames, labels)
    for name in ("total", "classification", "weight_decay", "interaction", "attention"):
        expected = (halves[0][0][name] + halves[1][0][name]) / 2
        assert terms[name] == pytest.approx(expected, rel=1e-4, abs=1e-6), name
    after = {v.path: v.numpy() for v in mirrored.model.trainable_variables}
    for path in trainable:
        np.testing.assert_allclose(after[path], (halves[0][1][path] + halves[1][1][path]) / 2, rtol=1e-4, atol=1e-6)


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(records, tmp_path):
    config = _config(tmp_path / "run", records, learning_rate=1e18, max_steps=20, checkpoint_every=1)
    with pytest.raises(trainer.NonFiniteLossError, match=r"non-finite at step (\d+)") as info:
        trainer.train(config)
    failed = int(str(info.value).split("at step ")[1].split(" ")[0])
    latest = tf.train.latest_checkpoint(os.path.join(config.model_dir, "ckpt"))
    if failed > 1:
        assert latest is not None and int(latest.rsplit("-", 1)[1]) == failed - 1
        model = checkpoints.load_model(config.model_dir, "last")
        assert all(np.all(np.isfinite(w)) for w in model.get_weights())
    else:
        assert latest is None


def _weights_after_steps(
    config, *, policy: str = "float32", steps: int = 2, variables: str = "trainable"
) -> tuple[dict, dict, trainer.Trainer]:
    """Initial and after-`steps` weights {path: float64 array} on one fixed preprocessed batch.

    `variables`: "trainable", or "all" (also the BN moving statistics).
    """
    with trainer.precision_policy(policy):
        run = trainer.Trainer(config)
        frames, labels = next(iter(run.eval_dataset(2, 6)))[:2]  # 6 videos, preprocessed float32
        chosen = run.model.trainable_variables if variables == "trainable" else run.model.variables
        initial = {v.path: np.asarray(v.numpy(), np.float64) for v in chosen}
        iterator = iter(
            run.strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors((frames, labels)).repeat())
        )
        step_fn = run.make_train_step()
        for _ in range(steps):
            step_fn(iterator)
        after = {v.path: np.asarray(v.numpy(), np.float64) for v in chosen}
    return initial, after, run


def _assert_same_updates(reference, other, tolerance):
    """The two steps' weight changes agree: ||delta_other - delta_ref|| <= tolerance * ||delta_ref|| per variable."""
    (initial, after), (other_initial, other_after) = reference, other
    assert initial.keys() == other_initial.keys()
    moved = 0
    for path in initial:
        np.testing.assert_array_equal(other_initial[path], initial[path])  # same seed: same initial weights
        delta, other_delta = after[path] - initial[path], other_after[path] - other_initial[path]
        scale = np.linalg.norm(delta)
        moved += scale > 0
        assert np.linalg.norm(other_delta - delta) <= tolerance * scale + 1e-9, path
    assert moved > len(initial) // 2  # the comparison is not vacuous: most weights changed


def test_mixed_float16_two_steps_match_float32(records, tmp_path):
    overrides = dict(max_steps=2, dropout=0.0, beta=0.0, gamma=0.0)
    config = _config(tmp_path / "mp", records, mixed_precision="mixed_float16", **overrides)
    *mixed, run = _weights_after_steps(config, policy=config.optim.mixed_precision)
    assert isinstance(run.optimizer, keras.optimizers.LossScaleOptimizer)
    # The dynamic loss scale starts at 2^15 and halves on each step whose float16 gradients overflow; such a step
    # is skipped (no update, no momentum). On the same fixed batch, the float32 reference takes the applied steps.
    skipped = int(round(np.log2(32768.0 / float(run.optimizer.dynamic_scale.numpy()))))
    assert 0 <= skipped < 2, f"{skipped} of 2 steps skipped: nothing to compare"
    reference = _weights_after_steps(_config(tmp_path / "fp32", records, **overrides), steps=2 - skipped)[:2]
    # float16 activations carry ~3 significant digits (eps 9.8e-4), and the first convolution's gradient is a sum
    # over every pixel of float16 inputs: measured, its update differs from float32 by 6.8 % of its norm, the other
    # variables' by less. 15 % of the update's norm allows that with margin and still fails a loss scale left in
    # the gradients (x 2^15), a lost or doubled update (>= 100 %), or float16 master weights.
    _assert_same_updates(reference, mixed, tolerance=0.15)
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after the run


@pytest.mark.slow
def test_xla_compiled_two_steps_match_the_uncompiled_steps(records, tmp_path):
    """XLA's two steps update every variable (weights and BN moving statistics) as the uncompiled steps do.

    Seed 2, not the default 0 (issue 18): with seed 0 this batch puts one input of the ReLU after the attention
    (M'[2, 1, 0, 82] = A X, eight products up to 0.69 whose float64 sum is -4.7e-7) within float32 rounding of the
    kink. Uncompiled it is -4.6e-7, under XLA (another summation order) +5.7e-7: that element's gradient goes from 0
    to -0.0039, 2.3 % of dL/dM', and the attention kernels' first update differs by 4.9 % (forward pass, loss and
    classifier update agree to 3e-6); the second step, taken from already different weights, 19 %. A legitimate
    float32 effect of a non-smooth op, not a compiler or trainer bug. Measured worst relative difference over all
    variables after two steps with seeds 1, 2, 3, 42: 5.3e-4, 6.3e-5, 3.9e-4, 5.6e-5.
    """
    overrides = dict(max_steps=2, dropout=0.0, seed=2)
    reference = _weights_after_steps(_config(tmp_path / "plain", records, **overrides), variables="all")[:2]
    compiled = _weights_after_steps(_config(tmp_path / "xla", records, jit_compile=True, **overrides), variables="all")[
        :2
    ]
    # 1e-3 of each variable's change: 16 x the measured 6.3e-5 for this seed, far below a lost or doubled update, a
    # wrong BN training flag or moving-statistics update, or different random numbers (all >= 10 %). A failure
    # confined to a few variables at a few % can be a ReLU input within rounding of 0 again (see above).
    _assert_same_updates(reference, compiled, tolerance=1e-3)


# ------------------------------------------------------------------------------------------ the command line
def _scalar_tags(directory):
    from tensorboard.backend.event_processing import event_accumulator

    accumulator = event_accumulator.EventAccumulator(directory, size_guidance={"tensors": 0, "images": 0})
    accumulator.Reload()
    return set(accumulator.Tags()["tensors"])


@pytest.mark.slow
def test_streams_cli_trains_both_streams_writes_run_dirs_and_fuses(records, tmp_path):
    model_dir = tmp_path / "two_stream"
    out = _run_cli(
        [
            f"--model_dir={model_dir}",
            f"--records_dir={records}",
            *TINY_FLAGS,
            "--flow_length=2",
            "--streams=rgb,flow",
            "--max_steps=4",
            "--eval_every=2",
            "--log_every=2",
        ]
    )
    assert out.returncode == 0, out.stderr[-3000:]
    for stream in ("rgb", "flow"):
        run = model_dir / stream
        for name in ("flags.txt", "config.json", "best.keras", "ckpt/checkpoint", "best/checkpoint"):
            assert (run / name).exists(), (stream, name)
        assert tf.train.latest_checkpoint(str(run / "ckpt")).endswith("ckpt-4")
        assert json.loads((run / "config.json").read_text())["modality"] == stream
        train_tags = _scalar_tags(str(run / "train"))
        assert {
            "loss/total",
            "loss/classification",
            "loss/weight_decay",
            "loss/interaction",
            "loss/attention",
            "learning_rate",
            "top1",
            "clips_per_second",
        } <= train_tags
        validation_tags = _scalar_tags(str(run / "validation"))
        assert {"loss/total", "top1", "top5", "mean_class_accuracy"} <= validation_tags
        assert any(tag.startswith("attention/") for tag in validation_tags)  # Sec. 4.4 images
        flags_text = (run / "flags.txt").read_text()
        assert f"--modality={stream}" in flags_text and f"--model_dir={run}" in flags_text
    fused = json.loads((model_dir / "fused.json").read_text())
    assert len(fused["streams"]) == 2 and fused["weights"] == [1.0, 1.0]
    # Independent recomputation (stpa.fuse: the plain average of the raw scores, aligned by video id), float64.
    loaded = [np.load(stream["file"]) for stream in fused["streams"]]
    rgb, flow = loaded
    order = {video_id: i for i, video_id in enumerate(flow["video_ids"])}
    flow_rows = np.array([order[v] for v in rgb["video_ids"]])
    np.testing.assert_array_equal(flow["labels"][flow_rows], rgb["labels"])
    average = (rgb["scores"].astype(np.float64) + flow["scores"][flow_rows].astype(np.float64)) / 2  # (N, C)
    for stream, scores in zip(fused["streams"], loaded):
        assert stream["top1"] == np.mean(np.argmax(scores["scores"], axis=1) == scores["labels"])
    assert fused["fused"]["top1"] == np.mean(np.argmax(average, axis=1) == rgb["labels"])
    written = np.load(model_dir / "fused_scores.npz")
    np.testing.assert_array_equal(written["video_ids"], rgb["video_ids"])
    np.testing.assert_allclose(written["scores"], average, rtol=1e-6, atol=1e-6)  # stored as float32


@pytest.mark.slow
def test_resume_after_kill_continues_from_the_saved_step(records, tmp_path):
    model_dir = tmp_path / "run"
    args = [
        f"--model_dir={model_dir}",
        f"--records_dir={records}",
        *TINY_FLAGS,
        "--eval_split=",
        "--max_steps=100000",
        "--checkpoint_every=3",
        "--keep_checkpoints=2",
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "stpa.train", *args],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 180
    try:
        while time.time() < deadline:
            latest = tf.train.latest_checkpoint(str(model_dir / "ckpt"))
            if latest is not None and int(latest.rsplit("-", 1)[1]) >= 6:
                break
            assert process.poll() is None, process.stderr.read()[-3000:]
            time.sleep(0.5)
        else:
            pytest.fail("no checkpoint at step >= 6 within the time limit")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    saved = tf.train.latest_checkpoint(str(model_dir / "ckpt"))
    saved_step = int(saved.rsplit("-", 1)[1])
    reader = tf.train.load_checkpoint(saved)
    assert int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")) == saved_step

    # Re-run with the flags the run recorded: it resumes at the saved step with the saved weights and slots.
    from absl import flags as absl_flags

    from stpa import train as train_cli

    flag_values = absl_flags.FlagValues()
    from stpa.engine import flags as stpa_flags

    stpa_flags.define_train_flags(flag_values)
    flag_values(["train", f"--flagfile={model_dir}/flags.txt", f"--max_steps={saved_step + 2}"])
    config = train_cli.config_from_flags(flag_values)
    fresh_weights = trainer.Trainer(_config(tmp_path / "fresh", records)).model.get_weights()
    resumed = trainer.Trainer(config)
    assert resumed.start_step == saved_step
    assert int(resumed.optimizer.iterations.numpy()) == saved_step
    reference = checkpoints.load_model(str(model_dir), "last").get_weights()
    for got, want in zip(resumed.model.get_weights(), reference):
        np.testing.assert_array_equal(got, want)
    assert any(not np.array_equal(got, fresh) for got, fresh in zip(resumed.model.get_weights(), fresh_weights))
    momenta = [v.numpy() for v in resumed.optimizer.variables if "momentum" in v.path]
    assert momenta and any(np.any(m != 0) for m in momenta)  # SGD momentum slots restored, not re-initialised
    result = resumed.train()
    assert (result.start_step, result.step) == (saved_step, saved_step + 2)
    assert tf.train.latest_checkpoint(str(model_dir / "ckpt")).endswith(f"ckpt-{saved_step + 2}")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_multi_worker_two_local_processes(records, tmp_path):
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    model_dir = tmp_path / "mw"
    args = [
        f"--model_dir={model_dir}",
        f"--records_dir={records}",
        *TINY_FLAGS,
        "--eval_split=",
        "--max_steps=3",
        "--strategy=multi_worker",
        "--checkpoint_every=3",
    ]
    processes = []
    for index in range(2):
        env = dict(ENV, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "stpa.train", *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=240))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    assert tf.train.latest_checkpoint(str(model_dir / "ckpt")).endswith("ckpt-3")
    assert not (model_dir / ".worker1").exists()  # the non-chief's scratch checkpoint is removed
    # One cluster, not two independent runs: only worker 0 (the chief) checkpoints and writes TensorBoard events.
    # What the workers compute (identical weights, disjoint inputs, equal to one device) is in test_multi_worker.py.
    assert f"checkpoint: {model_dir}/ckpt/ckpt-3" in outputs[0][0] and "checkpoint: None" in outputs[1][0]
    assert len(list((model_dir / "train").glob("events.out.tfevents.*"))) == 1
    assert json.loads((model_dir / "config.json").read_text())["build"]["num_classes"] == NUM_CLASSES


@pytest.mark.slow
def test_st_attn_cached_feature_mode_trains_and_evaluates(records, tmp_path):
    from st_attn import feature_cache
    from stpa import models
    from stpa.blocks import backbones
    from stpa.engine import evaluation

    extractor = backbones.feature_extractor("tiny", input_size=32)
    for split in ("train", "test"):
        feature_cache.extract_features(
            os.path.join(records, split),
            str(tmp_path / "features" / split),
            extractor,
            num_frames=5,
            input_size=32,
            preprocess=models.preprocess_for("tiny", "rgb"),
            progress=False,
        )
    options = {"mask_filters": (8, 8), "lstm_units": 8, "init_filters": 8, "attention_units": 8}
    config = _config(
        tmp_path / "run",
        None,
        features_dir=str(tmp_path / "features"),
        model="st_attn",
        train_frames=4,
        eval_frames=5,
        eval_every=2,
        model_options=options,
    )
    result = trainer.train(config)
    assert result.step == 4
    assert {"loss/tv", "loss/contrast", "loss/unimodal"} <= set(result.train_metrics)  # ST-attn's regularisers
    run_config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert run_config["input"] == "features" and run_config["build"]["feature_shape"] == [2, 2, 128]
    report = evaluation.evaluate(
        records_dir=str(tmp_path / "features"), model_dir=config.model_dir, test_frames=5, progress=False
    )
    assert report["num_videos"] == 2 * NUM_CLASSES
    assert report["top1"] == pytest.approx(result.validation[-1][1]["top1"])

    # The localisation / picture commands read the same run through st_attn.attention_runs' loaders.
    from st_attn import attention_runs

    probe, build = attention_runs.load_trained(config.model_dir, None)
    dataset, input_size = attention_runs.attention_dataset(
        build, records_split=None, features_split=str(tmp_path / "features" / "test"), num_frames=5, batch_size=2
    )
    inputs, _, metadata = next(iter(dataset))
    outputs = probe(inputs, training=False)
    assert input_size == 32 and inputs.shape[:2] == (2, 5) and metadata["video_id"].shape == (2,)
    np.testing.assert_allclose(outputs["temporal_weights"].numpy().sum(axis=-1), 1.0, rtol=1e-5)
