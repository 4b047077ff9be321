"""The composition root: the one module that lists the model families. Every command line imports it first.

Registers STPA and TSN (`stpa.family`) and ST-attn (`st_attn.family`) with the engine's registry, in that order
(`--model` defaults to the first). A further family needs no change to the engine or to this file: name the module
that registers it in the environment variable `STPA_FAMILY_MODULES` (comma-separated entries `module` -- importing it
registers the family -- or `module:function` -- the function is called after the import), e.g.
`STPA_FAMILY_MODULES=my_paper.family python -m stpa.train --model=my_paper ...`; the command lines of a saved run
(evaluate, export, visualize) need the same variable to rebuild its network. A plugin hook rather than an edit of
this file, so that a test (tests/stpa/test_third_family.py) or another repository can add a family to the unchanged
command lines, in their own processes.
"""

from __future__ import annotations

import importlib
import os

from st_attn.family import ST_ATTN
from stpa.engine.family import register_family
from stpa.family import STPA, TSN

ENVIRONMENT_VARIABLE = "STPA_FAMILY_MODULES"

for _family in (STPA, TSN, ST_ATTN):
    register_family(_family)


def import_family_modules(entries: str | None = None) -> list[str]:
    """Imports the modules named in `entries` (default: $STPA_FAMILY_MODULES), calling `module:function` entries.

    Returns:
      The entries handled.

    Raises:
      ImportError: naming the variable and the entry that failed.
    """
    entries = os.environ.get(ENVIRONMENT_VARIABLE, "") if entries is None else entries
    handled = []
    for entry in (e.strip() for e in entries.split(",")):
        if not entry:
            continue
        name, _, function = entry.partition(":")
        try:
            module = importlib.import_module(name)
            if function:
                getattr(module, function)()
        except (ImportError, AttributeError) as error:
            raise ImportError(f"{ENVIRONMENT_VARIABLE}: cannot load {entry!r} ({error}).") from error
        handled.append(entry)
    return handled


import_family_modules()
