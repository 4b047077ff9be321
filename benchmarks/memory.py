"""Benchmark: peak memory per clip at the papers' limits, each next to an arithmetic lower bound, as ratios.

Parts (`--parts`, comma-separated; default all but `st_attn_b30`):
  st_attn_train   ST-attn on cached 7x7x2048 features, n = 25, B = 4, the paper's widths, one Adam step with every
                  loss term (the authors' released setup at the issue's batch).
  st_attn_eval    the same model's inference on the same batch (training=False).
  st_attn_b30     the training step at the authors' batch, B = 30 (slow on a CPU: ~90 s per step).
  stpa_train      STPA, Inception-ResNet-V2 (random weights), 3 scales, top C, K = 3, B = 2, SGD with momentum.
  stpa_test       the same STPA model's test forward, B = 1, K = 25 and K = 30.
  stpa_layer      what PyramidAttention alone keeps at K = 30 (forward + backward), next to IRv2's own activations.

Every measurement runs in a fresh process (`--repeats` of them, interleaved A, B, A, B across variants) and reports:
  - the process's peak resident memory (VmHWM) in total and above the baseline right after importing TensorFlow,
    Keras and the project;
  - TensorFlow's allocator peak (`tf.config.experimental.get_memory_info`, CPU:0, or GPU:0 when there is a GPU);
  - the arithmetic lower bound (weights + optimiser slots + the activations backprop must keep, from the layer
    shapes; for inference: weights + the largest live input/output pair), its terms, and allocator peak / bound;
  - the median step time, wall and the process's CPU seconds (steadier when the machine is shared);
  - the run-to-run spread of the peaks over the repeats.
ST-attn rows are also printed as ratios to the issue's measurements of the authors' released PyTorch model (ported to
current torch, unused modules dropped, attention vectorised; same machine, 2 threads): 2.8 GiB peak and 12.7 s per
training step, 3.08 s per eval batch, at B = 4.

Variants (`--variants`, comma-separated, each "name" or "name+name"): `base` (the defaults); for ST-attn
`per_step` (the ConvLSTM input convolution per step on Y_t, `project_frames=False`), `parallel` (the loop with
`parallel_iterations=10`, tf.while_loop's default), `fused_adam` (Adam through TF's fused kernel, `fused_adam`);
for any part `xla` (the step under jit_compile),
`mixed_float16` (the Keras policy, loss-scaled optimiser) and `mixed_bfloat16`; process settings `no_onednn`
(TF_ENABLE_ONEDNN_OPTS=0) and `mmap` (MALLOC_MMAP_THRESHOLD_=1048576: glibc serves blocks of 1 MiB or more with mmap
and gives them back when freed, instead of raising its threshold and keeping freed blocks in the heap).
Numbers measured with it are in BUILD.md, "Performance". Prints one history line (benchmarks/history.py; `--record`
appends it to benchmarks/history/memory.jsonl).

  python benchmarks/memory.py                          # every part but B = 30, 2 repeats (~10 min on 2 idle cores)
  python benchmarks/memory.py --parts=st_attn_train --variants=base,xla --repeats=3
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import history  # noqa: E402
from benchmarks.activations import keras_activation_bytes  # noqa: E402,F401  (used by the STPA parts)

_PARTS = flags.DEFINE_list(
    "parts", ["st_attn_train", "st_attn_eval", "stpa_train", "stpa_test", "stpa_layer"], "Parts to measure."
)
_VARIANTS = flags.DEFINE_list("variants", ["base"], "Variants to compare, interleaved (see the module docstring).")
_REPEATS = flags.DEFINE_integer("repeats", 2, "Fresh processes per part and variant (the spread is over these).")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed steps per process, after 1 warm-up step.")
_THREADS = flags.DEFINE_integer("threads", 2, "TensorFlow intra-op threads (inter-op: 1).")
_CHILD = flags.DEFINE_string("child", None, "Internal: measure one part in this process and print a RESULT line.")
_FRAMES = flags.DEFINE_list("stpa_test_frames", ["25", "30"], "K of the STPA test forward.")
_RECORD = flags.DEFINE_bool("record", False, "Append the history line to benchmarks/history/ (benchmarks/history.py).")

GIB = 1024.0**3
MIB = 1024.0**2
# The issue's measurements of the authors' released ST-attn (PyTorch, B = 4, n = 25, this CPU, 2 threads).
AUTHORS = {"peak_gib": 2.8, "framework_gib": 0.26, "train_s": 12.7, "eval_s": 3.08}
ST_ATTN = {
    "batch": 4,
    "frames": 25,
    "hw": 7,
    "channels": 2048,
    "mask": (1024, 512),
    "units": 512,
    "init": 1024,
    "attention": 256,
    "classes": 51,
}
# Variants that only set the child's environment (process-level settings a user can export).
ENVIRONMENT_VARIANTS = {
    "no_onednn": {"TF_ENABLE_ONEDNN_OPTS": "0"},  # Eigen kernels instead of oneDNN's
    "mmap": {"MALLOC_MMAP_THRESHOLD_": "1048576"},  # blocks >= 1 MiB from mmap: returned to the OS when freed
}
STPA_TRAIN = {"batch": 2, "frames": 3, "size": 299, "classes": 101}


# ------------------------------------------------------------------------------------------------ process memory


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def rss_bytes() -> int:
    """Current resident memory of this process (VmRSS)."""
    return _status_kib("VmRSS") * 1024


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (VmHWM)."""
    return _status_kib("VmHWM") * 1024


