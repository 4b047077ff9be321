"""Exact resume: a deterministic run killed (SIGKILL) after a checkpoint and re-run equals an uninterrupted run.

What makes it exact (`stpa.engine.trainer`): the stream is a function of (seed, position) and a resumed run drops
the clips already consumed (`data.pipeline.build_dataset(skip=...)`) before reading any frames; the checkpoint holds
the number of clips consumed and the Keras SeedGenerator states (dropout). Checkpoints written before these existed
still resume, with a warning.
"""

import glob
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from data import pipeline
from stpa.engine import checkpoints, trainer
from tests.stpa.cli_fixtures import write_tiny_records_with_offsets

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
# Dropout stays at the RGB default (0.5), so the checkpointed SeedGenerator state matters.
RUN_FLAGS = [
    "--backbone=tiny",
    "--input_size=32",
    "--train_frames=2",
    "--batch_size=4",
    "--learning_rate=0.01",
    "--noprogress",
    "--eval_split=",
    "--deterministic",
    "--seed=3",
    "--log_every=4",
    "--checkpoint_every=4",
    "--keep_checkpoints=20",
]
MAX_STEPS = 24


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Tiny records with `.offsets` indices (the reader `stpa.train` uses on `data.prepare` output)."""
    return write_tiny_records_with_offsets(str(tmp_path_factory.getbasetemp() / "resume_records"))


def _train_command(model_dir, records_dir):
    return [
        sys.executable,
        "-m",
        "stpa.train",
        f"--model_dir={model_dir}",
        f"--records_dir={records_dir}",
        *RUN_FLAGS,
        f"--max_steps={MAX_STEPS}",
    ]


def _checkpoint_values(path):
    reader = tf.train.load_checkpoint(path)
    return {
        name: reader.get_tensor(name) for name, _ in tf.train.list_variables(path) if name.endswith("VARIABLE_VALUE")
    }


def _steps(model_dir):
    return sorted(
        int(path.rsplit("-", 1)[1].split(".")[0]) for path in glob.glob(os.path.join(model_dir, "ckpt", "ckpt-*.index"))
    )


def _logged_losses(event_file):
    """{step: loss/total} of one TensorBoard event file."""
    values = {}
    for record in tf.data.TFRecordDataset(event_file):
        event = tf.compat.v1.Event.FromString(record.numpy())
        for value in event.summary.value:
            if value.tag == "loss/total":
                values[event.step] = float(tf.make_ndarray(value.tensor))
    return values


# ------------------------------------------------------------------------------------------------- the stream
@pytest.mark.parametrize("reader", ["offsets", "records"])
def test_skip_continues_the_stream_of_each_input_pipeline(records, reader):
    def stream(skip, context=None, clips_per_video=1):
        return pipeline.build_dataset(
            os.path.join(records, "train"),
            training=True,
            num_frames=2,
            batch_size=4,
            input_size=32,
            seed=3,
            deterministic=True,
            frames_dtype="uint8",
            reader=reader,
            skip=skip,
            input_context=context,
            clips_per_video=clips_per_video,
            with_metadata=True,
        )

    for context, clips_per_video in ((None, 1), (tf.distribute.InputContext(2, 1, 2), 1), (None, 3)):
        per_batch = 4 if context is None else 2
        whole = list(stream(0, context, clips_per_video).take(9).as_numpy_iterator())
        resumed = list(stream(5 * per_batch, context, clips_per_video).take(4).as_numpy_iterator())
        for (frames, labels, metadata), (frames_r, labels_r, metadata_r) in zip(whole[5:], resumed, strict=True):
            np.testing.assert_array_equal(frames_r, frames)
            np.testing.assert_array_equal(labels_r, labels)
            np.testing.assert_array_equal(metadata_r["video_id"], metadata["video_id"])
            np.testing.assert_array_equal(metadata_r["frame_indices"], metadata["frame_indices"])
        # Not a constant stream: the clips after the skip differ from the first ones.
        assert not np.array_equal(whole[5][0], whole[0][0])
    with pytest.raises(ValueError, match="skip"):
        pipeline.build_dataset(os.path.join(records, "test"), training=False, num_frames=2, batch_size=4, skip=4)


# ------------------------------------------------------------------------------------------ SIGKILL and re-run
@pytest.mark.slow
def test_resume_after_sigkill_is_bit_identical_to_an_uninterrupted_run(records, tmp_path):
    whole_dir, killed_dir = str(tmp_path / "whole"), str(tmp_path / "killed")
    done = subprocess.run(
        _train_command(whole_dir, records), env=ENV, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]

    process = subprocess.Popen(
        _train_command(killed_dir, records), env=ENV, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 240
    try:
        while checkpoints.latest_checkpoint(killed_dir) is None:
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.time() < deadline, "no checkpoint within the time limit"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    resumed_from = checkpoints.latest_checkpoint(killed_dir)
    resume_step = int(resumed_from.rsplit("-", 1)[1])
    assert resume_step < MAX_STEPS, "the run finished before the kill; nothing was resumed"
    events_before = set(glob.glob(os.path.join(killed_dir, "train", "events.out.tfevents.*")))

    again = subprocess.run(
        _train_command(killed_dir, records), env=ENV, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr[-3000:]
    output = again.stdout + again.stderr
    assert f"steps {resume_step} -> {MAX_STEPS}" in output  # stpa.train's summary: it resumed at the checkpoint
    assert "not exact" not in output

    # Every checkpoint, those of the killed process and those of the re-run, equals the uninterrupted run's: weights,
    # optimizer slots and iterations, the dropout SeedGenerator state and the clips consumed.
    steps = _steps(whole_dir)
    assert steps == list(range(4, MAX_STEPS + 1, 4)) and _steps(killed_dir) == steps
    for step in steps:
        whole = _checkpoint_values(os.path.join(whole_dir, "ckpt", f"ckpt-{step}"))
        killed = _checkpoint_values(os.path.join(killed_dir, "ckpt", f"ckpt-{step}"))
        assert sorted(killed) == sorted(whole)
        assert "rng_states/0/.ATTRIBUTES/VARIABLE_VALUE" in whole  # the dropout layer's state is saved
        assert int(whole["input_clips/.ATTRIBUTES/VARIABLE_VALUE"]) == 4 * step
        for name, value in whole.items():
            np.testing.assert_array_equal(killed[name], value, err_msg=f"step {step}: {name}")

    # TensorBoard: the re-run logs the same steps with the same values as the uninterrupted run from the resume on.
    (new_events,) = set(glob.glob(os.path.join(killed_dir, "train", "events.out.tfevents.*"))) - events_before
    resumed_losses = _logged_losses(new_events)
    whole_losses = {}
    for path in glob.glob(os.path.join(whole_dir, "train", "events.out.tfevents.*")):
        whole_losses.update(_logged_losses(path))
    assert sorted(resumed_losses) == [s for s in range(4, MAX_STEPS + 1, 4) if s > resume_step]
    for step, value in resumed_losses.items():
        assert value == whole_losses[step], step


# ------------------------------------------------------------------------------- run directories of older code
def _config(model_dir, records_dir, max_steps):
    from stpa.engine import config as config_lib

    return config_lib.from_values(
        dict(
            model_dir=str(model_dir),
            records_dir=records_dir,
            backbone="tiny",
            input_size=32,
            train_frames=2,
            batch_size=4,
            learning_rate=0.01,
            max_steps=max_steps,
            eval_split=None,
            log_every=2,
            checkpoint_every=2,
            progress=False,
            summary_images=False,
            deterministic=True,
            seed=3,
        )
    )


@pytest.mark.slow
def test_checkpoint_without_resume_state_resumes_with_a_warning(records, tmp_path, caplog):
    model_dir = tmp_path / "old"
    run = trainer.Trainer(_config(model_dir, records, 2))
    run.train()
    # Rewrite the last checkpoint with only the objects earlier versions saved (no input position, no RNG state).
    old_layout = checkpoints.weights_checkpoint(
        run.model, optimizer=run.optimizer, step=run.step, best_metric=run.best_metric
    )
    for path in glob.glob(os.path.join(model_dir, "ckpt", "*")):
        os.remove(path)
    tf.train.CheckpointManager(old_layout, os.path.join(model_dir, "ckpt"), max_to_keep=1).save(checkpoint_number=2)
    assert checkpoints.missing_resume_state(checkpoints.latest_checkpoint(str(model_dir))) == ["input_clips"]
    saved = [w.copy() for w in run.model.get_weights()]

    with caplog.at_level("WARNING"):
        resumed = trainer.Trainer(_config(model_dir, records, 4))
    warnings = [r.getMessage() for r in caplog.records if "not exact" in r.getMessage()]
    assert len(warnings) == 1 and "ckpt-2" in warnings[0] and "\n" not in warnings[0]
    assert resumed.start_step == 2 and not resumed.exact_resume
    assert int(resumed.input_clips.numpy()) == 2 * 4  # the stream continues after step x batch clips
    for got, want in zip(resumed.model.get_weights(), saved, strict=True):
        np.testing.assert_array_equal(got, want)
    result = resumed.train()
    assert (result.start_step, result.step) == (2, 4)
    assert checkpoints.missing_resume_state(result.checkpoint) == []  # new checkpoints carry the state
