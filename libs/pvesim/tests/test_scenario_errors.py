"""A bad scenario file is one error line naming the key and value, exit 2, never a traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from proxbus_pvesim.errors import ScenarioError
from proxbus_pvesim.scenario import build_lab

SCRIPT = str(Path(sys.executable).parent / "proxbus-pvesim")
README = Path(__file__).resolve().parents[1] / "README.md"


def run_pvesim(tmp_path: Path, scenario: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "lab.yaml"
    path.write_text(scenario)
    # Port 0: should the scenario be accepted, nothing fixed is taken (the test then fails
    # on the timeout, not on a port in use).
    return subprocess.run(
        [SCRIPT, "--scenario", str(path), "--port", "0", "--pbs-port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("scenario", "named"),
    [
        ("guests: {qemu: many}\n", ["guests.qemu", "'many'"]),
        ("guests: {lxc: 2.5}\n", ["guests.lxc", "2.5"]),
        ("clster: {name: lab}\n", ["clster"]),
        ("cluster: {name: lab, nodez: 3}\n", ["cluster", "nodez"]),
        ("guests: {qemu: 1, list: [{vmid: 500, memroy: 2048}]}\n", ["guests.list[0]", "memroy"]),
        ("guests: {qemu: 1, list: [{vmid: 500, memory: lots}]}\n", ["memory", "'lots'"]),
        ("task_seconds: soon\n", ["task_seconds", "'soon'"]),
        ("seed: [1]\n", ["seed", "[1]"]),
        ("replication: [{guest: x, target: pve2}]\n", ["replication[0].guest", "'x'"]),
    ],
)
def test_a_bad_scenario_is_one_line_naming_the_key_and_exit_2(
    tmp_path: Path, scenario: str, named: list[str]
) -> None:
    result = run_pvesim(tmp_path, scenario)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    for text in named:
        assert text in lines[0], lines[0]


def test_the_readme_scenario_is_accepted() -> None:
    block = re.search(r"## Scenario file.*?```yaml\n(.*?)```", README.read_text(), re.S)
    assert block is not None
    spec = yaml.safe_load(block.group(1).replace("<secret>", "s3cret"))
    scenario = build_lab(spec)
    assert 500 in scenario.lab.guests
    with pytest.raises(ScenarioError, match="clster"):
        build_lab({**spec, "clster": {}})