def allocator_peak() -> tuple[str, int | None]:
    """TensorFlow's allocator peak in bytes on the GPU if there is one, else on the CPU (None if unavailable)."""
    import tensorflow as tf

    device = "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"
    try:
        return device, int(tf.config.experimental.get_memory_info(device)["peak"])
    except (ValueError, RuntimeError):
        return device, None


# ------------------------------------------------------------------------------------------------ lower bounds


def st_attn_bound(batch: int, frames: int, *, training: bool, params: int, slots: int = 2) -> dict[str, float]:
    """Bytes that any implementation of ST-attn needs (float32), term by term.

    Training: weights + `slots` optimiser slots per weight (Adam: 2) + the activations backprop must keep:
      X (B n hw C), per mask conv-BN-ReLU its conv output and ReLU output (2 B n hw F), the mask M (B n hw),
      X~ = X ⊙ M (B n hw C; the gradient of Eq. 4's weights needs it), g_c / g_h (2 x 2 B hw (init + units)),
      and per ConvLSTM step Y_t (B hw C), H_{t-1} (B hw U), the four gate activations (4 B hw U), C_t and tanh C_t
      (2 B hw U): n B hw (C + 7U).
    Inference: weights + X + the largest conv input/output pair (the first mask conv: X and B n hw F_1).
    """
    p = ST_ATTN
    hw, channels, units = p["hw"] ** 2, p["channels"], p["units"]
    frame_maps = batch * frames * hw
    terms = {"weights": 4.0 * params}
    if training:
        terms["optimiser slots"] = 4.0 * slots * params
        terms["kept: X, X~, M"] = 4.0 * frame_maps * (2 * channels + 1)
        terms["kept: mask conv/BN/ReLU"] = 4.0 * frame_maps * 2 * sum(p["mask"])
        terms["kept: g_c, g_h"] = 4.0 * batch * hw * 2 * 2 * (p["init"] + units)
        terms["kept: ConvLSTM steps"] = 4.0 * frame_maps * (channels + 7 * units)
    else:
        terms["live: X + first mask conv output"] = 4.0 * frame_maps * (channels + p["mask"][0])
    return terms


# ------------------------------------------------------------------------------------------------ the child parts


def _configure(threads: int) -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)


_PHASES: dict[str, int] = {}


