"""The composition root: the one module that lists the model families. Every command line imports it first.

Registers STPA and TSN (`stpa.family`) and ST-attn (`st_attn.family`) with the engine's registry, in that order
(`--model` defaults to the first). A further family needs no change to the engine or to this file: name the module
that registers it in the environment variable `STPA_FAMILY_MODULES` (comma-separated module names, imported here),
e.g. `STPA_FAMILY_MODULES=my_paper.family python -m stpa.train --model=my_paper ...`; the command lines of a saved
run (evaluate, export) need the same variable to rebuild its network.
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


def import_family_modules(names: str | None = None) -> list[str]:
    """Imports the modules named in `names` (default: $STPA_FAMILY_MODULES); each registers its families.

    Returns:
      The imported module names.

    Raises:
      ImportError: naming the variable and the module that failed.
    """
    names = os.environ.get(ENVIRONMENT_VARIABLE, "") if names is None else names
    imported = []
    for name in (n.strip() for n in names.split(",")):
        if not name:
            continue
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise ImportError(f"{ENVIRONMENT_VARIABLE}: cannot import {name!r} ({error}).") from error
        imported.append(name)
    return imported


import_family_modules()
