"""The custom training loop behind `python -m stpa.train` (a library: plain arguments, no flags).

One step (Sec. 3.3-3.4 of Du et al.): a batch of K-frame clips (TSN segment sampling, K = 3) goes through the model
under `strategy.run`; the run's model family (`engine.family`) gives every weighted term of its objective (STPA's
Eq. 9: cross-entropy, lambda sum w^2, beta l_interactive, gamma l_attn; ST-attn's regularisers; ...), the engine sums
them; each replica divides its total by the number of replicas, so the all-reduced (summed) gradient is the
gradient of the global-batch mean; SGD with momentum applies it.

Around the step:
- checkpoints (`tf.train.CheckpointManager`: model, optimizer slots, step, best metric, the layers' random-number
  state and the number of training clips consumed) every `checkpoint_every` steps; a re-run with the same `model_dir`
  resumes (the learning-rate schedule reads the restored optimizer step) and continues the input stream where it
  stopped (`data.pipeline.build_dataset(skip=...)`): with `deterministic`, a run killed after a checkpoint and
  re-run ends bit-identical to an uninterrupted one;
- validation every `eval_every` steps on the test split (K = `eval_frames`), keeping the best weights (best/,
  best.keras) and writing attention images;
- TensorBoard scalars (model_dir/train, model_dir/validation): the total loss, each Eq. 9 term, learning rate,
  top-1, clips/s; a tqdm progress bar with ETA;
- the family's attention statistics (`ModelFamily.attention_scalars`, e.g. STPA's row entropy and L1 mass of A),
  computed inside the step from the outputs it already has, averaged over the logging window: TensorBoard
  `attention/<name>` (model_dir/train) and rows `step,<name>,...` of `model_dir/attention_statistics.csv`; a resumed
  run first drops the rows after its checkpoint's step;
- precise BN (`precise_bn_batches` > 0): at the last step the batch-norm moving statistics are re-estimated as plain
  averages over that many training batches, before the final validation and checkpoint (`engine.precise_bn`);
- a NaN/Inf loss stops the run with `NonFiniteLossError` naming the step; the last good checkpoint is kept.
- mixed precision (Keras policy + `LossScaleOptimizer` for float16) and XLA (`jit_compile`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import time

import keras
import tensorflow as tf
import tqdm
from absl import logging

from data import files
from stpa.engine import checkpoints, distribute, inference, inputs, metrics, precise_bn, schedules, summaries
from stpa.engine import config as config_lib
from stpa.engine import family as family_lib

ATTENTION_CSV = "attention_statistics.csv"
ATTENTION_PREFIX = "attention/"  # the step's results named so are attention statistics, not loss terms


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or Inf."""


@dataclasses.dataclass
class TrainResult:
    """What a finished run reports.

    Attributes:
      model_dir: the run directory.
      step: the final step.
      start_step: the step the run resumed from (0 for a fresh run).
      train_metrics: the last logged training scalars.
      validation: list of (step, metrics dict) of each validation.
      best_metric: best validation top-1 (mAP for multi-label), or None.
      checkpoint: path of the last checkpoint.
    """

    model_dir: str
    step: int
    start_step: int
    train_metrics: dict
    validation: list
    best_metric: float | None
    checkpoint: str | None


def validate_config(config: config_lib.RunConfig, *, check_paths: bool = True) -> None:
    """Fails fast (ValueError listing the allowed values) on wrong or contradictory settings, before any work.

    Args:
      config: the run's configuration.
      check_paths: also check that the input's splits exist (off when only parsing flagfiles).
    """
    family = family_lib.get_family(config.model)
    config_lib.check_choices(config)
    family.validate(config.family, config.data)
    config.schedule()  # Raises on an inconsistent schedule.
    if not config.model_dir:
        raise ValueError("--model_dir is required: the run directory for checkpoints and logs.")
    if check_paths:
        provided = family.selected_input(config.family)
        if provided is None and not config.data.records_dir:
            raise ValueError("--records_dir is required: the --out_dir of `python -m data.prepare`.")
        source = inputs.choose(family, config, input_size=0)
        source.check_splits([config.data.train_split] + ([config.data.eval_split] if config.data.eval_split else []))


