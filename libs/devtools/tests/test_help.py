"""`--help` works on every `proxbus` subcommand and every service's console script."""

from __future__ import annotations

import argparse
import re
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
    "script",
    [
        "ingest-syslog",
        "ingest-email",
        "ingest-pve-ws",
        "dispatcher",
        "mcp-gateway",
        "ingest-discord",
    ],
)
def test_help_of_every_service_script_names_test_connection(script: str) -> None:
    result = subprocess.run(
        [str(BIN / f"proxbus-{script}"), "--help"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert "--test-connection" in result.stdout


def _nested(command: str) -> list[tuple[str, ...]]:
    """The sub-commands a service command lists in its own help (``{add,list,expire}``)."""
    result = subprocess.run(
        [str(BIN / "proxbus"), command, "--help"], capture_output=True, text=True, timeout=30
    )
    found = re.search(r"\{([a-z,-]+)\}", result.stdout)
    assert found, result.stdout
    return [(command, name) for name in found.group(1).split(",")]


SERVICE_COMMANDS = [c for c in COMMANDS if len(c) == 1 and c[0] in ("silence", "dlq")]


@pytest.mark.parametrize(
    "command",
    [nested for command in SERVICE_COMMANDS for nested in _nested(command[0])],
    ids=" ".join,
)
def test_help_of_every_sub_command_of_a_service_command(command: tuple[str, ...]) -> None:
    assert len(SERVICE_COMMANDS) == 2
    result = subprocess.run(
        [str(BIN / "proxbus"), *command, "--help"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: proxbus {' '.join(command)}")
    assert result.stderr == ""


# Every sub-command of the service scripts (their usage lines list them).
SCRIPT_COMMANDS = [
    ("dispatcher", "run"), ("dispatcher", "check-config"), ("dispatcher", "silence"),
    ("dispatcher", "silence", "add"), ("dispatcher", "dlq"), ("dispatcher", "dlq", "replay"),
    ("ingest-syslog", "serve"), ("ingest-syslog", "parse"), ("ingest-email", "parse"),
]  # fmt: skip


@pytest.mark.parametrize("command", SCRIPT_COMMANDS, ids=" ".join)
def test_help_of_every_sub_command_of_the_service_scripts(command: tuple[str, ...]) -> None:
    script, *rest = command
    result = subprocess.run(
        [str(BIN / f"proxbus-{script}"), *rest, "--help"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "usage:" in result.stdout
    assert result.stderr == ""


def _parsers(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    out = [(prefix, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _parsers(sub, (*prefix, name))
    return out


def test_every_option_and_command_says_what_it_does() -> None:
    """`proxbus up --help` listed `--nats-port NATS_PORT` and `--data-dir DATA_DIR` with no word
    on them (nor their defaults), and `proxbus --help` described `dlq` as "dlq (see proxbus dlq
    --help)"."""
    bare = []
    for path, parser in _parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    text = choice.help or ""
                    if not text or text.startswith(f"{choice.dest} (see"):
                        bare.append(f"proxbus {' '.join(path)} {choice.dest}: {text!r}")
            elif (
                action.option_strings and action.dest not in ("help", "version") and not action.help
            ):
                bare.append(f"proxbus {' '.join(path)} {'/'.join(action.option_strings)}")
    assert not bare, "\n".join(bare)
