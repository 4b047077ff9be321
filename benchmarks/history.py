"""The benchmark history: one JSON line per benchmark run, committed under `benchmarks/history/<benchmark>.jsonl`.

A line holds what makes its figures comparable: the commit, the date, the machine (cores and CPU model), the library
versions, each figure (`figures`: name -> value, with its unit in the name) and each ratio (`ratios`: name ->
{"value", "spread" (max - min over the run's alternating repeats), "goal" (upper bound) or null}). Only ratios are
compared across runs (`benchmarks/compare.py`): absolute times move with the machine's load, a ratio of two things
timed alternately in one process much less.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
from collections.abc import Iterable

HISTORY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "history")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEASURED_CODE = ("stpa", "st_attn", "benchmarks")  # a change here makes the commit "+dirty" in a line


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=10", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *MEASURED_CODE],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """Cores (usable by this process and in the machine), CPU model, load average at the time of the run."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"cores": usable, "cpu_count": os.cpu_count(), "cpu": _cpu_model(), "load_1min": load}


def versions() -> dict:
    """Python and the numerical libraries the benchmarks run on."""
    found = {"python": platform.python_version()}
    for name in ("tensorflow", "keras", "numpy"):
        try:
            module = __import__(name)
            found[name] = getattr(module, "__version__", "?")
        except ImportError:
            pass
    return found


def ratio(values: Iterable[float], goal: float | None = None, *, higher_is_better: bool = False) -> dict:
    """A ratio measured over alternating repeats: the median, its spread (max - min) and the goal (a bound: upper
    for a cost, lower with `higher_is_better`)."""
    values = list(values)
    line = {"value": statistics.median(values), "spread": max(values) - min(values), "goal": goal}
    if higher_is_better:
        line["higher_is_better"] = True
    return line


def make_line(benchmark: str, figures: dict, ratios: dict, *, settings: dict | None = None, **context) -> dict:
    """One history line. `context` overrides the commit, date, machine or versions (tests pass fixed ones)."""
    line = {
        "benchmark": benchmark,
        "commit": context.get("commit") or _commit(),
        "date": context.get("date") or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": context.get("machine") or machine(),
        "versions": context.get("versions") or versions(),
        "settings": settings or {},
        "figures": figures,
        "ratios": ratios,
    }
    return line


def path_for(benchmark: str, directory: str = HISTORY) -> str:
    return os.path.join(directory, f"{benchmark}.jsonl")


def write(line: dict, *, record: bool, directory: str = HISTORY) -> str:
    """Prints the line (prefixed `HISTORY `) and, with `record`, appends it to the benchmark's history file."""
    text = json.dumps(line, sort_keys=True)
    print("HISTORY " + text)
    if record:
        os.makedirs(directory, exist_ok=True)
        with open(path_for(line["benchmark"], directory), "a") as f:
            f.write(text + "\n")
    return text


def read(benchmark: str, directory: str = HISTORY) -> list[dict]:
    """Every recorded line of one benchmark, oldest first."""
    path = path_for(benchmark, directory)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(text) for text in f if text.strip()]


def read_all(directory: str = HISTORY) -> dict[str, list[dict]]:
    """benchmark -> its lines, for every history file."""
    if not os.path.isdir(directory):
        return {}
    names = sorted(name[: -len(".jsonl")] for name in os.listdir(directory) if name.endswith(".jsonl"))
    return {name: read(name, directory) for name in names}


def tolerance(name: str, lines: list[dict]) -> float:
    """How much a ratio moves by itself: max - min over the recorded runs, or the last run's own spread if larger."""
    values = [line["ratios"][name]["value"] for line in lines if name in line.get("ratios", {})]
    recorded = max(values) - min(values) if values else 0.0
    own = next((line["ratios"][name].get("spread", 0.0) for line in reversed(lines) if name in line["ratios"]), 0.0)
    return max(recorded, own or 0.0)


def compare(current: dict, lines: list[dict]) -> list[dict]:
    """Each ratio of `current` next to the last recorded one and its goal; `worse` when it is past the last by more
    than the tolerance (above for a cost, below for a `higher_is_better` ratio), `over_goal` when it misses the
    goal."""
    rows = []
    for name, now in current["ratios"].items():
        previous = [line for line in lines if name in line.get("ratios", {})]
        last = previous[-1]["ratios"][name]["value"] if previous else None
        spread = tolerance(name, previous) if previous else None
        goal = now.get("goal")
        sign = -1.0 if now.get("higher_is_better") else 1.0  # compare costs: sign * value, larger is worse
        rows.append(
            {
                "ratio": name,
                "now": now["value"],
                "last": last,
                "last_commit": previous[-1]["commit"] if previous else None,
                "spread": spread,
                "goal": goal,
                "worse": last is not None and sign * (now["value"] - last) > spread,
                "over_goal": goal is not None and sign * (now["value"] - goal) > 0,
            }
        )
    return rows


def _number(value: float, unit_hint: str) -> str:
    if "ratio" in unit_hint or unit_hint.endswith("%"):
        return f"{value:.2%}" if abs(value) < 2 else f"{value:.2f}×"
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"


def table(histories: dict[str, list[dict]]) -> str:
    """The performance table (markdown): per benchmark and figure or ratio, the latest value, its range over the
    recorded runs, the number of runs, the goal, and the latest run's commit and date."""
    out = [
        "| benchmark | figure | latest | range over runs | runs | goal | commit | date |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for benchmark, lines in sorted(histories.items()):
        if not lines:
            continue
        latest = lines[-1]
        entries = [(f"ratio: {name}", "ratio", name) for name in sorted(latest["ratios"])]
        entries += [(name, name, name) for name in sorted(latest["figures"])]
        for label, hint, name in entries:
            kind = "ratios" if hint == "ratio" else "figures"

            def value(line, kind=kind, name=name):
                item = line.get(kind, {}).get(name)
                return item["value"] if isinstance(item, dict) else item

            values = [v for v in (value(line) for line in lines) if v is not None]
            goal = latest["ratios"][name].get("goal") if kind == "ratios" else None
            higher = kind == "ratios" and latest["ratios"][name].get("higher_is_better", False)
            out.append(
                "| "
                + " | ".join(
                    [
                        benchmark,
                        label,
                        _number(values[-1], hint),
                        f"{_number(min(values), hint)} – {_number(max(values), hint)}",
                        str(len(values)),
                        (f"{'≥' if higher else '≤'} {_number(goal, hint)}" if goal is not None else ""),
                        latest["commit"],
                        latest["date"][:10],
                    ]
                )
                + " |"
            )
    return "\n".join(out) + "\n"
