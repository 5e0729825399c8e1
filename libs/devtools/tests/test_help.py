"""`--help` works on every `proxbus` subcommand and every service's console script."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
from proxbus_devtools.cli import build_parser

BIN = Path(sys.executable).parent


def _commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    out = [prefix] if prefix else []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _commands(sub, (*prefix, name))
    return out


COMMANDS = _commands(build_parser())


def test_the_command_tree_is_what_the_readme_lists() -> None:
    assert {("events", "tail"), ("events", "publish"), ("events", "stats"), ("check",), ("up",),
            ("logs",), ("silence",), ("dlq",)} <= set(COMMANDS)  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_of_every_subcommand(command: tuple[str, ...]) -> None:
    result = subprocess.run(
        [str(BIN / "proxbus"), *command, "--help"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize(
    "script", ["ingest-syslog", "ingest-email", "ingest-pve-ws", "dispatcher", "mcp-gateway"]
)
def test_help_of_every_service_script_names_test_connection(script: str) -> None:
    result = subprocess.run(
        [str(BIN / f"proxbus-{script}"), "--help"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert "--test-connection" in result.stdout