def reset_peak_rss() -> bool:
    """Resets VmHWM to the current RSS (Linux `clear_refs` 5); False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _timed(step, steps: int) -> tuple[float, list[float]]:
    _PHASES["build_peak"] = peak_rss_bytes()  # building the model and its weights
    _PHASES["after_build"] = rss_bytes()
    _PHASES["reset"] = reset_peak_rss()
    step()  # warm-up: trace, compile, create the optimiser's slots
    times, cpu = [], []
    for _ in range(steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    _PHASES["cpu_seconds"] = statistics.median(cpu)
    return statistics.median(times), times


def fused_adam(learning_rate: float):
    """Keras' Adam with its update done by TensorFlow's fused `ResourceApplyAdam` kernel (a candidate for the trainer).

    Same formula as `keras.optimizers.Adam` (m += (g - m)(1 - b1), v += (g² - v)(1 - b2),
    w -= lr sqrt(1 - b2^t) / (1 - b1^t) · m / (sqrt(v) + eps)), updated in place: no variable-sized temporaries
    (Keras' update allocates about five per variable, 151 MB each for the ConvLSTM's W_x).
    """
    import keras
    import tensorflow as tf

    def handle(variable):
        return variable.handle if isinstance(variable, tf.Variable) else variable.value.handle

    class FusedAdam(keras.optimizers.Adam):
        def update_step(self, gradient, variable, learning_rate):
            dtype = variable.dtype
            step = tf.cast(self.iterations + 1, dtype)
            beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
            index = self._get_variable_index(variable)
            tf.raw_ops.ResourceApplyAdam(
                var=handle(variable),
                m=handle(self._momentums[index]),
                v=handle(self._velocities[index]),
                beta1_power=tf.pow(beta_1, step),
                beta2_power=tf.pow(beta_2, step),
                lr=tf.cast(learning_rate, dtype),
                beta1=beta_1,
                beta2=beta_2,
                epsilon=tf.cast(self.epsilon, dtype),
                grad=tf.cast(gradient, dtype),
            )

    return FusedAdam(learning_rate)


def st_attn_objective(outputs: dict, labels, model, weight_decay: float = 5e-5):
    """Eq. 6 of Meng et al. with the paper's λs (`st_attn.losses.DEFAULT_LOSS_WEIGHTS`) + λ Σ w² over the kernels.

    The authors' released script's objective (the flagfiles' weight decay 5e-5), float32.
    """
    import tensorflow as tf

    from st_attn import losses

    weights = losses.DEFAULT_LOSS_WEIGHTS
    logits = tf.cast(outputs["logits"], tf.float32)
    total = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    total += weight_decay * tf.add_n([tf.reduce_sum(tf.square(w)) for w in model.trainable_weights if len(w.shape) > 1])
    total += weights["lambda_tv"] * losses.total_variation_loss(outputs["mask"])
    total += weights["lambda_contrast"] * losses.contrast_loss(outputs["mask"])
    total += weights["lambda_unimodal"] * losses.unimodality_loss(outputs["temporal_weights"])
    return total


def _st_attn_model(variants: set[str]):
    from st_attn import models as st_models

    p = ST_ATTN
    options = {}
    if "per_step" in variants:
        options["project_frames"] = False
    if "parallel" in variants:
        options["parallel_iterations"] = 10
    return st_models.build_st_attn_network(
        p["classes"],
        feature_shape=(p["hw"], p["hw"], p["channels"]),
        mask_filters=p["mask"],
        lstm_units=p["units"],
        init_filters=p["init"],
        attention_units=p["attention"],
        dropout=0.2,
        **options,
    )


def child_st_attn(part: str, variants: set[str], steps: int) -> dict:
    """ST-attn training (Adam, every loss term, the flagfile's coefficients) or inference at the paper's widths."""
    import keras
    import tensorflow as tf

    from st_attn import models as st_models

    p = ST_ATTN
    batch = 30 if part == "st_attn_b30" else p["batch"]
    training = part != "st_attn_eval"
    model = _st_attn_model(variants)
    dtype = tf.float32
    features = tf.cast(
        tf.random.stateless_uniform((batch, p["frames"], p["hw"], p["hw"], p["channels"]), (1, 2)), dtype
    )
    labels = tf.random.stateless_uniform((batch,), (3, 4), maxval=p["classes"], dtype=tf.int32)
    signature = [tf.TensorSpec((None, None, p["hw"], p["hw"], p["channels"]), dtype), tf.TensorSpec((None,), tf.int32)]
    jit = "xla" in variants
    if training:
        outputs_model = st_models.attention_model(model)
        optimizer = fused_adam(1e-4) if "fused_adam" in variants else keras.optimizers.Adam(1e-4)
        if "mixed_float16" in variants:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)  # slots exist before tracing: one trace, not two

        @tf.function(input_signature=signature, jit_compile=jit)
        def step(x, y):
            with tf.GradientTape() as tape:
                loss = st_attn_objective(outputs_model(x, training=True), y, model)
                if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
                    loss = optimizer.scale_loss(loss)
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            return loss
    else:

        @tf.function(input_signature=signature, jit_compile=jit)
        def step(x, y):
            del y
            return model(x, training=False)

    median, times = _timed(lambda: step(features, labels).numpy(), steps)
    params = model.count_params()
    bound = st_attn_bound(batch, p["frames"], training=training, params=params)
    traces = step.experimental_get_tracing_count()
    return {
        "batch": batch,
        "clips": batch,
        "seconds": median,
        "times": times,
        "bound": bound,
        "traces": traces,
        "params": params,
    }


def _stpa_model(frames_hint: int | None = None):
    from stpa import models as stpa_models

    del frames_hint
    return stpa_models.build_model(
        "stpa", "inception_resnet_v2", STPA_TRAIN["classes"], scales=3, top="C", fusion="mul", dropout=0.2, weights=None
    )


def child_stpa(part: str, variants: set[str], steps: int, frames: int) -> dict:
    """STPA IRv2 training (K = 3, B = 2, SGD momentum, the paper's loss) or test forward (B = 1, K frames)."""
    import keras
    import tensorflow as tf

    from stpa import models as stpa_models

    size = STPA_TRAIN["size"]
    training = part == "stpa_train"
    batch = STPA_TRAIN["batch"] if training else 1
    model = _stpa_model()
    clips = tf.random.stateless_uniform((batch, frames, size, size, 3), (5, 6), -1.0, 1.0)
    labels = tf.random.stateless_uniform((batch,), (7, 8), maxval=STPA_TRAIN["classes"], dtype=tf.int32)
    signature = [tf.TensorSpec((None, None, size, size, 3), tf.float32), tf.TensorSpec((None,), tf.int32)]
    jit = "xla" in variants
    if training:
        outputs_model = stpa_models.attention_outputs_model(model)
        optimizer = keras.optimizers.SGD(1e-3, momentum=0.9)
        optimizer.build(model.trainable_variables)

        @tf.function(input_signature=signature, jit_compile=jit)
        def step(x, y):
            with tf.GradientTape() as tape:
                loss = stpa_models.loss_terms(outputs_model(x, training=True), y, model)["total"]
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            return loss
    else:

        @tf.function(input_signature=signature, jit_compile=jit)
        def step(x, y):
            del y
            return model(x, training=False)

    median, times = _timed(lambda: step(clips, labels).numpy(), steps)
    # The bound's activation terms come from the parent (`stpa_bound`): building a second trunk here would count.
    return {
        "batch": batch,
        "clips": batch,
        "frames": frames,
        "seconds": median,
        "times": times,
        "bound": {},
        "traces": step.experimental_get_tracing_count(),
        "params": model.count_params(),
        "training": training,
    }


_TRUNK_BYTES: list[tuple[int, int]] = []


def stpa_bound(result: dict) -> dict[str, float]:
    """Weights (+ SGD momentum) + IRv2's per-frame kept activations x B·K (training) or its largest live layer x K.

    Slightly generous to the implementation: the layers after the top tap run once per clip, not per frame.
    """
    from stpa.blocks.backbones import build_backbone

    if not _TRUNK_BYTES:
        _TRUNK_BYTES.append(keras_activation_bytes(build_backbone("inception_resnet_v2", weights=None).trunk))
    kept, largest = _TRUNK_BYTES[0]
    frames = result["batch"] * result["frames"]
    bound = {"weights": 4.0 * result["params"]}
    if result["training"]:
        bound["optimiser slots (momentum)"] = 4.0 * result["params"]
        bound[f"kept: IRv2 activations {kept / MIB:.0f} MiB/frame x {frames} frames"] = float(kept * frames)
    else:
        bound[f"live: largest IRv2 layer in+out {largest / MIB:.1f} MiB/frame x {frames}"] = float(largest * frames)
    return bound


def pyramid_attention_bytes(frames: int, batch: int = 1) -> dict[str, float]:
    """float32 bytes of what PyramidAttention (IRv2, 3 scales, top C 8x8x2080, "mul") keeps for backprop, per term.

    d = 64 rows, n = K*64 positions. Per scale j: the pooled map R(f_j) (B K 64 C_j, the matmul's input) and the
    scores y^j (B d n); the fused scores, the softmax and the L2-normalised A (3 B d n); and the top features X
    (B n 2080; the pyramid's top tap, the backbone's own tensor, so not added). The pooling keeps its argmax
    positions (int: B K 64 C_j) for the lower scales. Backprop hands the backbone a gradient of each input's size.
    """
    d, n = 64, frames * 64
    lower_channels = (320, 1088)
    return {
        "gradients to the backbone (the inputs' size)": 4.0
        * batch
        * frames
        * (35 * 35 * 320 + 17 * 17 * 1088 + 64 * 2080),
        "pooled lower maps + argmax": 2 * 4.0 * batch * frames * 64 * sum(lower_channels),
        "scores y^j (3)": 3 * 4.0 * batch * d * n,
        "fused, softmax, A": 3 * 4.0 * batch * d * n,
    }


def child_stpa_layer(variants: set[str], steps: int, frames: int) -> dict:
    """PyramidAttention forward + backward at K frames on the paper's pyramid, allocator peak above its inputs."""
    import tensorflow as tf

    import stpa.layers
    from stpa.blocks.adaptive_pooling import POOLINGS
    from stpa.layers import PyramidAttention

    for name, pooling in POOLINGS.items():  # variants "segment_sum", "matmul": other backwards of Eq. 1's pooling
        if name in variants:
            stpa.layers.adaptive_max_pool = pooling
    pyramid = [tf.random.normal((1, frames, s, s, c)) for s, c in ((35, 320), (17, 1088), (8, 2080))]
    layer = PyramidAttention(fusion="mul")
    layer(pyramid)
    device, before = allocator_peak()
    base = tf.config.experimental.get_memory_info(device)["current"] if before is not None else 0
    try:
        tf.config.experimental.reset_memory_stats(device)
    except (ValueError, RuntimeError):
        base = before or 0  # no reset: the peak so far (the inputs) is the baseline

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(pyramid)
            loss = tf.reduce_sum(layer(pyramid))
        return tape.gradient(loss, layer.trainable_weights + pyramid)

    median, times = _timed(lambda: [g.numpy() for g in step()], steps)
    _, peak = allocator_peak()
    inputs = sum(4.0 * x.shape.num_elements() for x in pyramid)
    return {
        "batch": 1,
        "clips": 1,
        "frames": frames,
        "seconds": median,
        "times": times,
        "bound": pyramid_attention_bytes(frames),
        "layer_peak_above_inputs": (peak or 0) - base,
        "input_bytes": inputs,
        "traces": step.experimental_get_tracing_count(),
        "params": layer.count_params(),
    }


def run_child(part: str, variants: set[str], steps: int, threads: int, frames: int) -> dict:
    """Measures one part in this (fresh) process."""
    import keras  # noqa: F401  (counted in the import baseline)
    import tensorflow as tf

    import st_attn.models  # noqa: F401
    import stpa.models  # noqa: F401

    _configure(threads)
    baseline = rss_bytes()
    for policy in ("mixed_float16", "mixed_bfloat16"):
        if policy in variants:
            keras.mixed_precision.set_global_policy(policy)
    if part.startswith("st_attn"):
        result = child_st_attn(part, variants, steps)
    elif part == "stpa_layer":
        result = child_stpa_layer(variants, steps, frames)
    else:
        result = child_stpa(part, variants, steps, frames)
    device, peak = allocator_peak()
    step_peak = peak_rss_bytes()
    result.update(
        cpu_seconds=_PHASES["cpu_seconds"],
        build_peak=_PHASES["build_peak"],
        after_build=_PHASES["after_build"],
        step_peak=step_peak,
    )
    result.update(
        part=part,
        variants=sorted(variants),
        baseline=baseline,
        peak_rss=max(step_peak, _PHASES["build_peak"]),
        allocator_device=device,
        allocator_peak=peak,
        tf=tf.__version__,
    )
    return result


# ------------------------------------------------------------------------------------------------ the parent


def _spawn(part: str, variant: str, frames: int) -> dict:
    env = dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONPATH=os.pathsep.join(
            [os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.environ.get("PYTHONPATH", "")]
        ),
    )
    if part == "stpa_layer":  # TensorFlow's CPU allocator keeps statistics only as a BFC allocator
        env.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
    for name in variant.split("+"):
        env.update(ENVIRONMENT_VARIANTS.get(name, {}))
    command = [
        sys.executable,
        os.path.abspath(__file__),
        f"--child={part}",
        f"--variants={variant.replace('+', ',')}",
        f"--steps={_STEPS.value}",
        f"--threads={_THREADS.value}",
        f"--stpa_test_frames={frames}",
    ]
    finished = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    for line in finished.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"{part} [{variant}] failed (exit {finished.returncode}):\n{finished.stderr[-3000:]}")


def _gib(value: float) -> str:
    return f"{value / GIB:6.2f}"


_LINE: dict[str, dict] = {"figures": {}, "ratios": {}}  # the history line of the parent run


def _report(part: str, variant: str, runs: list[dict]) -> None:
    first = runs[0]
    bound = first["bound"] or stpa_bound(first)
    total_bound = sum(bound.values())
    row = f"{part}" + (f" K={first['frames']}" if "frames" in first else "") + f" [{variant}]"
    above_runs = [r["peak_rss"] - r["baseline"] for r in runs]
    _LINE["figures"][f"{row} peak RSS above import, GiB (median)"] = statistics.median(above_runs) / GIB
    _LINE["figures"][f"{row} step s (median)"] = statistics.median(r["seconds"] for r in runs)
    _LINE["ratios"][f"{row} peak RSS above import / lower bound"] = history.ratio(
        [above / total_bound for above in above_runs]
    )
    if part == "stpa_layer":
        _LINE["figures"][f"{row} layer allocator peak above inputs, MiB (median)"] = (
            statistics.median(r["layer_peak_above_inputs"] for r in runs) / MIB
        )
    peaks = [r["peak_rss"] for r in runs]
    above = [r["peak_rss"] - r["baseline"] for r in runs]
    alloc = [r["allocator_peak"] for r in runs if r["allocator_peak"] is not None]
    seconds = statistics.median(r["seconds"] for r in runs)
    clips = first["clips"]
    label = f"{part}" + (f" K={first['frames']}" if "frames" in first else "") + f" [{variant}] B={first['batch']}"
    print(
        f"\n== {label}: {len(runs)} fresh processes, params {first['params'] / 1e6:.1f} M, "
        f"traces per process {[r['traces'] for r in runs]}"
    )
    print(
        "  lower bound terms (GiB): "
        + ", ".join(f"{k} {v / GIB:.3f}" for k, v in bound.items())
        + f"  = {total_bound / GIB:.3f}"
    )
    print(f"  import baseline (RSS)          {_gib(statistics.median(r['baseline'] for r in runs))} GiB")
    print(
        f"  peak RSS total                 {_gib(statistics.median(peaks))} GiB   "
        f"runs {[round(p / GIB, 2) for p in peaks]}  spread {(max(peaks) - min(peaks)) / MIB:.0f} MiB"
    )
    print(
        f"  peak RSS above baseline        {_gib(statistics.median(above))} GiB   = "
        f"{statistics.median(above) / total_bound:.2f} x bound, "
        f"{statistics.median(above) / clips / GIB:.3f} GiB/clip"
    )
    print(
        f"  of which: after build {_gib(statistics.median(r['after_build'] for r in runs))} GiB, peak while "
        f"building {_gib(statistics.median(r['build_peak'] for r in runs))} GiB, peak in the steps "
        f"{_gib(statistics.median(r['step_peak'] for r in runs))} GiB"
    )
    if alloc:
        print(
            f"  TF allocator peak ({first['allocator_device']})     {_gib(statistics.median(alloc))} GiB   = "
            f"{statistics.median(alloc) / total_bound:.2f} x bound   runs {[round(a / GIB, 2) for a in alloc]}"
        )
    cpu = statistics.median(r["cpu_seconds"] for r in runs)
    print(
        f"  step time (median)             {seconds:7.2f} s wall ({seconds / clips:.2f} s/clip), {cpu:.2f} s CPU "
        f"(all threads; the steadier number on a shared machine)"
    )
    if part in ("st_attn_train", "st_attn_eval") and first["batch"] == 4:
        reference = AUTHORS["train_s" if part == "st_attn_train" else "eval_s"]
        print(
            f"  vs the issue's authors' model: speed {reference / seconds:.2f} x theirs; peak "
            f"{statistics.median(peaks) / GIB / AUTHORS['peak_gib']:.2f} x their 2.8 GiB (total), above-baseline "
            f"{statistics.median(above) / GIB / (AUTHORS['peak_gib'] - AUTHORS['framework_gib']):.2f} x their 2.54"
        )
    if part == "stpa_layer":
        layer = statistics.median(r["layer_peak_above_inputs"] for r in runs)
        print(
            f"  PyramidAttention allocator peak above its inputs: {layer / MIB:.1f} MiB "
            f"(bound {total_bound / MIB:.1f} MiB; inputs {first['input_bytes'] / MIB:.1f} MiB)"
        )


def main(argv):
    del argv
    if _CHILD.value:
        frames = int(_FRAMES.value[0])
        result = run_child(_CHILD.value, set(_VARIANTS.value) - {"base"}, _STEPS.value, _THREADS.value, frames)
        print("RESULT " + json.dumps(result))
        return
    jobs = []
    for part in _PARTS.value:
        if part == "stpa_test":
            jobs += [(part, int(k)) for k in _FRAMES.value]
        elif part == "stpa_train":
            jobs.append((part, STPA_TRAIN["frames"]))
        elif part == "stpa_layer":
            jobs.append((part, 30))
        else:
            jobs.append((part, ST_ATTN["frames"]))
    print(
        f"memory benchmark: {_THREADS.value} threads, {_REPEATS.value} fresh processes per row (interleaved), "
        f"{_STEPS.value} timed steps after 1 warm-up"
    )
    stpa_layer_rows = {}
    for part, frames in jobs:
        runs = {variant: [] for variant in _VARIANTS.value}
        for _ in range(_REPEATS.value):
            for variant in _VARIANTS.value:
                try:
                    runs[variant].append(_spawn(part, variant, frames))
                except RuntimeError as error:  # one variant failing leaves the others' rows
                    print(f"\n{str(error).splitlines()[0]}: {str(error).strip().splitlines()[-1][:300]}")
        for variant in _VARIANTS.value:
            if runs[variant]:
                _report(part, variant, runs[variant])
        if part in ("stpa_test", "stpa_layer") and runs[_VARIANTS.value[0]]:
            stpa_layer_rows[(part, frames)] = runs[_VARIANTS.value[0]]
    if ("stpa_layer", 30) in stpa_layer_rows and ("stpa_test", 30) in stpa_layer_rows:
        layer = statistics.median(r["layer_peak_above_inputs"] for r in stpa_layer_rows[("stpa_layer", 30)])
        test = statistics.median(r["peak_rss"] - r["baseline"] for r in stpa_layer_rows[("stpa_test", 30)])
        if not _TRUNK_BYTES:
            stpa_bound({"params": 0, "batch": 1, "frames": 1, "training": False})
        backbone = _TRUNK_BYTES[0][0] * 30
        print(
            f"\nPyramidAttention at K = 30, forward + backward, allocator peak above its inputs {layer / MIB:.1f} "
            f"MiB:\n  / IRv2's kept activations for 30 frames ({backbone / GIB:.2f} GiB, training) = "
            f"{layer / backbone:.2%}"
            f"  (goal <= 5 %)\n  / the STPA IRv2 test peak above baseline at K = 30 ({test / GIB:.2f} GiB) = "
            f"{layer / test:.2%}"
        )
        _LINE["ratios"]["PyramidAttention K=30 allocator peak / IRv2 kept activations"] = history.ratio(
            [r["layer_peak_above_inputs"] / backbone for r in stpa_layer_rows[("stpa_layer", 30)]], 0.05
        )
    settings = {"parts": _PARTS.value, "variants": _VARIANTS.value, "repeats": _REPEATS.value, "steps": _STEPS.value}
    settings["threads"] = _THREADS.value
    line = history.make_line("memory", _LINE["figures"], _LINE["ratios"], settings=settings)
    history.write(line, record=_RECORD.value)


if __name__ == "__main__":
    app.run(main)
