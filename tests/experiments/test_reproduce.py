"""The command line: `python -m experiments.reproduce` lists, refuses bad input in one line, and writes reports."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "experiments.reproduce", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_list_and_bad_study():
    listed = _run("--list")
    assert listed.returncode == 0 and "stpa_table1b:" in listed.stdout and "study_st_attn_full.cfg" in listed.stdout
    bad = _run("--study=table9")
    assert bad.returncode != 0 and "unknown study 'table9'" in bad.stderr


def test_report_only_writes_every_report_without_running(tmp_path):
    out = str(tmp_path / "studies")
    done = _run("--study=stpa_table1c,st_attn_table5", "--quick", f"--out_dir={out}", "--report_only", "--nohparams")
    assert done.returncode == 0, done.stderr
    with open(os.path.join(out, "reports", "stpa_table1c", "report.md")) as f:
        assert "| Element-wise Multiplication | no result (0/1) | 87.3 |" in f.read()
    assert os.path.isfile(os.path.join(out, "reports", "st_attn_table5", "st_attn_table5.png"))
    with open(os.path.join(out, "reports", "summary.md")) as f:
        summary = f.read()
    assert summary.count("no paired seeds") == 3 + 4
    assert "TSN RGB baseline (`study_stpa_tsn_rgb`, K = 25): no result (0/1) % top-1 (chance 16.7 %)" in summary
    assert not os.path.exists(os.path.join(out, "runs"))  # nothing ran
    mixed = _run("--study=stpa_table1c", f"--out_dir={out}", "--report_only")
    assert mixed.returncode != 0 and "holds --quick runs" in mixed.stderr


def test_cue_variant_is_recorded_and_named_in_the_reports(tmp_path):
    import json

    out = str(tmp_path / "motion")
    done = _run("--study=st_attn_table4", "--quick", "--cue=motion", f"--out_dir={out}", "--report_only", "--nohparams")
    assert done.returncode == 0, done.stderr
    with open(os.path.join(out, "reproduce.json")) as f:
        assert json.load(f)["benchmark_flags"] == ["--cue=motion"]
    with open(os.path.join(out, "reports", "st_attn_table4", "report.md")) as f:
        assert "Study benchmark (`data.synthetic --preset=study --cue=motion`)" in f.read()


PREREG = """# Test pre-registration

```prereg
seeds: 0-9
alpha: 0.05
test_videos: 300
benchmark: --preset=study
benchmark_digest: {digest}
```

| id | study | row A | row B | column | direction | margin |
|---|---|---|---|---|---|---|
| mul-max | stpa_table1c | Element-wise Multiplication | Element-wise Maximum | RGB | higher | 4 |
| elsewhere | stpa_table1b | 3 scales | 1 scale | RGB | higher | 4 |
"""


def test_preregistration_is_linked_decided_and_its_deviations_listed(tmp_path):
    from experiments import preregistration

    path = tmp_path / "prereg.md"
    path.write_text(PREREG.format(digest=preregistration.benchmark_digest(["--preset=study"])))
    out = str(tmp_path / "studies")
    done = _run(
        "--study=stpa_table1c",
        "--quick",
        f"--out_dir={out}",
        "--report_only",
        "--nohparams",
        f"--preregistration={path}",
    )
    assert done.returncode == 0, done.stderr
    with open(os.path.join(out, "reports", "summary.md")) as f:
        summary = f.read().splitlines()
    assert "## Pre-registered primary claims" in summary
    # The run: one seed (--quick), no per-video results yet, only Table 1(c) run; the digest matches.
    assert summary[summary.index("## Pre-registered primary claims") + 2 :][:6] == [
        f"Pre-registration: [prereg.md]({os.path.relpath(str(path), os.path.join(out, 'reports'))}). Deviations "
        "from it:",
        "",
        "- seeds: pre-registered 0-9 (10), the run used 0 (1): missing 1-9.",
        "- test_videos: pre-registered 300, the run does not record it.",
        "- claim elsewhere: pre-registered (stpa_table1b: 3 scales − 1 scale (RGB), paper: higher, margin ±4), not "
        "in the run.",
        "- schedule: --quick (shorter schedules, one seed) instead of the full schedules.",
    ]
    assert (
        "| mul-max | stpa_table1c | Element-wise Multiplication − Element-wise Maximum (RGB) | higher | 0 | "
        "no paired seed | — | 1 | 1 | ±4 | 1 | — | inconclusive | — | — |"
    ) in summary
    with open(os.path.join(out, "reports", "stpa_table1c", "report.md")) as f:
        text = f.read()
    assert "| mul-max | Element-wise Multiplication − Element-wise Maximum (RGB) |" in text
    assert "- claim elsewhere: pre-registered" in text
    bad = tmp_path / "bad.md"
    bad.write_text("# no block\n")
    refused = _run("--study=stpa_table1c", "--quick", f"--out_dir={out}", "--report_only", f"--preregistration={bad}")
    assert refused.returncode != 0 and "needs exactly one ```prereg block" in refused.stderr