@contextlib.contextmanager
def precision_policy(name: str):
    """Sets the Keras dtype policy for the duration of a run (and restores the previous one)."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32" if name == "none" else name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def make_optimizer(config: config_lib.OptimConfig, schedule: schedules.Schedule) -> keras.optimizers.Optimizer:
    """SGD with momentum (paper) or Adam on the piecewise-constant schedule; loss-scaled under mixed_float16.

    Weight decay is not the optimizer's: it is the lambda sum w^2 term of Eq. 9 inside the loss.
    """
    learning_rate = schedule.learning_rate()
    if config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate=learning_rate, momentum=config.momentum)
    else:
        optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    if config.mixed_precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def top1_hits(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Number of clips whose highest-scoring class is (one of) the true class(es); float32 scalar."""
    predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)  # (B,)
    if labels.shape.rank == 2:  # Multi-hot: a hit when the top class is among the positives.
        return tf.reduce_sum(tf.gather(tf.cast(labels, tf.float32), predicted, axis=1, batch_dims=1))
    return tf.reduce_sum(tf.cast(tf.equal(predicted, tf.cast(labels, tf.int32)), tf.float32))


@dataclasses.dataclass
class RunPlan:
    """What a run is, worked out before any TensorFlow state exists (`plan_run`).

    Attributes:
      family: the registered `engine.family.ModelFamily`.
      input_spec: frame size, channels, normalisation of the model's input.
      source: the input source (`engine.inputs`), chosen once.
      manifest: the train split's manifest.
      num_classes: C.
      multi_label: multi-hot labels.
      class_names: the records' class names.
      feature_shape: (h, w, C) when the source yields features, else None.
      run_config: the config.json dict (`checkpoints.run_config_dict`).
    """

    family: family_lib.ModelFamily
    input_spec: family_lib.InputSpec
    source: inputs.InputSource
    manifest: dict
    num_classes: int
    multi_label: bool
    class_names: list
    feature_shape: list[int] | None
    run_config: dict


def plan_run(config: config_lib.RunConfig, manifest: dict | None = None) -> RunPlan:
    """Validates `config` (fail fast) and resolves its family, input source, classes and config.json.

    Args:
      config: the run's configuration.
      manifest: the train split's manifest (read from the input source when None; paths are then checked).
    """
    validate_config(config, check_paths=manifest is None)
    family = family_lib.get_family(config.model)
    spec = family.input_spec(config.family, config.data)
    source = inputs.choose(family, config, spec.size)
    manifest = manifest if manifest is not None else source.read_manifest(config.data.train_split)
    num_classes = int(config.data.num_classes or manifest["num_classes"])
    multi_label = bool(manifest.get("multi_label", False))
    class_names = list(manifest.get("class_names") or [])
    feature_shape = source.feature_shape(manifest)
    run_config = checkpoints.run_config_dict(
        build=family.build_kwargs(config.family, num_classes, config.data, feature_shape=feature_shape),
        input_name=source.name,
        multi_label=multi_label,
        class_names=class_names,
        train_frames=config.data.train_frames,
        data=config.data,
        input_size=spec.size,
        model=config.model,
        family_entries=family.run_config_entries(config.family),
    )
    flip_label_map = source.flip_label_map(manifest)
    if flip_label_map:  # only where a mirrored clip changes class: config.json of other runs stays as it was
        run_config["flip_label_map"] = flip_label_map
    return RunPlan(family, spec, source, manifest, num_classes, multi_label, class_names, feature_shape, run_config)


