"""The layering of BUILD.md, Architecture, checked on the source: every import (lazy ones too) parsed with `ast`.

  data  <-  stpa.blocks (model-building blocks: backbones, video_ops, preprocessing)
        <-  families: STPA / TSN (stpa.family, stpa.models, ...), ST-attn (st_attn.*)
        <-  command lines (stpa.train, stpa.evaluate, ..., st_attn.localize / visualize main), composed in stpa.families
  data  <-  stpa.engine (loops, config, checkpoints, serving, ...)  <-  families  <-  command lines

The engine and the blocks are side by side: neither imports the other (the engine gets a model's input normalisation
from `ModelFamily.input_spec`, never from a backbone).
"""

from __future__ import annotations

import ast
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCKS = ("stpa.blocks",)
# What the blocks may import besides the standard library, `data` and themselves.
BLOCKS_THIRD_PARTY = ("keras", "tensorflow", "numpy", "cv2")
STPA_FAMILY = ("stpa.family", "stpa.models", "stpa.layers", "stpa.losses", "stpa.saliency", "stpa.visualization")
# The command lines that build or load a network (stpa.fuse reads score files, stpa.convert_weights weight files).
COMMAND_LINES = ("stpa.train", "stpa.evaluate", "stpa.export", "stpa.visualize", "stpa.quickstart")
FAMILY_NAMES = ("stpa", "tsn", "st_attn")


def _modules(package: str) -> dict[str, str]:
    """{dotted module name: path} of every .py file under a top-level package."""
    found = {}
    for root, _, names in os.walk(os.path.join(REPO, package)):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                dotted = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                found[dotted.removesuffix(".__init__")] = path
    return found


def _imports(path: str) -> list[tuple[str, int]]:
    """(imported module, line) of every import statement in a file; `from a import b` yields a.b as well as a."""
    tree = ast.parse(open(path).read(), path)
    result = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            result.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            result.append((node.module, node.lineno))
            result.extend((f"{node.module}.{alias.name}", node.lineno) for alias in node.names)
    return result


def _within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _violations(modules: dict[str, str], forbidden) -> list[str]:
    return [
        f"{os.path.relpath(path, REPO)}:{line} imports {name}"
        for module, path in sorted(modules.items())
        for name, line in _imports(path)
        if _within(name, forbidden)
    ]


def test_data_imports_no_model_code():
    assert _violations(_modules("data"), ("stpa", "st_attn")) == []


def _allowed_in_blocks(name: str) -> bool:
    """The standard library, Keras / TF / NumPy / OpenCV, `data` and the blocks ("stpa" alone: `from stpa import`)."""
    return (
        name == "stpa"
        or name.split(".")[0] in sys.stdlib_module_names
        or _within(name, (*BLOCKS, "data", *BLOCKS_THIRD_PARTY))
    )


def test_the_blocks_import_only_keras_tf_numpy_cv2_data_and_themselves():
    blocks = {m: p for m, p in _modules("stpa").items() if _within(m, BLOCKS)}
    assert {"stpa.blocks", "stpa.blocks.backbones", "stpa.blocks.video_ops", "stpa.blocks.preprocessing"} <= set(blocks)
    bad = [
        f"{os.path.relpath(path, REPO)}:{line} imports {name}"
        for module, path in sorted(blocks.items())
        for name, line in _imports(path)
        if not _allowed_in_blocks(name)
    ]
    assert bad == []


def test_the_engine_imports_only_data_itself_and_names_no_family():
    engine = {m: p for m, p in _modules("stpa").items() if _within(m, ("stpa.engine",))}
    assert len(engine) >= 15
    # Not the blocks either: what the engine needs of a backbone (input size, normalisation) it asks the family.
    bad = [
        f"{os.path.relpath(path, REPO)}:{line} imports {name}"
        for module, path in sorted(engine.items())
        for name, line in _imports(path)
        if _within(name, ("stpa", "st_attn")) and not _within(name, ("stpa.engine",)) and name != "stpa"
    ]
    assert bad == []
    named = []
    for path in sorted(engine.values()):
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.Constant) and node.value in FAMILY_NAMES:
                named.append(f"{os.path.relpath(path, REPO)}:{node.lineno} names the family {node.value!r}")
    assert named == []


def test_the_stpa_family_never_imports_st_attn():
    stpa = {m: p for m, p in _modules("stpa").items() if not _within(m, ("stpa.engine", "stpa.families"))}
    assert _violations(stpa, ("st_attn",)) == []


# Where an st_attn module may import the composition root: its command line's main() only (no library function).
COMPOSITION_ROOT_USERS = {"st_attn.localize": ("main",), "st_attn.visualize": ("main",), "st_attn.features": ("main",)}


def _lines_inside(path: str, functions) -> set[int]:
    """Line numbers of the bodies of the module-level functions named in `functions`."""
    lines = set()
    for node in ast.parse(open(path).read(), path).body:
        if isinstance(node, ast.FunctionDef) and node.name in functions:
            lines.update(range(node.lineno, node.end_lineno + 1))
    return lines


def test_st_attn_imports_only_data_the_engine_and_the_blocks():
    modules = _modules("st_attn")
    bad = []
    for module, path in sorted(modules.items()):
        set_up = _lines_inside(path, COMPOSITION_ROOT_USERS.get(module, ()))
        for name, line in _imports(path):
            if not _within(name, ("stpa",)) or name == "stpa":
                continue
            allowed = _within(name, ("stpa.engine", *BLOCKS))
            if name == "stpa.families":  # the composition root, only inside a command line's set-up function
                allowed = line in set_up
            if not allowed:
                bad.append(f"{os.path.relpath(path, REPO)}:{line} imports {name}")
    assert bad == []
    assert _violations(modules, STPA_FAMILY) == []


def test_only_the_composition_root_imports_both_families():
    both = []
    for package in ("stpa", "st_attn", "experiments"):
        for module, path in _modules(package).items():
            names = [name for name, _ in _imports(path)]
            if any(_within(n, ("stpa.family",)) for n in names) and any(_within(n, ("st_attn.family",)) for n in names):
                both.append(module)
    assert both == ["stpa.families"]


@pytest.mark.parametrize("module", COMMAND_LINES)
def test_every_command_line_composes_the_families(module):
    names = [name for name, _ in _imports(_modules("stpa")[module])]
    assert "stpa.families" in names
