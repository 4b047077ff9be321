r"""Train an STPA / TSN / ST-attn network: `python -m stpa.train`.

  python -m stpa.train --flagfile=experiments/stpa/table1e_irv2_3scales_rgb.cfg \
      --records_dir=data/ucf101 --model_dir=runs/irv2_3scales_rgb

A re-run with the same --model_dir resumes from its newest checkpoint (step, optimizer slots, learning-rate
schedule). `--model_dir/flags.txt` holds the effective flags (`--flagfile=` it to reproduce a run). TensorBoard:
`tensorboard --logdir=<model_dir>`.

Two streams in one command (Sec. 4.1's two-stream protocol): `--streams=rgb,flow` trains an RGB and a flow model
into <model_dir>/rgb and <model_dir>/flow (each with the paper's learning-rate schedule for its modality unless
given), evaluates both on the test split with K = --eval_frames, and fuses their scores by averaging
(<model_dir>/fused.json).

Distribution: --strategy=mirrored (all GPUs of this machine), --strategy=multi_worker (every machine runs the same
command with its own TF_CONFIG); --batch_size is the global batch. See BUILD.md.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Sequence

from absl import app, flags, logging

from data import files
from stpa.engine import distribute, evaluation, figures, fusion
from stpa.engine import flags as stpa_flags
from stpa.engine import trainer as trainer_lib

stpa_flags.define_data_flags()
stpa_flags.define_model_flags()
stpa_flags.define_train_flags()
FLAGS = flags.FLAGS


def config_from_flags(flag_values: flags.FlagValues = FLAGS) -> trainer_lib.TrainConfig:
    """The TrainConfig of the parsed flags."""
    fv = flag_values
    return trainer_lib.TrainConfig(
        model_dir=fv.model_dir,
        records_dir=fv.records_dir,
        train_split=fv.train_split,
        eval_split=fv.eval_split or None,
        model=fv.model,
        backbone=fv.backbone,
        num_classes=fv.num_classes,
        modality=fv.modality,
        scales=fv.scales,
        top=fv.top,
        fusion=fv.fusion,
        flow_length=fv.flow_length,
        dropout=fv.dropout,
        weights=fv.weights,
        input_size=fv.input_size,
        partial_bn=fv.partial_bn,
        model_options=stpa_flags.parse_options(fv.model_options, "model_options"),
        train_frames=fv.train_frames,
        batch_size=fv.batch_size,
        optimizer=fv.optimizer,
        momentum=fv.momentum,
        learning_rate=fv.learning_rate,
        lr_boundaries=_numbers(fv.lr_boundaries, int, "lr_boundaries"),
        lr_values=_numbers(fv.lr_values, float, "lr_values"),
        max_steps=fv.max_steps,
        weight_decay=fv.weight_decay,
        beta=fv.beta,
        gamma=fv.gamma,
        lambda_tv=fv.lambda_tv,
        lambda_contrast=fv.lambda_contrast,
        lambda_unimodal=fv.lambda_unimodal,
        features_dir=fv.features_dir,
        eval_every=fv.eval_every,
        eval_frames=fv.eval_frames,
        eval_batch_size=fv.eval_batch_size,
        max_eval_videos=fv.max_eval_videos,
        log_every=fv.log_every,
        checkpoint_every=fv.checkpoint_every,
        keep_checkpoints=fv.keep_checkpoints,
        strategy=fv.strategy,
        mixed_precision=fv.mixed_precision,
        jit_compile=fv.jit_compile,
        seed=fv.seed,
        deterministic=fv.deterministic,
        progress=fv.progress,
    )


def _numbers(values: Sequence[str] | None, kind: type, name: str) -> tuple | None:
    if not values:
        return None
    try:
        return tuple(kind(float(v)) if kind is int else kind(v) for v in values)
    except ValueError as error:
        raise ValueError(f"--{name} takes comma-separated numbers, got {values}.") from error


def stream_configs(config: trainer_lib.TrainConfig, streams: Sequence[str] | None
                   ) -> list[trainer_lib.TrainConfig]:
    """One config per stream (`--streams`), or [config]."""
    if not streams:
        return [config]
    unknown = [s for s in streams if s not in stpa_flags.MODALITIES]
    if unknown or len(set(streams)) != len(streams):
        raise ValueError(f"--streams takes distinct modalities from {list(stpa_flags.MODALITIES)}, got {streams}.")
    return [dataclasses.replace(config, modality=s, model_dir=os.path.join(config.model_dir, s)) for s in streams]


def describe_result(config: trainer_lib.TrainConfig, result: trainer_lib.TrainResult) -> str:
    """One paragraph about a finished run: steps, last validation, where things are."""
    lines = [f"{config.model_dir}: steps {result.start_step} -> {result.step}"]
    if result.validation:
        step, values = result.validation[-1]
        numbers = ", ".join(f"{k} {100 * values[k]:.2f}%" for k in ("top1", "top5", "mean_class_accuracy", "mAP",
                                                                       "wAP") if k in values)
        lines.append(f"  validation at step {step} ({config.eval_split}, K={config.eval_frames}): {numbers}")
    lines.append(f"  checkpoint: {result.checkpoint}")
    lines.append(f"  TensorBoard: tensorboard --logdir={config.model_dir}")
    return "\n".join(lines)


def run(configs: Sequence[trainer_lib.TrainConfig]) -> dict:
    """Trains each config; with several streams, evaluates each at K = eval_frames and fuses. Returns a summary."""
    strategy = distribute.make_strategy(configs[0].strategy)  # Once per process, before any other TF work.
    summary = {"streams": {}}
    for config in configs:
        result = trainer_lib.train(config, strategy)
        summary["streams"][config.modality] = dataclasses.asdict(result)
        print(describe_result(config, result), flush=True)
        if distribute.is_chief(strategy):
            try:
                print(f"  training curves: {figures.write_training_curves(config.model_dir)}", flush=True)
            except FileNotFoundError:
                pass  # The run wrote no summaries (nothing to plot).
    if len(configs) > 1 and distribute.is_chief(strategy):
        score_paths = []
        for config in configs:
            report = evaluation.evaluate(records_dir=config.records_dir, model_dir=config.model_dir,
                                         split=config.eval_split or "test", test_frames=config.eval_frames,
                                         batch_size=config.eval_batch_size, progress=config.progress)
            print(f"{config.modality}: {evaluation.format_report(report)}")
            score_paths.append(report["scores_file"])
        parent = os.path.dirname(configs[0].model_dir)
        fused = fusion.run_fusion(score_paths, output=os.path.join(parent, "fused_scores.npz"),
                                metrics_output=os.path.join(parent, "fused.json"))
        print(fusion.format_report(fused))
        summary["fused"] = fused
    return summary


def main(argv: Sequence[str]) -> None:
    """Validates the flags (failing before any work), then trains."""
    del argv
    stpa_flags.quiet_logs()
    try:
        config = config_from_flags()
        configs = stream_configs(config, FLAGS.streams)
        for stream_config in configs:
            trainer_lib.validate_config(stream_config)
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    try:
        run(configs)
    except trainer_lib.NonFiniteLossError as error:
        logging.error("%s", error)
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except files.WriteError as error:
        sys.exit(f"stpa.train: {error}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["model_dir"])
    app.run(main)
