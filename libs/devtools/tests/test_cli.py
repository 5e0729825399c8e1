import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from proxbus_devtools.testing import NatsServer

PROXBUS = str(Path(sys.executable).parent / "proxbus")


def cli_env(nats_server: NatsServer) -> dict[str, str]:
    return {**os.environ, "NATS_URL": nats_server.url, "PROXBUS_SITE": "lab"}


def test_tail_shows_an_event_published_from_another_process_within_1s(
    nats_server: NatsServer,
) -> None:
    env = cli_env(nats_server)
    tail = subprocess.Popen(
        [PROXBUS, "events", "tail", "--count", "1", "--severity", "error"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert tail.stderr is not None
        assert tail.stderr.readline().startswith("listening on proxbus.events.*.*.error.>")
        started = time.monotonic()
        subprocess.run(
            [PROXBUS, "events", "publish", "--severity", "error", "--node", "pve1",
             "--kind", "backup.failed", "--title", "backup of 100 failed"],
            env=env, check=True, capture_output=True, timeout=15,
        )  # fmt: skip
        assert tail.stdout is not None
        line = tail.stdout.readline()
        elapsed = time.monotonic() - started
        assert "backup of 100 failed" in line
        assert "error" in line
        assert "lab/pve1" in line
        assert tail.wait(timeout=5) == 0
        # The publish subprocess includes interpreter start-up; the tail itself must be quick.
        assert elapsed < 5
    finally:
        tail.kill()


def test_tail_json_and_kind_filter(nats_server: NatsServer) -> None:
    env = cli_env(nats_server)
    tail = subprocess.Popen(
        [PROXBUS, "events", "tail", "--json", "--count", "1", "--kind", "vm.*"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert tail.stderr is not None
        tail.stderr.readline()
        for kind in ("task.ok", "vm.started"):
            subprocess.run(
                [PROXBUS, "events", "publish", "--kind", kind, "--title", kind],
                env=env, check=True, capture_output=True, timeout=15,
            )  # fmt: skip
        assert tail.stdout is not None
        event = json.loads(tail.stdout.readline())
        assert event["kind"] == "vm.started"
        assert event["schema"] == "proxbus.event/v1"
    finally:
        tail.kill()


def test_stats_counts_stream_messages(nats_server: NatsServer) -> None:
    env = cli_env(nats_server)
    subprocess.run([PROXBUS, "events", "publish"], env=env, check=True, capture_output=True)
    out = subprocess.run(
        [PROXBUS, "events", "stats"], env=env, check=True, capture_output=True, text=True
    ).stdout
    row = next(line for line in out.splitlines() if line.startswith("PROXBUS_EVENTS"))
    assert row.split()[1] == "1"


def test_check_reports_an_unreachable_broker_clearly() -> None:
    result = subprocess.run(
        [PROXBUS, "--nats-url", "nats://127.0.0.1:1", "check"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 1
    assert "FAIL  NATS at nats://127.0.0.1:1" in result.stdout


def test_publish_and_stats_use_the_jetstream_domain(make_nats_server) -> None:  # type: ignore[no-untyped-def]
    server = make_nats_server(domain="hub")
    env = {**os.environ, "NATS_URL": server.url, "NATS_JS_DOMAIN": "hub", "PROXBUS_SITE": "lab"}
    published = subprocess.run(
        [PROXBUS, "events", "publish", "--title", "through the domain"],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert published.returncode == 0, published.stderr
    assert "as PROXBUS_EVENTS#1" in published.stdout
    stats = subprocess.run(
        [PROXBUS, "events", "stats"], env=env, capture_output=True, text=True, timeout=30
    )
    assert stats.returncode == 0, stats.stderr
    row = next(line for line in stats.stdout.splitlines() if line.startswith("PROXBUS_EVENTS"))
    assert row.split()[1] == "1"
    wrong = subprocess.run(
        [PROXBUS, "events", "stats"], env={**env, "NATS_JS_DOMAIN": "elsewhere"},
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert wrong.returncode == 1  # another domain: no JetStream answers there
    assert "PROXBUS_EVENTS" not in wrong.stdout


async def test_tail_count_prints_exactly_that_many_of_a_burst(
    nats_server: NatsServer, js: Any
) -> None:
    """`--count 3` while the demo publishes a task's events at once printed 4 or more: events
    that arrived before the tail stopped were printed after it had enough."""
    from proxbus_events import Event
    from proxbus_runtime import EventPublisher

    tail = await asyncio.create_subprocess_exec(
        PROXBUS, "events", "tail", "--json", "--count", "3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=cli_env(nats_server),
    )  # fmt: skip
    try:
        assert tail.stderr is not None
        line = await asyncio.wait_for(tail.stderr.readline(), 20)
        assert line.startswith(b"listening on"), line
        publisher = EventPublisher(js)
        await asyncio.gather(
            *(
                publisher.publish(
                    Event(source="syslog", kind="syslog.message", site="lab", title=f"burst {n}")
                )
                for n in range(50)
            )
        )
        out, _ = await asyncio.wait_for(tail.communicate(), 20)
        assert tail.returncode == 0
        assert len(out.splitlines()) == 3, out.decode()
    finally:
        if tail.returncode is None:
            tail.kill()
            await tail.wait()


def test_every_command_says_an_unreachable_broker_in_one_line() -> None:
    """No log line before it (tail printed a "WARNING ... NATS errors ... [Errno 111]" first)."""
    for command in (["events", "tail"], ["events", "publish"], ["events", "stats"]):
        result = subprocess.run(
            [PROXBUS, "--nats-url", "nats://127.0.0.1:1", *command],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert result.returncode == 1, command
        assert result.stderr.splitlines() == [
            "proxbus: NATS at nats://127.0.0.1:1: nats: no servers available for connection"
        ], command


def test_an_unreachable_broker_is_named_without_its_password() -> None:
    """NATS_URL may carry user:password: no command prints it (check, events)."""
    url = "nats://bob:s3cret@127.0.0.1:1"
    for command in (["check"], ["events", "tail"], ["events", "stats"]):
        result = subprocess.run(
            [PROXBUS, "--nats-url", url, *command],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert result.returncode == 1, command
        assert "s3cret" not in result.stdout + result.stderr, command
        assert "nats://127.0.0.1:1" in result.stdout + result.stderr, command
