"""The console receiver: notifications printed on stdout and counted like any receiver's."""

from __future__ import annotations

import io
from typing import Any

import pytest
from proxbus_dispatcher.notification import Notification
from proxbus_dispatcher.notifiers.console import (
    MARKER,
    ConsoleNotifier,
    ConsoleReceiver,
    format_notification,
)

from .conftest import ev, publish, wait_until


async def test_console_receiver_prints_and_counts_as_sent(
    dispatcher: Any, js: Any, capsys: Any
) -> None:
    service = await dispatcher("""\
receivers:
  - {name: terminal, type: console}
route: {receiver: terminal}
""")
    await publish(
        js, ev(title="backup of VM 100 failed", vmid=100, message="ERROR: no space\nsecond")
    )
    printed: list[str] = []

    def seen() -> bool:
        printed.append(capsys.readouterr().out)
        return MARKER in "".join(printed)

    await wait_until(seen)
    out = "".join(printed)
    header = next(line for line in out.splitlines() if line.startswith(MARKER))
    assert "ERROR" in header
    assert "backup of VM 100 failed" in header
    assert "(pve1, vmid 100)" in header
    sent = service.registry.get_sample_value(
        "proxbus_dispatcher_notifications_total", {"receiver": "terminal", "outcome": "sent"}
    )
    assert sent == 1


def test_block_is_bounded_and_one_line_per_header() -> None:
    receiver = ConsoleReceiver(name="c", type="console", max_lines=2)
    event = ev(title="multi\nline   title", message="\n".join(f"line {n}" for n in range(50)))
    notification = Notification(id="d1", receiver="c", route="root", events=[event])
    block = format_notification(receiver, notification)
    lines = block.splitlines()
    assert lines[0].startswith(f"{MARKER} ")
    assert "multi line title" in lines[0]
    assert len(lines) <= 1 + 2 + 1
    assert lines[-1].strip().startswith("…")


async def test_a_closed_stream_is_retried_not_raised_through() -> None:
    from proxbus_dispatcher.errors import RetryableError

    out = io.StringIO()
    out.close()
    notifier = ConsoleNotifier(ConsoleReceiver(name="c", type="console"), out)
    notification = Notification(id="d1", receiver="c", route="root", events=[ev()])
    with pytest.raises(RetryableError, match="console c"):
        await notifier.send(notification)
