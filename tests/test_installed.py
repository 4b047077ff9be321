"""The installed package, run from outside the repository root (issue 17.8): the README's `pip install -e .` must
make `stpa`, `st_attn`, `data` and `experiments` importable anywhere, with the study flagfiles found at run time.

If this fails with "No module named 'experiments'" in an environment installed before `experiments` was packaged,
re-run `pip install -e .` (an editable install lists its packages when it is made).
"""

import os
import subprocess
import sys

from experiments import studies


def _outside(tmp_path, *args: str) -> subprocess.CompletedProcess:
    """Runs this interpreter in an empty directory, without the repository on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)


def test_packages_import_from_another_directory_and_find_the_flagfiles(tmp_path):
    code = (
        "import os, stpa, st_attn, data, experiments; from experiments import runner; "
        "print(os.path.dirname(experiments.__file__)); print(runner.FLAGFILE_DIR)"
    )
    completed = _outside(tmp_path, "-c", code)
    assert completed.returncode == 0, completed.stderr[-2000:]
    package_dir, flagfile_dir = completed.stdout.split()
    assert not package_dir.startswith(str(tmp_path))
    wanted = {stem + ".cfg" for study in studies.STUDIES.values() for stem in study.flagfiles()}
    assert wanted and wanted <= set(os.listdir(flagfile_dir)), sorted(wanted - set(os.listdir(flagfile_dir)))[:5]


def test_reproduce_list_runs_from_another_directory(tmp_path):
    completed = _outside(tmp_path, "-m", "experiments.reproduce", "--list")
    assert completed.returncode == 0, completed.stderr[-2000:]
    listed = [line.split(":")[0] for line in completed.stdout.splitlines() if line and not line.startswith(" ")]
    assert listed == list(studies.STUDIES)
    assert {"stpa_table1b", "stpa_table1c", "stpa_table1d", "stpa_table1e"} <= set(listed)
