"""`tf.distribute` strategy factory for the command lines: one device, many GPUs, many machines.

Strategies (`--strategy`):
- default: the default strategy (one device: the first GPU if any, else the CPU).
- mirrored: `MirroredStrategy`, synchronous data parallelism over the GPUs of one machine (or the logical CPU
  devices when there is no GPU); gradients are all-reduced (summed) every step.
- multi_worker: `MultiWorkerMirroredStrategy`, the same over several machines, configured by the `TF_CONFIG`
  environment variable ({"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}});
  every machine runs the same command. It must be created before any other TensorFlow op.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker")


def make_strategy(name: str = "default", *, devices: list[str] | None = None) -> tf.distribute.Strategy:
    """Creates the strategy `name`.

    Args:
      name: one of `STRATEGIES`.
      devices: for "mirrored", the devices to mirror over (default: all GPUs, else all logical CPUs).

    Returns:
      The strategy.

    Raises:
      ValueError: unknown name, or "multi_worker" without a usable TF_CONFIG.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if devices is None:
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker":
        check_tf_config()
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.AUTO
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    raise ValueError(f"--strategy must be one of {list(STRATEGIES)}, got {name!r}.")


def check_tf_config() -> dict:
    """Returns the parsed TF_CONFIG, or raises ValueError explaining what `multi_worker` needs."""
    raw = os.environ.get("TF_CONFIG")
    example = (
        'TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}\''
    )
    if not raw:
        raise ValueError(
            f"--strategy=multi_worker needs the TF_CONFIG environment variable on every machine, e.g. {example}"
        )
    try:
        config = json.loads(raw)
        workers = config["cluster"]["worker"]
        task = config["task"]
        if task["type"] not in ("worker", "chief") or not workers:
            raise KeyError("task.type")
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"TF_CONFIG is not a valid cluster spec ({error}): {raw!r}; expected e.g. {example}"
        ) from error
    return config


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes checkpoints and summaries (always true outside multi-worker training)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type is None or task_type == "chief" or (task_type == "worker" and task_id == 0)


def worker_index(strategy: tf.distribute.Strategy) -> int:
    """This worker's index (0 outside multi-worker training)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 0
    return int(resolver.task_id or 0)
