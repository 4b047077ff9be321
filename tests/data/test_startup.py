"""Tests of data.startup: the command lines start without TensorFlow's C++ start-up lines unless asked."""

import os
import subprocess
import sys

import pytest

from data import startup

# Lines TensorFlow's C++ start-up writes on this kind of machine (absl's pre-init banner, INFO/ERROR records).
TF_START_UP_MARKERS = ("absl::InitializeLog", "I0000 ", "E0000 ", "W0000 ", "oneDNN", "cuda")


def _run(args, **env):
    environment = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", startup.QUIET_ENV)}
    environment.update(env)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, env=environment)


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--model_dir=x"], False),
        (["--verbosity=0"], True),
        (["-v", "1"], True),
        (["-v=-1"], True),
        (["--v=0"], True),
        (["--verbose_name=1", "--vv"], False),
    ],
)
def test_verbosity_requested(argv, expected):
    assert startup.verbosity_requested(argv) is expected


def test_command_line_hides_start_up_lines_unless_verbose():
    args = ["-m", "stpa.evaluate", "--model_dir=/nonexistent-run"]
    quiet = _run(args)
    assert "--records_dir is required" in quiet.stdout + quiet.stderr  # The command's own message still shows.
    assert not [m for m in TF_START_UP_MARKERS if m in quiet.stderr], quiet.stderr

    verbose = _run(args + ["--verbosity=0"])
    assert [m for m in TF_START_UP_MARKERS if m in verbose.stderr], verbose.stderr


def test_worker_processes_of_a_quiet_program_start_quietly():
    # What a multiprocessing "spawn" worker of `python -m data.prepare` sees: a file path in argv, QUIET_ENV set.
    code = "import data, sys; import tensorflow as tf; tf.constant(1).numpy(); print('tensorflow' in sys.modules)"
    worker = _run(["-c", code], **{startup.QUIET_ENV: "1"})
    assert worker.stdout.strip() == "True"
    assert not [m for m in TF_START_UP_MARKERS if m in worker.stderr], worker.stderr


def test_importing_the_packages_as_libraries_changes_nothing():
    result = _run(["-c", "import sys, data, stpa, st_attn; print('tensorflow' in sys.modules)"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