class Trainer:
    """Trains a planned run: model, optimizer, checkpoints, input pipelines, the loop.

    Create it once per process (the strategy must exist before other TensorFlow work for `multi_worker`).

    Attributes:
      config: the RunConfig.
      strategy: the tf.distribute strategy.
      model: the keras.Model (logits).
      outputs_model: the same weights with the attention outputs (the family's `outputs_model`).
      optimizer: the optimizer.
      step: int64 tf.Variable, the number of finished steps.
      input_clips: int64 tf.Variable, training clips consumed over all workers (where a resumed stream continues).
      exact_resume: False when the run resumed from a checkpoint without the input position and RNG state.
    """

    def __init__(
        self,
        config: config_lib.RunConfig,
        strategy: tf.distribute.Strategy | None = None,
        *,
        manifest: dict | None = None,
    ):
        """Sets up the run (no training yet): plan, model and optimizer, checkpoints (restored), run files.

        Args:
          config: the run's configuration (validated here).
          strategy: a strategy to use instead of creating `config.loop.strategy`'s.
          manifest: the train split's manifest (read from the input source when None).
        """
        self.config = config
        self.strategy = strategy or distribute.make_strategy(config.loop.strategy)
        plan = plan_run(config, manifest)
        self.family, self.input_spec, self.source = plan.family, plan.input_spec, plan.source
        self.manifest, self.num_classes, self.multi_label = plan.manifest, plan.num_classes, plan.multi_label
        self.class_names, self.feature_shape, self.run_config = plan.class_names, plan.feature_shape, plan.run_config
        self.input_size = self.input_spec.size
        self.schedule = config.schedule()
        self.is_chief = distribute.is_chief(self.strategy)
        if self.is_chief:
            checkpoints.check_same_architecture(config.model_dir, self.run_config)
        # Features are already the backbone's output; frames are normalised for the model.
        self.preprocess = self.input_spec.preprocess if self.source.frames_on_device else tf.identity
        self._build_model_and_optimizer()
        self._make_checkpoints()
        self.start_step = self.restore()
        if self.is_chief:
            checkpoints.save_run_config(config.model_dir, self.run_config)
            checkpoints.write_flags_file(config.model_dir, config_lib.flag_lines(config))
        self._train_step = None
        self._distributed_step = None
        self._eval_fn = None

    def _build_model_and_optimizer(self) -> None:
        """Seeds, then builds the family's model, its outputs model, the optimizer and the run's counters."""
        config = self.config
        keras.utils.set_random_seed(config.loop.seed)
        if config.loop.deterministic:
            tf.config.experimental.enable_op_determinism()
        with self.strategy.scope():
            self.model = self.family.build(
                config.family,
                self.num_classes,
                dataclasses.replace(config.data, input_size=self.input_size),
                feature_shape=self.feature_shape,
            )
            self.outputs_model = self.family.outputs_model(self.model)
            self.optimizer = make_optimizer(config.optim, self.schedule)
            self.optimizer.build(self.model.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.best_metric = tf.Variable(-1.0, dtype=tf.float64, trainable=False, name="best_metric")
            self.input_clips = tf.Variable(0, dtype=tf.int64, trainable=False, name=checkpoints.INPUT_POSITION)

    def _make_checkpoints(self) -> None:
        """The training checkpoint (model, optimizer, counters, RNG state) and the managers of ckpt/ and best/."""
        self.checkpoint = checkpoints.weights_checkpoint(
            self.model,
            optimizer=self.optimizer,
            step=self.step,
            best_metric=self.best_metric,
            **{
                checkpoints.INPUT_POSITION: self.input_clips,
                checkpoints.RNG_STATES: checkpoints.rng_state_variables(self.model),
            },
        )
        self.exact_resume = True
        self.manager = tf.train.CheckpointManager(
            self.checkpoint,
            self._checkpoint_dir(checkpoints.CHECKPOINT_DIR),
            max_to_keep=self.config.loop.keep_checkpoints,
        )
        self.best_manager = tf.train.CheckpointManager(
            checkpoints.weights_checkpoint(self.model), self._checkpoint_dir(checkpoints.BEST_DIR), max_to_keep=1
        )

    # ----------------------------------------------------------------------------------------------- set-up helpers
    def _loss_terms(self, outputs, labels) -> dict[str, tf.Tensor]:
        """The family's weighted objective terms and their "total"."""
        return family_lib.total_loss(
            self.family.loss_terms(
                self.config.family,
                outputs,
                labels,
                self.model,
                multi_label=self.multi_label,
                weight_decay=self.config.optim.weight_decay,
            )
        )

    def _checkpoint_dir(self, name: str) -> str:
        """Chief: model_dir/name. Other workers write to a scratch directory they delete (TF's multi-worker rule)."""
        if self.is_chief:
            return os.path.join(self.config.model_dir, name)
        worker = distribute.worker_index(self.strategy)
        return os.path.join(self.config.model_dir, f".worker{worker}", name)

    def restore(self) -> int:
        """Restores the newest checkpoint of model_dir (model, optimizer slots, step, RNG state, input position).

        A checkpoint written before the input position and RNG state were saved still resumes, with a warning: its
        stream continues from step x batch_size clips, and dropout draws start over.

        Returns:
          The restored step (0 when there is no checkpoint).
        """
        latest = tf.train.latest_checkpoint(os.path.join(self.config.model_dir, checkpoints.CHECKPOINT_DIR))
        if latest is None:
            return 0
        missing = checkpoints.missing_resume_state(latest)
        # An older checkpoint holds the objects it had then; every one of them must still match.
        checkpoint = (
            checkpoints.weights_checkpoint(
                self.model, optimizer=self.optimizer, step=self.step, best_metric=self.best_metric
            )
            if missing
            else self.checkpoint
        )
        checkpoint.restore(latest).assert_existing_objects_matched()
        step = int(self.step.numpy())
        if missing:
            self.exact_resume = False
            self.input_clips.assign(step * self.config.data.batch_size)
            logging.warning(
                "%s has no input position or RNG state (written before exact resume): resuming from "
                "step %d is not exact (the stream continues from clip %d; dropout draws start over).",
                latest,
                step,
                step * self.config.data.batch_size,
            )
        self._report(f"Resumed {self.config.model_dir} from step {step} ({latest}).")
        return step

    def save(self) -> str | None:
        """Writes a checkpoint of the current step (every worker takes part; only the chief's is kept)."""
        path = self.manager.save(checkpoint_number=int(self.step.numpy()))
        if not self.is_chief:
            shutil.rmtree(os.path.dirname(os.path.dirname(path)), ignore_errors=True)
            return None
        return path

    def train_dataset(
        self, seed: int, skip: int = 0, *, with_metadata: bool = False
    ) -> tf.distribute.DistributedDataset:
        """The distributed training input: TSN training sampling + augmentation, K = train_frames.

        Args:
          seed: the stream's seed (`config.loop.seed`).
          skip: training clips already consumed over all workers (`input_clips`); each worker's input pipeline
            drops its share (skip / number of pipelines) before reading any frames.
          with_metadata: also yield the pipeline's metadata dict (video ids, sampled frames; for tests/debugging).

        Returns:
          The distributed dataset of (uint8 frames (B, K, S, S, C) or features, labels[, metadata]) per replica.
        """
        data = self.config.data

        def dataset_fn(input_context: tf.distribute.InputContext) -> tf.data.Dataset:
            return self.source.dataset(
                data.train_split,
                training=True,
                num_frames=data.train_frames,
                batch_size=data.batch_size,
                multi_label=self.multi_label,
                num_classes=self.num_classes,
                seed=seed,
                deterministic=self.config.loop.deterministic,
                input_context=input_context,
                skip=skip // input_context.num_input_pipelines,
                with_metadata=with_metadata,
            )

        return self.strategy.distribute_datasets_from_function(dataset_fn)

    def eval_dataset(self, num_frames: int, batch_size: int, *, preprocess: bool = True) -> tf.data.Dataset:
        """The validation input: TSN test sampling (segment centres), centre crop, with metadata."""
        return self.source.dataset(
            self.config.data.eval_split,
            training=False,
            num_frames=num_frames,
            batch_size=batch_size,
            multi_label=self.multi_label,
            num_classes=self.num_classes,
            with_metadata=True,
            preprocess=self.input_spec.preprocess if preprocess else None,
        )

    # ------------------------------------------------------------------------------------------------------ the step
    def _replica_step(self, frames: tf.Tensor, labels: tf.Tensor) -> dict[str, tf.Tensor]:
        """One replica's forward/backward pass; returns its (unscaled) loss terms, attention statistics, top-1 hits.

        ``frames`` are preprocessed float clips, or uint8 [0, 255] clips (the training pipeline's), normalised here.
        """
        if frames.dtype == tf.uint8:
            frames = self.preprocess(tf.cast(frames, tf.float32))  # (B, K, S, S, C) on the device

        replicas = self.strategy.num_replicas_in_sync
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            outputs = self.outputs_model(frames, training=True)
            terms = self._loss_terms(outputs, labels)
            loss = terms["total"] / replicas  # Summed over replicas by the all-reduce -> global mean.
            if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
                loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(loss, variables)
        self.optimizer.apply_gradients([(g, v) for g, v in zip(gradients, variables) if g is not None])
        for name, values in self.family.attention_scalars(outputs).items():  # (B,) each, from this forward pass
            terms[ATTENTION_PREFIX + name] = tf.reduce_mean(tf.cast(tf.stop_gradient(values), tf.float32))
        terms["hits"] = top1_hits(tf.cast(outputs["logits"], tf.float32), labels)
        terms["clips"] = tf.cast(tf.shape(labels)[0], tf.float32)
        return terms

    def make_train_step(self):
        """The distributed step: `step_fn(iterator) -> dict of global scalars` (a tf.function).

        The scalars are the replicas' mean of each loss term and attention statistic ("attention/<name>") and the
        sums of "hits" (top-1) and "clips".
        """
        if self._distributed_step is None:
            replica_step = (
                tf.function(self._replica_step, jit_compile=True)
                if self.config.optim.jit_compile
                else self._replica_step
            )

            # reduce_retracing: a batch of another shape (a last partial batch, another K) relaxes the signature
            # instead of tracing a second graph, whose buffers would stay alive next to the first one's.
            @tf.function(reduce_retracing=True)
            def distributed_step(frames, labels):
                per_replica = self.strategy.run(replica_step, args=(frames, labels))
                mean, total = tf.distribute.ReduceOp.MEAN, tf.distribute.ReduceOp.SUM
                result = {
                    name: self.strategy.reduce(total if name in ("hits", "clips") else mean, value, axis=None)
                    for name, value in per_replica.items()
                }
                self.step.assign_add(1)
                self.input_clips.assign_add(tf.cast(result["clips"], tf.int64))
                return result

            self._distributed_step = distributed_step

        @tf.function
        def step_fn(iterator):
            frames, labels = next(iterator)[:2]
            return self._distributed_step(frames, labels)

        return step_fn

    def first_step_terms(self, frames: tf.Tensor, labels: tf.Tensor) -> dict[str, float]:
        """Runs one training step on a given global batch split evenly over the replicas (for tests/debugging).

        Args:
          frames: (B, K, S, S, C) preprocessed global batch, B divisible by the number of replicas.
          labels: (B,) or (B, num_classes).

        Returns:
          The reduced loss terms (each the mean of the replicas' values) and hits.
        """
        replicas = self.strategy.num_replicas_in_sync
        per = frames.shape[0] // replicas

        def value_fn(context):
            index = context.replica_id_in_sync_group
            return frames[index * per : (index + 1) * per], labels[index * per : (index + 1) * per]

        frames_value = self.strategy.experimental_distribute_values_from_function(lambda c: value_fn(c)[0])
        labels_value = self.strategy.experimental_distribute_values_from_function(lambda c: value_fn(c)[1])
        self.make_train_step()
        result = self._distributed_step(frames_value, labels_value)
        return {name: float(value) for name, value in result.items()}

    # ------------------------------------------------------------------------------------------------ validation
    def _make_eval_fn(self):
        @tf.function(reduce_retracing=True)
        def eval_fn(frames, labels):
            outputs = self.outputs_model(frames, training=False)
            terms = self._loss_terms(outputs, labels)
            return tf.cast(outputs["logits"], tf.float32), terms

        def batch_fn(frames, labels) -> inference.BatchResult:
            logits, terms = eval_fn(frames, labels)
            return inference.BatchResult(logits.numpy(), scalars={k: float(v) for k, v in terms.items()})

        return batch_fn

    def validate(self) -> dict[str, float]:
        """Scores the eval split with K = eval_frames (centre crop): loss terms, top-1 (mAP), mean class accuracy."""
        data = self.config.data
        if self._eval_fn is None:
            self._eval_fn = self._make_eval_fn()
        result = inference.run_inference(
            self._eval_fn,
            self.eval_dataset(data.eval_frames, data.eval_batch_size),
            max_videos=data.max_eval_videos,
            total=self.source.video_count(data.eval_split),
            progress=self.config.loop.progress,
            description="validate",
            empty_message=f"the validation split {data.eval_split!r} is empty.",
        )
        report = metrics.classification_report(result.logits, result.labels, multi_label=self.multi_label)
        values = {f"loss/{name}": value for name, value in result.scalar_means.items()}
        values.update({k: v for k, v in report.items() if k != "num_videos"})
        values["num_videos"] = result.num_videos
        return values

    def selection_metric(self, result: dict[str, float]) -> float:
        """The validation number that decides the best checkpoint."""
        return result["mAP"] if self.multi_label else result["top1"]

    # ------------------------------------------------------------------------------------------------- the loop
    def _writers(self):
        if not self.is_chief:
            return tf.summary.create_noop_writer(), tf.summary.create_noop_writer()
        return (
            tf.summary.create_file_writer(os.path.join(self.config.model_dir, "train")),
            tf.summary.create_file_writer(os.path.join(self.config.model_dir, "validation")),
        )

    def _write_attention_images(self, writer, step: int) -> None:
        """Every validation: the family's pictures of the first validation clip's attention, as image summaries."""
        if not self.config.loop.summary_images or not self.is_chief or not self.source.pictures:
            return
        try:
            summaries.write_attention_summary(
                writer,
                step,
                self.family,
                self.outputs_model,
                self.eval_dataset(5, 1, preprocess=False),
                self.input_spec.preprocess,
            )
        except Exception as error:  # noqa: BLE001 - a picture must never stop training.
            logging.warning("attention image summary skipped: %s", error)

    def _save_best(self, value: float) -> None:
        self.best_metric.assign(value)
        if not self.is_chief:
            return
        self.best_manager.save(checkpoint_number=int(self.step.numpy()))
        try:
            best_keras = os.path.join(self.config.model_dir, checkpoints.BEST_KERAS)
            files.write_atomic(best_keras, self.model.save)  # A crash mid-save never leaves a corrupt best.keras.
        except Exception as error:  # noqa: BLE001 - the checkpoint in best/ is the source of truth.
            logging.warning("best.keras not written (%s); best/ holds the weights.", error)

    def train(self) -> TrainResult:
        """Trains from the current step to `max_steps`, validating and checkpointing on the way.

        Returns:
          TrainResult.

        Raises:
          NonFiniteLossError: the loss became NaN/Inf (the last good checkpoint stays).
        """
        config = self.config
        max_steps = self.schedule.max_steps
        start = int(self.step.numpy())
        train_writer, val_writer = self._writers()
        self._truncate_attention_csv(start)
        validation, last_logged, checkpoint_path = [], {}, self.manager.latest_checkpoint
        if start >= max_steps:
            logging.info(
                "%s is already at step %d >= max_steps %d; nothing to train.", config.model_dir, start, max_steps
            )
        else:
            last_logged, checkpoint_path = self._train_steps(
                start, max_steps, train_writer, val_writer, validation, checkpoint_path
            )
        step = int(self.step.numpy())
        checkpoint_path = self._finish(step, val_writer, validation, checkpoint_path)
        train_writer.flush()
        val_writer.flush()
        best = float(self.best_metric.numpy())
        return TrainResult(
            model_dir=config.model_dir,
            step=step,
            start_step=start,
            train_metrics=last_logged,
            validation=validation,
            best_metric=None if best < 0 else best,
            checkpoint=checkpoint_path,
        )

    def _train_steps(
        self, start: int, max_steps: int, train_writer, val_writer, validation: list, checkpoint_path: str | None
    ) -> tuple[dict[str, float], str | None]:
        """The step loop from `start` to `max_steps`: logs, validates (appending to `validation`) and checkpoints.

        Returns:
          `(last_logged, checkpoint_path)`: the last logged training metrics ({} if none) and the latest checkpoint.
        """
        config = self.config
        last_logged = {}
        if self._train_step is None:
            self._train_step = self.make_train_step()
        # The stream is a function of (seed, position): continue it after the clips already consumed.
        iterator = iter(self.train_dataset(seed=config.loop.seed, skip=int(self.input_clips.numpy())))
        window = self._new_window()
        bar = tqdm.tqdm(
            total=max_steps,
            initial=start,
            desc=f"train {os.path.basename(config.model_dir)}",
            unit="step",
            disable=not config.loop.progress or not self.is_chief,
            dynamic_ncols=True,
        )
        try:
            while int(self.step.numpy()) < max_steps:
                tick = time.perf_counter()
                result = self._train_step(iterator)
                values = {name: float(value) for name, value in result.items()}
                elapsed = time.perf_counter() - tick
                step = int(self.step.numpy())
                self._check_finite(step, values)
                # The first step includes tracing; keep it out of clips/s.
                self._accumulate(window, values, elapsed if step > start + 1 else None)
                bar.update(1)
                if step % config.loop.log_every == 0 or step == max_steps:
                    last_logged = self._log_train(train_writer, step, window)
                    bar.set_postfix(
                        loss=f"{last_logged['loss/total']:.3f}",
                        top1=f"{last_logged['top1']:.2f}",
                        lr=f"{last_logged['learning_rate']:.2g}",
                    )
                    window = self._new_window()
                if (
                    config.data.eval_split
                    and config.loop.eval_every
                    and step % config.loop.eval_every == 0
                    and step < max_steps
                ):
                    validation.append((step, self._validate_and_log(val_writer, step)))
                if step == max_steps and config.loop.precise_bn_batches:
                    self.recompute_bn_statistics(iterator, config.loop.precise_bn_batches)
                if step % config.checkpoint_interval() == 0 or step == max_steps:
                    checkpoint_path = self.save() or checkpoint_path
        except KeyboardInterrupt:
            checkpoint_path = self.save() or checkpoint_path
            logging.warning(
                "Interrupted at step %d; saved %s. Re-run the same command to resume.",
                int(self.step.numpy()),
                checkpoint_path,
            )
            raise
        finally:
            bar.close()
        return last_logged, checkpoint_path

    def recompute_bn_statistics(self, iterator, num_batches: int) -> int:
        """Precise BN: re-estimates the trainable BatchNormalization statistics over `num_batches` batches.

        Each batch goes through the model in training mode under `strategy.run` (no gradient, no optimizer step,
        no change of `step` or `input_clips`); `engine.precise_bn` averages the batches' statistics.

        Args:
          iterator: a (distributed) iterator of training batches (frames, labels[, metadata]), e.g. the stream the
            step loop was reading.
          num_batches: N >= 1.

        Returns:
          The number of BatchNormalization layers re-estimated (0: the model has none to re-estimate).
        """
        layers = precise_bn.batch_norm_layers(self.model)
        if not layers:
            return 0

        def replica_forward(frames):
            if frames.dtype == tf.uint8:
                frames = self.preprocess(tf.cast(frames, tf.float32))
            self.outputs_model(frames, training=True)

        def make_forward():
            @tf.function  # built after precise_bn sets momentum 0, so it is traced with it
            def forward_fn(iterator):
                frames = next(iterator)[0]
                self.strategy.run(replica_forward, args=(frames,))

            return lambda: forward_fn(iterator)

        precise_bn.recompute_statistics(layers, make_forward, num_batches)
        self._report(f"precise BN: re-estimated {len(layers)} batch-norm layers over {num_batches} training batches")
        return len(layers)

    def _check_finite(self, step: int, values: dict[str, float]) -> None:
        """Raises NonFiniteLossError if a loss term of this step is NaN/Inf (the counters "hits"/"clips" aside)."""
        losses = {k: v for k, v in values.items() if k not in ("hits", "clips") and not k.startswith(ATTENTION_PREFIX)}
        if not all(math.isfinite(value) for value in losses.values()):
            raise NonFiniteLossError(
                f"the training loss became non-finite at step {step} ("
                + ", ".join(f"{k}={v:.4g}" for k, v in losses.items())
                + f"). Stopped without saving; the last good checkpoint is {self.manager.latest_checkpoint}"
                " . Lower --learning_rate, or try --mixed_precision=none."
            )

    @staticmethod
    def _accumulate(window: dict, values: dict[str, float], elapsed: float | None) -> None:
        """Adds one step's loss terms, attention statistics, clips and hits to the window; `elapsed` to clips/s."""
        for name, value in values.items():
            if name not in ("hits", "clips"):
                window["sums"][name] = window["sums"].get(name, 0.0) + value
        window["steps"] += 1
        window["clips"] += values["clips"]
        window["hits"] += values["hits"]
        if elapsed is not None:
            window["time"] += elapsed
            window["timed_clips"] += values["clips"]

    def _finish(self, step: int, val_writer, validation: list, checkpoint_path: str | None) -> str | None:
        """Validates and saves the final step unless that was already done; returns the latest checkpoint path."""
        if self.config.data.eval_split and (not validation or validation[-1][0] != step):
            validation.append((step, self._validate_and_log(val_writer, step)))
        if self.manager.latest_checkpoint is None or not self.manager.latest_checkpoint.endswith(f"-{step}"):
            checkpoint_path = self.save() or checkpoint_path
        return checkpoint_path

    def _report(self, message: str) -> None:
        """A line for the user: above the progress bar when there is one, else in the log."""
        if self.config.loop.progress and self.is_chief:
            tqdm.tqdm.write(message)
        else:
            logging.info("%s", message)

    @staticmethod
    def _new_window() -> dict:
        return {"sums": {}, "steps": 0, "clips": 0.0, "hits": 0.0, "time": 0.0, "timed_clips": 0.0}

    def _log_train(self, writer, step: int, window: dict) -> dict[str, float]:
        steps = max(window["steps"], 1)
        logged = {
            name if name.startswith(ATTENTION_PREFIX) else f"loss/{name}": value / steps
            for name, value in window["sums"].items()
        }
        logged["top1"] = window["hits"] / max(window["clips"], 1.0)
        logged["learning_rate"] = self.schedule.value_at(step)
        if window["time"] > 0:
            logged["clips_per_second"] = window["timed_clips"] / window["time"]
        with writer.as_default(step=step):
            for name, value in logged.items():
                tf.summary.scalar(name, value)
        self._append_attention_row(step, logged)
        return logged

    def _attention_csv(self) -> str:
        return os.path.join(self.config.model_dir, ATTENTION_CSV)

    def _append_attention_row(self, step: int, logged: dict[str, float]) -> None:
        """Chief: appends `step,<statistic>,...` (the logged "attention/<name>" means) to attention_statistics.csv.

        The header `step,<name>,...` (the family's names, in its order) comes first; nothing is written when the
        family reports no attention statistics.
        """
        names = [name[len(ATTENTION_PREFIX) :] for name in logged if name.startswith(ATTENTION_PREFIX)]
        if not names or not self.is_chief:
            return
        path = self._attention_csv()
        lines = [] if tf.io.gfile.exists(path) else [",".join(["step", *names])]
        lines.append(",".join([str(step)] + [repr(float(logged[ATTENTION_PREFIX + name])) for name in names]))
        with tf.io.gfile.GFile(path, "a") as f:
            f.write("".join(line + "\n" for line in lines))

    def _truncate_attention_csv(self, step: int) -> None:
        """Chief: keeps the header and the rows of attention_statistics.csv with step <= `step` (the restored step).

        A run killed after its checkpoint at `step` had logged rows beyond it (and perhaps half a row); the resumed
        run logs those steps again. The file is rewritten atomically (`data.files.write_text`: a temporary, then
        renamed into place).
        """
        path = self._attention_csv()
        if not self.is_chief or not tf.io.gfile.exists(path):
            return
        with tf.io.gfile.GFile(path, "r") as f:
            lines = f.read().splitlines()
        if not lines:
            return
        header, *rows = lines
        columns = header.count(",")

        def kept_row(row: str) -> bool:  # a row of the header's width at a step <= `step` (not a half-written one)
            first = row.split(",", 1)[0]
            return row.count(",") == columns and first.isdigit() and int(first) <= step

        kept = [row for row in rows if kept_row(row)]
        if len(kept) != len(rows):
            files.write_text(path, "".join(line + "\n" for line in [header, *kept]))

    def _validate_and_log(self, writer, step: int) -> dict[str, float]:
        if not self.is_chief:
            return {}
        result = self.validate()
        with writer.as_default(step=step):
            for name, value in result.items():
                if name != "num_videos":
                    tf.summary.scalar(name, value)
        self._write_attention_images(writer, step)
        value = self.selection_metric(result)
        if value > float(self.best_metric.numpy()):
            self._save_best(value)
        data = self.config.data
        self._report(
            f"step {step} validation ({data.eval_split}, K={data.eval_frames}): "
            + ", ".join(f"{k} {v:.4g}" for k, v in result.items())
        )
        return result


def train(config: config_lib.RunConfig, strategy: tf.distribute.Strategy | None = None) -> TrainResult:
    """Sets up and runs a training run (the body of `python -m stpa.train` for one stream)."""
    with precision_policy(config.optim.mixed_precision):
        return Trainer(config, strategy).train()
