"""Every flagfile under experiments/ parses with the flags of its command, and its values are valid.

A flagfile names its command in a header line `# command: python -m <module>` (default: stpa.train). The files
of each command are parsed in one subprocess that imports the module (or calls its `_define_flags()`), parses
`--flagfile=<file>`, and, for stpa.train, builds the RunConfig and runs `trainer.validate_config` (backbone,
top per backbone, scales, schedule, ...) without touching the data paths.
"""

import json
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXPERIMENTS = os.path.join(REPO, "experiments")
COMMAND = re.compile(r"^#\s*command:\s*python\s+-m\s+([\w.]+)")

PARSE_SCRIPT = r"""
import importlib, json, sys
from absl import flags

module_name, paths = sys.argv[1], sys.argv[2:]
module = importlib.import_module(module_name)
if hasattr(module, "_define_flags"):  # modules that define their flags only when run as programs
    module._define_flags()
FLAGS = flags.FLAGS
results = {}
for path in paths:
    try:
        FLAGS.unparse_flags()
        FLAGS(["prog", "--flagfile=" + path])
        if module_name == "stpa.train":
            from stpa.engine import trainer
            config = module.config_from_flags()
            for stream_config in module.stream_configs(config, FLAGS.streams):
                trainer.validate_config(stream_config, check_paths=False)
        results[path] = "ok"
    except Exception as error:  # noqa: BLE001 - reported per file
        results[path] = f"{type(error).__name__}: {error}"
print("RESULTS " + json.dumps(results))
"""


def flagfiles():
    found = []
    for root, _, files in os.walk(EXPERIMENTS):
        found.extend(os.path.join(root, f) for f in sorted(files) if f.endswith(".cfg"))
    return sorted(found)


def command_of(path):
    with open(path) as f:
        for line in f:
            match = COMMAND.match(line.strip())
            if match:
                return match.group(1)
    return "stpa.train"


def test_there_is_a_flagfile_for_every_stpa_table_row():
    names = {os.path.basename(p)[:-4] for p in flagfiles()}
    for top in ("A", "B", "C"):
        assert {f"table1a_top_block{top}_rgb", f"table1a_top_block{top}_flow"} <= names
    assert {f"table1b_scales{n}_{s}" for n in (1, 2, 3, 4) for s in ("rgb", "flow")} <= names
    assert {f"table1c_fusion_{f}_rgb" for f in ("max", "sum", "mul")} <= names
    assert {f"table1d_loss_{k}_{s}" for k in ("inter", "attn", "no_loss") for s in ("rgb", "flow")} <= names
    assert {
        f"table1e_{n}_{m}_{s}"
        for n in ("vgg16", "bninception", "irv2")
        for m in ("tsn", "3scales")
        for s in ("rgb", "flow")
    } <= names
    assert {
        f"table2a_{d}_{n}_{s}" for d in ("ucf101", "hmdb51") for n in ("bninception", "irv2") for s in ("rgb", "flow")
    } <= names
    assert any(name.startswith("table2b_charades") for name in names)
    assert any(p.startswith(os.path.join(EXPERIMENTS, "synthetic")) for p in flagfiles())


@pytest.mark.slow
def test_every_flagfile_parses_and_is_valid():
    by_command = {}
    for path in flagfiles():
        by_command.setdefault(command_of(path), []).append(path)
    assert by_command
    failures = {}
    for module, paths in sorted(by_command.items()):
        out = subprocess.run(
            [sys.executable, "-c", PARSE_SCRIPT, module, *paths],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
            timeout=240,
        )
        line = [x for x in out.stdout.splitlines() if x.startswith("RESULTS ")]
        assert line, f"{module}: {out.stderr[-2000:]}"
        for path, result in json.loads(line[0][len("RESULTS ") :]).items():
            if result != "ok":
                failures[os.path.relpath(path, REPO)] = result
    assert not failures, json.dumps(failures, indent=1)


def test_a_bad_flagfile_is_reported(tmp_path):
    bad = tmp_path / "bad.cfg"
    bad.write_text("--model=stpa\n--backbone=tiny\n--top=Q\n")
    unknown = tmp_path / "unknown.cfg"
    unknown.write_text("--no_such_flag=1\n")
    out = subprocess.run(
        [sys.executable, "-c", PARSE_SCRIPT, "stpa.train", str(bad), str(unknown)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=240,
    )
    results = json.loads([x for x in out.stdout.splitlines() if x.startswith("RESULTS ")][0][len("RESULTS ") :])
    assert "top='Q'" in results[str(bad)] and "allowed" in results[str(bad)]
    assert "no_such_flag" in results[str(unknown)]
