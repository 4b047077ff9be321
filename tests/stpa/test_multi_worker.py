"""Multi-worker training with two local worker processes (`MultiWorkerMirroredStrategy`, TF_CONFIG on 127.0.0.1).

What users rely on, checked on a tiny STPA model with every batch norm frozen (`frozen_bn`, so each clip's output
depends on that clip only) and no dropout: the two workers end with identical weights; each worker consumed its own
part of every global batch (different videos: worker i reads shard i); and the result equals one device stepping on
the union of the two parts (the same global batch), within float32 summation-order tolerance.

The module is also the worker program: ``python -m tests.stpa.test_multi_worker OUT MODEL_DIR RECORDS`` trains with
the strategy TF_CONFIG describes and saves what it consumed and its weights to OUT (.npz).
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
STEPS = 4
GLOBAL_BATCH = 4
# float32 weights after STEPS SGD steps: the two-worker gradient is (sum over each worker's 2 clips) / 2, all-reduced,
# the one-device gradient the mean over 4 clips; equal in exact arithmetic, they differ by summation order only
# (about 1e-7 relative per step). Measured differences are ~1e-8; 1e-6 absolute on weights of magnitude ~0.1 still
# fails on any real difference (one other clip in a batch moves the weights by > 1e-4).
ATOL, RTOL = 1e-6, 1e-5


def _config(model_dir, records_dir):

    from stpa.engine import config as config_lib

    return config_lib.from_values(
        dict(
            model_dir=str(model_dir),
            records_dir=records_dir,
            backbone="tiny",
            input_size=32,
            train_frames=2,
            batch_size=GLOBAL_BATCH,
            learning_rate=0.05,
            max_steps=STEPS,
            eval_split=None,
            log_every=STEPS,
            checkpoint_every=STEPS,
            progress=False,
            summary_images=False,
            deterministic=True,
            seed=3,
            dropout=0.0,
            model_options={"frozen_bn": True},
        )
    )


def _worker(out_path, model_dir, records_dir):
    """One worker: records the local batches its training stream yields, trains, saves everything to out_path."""
    from stpa.engine import distribute, trainer

    strategy = distribute.make_strategy("multi_worker")  # Before any other TensorFlow op.
    run = trainer.Trainer(_config(model_dir, records_dir), strategy)
    initial = [w.copy() for w in run.model.get_weights()]
    # The same stream the training loop builds (seed, skip 0), with the video ids: what this worker will consume.
    iterator = iter(run.train_dataset(run.config.loop.seed, with_metadata=True))
    frames, labels, video_ids = [], [], []
    for _ in range(STEPS):
        batch_frames, batch_labels, metadata = next(iterator)
        (local_frames,) = strategy.experimental_local_results(batch_frames)  # One replica per worker.
        (local_labels,) = strategy.experimental_local_results(batch_labels)
        (local_ids,) = strategy.experimental_local_results(metadata["video_id"])
        frames.append(local_frames.numpy())
        labels.append(local_labels.numpy())
        video_ids.append(local_ids.numpy().astype(str))
    result = run.train()
    final = run.model.get_weights()
    np.savez(
        out_path,
        frames=np.stack(frames),
        labels=np.stack(labels),
        video_ids=np.stack(video_ids),
        step=result.step,
        input_clips=int(run.input_clips.numpy()),
        **{f"initial_{i}": w for i, w in enumerate(initial)},
        **{f"final_{i}": w for i, w in enumerate(final)},
    )


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Tiny records (2 shards) with `.offsets` indices, as `data.prepare` writes them."""
    from tests.stpa.cli_fixtures import write_tiny_records_with_offsets

    return write_tiny_records_with_offsets(str(tmp_path_factory.getbasetemp() / "multi_worker_records"))


def _weights(saved, prefix):
    return [saved[f"{prefix}_{i}"] for i in range(sum(key.startswith(prefix) for key in saved.files))]


