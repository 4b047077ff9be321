"""experiments.readme_results: the README block is the summary's sections, and the committed README is current."""

import os

import pytest

from experiments import readme_results

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SUMMARY = """# The powered protocol: results

Pre-registration: x.

## Benchmark validity (pre-registered)

- TSN RGB: yes.

## Primary claims (main instance, one Holm family)

| Claim | Verdict |
|---|---|
| a | as the paper |

Explanation that stays in summary.md.

## Replications (each its own Holm family)

| Claim | main |
|---|---|

## Parts: measured wall time (2 cores)

| Part |
|---|
"""


def test_validity_and_primary_claims_are_copied_verbatim_with_demoted_headings():
    """Only the primary verdicts: replications and part times stay in summary.md (a README of at most 150 lines)."""
    assert readme_results.summary_sections(SUMMARY) == (
        "### Benchmark validity (pre-registered)\n\n- TSN RGB: yes.\n\n"
        "### Primary claims (main instance, one Holm family)\n\n"
        "| Claim | Verdict |\n|---|---|\n| a | as the paper |\n\n"
        "Explanation that stays in summary.md.\n"
    )


def test_a_missing_section_is_named():
    with pytest.raises(ValueError, match=r"\['Primary claims'\]"):
        readme_results.summary_sections(SUMMARY.replace("## Primary claims", "## Something else"))


def test_block_replacement_keeps_the_rest_and_is_idempotent():
    readme = f"# T\n\nintro\n{readme_results.BEGIN}\nold\n{readme_results.END}\n\nafter\n"
    once = readme_results.replace_block(readme, "new\n")
    assert once == f"# T\n\nintro\n{readme_results.BEGIN}\n\nnew\n\n{readme_results.END}\n\nafter\n"
    assert readme_results.replace_block(once, "new\n") == once
    with pytest.raises(ValueError, match="exactly one"):
        readme_results.replace_block(readme.replace(readme_results.END, ""), "new\n")


def test_command_rewrites_then_checks(tmp_path, capsys):
    summary, readme = tmp_path / "summary.md", tmp_path / "README.md"
    summary.write_text(SUMMARY)
    readme.write_text(f"a\n{readme_results.BEGIN}\n{readme_results.END}\nb\n")
    args = [f"--readme={readme}", f"--summary={summary}"]
    assert readme_results.main([*args, "--check"]) == 1
    assert readme_results.main(args) == 0
    assert "### Primary claims" in readme.read_text()
    assert readme_results.main([*args, "--check"]) == 0
    assert readme_results.main([f"--readme={readme}", f"--summary={tmp_path / 'missing.md'}"]) == 2
    assert "missing.md" in capsys.readouterr().err


def test_committed_readme_matches_the_committed_summary():
    """Fails when new protocol results were committed without `python -m experiments.readme_results`."""
    status = readme_results.main(
        [
            f"--readme={os.path.join(ROOT, readme_results.DEFAULT_README)}",
            f"--summary={os.path.join(ROOT, readme_results.DEFAULT_SUMMARY)}",
            "--check",
        ]
    )
    assert status == 0


def _row(*cells):
    return "| " + " | ".join(cells) + " |"


COLUMNS = ("Claim", "Host", "Study", "A − B (column)", "Paper", "Seeds × videos", "d [95 % interval]", "SE", "MDE")
HOSTS_SUMMARY = "\n".join(
    [
        "# The hosts protocol: results",
        "",
        "## Primary claims (main instance, one Holm family)",
        "",
        _row(*COLUMNS, "Verdict", "SE (var. comp.)", "Verdict (var. comp.)"),
        "|" + "---|" * 12,
        _row(
            "x",
            "pretrained",
            "s",
            "A − B (Flow)",
            "higher",
            "3 × 300",
            "-1.0 [-4.0, +2.0]",
            "1.5",
            "9.9",
            "inc.",
            "1.2",
            "inc.",
        ),
        _row("y", "tiny", "t", "O − M (top-1)", "higher", "0", "no paired seed", "—", "—", "inc.", "—", "—"),
        "",
        "Explanation.",
        "",
        "## Parts: measured wall time (2 cores)",
        "",
        _row("Part", "Instance", "Planned (min)", "Measured (min)", "Runs", "Tasks", "Not done"),
        "|---|---|---|---|---|---|---|",
        _row("a", "main", "42", "41.0", "1", "50", "0"),
        _row("b", "main", "42", "not run", "0", "—", "—"),
        "",
    ]
)


def test_hosts_block_is_the_compact_claims_table_and_the_parts_that_ran():
    assert readme_results.compact_table(HOSTS_SUMMARY).splitlines() == [
        _row(*readme_results.COMPACT_COLUMNS, "Verdict (var. comp.)"),
        "|---|---|---|---|---|---|---|---|",
        _row("x", "pretrained", "A − B (Flow)", "3 × 300", "-1.0 [-4.0, +2.0]", "9.9", "inc.", "inc."),
        _row("y", "tiny", "O − M (top-1)", "0", "no paired seed", "—", "inc.", "—"),
        "",
        "Parts run: 1 of 2; the verdicts are final when every part has run.",
    ]
    with pytest.raises(ValueError, match="primary-claims table"):
        readme_results.compact_table("# nothing\n")
