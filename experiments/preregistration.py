"""The pre-registration of a study protocol: a markdown file that is parsed, and what a run did compared with it.

A pre-registration is written, and committed, before any run of the protocol. It is ordinary markdown with prose
for the reader and two parts that are read here:

1. One fenced block with the info string `prereg`, one `key: value` per line (`#` starts a comment line):

       ```prereg
       seeds: 0-9                    # "0-9", "0, 1, 2" or "0-4, 7"
       alpha: 0.05                   # family-wise level of the primary claims (Holm)
       power: 0.8                    # of the minimum detectable effect (optional, 0.8)
       level: 0.95                   # coverage of the reported bootstrap intervals (optional, 0.95)
       bootstrap_resamples: 10000    # optional, 10000
       bootstrap_seed: 0             # optional, 0
       test_videos: 300              # the test-set size
       benchmark: --preset=study --train_per_class=60
       benchmark_digest: 3f2a...     # `benchmark_digest(flags)` of the benchmark's data.synthetic flags
       descriptive: stpa_fig3, st_attn_table5   # studies reported without a decision (optional)
       ```

   Any other key (e.g. `schedule: 1500 steps`) is kept in `Preregistration.settings` and compared like the rest
   when the run records it.

2. One markdown table of the primary claims with (at least) these columns, in any order:

       | id | study | row A | row B | column | direction | margin | paper |
       |---|---|---|---|---|---|---|---|
       | attention | stpa_table1e | STPA | Uniform attention | RGB | higher | 4 | +2.1 on UCF101 |

   `direction` is the paper's: "higher" (A > B) or "lower" (A < B); `margin` is the equivalence margin in points;
   `paper` (optional) is what the paper reports. Row and column names are those of `experiments.studies`.

`load(path)` parses the file; `deviations(prereg, actual)` lists, one readable line each, where a run's settings
(`actual`, a dict with the same keys and `claims`) differ from it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping, Sequence

BLOCK_INFO = "prereg"
CLAIM_COLUMNS = ("id", "study", "row a", "row b", "column", "direction", "margin")
_DIRECTIONS = {"higher": 1, "lower": -1}
_DEFAULTS = {"power": 0.8, "level": 0.95, "bootstrap_resamples": 10000, "bootstrap_seed": 0}
_FORMAT_HINT = "see experiments/preregistration.py for the format"


@dataclasses.dataclass(frozen=True)
class PrimaryClaim:
    """A pre-registered claim: in study `study`, (row_a, column) − (row_b, column) has the sign `sign`."""

    id: str
    study: str
    row_a: str
    row_b: str
    column: str
    sign: int
    margin: float
    paper: str = ""

    @property
    def cell(self) -> tuple[str, str]:
        """(row A, column): the cell the claim is about."""
        return (self.row_a, self.column)

    @property
    def reference(self) -> tuple[str, str]:
        """(row B, column): the cell it is compared with."""
        return (self.row_b, self.column)

    def describe(self) -> str:
        """A one-line description: "study: A − B (column), paper: higher, margin ±4"."""
        direction = "higher" if self.sign > 0 else "lower"
        return f"{self.study}: {self.row_a} − {self.row_b} ({self.column}), paper: {direction}, margin ±{self.margin:g}"


@dataclasses.dataclass(frozen=True)
class Preregistration:
    """A parsed pre-registration (`load`).

    Attributes:
      path: the file it was read from.
      seeds: the training seeds.
      alpha: family-wise level of the primary claims.
      claims: the primary claims, in the file's order.
      power, level, bootstrap_resamples, bootstrap_seed: the decision settings (defaults when not written).
      test_videos: the test-set size (None when not written).
      benchmark: the benchmark's `data.synthetic` flags as written (None when not written).
      benchmark_digest: `benchmark_digest` of those flags (None when not written).
      descriptive: studies reported without a decision.
      settings: every key of the `prereg` block as written (strings), the keys above included.
    """

    path: str
    seeds: tuple[int, ...]
    alpha: float
    claims: tuple[PrimaryClaim, ...]
    power: float = 0.8
    level: float = 0.95
    bootstrap_resamples: int = 10000
    bootstrap_seed: int = 0
    test_videos: int | None = None
    benchmark: str | None = None
    benchmark_digest: str | None = None
    descriptive: tuple[str, ...] = ()
    settings: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def claim(self, claim_id: str) -> PrimaryClaim:
        """The claim with this id."""
        for claim in self.claims:
            if claim.id == claim_id:
                return claim
        raise KeyError(f"{self.path} has no primary claim {claim_id!r}; it has {[c.id for c in self.claims]}")


def digest(text: str) -> str:
    """The first 16 hex digits of the SHA-256 of `text` (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def benchmark_digest(flags: Sequence[str]) -> str:
    """The digest of a benchmark's `data.synthetic` flags, in order, joined by single spaces."""
    return digest(" ".join(flag.strip() for flag in flags if flag.strip()))


def parse_seeds(text: str) -> tuple[int, ...]:
    """The seeds of a seed list: "0-9" -> 0 ... 9; "0, 1, 2"; "0-4, 7". Raises ValueError naming the text."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        match = re.fullmatch(r"(\d+)\s*-\s*(\d+)|(\d+)", part)
        if not match:
            raise ValueError(f"seeds {text!r}: write them as '0-9', '0, 1, 2' or '0-4, 7'.")
        if match.group(3) is not None:
            seeds.append(int(match.group(3)))
        else:
            first, last = int(match.group(1)), int(match.group(2))
            if last < first:
                raise ValueError(f"seeds {text!r}: the range {part!r} runs backwards.")
            seeds.extend(range(first, last + 1))
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds {text!r} name a seed twice.")
    return tuple(seeds)


def format_seeds(seeds: Sequence[int]) -> str:
    """Seeds as ranges: (0, 1, 2, 3, 7) -> "0-3, 7"."""
    parts, ordered = [], sorted(seeds)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ", ".join(parts)


def _block(text: str, path: str) -> dict[str, str]:
    blocks = re.findall(rf"^```{BLOCK_INFO}[ \t]*\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    if len(blocks) != 1:
        raise ValueError(
            f"{path}: needs exactly one ```{BLOCK_INFO} block of key: value lines, found {len(blocks)}; {_FORMAT_HINT}."
        )
    settings: dict[str, str] = {}
    for number, line in enumerate(blocks[0].splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", line).strip()  # a comment: '#' at the start or after a space
        if not line:
            continue
        key, colon, value = line.partition(":")
        key = key.strip().lower()
        if not colon or not key:
            raise ValueError(f"{path}: line {number} of the {BLOCK_INFO} block is not 'key: value': {line!r}.")
        if key in settings:
            raise ValueError(f"{path}: {key!r} is set twice in the {BLOCK_INFO} block.")
        settings[key] = value.strip()
    return settings


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _claims(text: str, path: str) -> tuple[PrimaryClaim, ...]:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.strip().startswith("|"):
            continue
        header = [c.lower() for c in _cells(line)]
        if not set(CLAIM_COLUMNS) <= set(header):
            continue
        claims = []
        for row_line in lines[i + 2 :]:
            if not row_line.strip().startswith("|"):
                break
            values = _cells(row_line)
            if len(values) != len(header):
                raise ValueError(
                    f"{path}: claims row {row_line.strip()!r} has {len(values)} cells, the header {len(header)}."
                )
            row = dict(zip(header, values))
            direction = row["direction"].lower()
            if direction not in _DIRECTIONS:
                raise ValueError(
                    f"{path}: claim {row['id']!r} has direction {row['direction']!r}; write 'higher' "
                    "(row A > row B in the paper) or 'lower'."
                )
            try:
                margin = float(row["margin"].lstrip("±"))
            except ValueError:
                raise ValueError(
                    f"{path}: claim {row['id']!r} has margin {row['margin']!r}; write a number of points, e.g. 4."
                ) from None
            if margin <= 0:
                raise ValueError(f"{path}: claim {row['id']!r} needs a margin > 0 points, got {margin:g}.")
            claims.append(
                PrimaryClaim(
                    id=row["id"],
                    study=row["study"],
                    row_a=row["row a"],
                    row_b=row["row b"],
                    column=row["column"],
                    sign=_DIRECTIONS[direction],
                    margin=margin,
                    paper=row.get("paper", ""),
                )
            )
        ids = [c.id for c in claims]
        if not claims or len(set(ids)) != len(ids):
            raise ValueError(f"{path}: the primary claims table needs at least one row and unique ids, got {ids}.")
        return tuple(claims)
    raise ValueError(f"{path}: no primary claims table with the columns {', '.join(CLAIM_COLUMNS)}; {_FORMAT_HINT}.")


def _number(settings: Mapping[str, str], key: str, kind, path: str):
    try:
        return kind(settings[key])
    except ValueError:
        raise ValueError(
            f"{path}: {key}: {settings[key]!r} is not {'an integer' if kind is int else 'a number'}."
        ) from None


def parse(text: str, path: str = "<pre-registration>") -> Preregistration:
    """Parses the text of a pre-registration (the module docstring's format)."""
    settings = _block(text, path)
    missing = [key for key in ("seeds", "alpha") if key not in settings]
    if missing:
        raise ValueError(f"{path}: the {BLOCK_INFO} block lacks {missing}; {_FORMAT_HINT}.")
    alpha = _number(settings, "alpha", float, path)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"{path}: alpha must be in (0, 1), got {alpha}.")
    optional = {
        key: _number(settings, key, type(default), path) if key in settings else default
        for key, default in _DEFAULTS.items()
    }
    descriptive = tuple(s.strip() for s in settings.get("descriptive", "").split(",") if s.strip())
    return Preregistration(
        path=path,
        seeds=parse_seeds(settings["seeds"]),
        alpha=alpha,
        claims=_claims(text, path),
        **optional,
        test_videos=_number(settings, "test_videos", int, path) if "test_videos" in settings else None,
        benchmark=settings.get("benchmark"),
        benchmark_digest=settings.get("benchmark_digest"),
        descriptive=descriptive,
        settings=dict(settings),
    )


def load(path: str) -> Preregistration:
    """Reads and parses a pre-registration file.

    Raises:
      FileNotFoundError / ValueError naming the file and what is wrong.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"pre-registration {path!r} does not exist; write it before the runs ({_FORMAT_HINT})."
        ) from None
    return parse(text, path)


def _same(registered: str, actual) -> bool:
    if isinstance(actual, (int, float)) and not isinstance(actual, bool):
        try:
            return float(registered) == float(actual)
        except ValueError:
            return False
    return " ".join(str(registered).split()) == " ".join(str(actual).split())


def _claim_deviations(prereg: Preregistration, actual_claims) -> list[str]:
    if isinstance(actual_claims, Mapping):
        actual_claims = list(actual_claims.values())
    actual = {claim.id: claim for claim in actual_claims}
    lines = []
    for claim in prereg.claims:
        ran = actual.get(claim.id)
        if ran is None:
            lines.append(f"claim {claim.id}: pre-registered ({claim.describe()}), not in the run.")
            continue
        for field, label in (
            ("study", "study"),
            ("row_a", "row A"),
            ("row_b", "row B"),
            ("column", "column"),
            ("sign", "direction"),
            ("margin", "margin"),
        ):
            registered, used = getattr(claim, field), getattr(ran, field)
            if registered != used:
                if field == "sign":
                    registered, used = ("higher" if v > 0 else "lower" for v in (registered, used))
                elif field == "margin":
                    registered, used = f"±{registered:g}", f"±{used:g}"
                lines.append(f"claim {claim.id}: {label} pre-registered {registered}, the run used {used}.")
    for claim_id, claim in actual.items():
        if claim_id not in {c.id for c in prereg.claims}:
            lines.append(f"claim {claim_id}: in the run ({claim.describe()}), not pre-registered.")
    return lines


def deviations(prereg: Preregistration, actual: Mapping[str, object]) -> list[str]:
    """Where a run differs from the pre-registration, one readable line each (empty: none).

    Args:
      prereg: the pre-registration.
      actual: what the run used: "seeds" (sequence of ints), "alpha", "claims" (`PrimaryClaim`s, or id -> claim)
        and any key of the `prereg` block (e.g. "test_videos", "benchmark", "benchmark_digest",
        "bootstrap_resamples", or a free key such as "schedule"). A key the pre-registration sets but `actual` lacks
        is a deviation ("the run does not record it"); a key `actual` has that the pre-registration does not set is
        not compared.

    Returns:
      The deviation lines.
    """
    lines = []
    if "seeds" in actual:
        registered, used = set(prereg.seeds), set(actual["seeds"])
        if registered != used:
            line = (
                f"seeds: pre-registered {format_seeds(prereg.seeds)} ({len(registered)}), the run used "
                f"{format_seeds(sorted(used)) or 'none'} ({len(used)})"
            )
            details = []
            if registered - used:
                details.append(f"missing {format_seeds(sorted(registered - used))}")
            if used - registered:
                details.append(f"extra {format_seeds(sorted(used - registered))}")
            lines.append(line + ": " + "; ".join(details) + ".")
    else:
        lines.append("seeds: pre-registered " + format_seeds(prereg.seeds) + ", the run does not record them.")
    for key, registered in prereg.settings.items():
        if key in ("seeds", "descriptive"):
            continue
        if key not in actual:
            lines.append(f"{key}: pre-registered {registered}, the run does not record it.")
        elif not _same(registered, actual[key]):
            lines.append(f"{key}: pre-registered {registered}, the run used {actual[key]}.")
    if "descriptive" in prereg.settings and "descriptive" in actual:
        used = tuple(actual["descriptive"])
        if set(used) != set(prereg.descriptive):
            lines.append(
                f"descriptive: pre-registered {', '.join(prereg.descriptive) or 'none'}, the run used "
                f"{', '.join(used) or 'none'}."
            )
    if "claims" in actual:
        lines += _claim_deviations(prereg, actual["claims"])
    else:
        lines.append(f"claims: {len(prereg.claims)} pre-registered, the run does not record which it tested.")
    return lines
