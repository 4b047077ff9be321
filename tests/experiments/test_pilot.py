"""The pilot's decision rule and its committed candidate lists (experiments/pilot.py)."""

import os

from experiments import pilot, schedules


def _result(rgb: float, flow: float, chain: float | None) -> dict[str, float]:
    result = {"tsn_rgb_val": rgb, "tsn_flow_val": flow}
    if chain is not None:
        result["st_attn_chain_val"] = chain
    return result


def test_the_rule_needs_both_tsn_streams_in_the_band_and_the_chain_20_points_above_chance():
    assert pilot.qualifies(_result(45.0, 80.0, 36.7))
    assert not pilot.qualifies(_result(44.9, 60.0, 60.0))
    assert not pilot.qualifies(_result(60.0, 80.1, 60.0))
    assert not pilot.qualifies(_result(60.0, 60.0, 36.6))
    assert not pilot.qualifies(_result(60.0, 60.0, None))  # the chain was not run


def _steps(schedule: str) -> tuple[int, int]:
    """(steps of the TSN rows, steps of the ST-attn chain): the schedule groups of their flagfiles' families."""
    steps = schedules.parse_schedule(schedule)
    tsn, chain = (
        os.path.join(pilot.FLAGFILES, stem + ".cfg") for stem in ("study_stpa_tsn_rgb", "study_st_attn_chain")
    )
    return steps[schedules.row_group(tsn).name], steps[schedules.row_group(chain).name]


def test_round_one_keeps_the_epochs_of_the_study_preset():
    assert {name: _steps(schedule) for name, (_, schedule) in pilot.CANDIDATES.items()} == {
        "A": (600, 400),
        "B": (1500, 1000),
        "C": (1500, 1000),
    }


def test_round_two_keeps_the_step_rule_and_moves_actor_size_and_noise_only():
    assert list(pilot.ROUND2) == ["D", "E", "F", "G", "H", "I"]
    for overrides, schedule in pilot.ROUND2.values():
        assert set(overrides) == {"train_per_class", "actor_radius_range", "noise_sigma"}
        assert (overrides["train_per_class"], *_steps(schedule)) == ("150", 1500, 1000)
    assert pilot.ROUNDS[1] is pilot.CANDIDATES and set(pilot.CANDIDATES) == {"A", "B", "C"}


def test_round_three_adds_only_decoys_to_round_two_candidate_d():
    assert list(pilot.ROUND3) == ["J", "K", "L"]
    for overrides, schedule in pilot.ROUND3.values():
        assert {k: v for k, v in overrides.items() if k != "decoy_probability"} == pilot.ROUND2["D"][0]
        assert _steps(schedule) == (1500, 1000)
    assert [o["decoy_probability"] for o, _ in pilot.ROUND3.values()] == ["0.25", "0.5", "1.0"]


def test_the_committed_preregistration_parses_and_names_round_three_candidate_k():
    from experiments import preregistration

    path = os.path.join(os.path.dirname(pilot.__file__), "preregistration.md")
    prereg = preregistration.load(path)
    flags = prereg.benchmark.split()
    assert preregistration.benchmark_digest(flags) == prereg.benchmark_digest
    overrides = {f[2:].split("=")[0]: f.split("=", 1)[1] for f in flags[1:]}
    assert {k: v for k, v in overrides.items() if k != "test_per_class"} == pilot.ROUND3["K"][0]
    assert overrides["test_per_class"] == "50" and prereg.test_videos == 300
    assert prereg.seeds == tuple(range(10)) and len(prereg.claims) == 8
    assert {c.margin for c in prereg.claims} == {3.0}
