"""Failures a Discord member can trigger over and over: the member gets a short answer with no
trace or internals, the log gets one line with the traceback then a summary (not one per
command). Real parts: a real nats-server whose silences bucket is gone, signed requests."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from proxbus_ingest_discord.testing import Signed, command, discord_audit


async def test_a_repeated_internal_failure_is_logged_once_and_shown_without_a_trace(
    signed: Signed, js: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # The silences bucket is deleted under the running service (an operator's mistake, a
    # broken JetStream): every /proxbus silence now fails inside the service.
    await js.delete_key_value("proxbus_silences")
    fingerprint = "0123456789abcdef0123456789abcdef"
    with caplog.at_level(logging.INFO, logger="proxbus_ingest_discord"):
        answers = [
            (await signed.post(command("silence", {"target": fingerprint, "duration": "1h"})))[1]
            for _ in range(5)
        ]
    for answer in answers:
        assert answer["type"] == 4
        assert answer["data"]["flags"] == 64
        assert answer["data"]["content"] == "internal error, see the service log"
    tracebacks = [
        r for r in caplog.records if r.name.startswith("proxbus_ingest_discord") and r.exc_info
    ]
    assert len(tracebacks) == 1
    records = await discord_audit(js, 5)
    assert [(r["outcome"], r["code"]) for r in records] == [("error", 500)] * 5
