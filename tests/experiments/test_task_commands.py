"""Every command the studies, both pre-registered protocols and the pilot build is the one their results came from.

The committed results are reproducible by their recorded commands only while those commands stay byte for byte the
same. `task_digests` builds the task graph of every part of every protocol (`protocol.PROTOCOLS`, with the committed
pre-registrations), the graph each protocol report reads, every study of `studies.STUDIES` at the full schedule, at
--quick, at a pre-registered schedule and with train / validation accuracy, and the pilot's commands for one
candidate of each round; each graph's tasks (key, command, dependencies, output, in order) hash to a digest. The
digests in `COMMITTED` were computed from the code before the schedules came from the family registry
(`experiments.schedules`); run this file to print the current ones:

    python tests/experiments/test_task_commands.py

Paths are written relative: the interpreter as <python>, the repository as <repo>, the output directory as <out>.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile

STUDY_OPTIONS = {  # name: runner.Options keyword arguments
    "full": {"seeds": (0, 1, 2)},
    "quick": {"seeds": (0,), "quick": True},
    "steps": {"seeds": (0, 1), "steps": {"stpa": 1500, "st_attn": 1000}},
    "accuracy": {"seeds": (0,), "train_accuracy_videos": 50, "val_accuracy": True},
}
PREREGISTRATIONS = ("preregistration.md", "preregistration_hosts.md")
PILOT_CANDIDATES = ("A", "D", "K")  # one of each round

COMMITTED: dict[str, str] = {  # computed from the code before the change (see the module docstring)
    "pilot/A": "b9935868d044017f",
    "pilot/D": "e852714b40edcf35",
    "pilot/K": "4e782655c7f560f8",
    "protocol/hosts/host_flow_a": "c2d7dc9fda27000e",
    "protocol/hosts/host_flow_b": "ab793839900ae3a1",
    "protocol/hosts/host_flow_c": "115726fcbc57ddd1",
    "protocol/hosts/host_flow_d": "058641f534ebb109",
    "protocol/hosts/host_rgb_a": "66e81170eaa8dc35",
    "protocol/hosts/host_rgb_b": "7de128bad36e0c0e",
    "protocol/hosts/host_rgb_c": "332a1f24199c4f3a",
    "protocol/hosts/host_rgb_d": "d5cfa682911d8d40",
    "protocol/hosts/report/main": "0693cb7d33b1dc60",
    "protocol/hosts/tiny_flow": "3b6733f9f4345409",
    "protocol/hosts/tiny_flow_b": "effc367adc7789cc",
    "protocol/hosts/tiny_rgb": "65124ca7e19d9953",
    "protocol/hosts/tiny_rgb_b": "804158a2a5622f32",
    "protocol/hosts/tiny_st_attn": "ba622d2fc9c667fe",
    "protocol/hosts/tiny_st_attn_b": "525ef8213ed19aa9",
    "protocol/powered/dose": "031b26334840c88e",
    "protocol/powered/replicate_motion": "3ab882a44b431422",
    "protocol/powered/replicate_seed": "27ad873c5d3664ae",
    "protocol/powered/report/main": "c72d0a4498fd888a",
    "protocol/powered/report/motion": "2aa4005de68bab68",
    "protocol/powered/report/seed2": "f508e28d5d7a743c",
    "protocol/powered/st_attn": "3ab93829c2259bec",
    "protocol/powered/stpa_flow": "0f5b3cdb82c651ea",
    "protocol/powered/stpa_rgb": "c80e72008f40e4d9",
    "study/hosts_st_attn_pretrained/accuracy": "5cc0baf4921a8377",
    "study/hosts_st_attn_pretrained/full": "ec2991743f69ca71",
    "study/hosts_st_attn_pretrained/quick": "4e91549d05ebc3c5",
    "study/hosts_st_attn_pretrained/steps": "78848f93634de680",
    "study/hosts_st_attn_tiny/accuracy": "7f2bb567d853bfb7",
    "study/hosts_st_attn_tiny/full": "4887a31ef42ab912",
    "study/hosts_st_attn_tiny/quick": "95a77c5913ab083d",
    "study/hosts_st_attn_tiny/steps": "dd69349e53134cd8",
    "study/hosts_stpa_pretrained/accuracy": "3beac75dd5768475",
    "study/hosts_stpa_pretrained/full": "8905b036550a6f8e",
    "study/hosts_stpa_pretrained/quick": "93e1ea4ffa5e6b43",
    "study/hosts_stpa_pretrained/steps": "19b6cddcc53d9485",
    "study/hosts_stpa_tiny/accuracy": "518bf3b04bb41552",
    "study/hosts_stpa_tiny/full": "1e1bb396c9cc1923",
    "study/hosts_stpa_tiny/quick": "a72874c9e405e40a",
    "study/hosts_stpa_tiny/steps": "1da14053006bc415",
    "study/protocol_dose/accuracy": "061fdacd574b20a0",
    "study/protocol_dose/full": "4fb6641ae2eefd82",
    "study/protocol_dose/quick": "f3677cebbfacc6fd",
    "study/protocol_dose/steps": "4eef7d7048373fc8",
    "study/protocol_st_attn/accuracy": "d677a2e696ceb23d",
    "study/protocol_st_attn/full": "c4c277639953a564",
    "study/protocol_st_attn/quick": "c5253049269a663d",
    "study/protocol_st_attn/steps": "684c14cc4d96e15a",
    "study/protocol_stpa/accuracy": "49f762f947578476",
    "study/protocol_stpa/full": "9bae1cac692dfba1",
    "study/protocol_stpa/quick": "8499d6165460e9e3",
    "study/protocol_stpa/steps": "cf01fb674d106d8b",
    "study/st_attn_table2/accuracy": "52ee81fa937c9469",
    "study/st_attn_table2/full": "d5bbcc404d40b9cf",
    "study/st_attn_table2/quick": "77c821c8cfc1a7ca",
    "study/st_attn_table2/steps": "15bc1fd663180428",
    "study/st_attn_table4/accuracy": "2be264e93bcc455a",
    "study/st_attn_table4/full": "d39359e142e86983",
    "study/st_attn_table4/quick": "10f63c91be17ef95",
    "study/st_attn_table4/steps": "8bd997c3dd9b902d",
    "study/st_attn_table5/accuracy": "1c4184d8b9f2645b",
    "study/st_attn_table5/full": "5039907f3fc8b2ab",
    "study/st_attn_table5/quick": "5e48565b3c13188a",
    "study/st_attn_table5/steps": "bee71327272a66b6",
    "study/st_attn_table6/accuracy": "1c4184d8b9f2645b",
    "study/st_attn_table6/full": "5039907f3fc8b2ab",
    "study/st_attn_table6/quick": "5e48565b3c13188a",
    "study/st_attn_table6/steps": "bee71327272a66b6",
    "study/stpa_fig3/accuracy": "9527261c5500a367",
    "study/stpa_fig3/full": "30c13cc7c1a94589",
    "study/stpa_fig3/quick": "aec7a79b08e8c47f",
    "study/stpa_fig3/steps": "34e728c91076d2aa",
    "study/stpa_table1b/accuracy": "d65efbf7afef1c33",
    "study/stpa_table1b/full": "c7d7d19b06ecd0e4",
    "study/stpa_table1b/quick": "c07a20c4d2a993b1",
    "study/stpa_table1b/steps": "cf5839728d9d9cac",
    "study/stpa_table1c/accuracy": "3f1761edebdd202d",
    "study/stpa_table1c/full": "30d0c59af687a658",
    "study/stpa_table1c/quick": "05626295fadbf26b",
    "study/stpa_table1c/steps": "3fb8470c2e7f46ea",
    "study/stpa_table1d/accuracy": "aa7e1659d1860667",
    "study/stpa_table1d/full": "f7844abf27422f2c",
    "study/stpa_table1d/quick": "81b1cc92d2bde41a",
    "study/stpa_table1d/steps": "218f46e0533392f2",
    "study/stpa_table1e/accuracy": "994a9bab75c31809",
    "study/stpa_table1e/full": "8c457f39d15bafca",
    "study/stpa_table1e/quick": "c9ff2026a7bafa23",
    "study/stpa_table1e/steps": "3e4ca4ac51b15e8f",
}


def _normalise(text: str, out: str, repo: str) -> str:
    return text.replace(out, "<out>").replace(repo, "<repo>")


def _tasks_digest(tasks, out: str, repo: str) -> str:
    rows = []
    for task in tasks:
        command = [
            "<python>" if i == 0 and arg == sys.executable else _normalise(arg, out, repo)
            for i, arg in enumerate(task.command)
        ]
        rows.append([task.key, command, list(task.deps), _normalise(task.output, out, repo)])
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


def _pilot_digest(name: str, out: str, repo: str) -> str:
    """The pilot's commands for a candidate whose baselines all qualify (commands recorded, none run)."""
    from experiments import pilot

    commands = []

    def record(command, log):
        del log
        commands.append(list(command))
        for arg in command:
            if arg.startswith(("--output=",)):
                path = arg.split("=", 1)[1][: -len(".npz")] + ".json"
                os.makedirs(os.path.dirname(path), exist_ok=True)
                open(path, "w").write("{}")
        module = command[2]
        if module in ("data.prepare", "st_attn.features"):
            target = next(a.split("=", 1)[1] for a in command if a.startswith("--out_dir="))
            os.makedirs(os.path.join(target, "test"), exist_ok=True)
            open(os.path.join(target, "test", "manifest.json"), "w").write("{}")

    saved = pilot._run, pilot._top1
    pilot._run, pilot._top1 = record, lambda report: 60.0
    try:
        pilot.run_candidate(name, out)
    finally:
        pilot._run, pilot._top1 = saved
    rows = [["<python>" if i == 0 else _normalise(a, out, repo) for i, a in enumerate(c)] for c in commands]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


