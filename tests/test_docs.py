"""The documents: every relative link in every committed markdown file resolves, and the fidelity tables name code that
exists (issue 28, points 2 and 3).

Links: `[text](target)` and `[text](target#anchor)` whose target is not a URL must name a file or folder of the
repository, relative to the markdown file; an anchor into a markdown file (or `#anchor` within the same file) must
be one of that file's headings, slugged as GitHub does (lowercase, punctuation other than `-` and `_` dropped, spaces
to `-`, repeats numbered `-1`, `-2`, ...). Fidelity: every backticked dotted name in the rows of BUILD.md's
"Paper fidelity" tables that starts with a package of this repository (or `keras`) imports: the longest importable
module prefix, then attributes; a `Class.member` name without a package is looked up in the modules the same row
names.
"""

import importlib
import importlib.util
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")
PACKAGES = ("stpa", "st_attn", "data", "experiments", "benchmarks", "keras")
DOTTED = re.compile(r"\b(?:" + "|".join(PACKAGES) + r")(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
MEMBER = re.compile(r"^([A-Z][A-Za-z0-9_]*)\.(?!(?:m|py|cfg|md|json|txt|pth|h5)$)([A-Za-z_][A-Za-z0-9_]*)$")


def markdown_files() -> list[str]:
    """The committed (and new, not ignored) markdown files, relative to the repository root."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return sorted(path for path in set(listed) if os.path.exists(os.path.join(ROOT, path)))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"<[^>]+>", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def anchors(path: str) -> set[str]:
    """Every heading anchor of a markdown file (duplicates numbered as GitHub does)."""
    with open(path, encoding="utf-8") as f:
        lines = prose_lines(f.read())
    seen: dict[str, int] = {}
    result = set()
    for line in lines:
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def broken_links(path: str) -> list[str]:
    """The relative links of one markdown file (relative to ROOT) that do not resolve, as `target: why`."""
    absolute = os.path.join(ROOT, path)
    with open(absolute, encoding="utf-8") as f:
        lines = prose_lines(f.read())
    broken = []
    for line in lines:
        line = re.sub(r"`[^`]*`", "", line)  # code spans are not links
        for match in LINK.finditer(line):
            target = match.group(1) or match.group(2)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
                continue
            file_part, _, anchor = target.partition("#")
            resolved = os.path.normpath(os.path.join(os.path.dirname(absolute), file_part)) if file_part else absolute
            if not resolved.startswith(ROOT + os.sep) and resolved != ROOT:
                broken.append(f"{target}: outside the repository")
            elif not os.path.exists(resolved):
                broken.append(f"{target}: no such file or folder")
            elif anchor and resolved.endswith(".md") and anchor not in anchors(resolved):
                broken.append(f"{target}: no heading with anchor #{anchor}")
    return broken


def test_slugs_follow_github():
    assert slug("Command lines: train, evaluate, fuse, export, visualise (`stpa.train` …)") == (
        "command-lines-train-evaluate-fuse-export-visualise-stpatrain-"
    )
    assert slug("Eq. 6 at the paper's β: every term") == "eq-6-at-the-papers-β-every-term"


def test_a_broken_link_is_found(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", str(tmp_path))
    links = "[ok](#top) [bad](#nope) [file](b.md#x) [gone](missing.md)"
    (tmp_path / "a.md").write_text(f"# Top\n\n{links}\n```\n[x](y)\n```\n")
    (tmp_path / "b.md").write_text("## X\n")
    assert broken_links("a.md") == ["#nope: no heading with anchor #nope", "missing.md: no such file or folder"]


def test_every_relative_link_in_every_markdown_file_resolves():
    files = markdown_files()
    assert "README.md" in files and "BUILD.md" in files
    broken = {path: problems for path in files if (problems := broken_links(path))}
    assert broken == {}


def test_readme_and_build_stay_short_and_build_has_a_linked_contents():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    with open(os.path.join(ROOT, "BUILD.md"), encoding="utf-8") as f:
        build = f.read()
    assert readme.count("\n") <= 150
    assert build.count("\n") <= 800
    assert "## Contents" in build and "](#paper-fidelity)" in build
    for page in ("docs/user-guide.md", "docs/study-protocol.md", "docs/performance-notes.md", "CHANGELOG.md"):
        assert f"]({page}" in build, page


def fidelity_rows() -> list[str]:
    """The table rows of BUILD.md's "Paper fidelity" section."""
    with open(os.path.join(ROOT, "BUILD.md"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("\n## Paper fidelity", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("|") and not line.startswith("|---")]


def is_module(name: str) -> bool:
    """Whether a dotted name is a module (found without running it: command-line modules define flags)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # a parent is a module, not a package
        return False


def resolve(name: str) -> object:
    """The object a dotted name names: the longest module prefix, then attributes of that module."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        if not is_module(".".join(parts[:cut])):
            continue
        if cut == len(parts):
            return name
        value = importlib.import_module(".".join(parts[:cut]))
        for attribute in parts[cut:]:
            value = getattr(value, attribute)
        return value
    raise ImportError(name)


def fidelity_names() -> list[tuple[str, tuple[str, ...]]]:
    """Each backticked name of the fidelity rows with the dotted names its row gives (for `Class.member` names)."""
    names = []
    for row in fidelity_rows():
        spans = re.findall(r"`([^`]+)`", row)
        dotted = tuple(dict.fromkeys(found for span in spans for found in DOTTED.findall(span)))
        names += [(found, dotted) for found in dotted]
        names += [(span, dotted) for span in spans if MEMBER.match(span)]
    return names


def test_the_fidelity_tables_name_code():
    names = fidelity_names()
    assert len(names) > 40
    assert any(name == "stpa.layers.pyramid_downsample" for name, _ in names)


@pytest.mark.parametrize("name,row_names", fidelity_names(), ids=lambda value: value if isinstance(value, str) else "")
def test_every_name_in_the_fidelity_tables_exists(name, row_names):
    if not MEMBER.match(name):
        resolve(name)
        return
    cls, member = MEMBER.match(name).groups()
    candidates = [*row_names, "stpa.layers", "st_attn.layers", "stpa.models", "st_attn.models"]
    for candidate in candidates:
        try:
            owner = resolve(f"{candidate}.{cls}")
        except (ImportError, AttributeError):
            continue
        assert hasattr(owner, member), f"{candidate}.{cls} has no {member}"
        return
    pytest.fail(f"{name}: no module of its row ({', '.join(row_names)}) defines {cls}")
