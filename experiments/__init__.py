"""Experiment definitions: flagfiles per paper table (`stpa/`, `st_attn/`, `synthetic/`) and the study runner.

`python -m experiments.reproduce --study=<name>` runs one paper table on the synthetic study benchmark (BUILD.md,
"Reproducing the papers' findings"): `experiments.studies` names the rows and the paper's numbers,
`experiments.runner` runs them through the user-facing command lines, `experiments.statistics` computes the
paired verdicts and `experiments.report` writes report.md, figures and TensorBoard HParams.
"""

from data import startup as _startup

_startup.quiet_command_line_start()  # `python -m experiments.reproduce`: TensorFlow's C++ start-up lines stay hidden.
