"""The status board of `proxbus up`: error lines, rates from /metrics, the two views."""

from __future__ import annotations

import io
import re

import pytest
from proxbus_devtools.status import (
    PlainView,
    State,
    StatusBoard,
    error_text,
    render,
    update_rates,
)


def test_error_lines_of_each_log_format_give_their_message() -> None:
    assert error_text("2026-11-30 03:01:52,822 ERROR dispatcher proxbus.up: boom here") == (
        "dispatcher proxbus.up: boom here"
    )
    assert error_text('{"ts": "x", "level": "error", "logger": "a", "msg": "json \\"boom\\""}') == (
        'json \\"boom\\"'
    )
    assert error_text("[1234] 2026/11/30 03:01:09.123 [ERR] 127.0.0.1:4222 - cid:5 - auth") == (
        "127.0.0.1:4222 - cid:5 - auth"
    )
    assert error_text("2026-11-30 03:01:52,822 WARNING x: only a warning") == ""
    assert error_text("2026-11-30 03:01:52,822 INFO x: error counts 0") == ""


def _page(received: float, published: float, sent: float = 0) -> str:
    return (
        "# TYPE proxbus_syslog_received counter\n"
        f'proxbus_syslog_received_total{{transport="udp"}} {received}\n'
        "# TYPE proxbus_publish_published counter\n"
        f'proxbus_publish_published_total{{service="ingest-syslog"}} {published}\n'
        "# TYPE proxbus_dispatcher_notifications counter\n"
        f'proxbus_dispatcher_notifications_total{{receiver="t",outcome="sent"}} {sent}\n'
        f'proxbus_dispatcher_notifications_total{{receiver="t",outcome="retry"}} 99\n'
    )


def test_rates_are_per_second_between_scrapes() -> None:
    board = StatusBoard(["ingest-syslog", "dispatcher"])
    syslog = board.get("ingest-syslog")
    update_rates(syslog, _page(100, 90), now=10.0)
    assert syslog.rate_in is None  # one scrape: no rate yet
    update_rates(syslog, _page(300, 190), now=12.0)
    assert syslog.rate_in == 100.0
    assert syslog.rate_out == 50.0
    dispatcher = board.get("dispatcher")
    update_rates(dispatcher, _page(0, 0, sent=4), now=1.0)
    update_rates(dispatcher, _page(0, 0, sent=8), now=3.0)
    assert dispatcher.rate_out == 2.0  # only outcome="sent" counts


def test_rates_cover_the_last_ten_seconds() -> None:
    child = StatusBoard(["ingest-syslog"]).get("ingest-syslog")
    for t in range(0, 21, 2):  # one burst of 100 lines at t=10, scrapes every 2 s
        update_rates(child, _page(100 if t >= 10 else 0, 0), now=float(t))
        if t in (10, 18):
            assert child.rate_in is not None
            assert child.rate_in == pytest.approx(10.0)  # 100 lines over the 10 s window
    assert child.rate_in == 0.0  # t=20: the burst left the window


def test_restarts_are_counted_and_plain_lines_are_timestamped() -> None:
    board = StatusBoard(["nats"])
    out = io.StringIO()
    PlainView(board, out)
    board.started("nats", 41)
    board.set_state("nats", State.HEALTHY)
    board.note_line("nats", "[9] 2026/11/30 03:01:09.123 [FTL] disk full")
    board.exited("nats", -9, 1.0)
    board.started("nats", 42)
    board.set_state("nats", State.HEALTHY)
    board.set_state("nats", State.HEALTHY)  # no change, no line
    lines = out.getvalue().splitlines()
    stamp = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ "
    assert all(re.match(stamp, line) for line in lines)
    assert [line.split(" ", 1)[1] for line in lines] == [
        "nats starting (pid 41)",
        "nats healthy",
        "nats restarting (SIGKILL, restart in 1.0s): disk full",
        "nats starting (pid 42)",
        "nats healthy",
    ]
    assert board.get("nats").restarts == 1


def test_table_has_every_column_and_truncates_long_errors() -> None:
    from rich.console import Console

    board = StatusBoard(["dispatcher"])
    board.footer = ["next steps: proxbus events tail"]
    board.started("dispatcher", 7)
    board.get("dispatcher").last_error = "x" * 500
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(render(board))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    for column in ("service", "state", "pid", "ports", "restarts", "in/s", "out/s", "last error"):
        assert column in text
    assert "starting" in text
    assert "x" * 500 not in text
    assert "…" in text
    assert "next steps: proxbus events tail" in text


def test_a_crash_shows_its_cause_not_only_that_it_failed() -> None:
    """The row of a child that crashed with a traceback names the exception (the line after
    the generic "failed" ERROR line), so a newcomer sees e.g. "address already in use"."""
    from rich.console import Console

    board = StatusBoard(["ingest-syslog"])
    out = io.StringIO()
    PlainView(board, out)
    board.started("ingest-syslog", 7)
    for line in (
        "2026-11-30 08:20:40,536 ERROR   ingest-syslog proxbus.main: ingest-syslog failed",
        "Traceback (most recent call last):",
        '  File "/x/asyncio/base_events.py", line 1536, in create_server',
        "    raise OSError(err.errno, 'error while attempting '",
        "OSError: [Errno 98] error while attempting to bind on address ('0.0.0.0', 5514): "
        "address already in use",
    ):
        board.note_line("ingest-syslog", line)
    board.exited("ingest-syslog", 1, 1.0)
    assert out.getvalue().splitlines()[-1].endswith("): address already in use")
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(render(board))
    table = console.file.getvalue()  # type: ignore[attr-defined]
    assert "address already in use" in table
    # A traceback-looking line without an error before it is ordinary output.
    quiet = StatusBoard(["dispatcher"])
    quiet.note_line("dispatcher", "ValueError: printed by a receiver, not a crash")
    assert quiet.get("dispatcher").last_error == ""


def test_a_child_stopped_by_a_signal_names_it_not_a_negative_exit_code() -> None:
    """Ctrl-C while the services start: a child that had no handler yet dies of the
    supervisor's SIGTERM, which read "dispatcher stopped (exit -15)", as if it had failed."""
    board = StatusBoard(["dispatcher", "ingest-syslog"])
    out = io.StringIO()
    PlainView(board, out)
    board.started("dispatcher", 41)
    board.note_line("dispatcher", "2026-11-30 03:01:52,822 INFO proxbus: connecting")
    board.exited("dispatcher", -15, None)
    board.started("ingest-syslog", 42)
    board.exited("ingest-syslog", 0, None)
    lines = [line.split(" ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines[1] == "dispatcher stopped (SIGTERM)"
    assert lines[3] == "ingest-syslog stopped (exit 0)"
    assert board.get("dispatcher").last_error == ""  # its last line was no error
