"""Converts TSN's BN-Inception PyTorch weights to a Keras weights file for `stpa.blocks.backbones.bn_inception`.

Usage:
  python -m stpa.convert_weights --input=bn_inception-9f5701afb96c8044.pth --output=bn_inception.weights.h5
  python -m stpa.train ... --backbone=bn_inception --weights=bn_inception.weights.h5

Inputs:
  - TSN's ImageNet model `bn_inception-9f5701afb96c8044.pth` (a state dict with keys such as
    `conv1_7x7_s2.weight`, `conv1_7x7_s2_bn.running_mean`, ..., `fc.weight`);
  - a TSN training checkpoint (`{"state_dict": {"module.base_model.conv1_7x7_s2.weight": ...}}`, RGB or flow: a
    flow model's first convolution has 2 * flow_length input channels and converts to a flow trunk);
  - or the same state dict saved as `.npz` (`numpy.savez(path, **{key: array})`), which needs no torch.
Reading `.pth` files needs PyTorch (`pip install torch`, the optional "convert" extra); nothing else does.

The layer names of the Keras model are the PyTorch module names, so the conversion is a name lookup:
  Conv2D `name`:             kernel = `name.weight` (out, in, kh, kw) as (kh, kw, in, out), bias = `name.bias`
  BatchNormalization `name`: gamma = `name.weight`, beta = `name.bias`, moving_mean / moving_variance =
                             `name.running_mean` / `name.running_var`
  Dense `fc` (--include_top): kernel = `fc.weight` transposed, bias = `fc.bias`
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import keras
import numpy as np

from stpa.blocks.backbones.bn_inception import build_bn_inception

_PREFIXES = ("module.", "base_model.")
_IGNORED_SUFFIXES = ("num_batches_tracked",)
FIRST_CONV = "conv1_7x7_s2"


def load_state_dict(path: str) -> dict[str, np.ndarray]:
    """Reads a PyTorch state dict (`.pth`/`.pt`, needs torch) or its `.npz` export into NumPy arrays.

    TSN checkpoints (`{"state_dict": ...}`) are unwrapped and the `module.` / `base_model.` prefixes of TSN's
    DataParallel wrapper are removed.

    Args:
      path: the file.

    Returns:
      {PyTorch key: float32 array}.

    Raises:
      FileNotFoundError: missing file.
      ImportError: a `.pth` file without PyTorch installed.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--input={path!r}: no such file.")
    if path.endswith(".npz"):
        with np.load(path) as archive:
            raw = {key: archive[key] for key in archive.files}
    else:
        try:
            import torch
        except ImportError as error:
            raise ImportError(
                f"Reading {path!r} needs PyTorch: `pip install torch` (or `pip install -e .[convert]`), or export the "
                "state dict to .npz on a machine with torch: "
                "numpy.savez('bn_inception.npz', **{k: v.numpy() for k, v in torch.load(PATH).items()})."
            ) from error
        loaded = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(loaded, Mapping) and "state_dict" in loaded:
            loaded = loaded["state_dict"]
        raw = {key: value.detach().cpu().numpy() for key, value in loaded.items() if hasattr(value, "detach")}
    state_dict = {}
    for key, value in raw.items():
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
        state_dict[key] = np.asarray(value, dtype=np.float32)
    return state_dict


def _layer_arrays(layer: keras.layers.Layer, state_dict: Mapping[str, np.ndarray]) -> tuple[list[np.ndarray], list]:
    """The Keras weight values of one layer from the state dict, and the keys used."""
    name = layer.name
    if isinstance(layer, keras.layers.Conv2D):
        keys = [f"{name}.weight", f"{name}.bias"]
        kernel = np.transpose(state_dict[keys[0]], (2, 3, 1, 0))  # (out, in, kh, kw) -> (kh, kw, in, out)
        values = [kernel, state_dict[keys[1]]]
    elif isinstance(layer, keras.layers.BatchNormalization):
        keys = [f"{name}.weight", f"{name}.bias", f"{name}.running_mean", f"{name}.running_var"]
        values = [state_dict[key] for key in keys]
    elif isinstance(layer, keras.layers.Dense):
        keys = [f"{name}.weight", f"{name}.bias"]
        values = [state_dict[keys[0]].T, state_dict[keys[1]]]
    else:
        raise ValueError(f"Layer {name!r} ({type(layer).__name__}) has weights but no conversion rule.")
    return values, keys


