"""Tests of the stpa package. Library-level tests use the registered model families, as the command lines do."""

import stpa.families  # noqa: F401 - the composition root registers the families.