def task_digests() -> dict[str, str]:
    """Graph name -> digest of its tasks (see the module docstring)."""
    from experiments import preregistration, protocol, runner, studies

    repo = runner.REPO
    digests = {}
    with tempfile.TemporaryDirectory() as out:
        out = os.path.realpath(out)
        for file in PREREGISTRATIONS:
            prereg = preregistration.load(os.path.join(repo, "experiments", file))
            chosen = protocol.protocol_of(prereg)
            for part in chosen.parts.values():
                _, tasks = protocol.part_graph(prereg, part, out)
                digests[f"protocol/{chosen.name}/{part.name}"] = _tasks_digest(tasks, out, repo)
            for instance in chosen.instances.values():  # what write_instance_reports builds
                expected = protocol.instance_prereg(prereg, instance)
                seeds = protocol.seeds_by_study(prereg, instance)
                graph = runner.TaskGraph(
                    protocol.layout(out, instance), protocol.instance_options(prereg, instance, expected.seeds)
                )
                for study in protocol.instance_studies(instance, chosen):
                    for seed in seeds[study.name]:
                        for cell in study.cells:
                            graph.measure(cell.measure, seed)
                digests[f"protocol/{chosen.name}/report/{instance.name}"] = _tasks_digest(graph.ordered(), out, repo)
        for name, study in studies.STUDIES.items():
            for variant, options in STUDY_OPTIONS.items():
                graph = runner.TaskGraph(runner.Layout(out), runner.Options(**options))
                graph.add_studies([study])
                digests[f"study/{name}/{variant}"] = _tasks_digest(graph.ordered(), out, repo)
        for name in PILOT_CANDIDATES:
            digests[f"pilot/{name}"] = _pilot_digest(name, os.path.join(out, "pilot"), repo)
    return digests


def test_every_committed_command_is_unchanged():
    digests = task_digests()
    assert COMMITTED, "no committed digests"
    changed = {key: (value, digests.get(key)) for key, value in COMMITTED.items() if digests.get(key) != value}
    assert changed == {}, f"commands changed (committed, now): {changed}"


if __name__ == "__main__":
    print(json.dumps(task_digests(), indent=1, sort_keys=True))
