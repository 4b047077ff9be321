"""The pre-registration file: parsed from a file written here, and every kind of deviation named in one line."""

import dataclasses

import pytest

from experiments import preregistration

EXAMPLE = """# Pre-registration of the example protocol

Written before any run. Prose for the reader is ignored by the parser.

```prereg
# the decision settings
seeds: 0-9
alpha: 0.05
bootstrap_resamples: 2000   # fewer than the default
test_videos: 300
benchmark: --preset=study --train_per_class=60
benchmark_digest: {digest}
schedule: 1500 steps
descriptive: stpa_fig3, st_attn_table5
```

## Primary claims

| id | study | row A | row B | column | direction | margin | paper |
|---|---|---|---|---|---|---|---|
| attention | stpa_table1e | STPA | Uniform attention | RGB | higher | 4 | +2.1 |
| scale4 | stpa_table1b | 4 scales | 3 scales | Flow | lower | ±3.5 | −0.5 |

Descriptive rows follow in prose.
"""
DIGEST = preregistration.benchmark_digest(["--preset=study", "--train_per_class=60"])


def _write(tmp_path, text=None):
    path = tmp_path / "preregistration.md"
    path.write_text(EXAMPLE.format(digest=DIGEST) if text is None else text)
    return str(path)


def _actual(prereg):
    """What a run that follows the pre-registration records."""
    return {
        "seeds": list(range(10)),
        "alpha": 0.05,
        "bootstrap_resamples": 2000,
        "test_videos": 300,
        "benchmark": "--preset=study  --train_per_class=60",
        "benchmark_digest": DIGEST,
        "schedule": "1500 steps",
        "descriptive": ["st_attn_table5", "stpa_fig3"],
        "claims": list(prereg.claims),
    }


def test_load_parses_the_block_and_the_claims_table(tmp_path):
    prereg = preregistration.load(_write(tmp_path))
    assert prereg.seeds == tuple(range(10)) and prereg.alpha == 0.05
    assert (prereg.bootstrap_resamples, prereg.bootstrap_seed, prereg.power, prereg.level) == (2000, 0, 0.8, 0.95)
    assert prereg.test_videos == 300 and prereg.benchmark == "--preset=study --train_per_class=60"
    assert prereg.benchmark_digest == DIGEST and prereg.descriptive == ("stpa_fig3", "st_attn_table5")
    assert prereg.settings["schedule"] == "1500 steps"
    assert prereg.claims == (
        preregistration.PrimaryClaim("attention", "stpa_table1e", "STPA", "Uniform attention", "RGB", +1, 4.0, "+2.1"),
        preregistration.PrimaryClaim("scale4", "stpa_table1b", "4 scales", "3 scales", "Flow", -1, 3.5, "−0.5"),
    )
    assert prereg.claim("scale4").cell == ("4 scales", "Flow")
    assert prereg.claim("scale4").reference == ("3 scales", "Flow")
    # The digest is SHA-256 of the space-joined flags (first 16 hex digits), computed independently here.
    import hashlib

    assert DIGEST == hashlib.sha256(b"--preset=study --train_per_class=60").hexdigest()[:16]


def test_a_run_that_follows_it_has_no_deviation(tmp_path):
    prereg = preregistration.load(_write(tmp_path))
    assert preregistration.deviations(prereg, _actual(prereg)) == []


def test_fewer_seeds_a_changed_margin_and_other_deviations_are_named(tmp_path):
    prereg = preregistration.load(_write(tmp_path))
    actual = _actual(prereg)
    actual["seeds"] = [0, 1, 2]
    actual["claims"] = [
        dataclasses.replace(prereg.claims[0], margin=3.0),
        preregistration.PrimaryClaim("new", "stpa_table1c", "mul", "sum", "RGB", +1, 4.0),
    ]
    actual["benchmark_digest"] = "0123456789abcdef"
    del actual["schedule"]
    assert preregistration.deviations(prereg, actual) == [
        "seeds: pre-registered 0-9 (10), the run used 0-2 (3): missing 3-9.",
        f"benchmark_digest: pre-registered {DIGEST}, the run used 0123456789abcdef.",
        "schedule: pre-registered 1500 steps, the run does not record it.",
        "claim attention: margin pre-registered ±4, the run used ±3.",
        "claim scale4: pre-registered (stpa_table1b: 4 scales − 3 scales (Flow), paper: lower, margin ±3.5), "
        "not in the run.",
        "claim new: in the run (stpa_table1c: mul − sum (RGB), paper: higher, margin ±4), not pre-registered.",
    ]
    flipped = dict(
        _actual(prereg),
        claims=[prereg.claims[0], dataclasses.replace(prereg.claims[1], sign=+1)],
        alpha=0.1,
        seeds=list(range(11)),
    )
    assert preregistration.deviations(prereg, flipped) == [
        "seeds: pre-registered 0-9 (10), the run used 0-10 (11): extra 10.",
        "alpha: pre-registered 0.05, the run used 0.1.",
        "claim scale4: direction pre-registered lower, the run used higher.",
    ]


def test_seed_lists_and_bad_files_fail_in_one_line(tmp_path):
    assert preregistration.parse_seeds("0-4, 7") == (0, 1, 2, 3, 4, 7)
    assert preregistration.parse_seeds("3") == (3,)
    assert preregistration.format_seeds([7, 0, 1, 2, 3, 4]) == "0-4, 7"
    with pytest.raises(ValueError, match="'0-9', '0, 1, 2'"):
        preregistration.parse_seeds("zero")
    with pytest.raises(ValueError, match="twice"):
        preregistration.parse_seeds("0-3, 2")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        preregistration.load(str(tmp_path / "missing.md"))
    good = EXAMPLE.format(digest=DIGEST)
    cases = {
        good.replace("```prereg", "```"): "exactly one ```prereg block",
        good.replace("seeds: 0-9\n", ""): "lacks \\['seeds'\\]",
        good.replace("| higher | 4 |", "| up | 4 |"): "direction 'up'",
        good.replace("| higher | 4 |", "| higher | four |"): "margin 'four'",
        good.replace("| higher | 4 |", "| higher | 0 |"): "margin > 0",
        good.replace("| direction |", "| sign |"): "no primary claims table",
        good.replace("alpha: 0.05", "alpha: 5"): "alpha must be in",
        good.replace("test_videos: 300", "test_videos: many"): "test_videos: 'many' is not an integer",
    }
    for text, message in cases.items():
        with pytest.raises(ValueError, match=message):
            preregistration.load(_write(tmp_path, text))