def test_frozen_bn_makes_each_clip_independent_of_the_batch():
    """`frozen_bn`: in training mode a clip's logits are the same alone or in a batch (what makes n workers = 1)."""
    import keras

    from stpa import models

    keras.utils.set_random_seed(0)
    model = models.build_model("stpa", "tiny", num_classes=3, scales=3, input_size=32, dropout=0.0, frozen_bn=True)
    batch_norms = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    assert batch_norms and not any(layer.trainable for layer in batch_norms)
    assert not any("moving" in v.path or "gamma" in v.path or "beta" in v.path for v in model.trainable_variables)
    clips = np.random.default_rng(0).normal(size=(4, 2, 32, 32, 3)).astype(np.float32)
    together = model(clips, training=True).numpy()
    for index in range(4):
        alone = model(clips[index : index + 1], training=True).numpy()
        np.testing.assert_allclose(alone[0], together[index], rtol=1e-5, atol=1e-6)
    unfrozen = models.build_model("stpa", "tiny", num_classes=3, scales=3, input_size=32, dropout=0.0)
    unfrozen.set_weights(model.get_weights())
    assert not np.allclose(
        unfrozen(clips[:1], training=True).numpy()[0], unfrozen(clips, training=True).numpy()[0], atol=1e-4
    )  # batch statistics: the same clip scores differently in another batch
    from stpa.engine import config as config_lib

    with pytest.raises(ValueError, match="frozen_bn"):  # not an option of ST-attn (its own layers have batch norm)
        config_lib.from_values({"model_dir": "x", "model": "st_attn", "model_options": {"frozen_bn": True}})


@pytest.mark.slow
def test_two_workers_equal_each_other_and_one_device_on_the_same_global_batch(records, tmp_path):
    import tensorflow as tf

    from stpa.engine import checkpoints, trainer

    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    model_dir = tmp_path / "mw"
    outputs = [str(tmp_path / f"worker{index}.npz") for index in range(2)]
    processes = []
    for index in range(2):
        env = dict(ENV, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "tests.stpa.test_multi_worker", outputs[index], str(model_dir), records],
                env=env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    logs = []
    try:
        for process in processes:
            logs.append(process.communicate(timeout=240))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for process, (_, stderr) in zip(processes, logs):
        assert process.returncode == 0, stderr[-3000:]
    saved = [np.load(path) for path in outputs]
    assert [int(s["step"]) for s in saved] == [STEPS, STEPS]
    assert [int(s["input_clips"]) for s in saved] == [STEPS * GLOBAL_BATCH] * 2  # global clips, on every worker

    # 1. Both workers end with identical weights (and started from identical ones), which the chief checkpointed.
    for a, b in zip(_weights(saved[0], "initial"), _weights(saved[1], "initial"), strict=True):
        np.testing.assert_array_equal(a, b)
    finals = [_weights(s, "final") for s in saved]
    for a, b in zip(*finals, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(_weights(saved[0], "initial"), finals[0]))  # it trained
    chief = checkpoints.load_model(str(model_dir), "last").get_weights()
    for a, b in zip(chief, finals[0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert not (model_dir / ".worker1").exists()

    # 2. Each worker consumed its own half of every global batch: with 2 shards, worker i reads shard i only.
    from data import records as record_format

    ids = [s["video_ids"] for s in saved]
    assert ids[0].shape == ids[1].shape == (STEPS, GLOBAL_BATCH // 2)
    shards = record_format.record_files(os.path.join(records, "train"))
    assert len(shards) == 2
    for index, shard in enumerate(shards):
        shard_ids = {
            tf.train.SequenceExample.FromString(r.numpy())
            .context.feature[record_format.VIDEO_ID]
            .bytes_list.value[0]
            .decode()
            for r in tf.data.TFRecordDataset(shard)
        }
        assert set(ids[index].ravel()) <= shard_ids, index
    assert not set(ids[0].ravel()) & set(ids[1].ravel())  # disjoint parts of each global batch

    # 3. One device on the union of the two halves (the same global batch), from the same initial weights.
    reference = trainer.Trainer(_config(tmp_path / "one", records), tf.distribute.get_strategy())
    reference.model.set_weights(_weights(saved[0], "initial"))
    for step in range(STEPS):
        frames = np.concatenate([s["frames"][step] for s in saved])  # uint8 (4, K, S, S, 3)
        labels = np.concatenate([s["labels"][step] for s in saved])
        reference.first_step_terms(tf.constant(frames), tf.constant(labels))
    assert int(reference.optimizer.iterations.numpy()) == STEPS
    largest = 0.0
    for got, want in zip(reference.model.get_weights(), finals[0], strict=True):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
        largest = max(largest, float(np.max(np.abs(got.astype(np.float64) - want))))
    print(f"max |one device - two workers| = {largest:.3g}")

    # The comparison can fail: one device on worker 0's part only ends elsewhere.
    other = trainer.Trainer(_config(tmp_path / "half", records), tf.distribute.get_strategy())
    other.model.set_weights(_weights(saved[0], "initial"))
    for step in range(STEPS):
        other.first_step_terms(tf.constant(saved[0]["frames"][step]), tf.constant(saved[0]["labels"][step]))
    assert any(np.max(np.abs(a - b)) > 100 * ATOL for a, b in zip(other.model.get_weights(), finals[0]))


if __name__ == "__main__":
    _worker(*sys.argv[1:4])