def assign_state_dict(model: keras.Model, state_dict: Mapping[str, np.ndarray]) -> list[str]:
    """Sets every weight of a `build_bn_inception` model from a TSN state dict, by layer name.

    Args:
      model: the Keras BN-Inception.
      state_dict: {PyTorch key: array}.

    Returns:
      The state-dict keys that were not used (e.g. `fc.*` for a model without top).

    Raises:
      KeyError: keys the model needs are missing (all listed).
      ValueError: a shape differs from the model's (all listed).
    """
    missing, mismatched, used = [], [], set()
    for layer in model.layers:
        if not layer.weights:
            continue
        try:
            values, keys = _layer_arrays(layer, state_dict)
        except KeyError as error:
            missing.append(str(error.args[0]))
            continue
        used.update(keys)
        expected = [tuple(weight.shape) for weight in layer.weights]
        values = [
            value.reshape(shape) if value.size == int(np.prod(shape)) and value.ndim != len(shape) else value
            for value, shape in zip(values, expected)
        ]
        if [value.shape for value in values] != expected:
            mismatched.append(f"{layer.name}: state dict {[v.shape for v in values]} vs Keras {expected}")
            continue
        layer.set_weights(values)
    if missing:
        raise KeyError(f"The state dict lacks {len(missing)} keys the model needs, e.g. {missing[:5]}.")
    if mismatched:
        raise ValueError("Shapes differ between the state dict and the Keras model:\n  " + "\n  ".join(mismatched))
    return sorted(key for key in state_dict if key not in used and not key.endswith(_IGNORED_SUFFIXES))


def convert(input_path: str, output_path: str, *, include_top: bool = False) -> keras.Model:
    """Converts a TSN BN-Inception state dict into a Keras `.weights.h5` file.

    Args:
      input_path: `.pth` / `.pt` (needs torch) or `.npz`.
      output_path: where to write the Keras weights (must end in `.weights.h5`).
      include_top: also convert the ImageNet classifier `fc`.

    Returns:
      The converted Keras model (RGB or flow, from the first convolution's input channels).
    """
    if not output_path.endswith(".weights.h5"):
        raise ValueError(f"--output={output_path!r} must end in .weights.h5 (the Keras 3 weights format).")
    state_dict = load_state_dict(input_path)
    if f"{FIRST_CONV}.weight" not in state_dict:
        raise KeyError(
            f"{input_path!r} has no {FIRST_CONV}.weight: not a TSN BN-Inception state dict "
            f"(first keys: {sorted(state_dict)[:5]})."
        )
    channels = state_dict[f"{FIRST_CONV}.weight"].shape[1]
    model = build_bn_inception((224, 224, channels), include_top=include_top)
    unused = assign_state_dict(model, state_dict)
    if unused:
        print(f"Not converted ({len(unused)} keys): {', '.join(unused[:10])}{' ...' if len(unused) > 10 else ''}")
    os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
    model.save_weights(output_path)
    stream = "RGB" if channels == 3 else f"flow ({channels} channels, flow_length={channels // 2})"
    print(f"Wrote {output_path}: BN-Inception, {stream}, {model.count_params():,} values.")
    return model


def main(argv: list[str]) -> None:
    """Command-line entry point."""
    del argv
    from absl import flags

    convert(flags.FLAGS.input, flags.FLAGS.output, include_top=flags.FLAGS.include_top)


if __name__ == "__main__":
    from absl import app, flags

    flags.DEFINE_string("input", None, "TSN BN-Inception state dict: .pth/.pt (needs torch) or .npz.", required=True)
    flags.DEFINE_string("output", None, "Keras weights file to write (*.weights.h5).", required=True)
    flags.DEFINE_bool("include_top", False, "Also convert the 1000-class ImageNet classifier `fc`.")
    app.run(main)
