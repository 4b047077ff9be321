"""A quiet TensorFlow start-up for the command lines (`python -m data.prepare`, `python -m stpa.train`, ...).

`import tensorflow` and the first device query print C++ lines before Python can set a log level: the oneDNN
notice, "Could not find cuda drivers", the CPU-feature guard and, on a machine without a GPU,
"E0000 ... failed call to cuInit: ... UNKNOWN ERROR (303)". None of them is an error a user can act on, and
`TF_CPP_MIN_LOG_LEVEL` does not stop the ones written before absl's logging is initialised.

Each package's `__init__` calls `quiet_command_line_start()`, which acts only when Python runs one of the package's
modules as a program (`python -m ...`, when `sys.argv[0]` is still "-m" while the package is imported) or in a
worker process such a program started (the environment variable `QUIET_ENV`), and the user passed no verbosity
flag (`--verbosity` / `-v`, absl's). It then imports TensorFlow and lists the devices with the process's stderr
(file descriptor 2) sent to a temporary file; if the import fails, the captured text is written
back to stderr before the error propagates, so nothing that explains a failure is lost. Libraries and tests that
import the packages are untouched.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence

# absl's verbosity flag and its short forms: any of them asks for TensorFlow's start-up lines.
VERBOSITY_FLAGS = ("--verbosity", "-verbosity", "--v", "-v")
# Set by a quiet command line, so that its worker processes (multiprocessing "spawn", Beam) start quietly too.
QUIET_ENV = "VIDEO_ATTENTION_QUIET_START"


def verbosity_requested(argv: Sequence[str]) -> bool:
    """Whether the command line sets absl's verbosity (`--verbosity=1`, `-v 0`, `--v=-1`, ...)."""
    return any(arg.split("=", 1)[0] in VERBOSITY_FLAGS for arg in argv)


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow and initialises its device list with the C++ start-up lines kept off stderr.

    A no-op when TensorFlow is already imported. On an import error the captured lines are replayed to stderr.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # cuInit and the device factories print here, not at import.
        except BaseException:
            os.dup2(saved_stderr, 2)
            captured.seek(0)
            os.write(2, captured.read())
            raise
        finally:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)


def quiet_command_line_start(argv: Sequence[str] | None = None) -> None:
    """Imports TensorFlow quietly in a `python -m` program (or its workers) when no verbosity flag is given.

    Args:
      argv: the process arguments (default `sys.argv`); `argv[0] == "-m"` while `python -m` imports the package.
    """
    argv = sys.argv if argv is None else argv
    started_as_program = bool(argv) and argv[0] == "-m"
    if not (started_as_program or os.environ.get(QUIET_ENV) == "1") or verbosity_requested(argv[1:]):
        return
    os.environ[QUIET_ENV] = "1"
    import_tensorflow_quietly()
