"""`proxbus silence` / `proxbus dlq` are forwarded to the dispatcher's admin commands."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from proxbus_devtools.testing import NatsServer

PROXBUS = str(Path(sys.executable).parent / "proxbus")


def run(nats_server: NatsServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROXBUS, "--nats-url", nats_server.url, *args],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PROXBUS_SITE": "lab"},
    )  # fmt: skip


def json_lines(text: str) -> list[dict[str, object]]:
    """The admin commands print one JSON object per line with ``--json``."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_silences_are_managed_through_the_main_command(nats_server: NatsServer) -> None:
    added = run(nats_server, "silence", "add", "node=pve1", "kind=vm.*", "-d", "2h", "-a", "ops")
    assert added.returncode == 0, added.stderr
    listed = run(nats_server, "silence", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    silences = json_lines(listed.stdout)
    assert len(silences) == 1
    assert silences[0]["created_by"] == "ops"
    expired = run(nats_server, "silence", "expire", silences[0]["id"])
    assert expired.returncode == 0, expired.stderr
    assert json_lines(run(nats_server, "silence", "list", "--json").stdout) == []


def test_dlq_listing_works_and_bad_usage_is_a_clear_error(nats_server: NatsServer) -> None:
    listed = run(nats_server, "dlq", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json_lines(listed.stdout) == []
    bad = run(nats_server, "silence", "add", "colour=red")
    assert bad.returncode != 0
    assert "colour" in (bad.stderr + bad.stdout)


def test_help_of_forwarded_commands_is_the_service_help(nats_server: NatsServer) -> None:
    """Regression: ``proxbus dlq --help`` failed with "unrecognized arguments"."""
    for command, words in (("dlq", ("list", "replay")), ("silence", ("add", "expire"))):
        result = run(nats_server, command, "--help")
        assert result.returncode == 0, result.stderr
        assert all(word in result.stdout for word in words), result.stdout
    listed = subprocess.run([PROXBUS, "--help"], capture_output=True, text=True, timeout=30)
    assert "dlq" in listed.stdout
    assert "silence" in listed.stdout


def test_admin_commands_fail_fast_without_nats() -> None:
    """Regression: with max_reconnect_attempts=0 nats-py retried the first connect forever."""
    from proxbus_devtools.testing import free_port

    started = time.monotonic()
    result = subprocess.run(
        [PROXBUS, "--nats-url", f"nats://127.0.0.1:{free_port()}", "silence", "list"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert time.monotonic() - started < 15
    assert result.returncode == 1
    assert "error:" in result.stderr
