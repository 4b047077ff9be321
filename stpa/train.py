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

import stpa.families  # noqa: F401 - the composition root: registers the model families (before the flags).
from data import files
from stpa.engine import config as config_lib
from stpa.engine import distribute, evaluation, figures, fusion
from stpa.engine import flags as stpa_flags
from stpa.engine import trainer as trainer_lib

stpa_flags.define_train_flags()
FLAGS = flags.FLAGS


def config_from_flags(flag_values: flags.FlagValues = FLAGS) -> config_lib.RunConfig:
    """The RunConfig of the parsed flags (`engine.config.from_flags`)."""
    return config_lib.from_flags(flag_values)


def stream_configs(config: config_lib.RunConfig, streams: Sequence[str] | None) -> list[config_lib.RunConfig]:
    """One config per stream (`--streams`), or [config]."""
    if not streams:
        return [config]
    unknown = [s for s in streams if s not in config_lib.MODALITIES]
    if unknown or len(set(streams)) != len(streams):
        raise ValueError(f"--streams takes distinct modalities from {list(config_lib.MODALITIES)}, got {streams}.")
    return [
        dataclasses.replace(
            config, data=dataclasses.replace(config.data, modality=s), model_dir=os.path.join(config.model_dir, s)
        )
        for s in streams
    ]


def describe_result(config: config_lib.RunConfig, result: trainer_lib.TrainResult) -> str:
    """One paragraph about a finished run: steps, last validation, where things are."""
    lines = [f"{config.model_dir}: steps {result.start_step} -> {result.step}"]
    if result.validation:
        step, values = result.validation[-1]
        numbers = ", ".join(
            f"{k} {100 * values[k]:.2f}%" for k in ("top1", "top5", "mean_class_accuracy", "mAP", "wAP") if k in values
        )
        lines.append(f"  validation at step {step} ({config.data.eval_split}, K={config.data.eval_frames}): {numbers}")
    lines.append(f"  checkpoint: {result.checkpoint}")
    lines.append(f"  TensorBoard: tensorboard --logdir={config.model_dir}")
    return "\n".join(lines)


def run(configs: Sequence[config_lib.RunConfig]) -> dict:
    """Trains each config; with several streams, evaluates each at K = eval_frames and fuses. Returns a summary."""
    strategy = distribute.make_strategy(configs[0].loop.strategy)  # Once per process, before any other TF work.
    summary = {"streams": {}}
    for config in configs:
        result = trainer_lib.train(config, strategy)
        summary["streams"][config.data.modality] = dataclasses.asdict(result)
        print(describe_result(config, result), flush=True)
        if distribute.is_chief(strategy):
            try:
                print(f"  training curves: {figures.write_training_curves(config.model_dir)}", flush=True)
            except FileNotFoundError:
                pass  # The run wrote no summaries (nothing to plot).
    if len(configs) > 1 and distribute.is_chief(strategy):
        score_paths = []
        for config in configs:
            data = config.data
            report = evaluation.evaluate(
                records_dir=data.records_dir,
                model_dir=config.model_dir,
                split=data.eval_split or "test",
                test_frames=data.eval_frames,
                batch_size=data.eval_batch_size,
                progress=config.loop.progress,
            )
            print(f"{data.modality}: {evaluation.format_report(report)}")
            score_paths.append(report["scores_file"])
        parent = os.path.dirname(configs[0].model_dir)
        fused = fusion.run_fusion(
            score_paths,
            output=os.path.join(parent, "fused_scores.npz"),
            metrics_output=os.path.join(parent, "fused.json"),
        )
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
