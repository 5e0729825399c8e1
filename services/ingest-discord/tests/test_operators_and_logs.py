"""DISCORD_OPERATORS parsing and the rate limit on remotely triggered log lines."""

from __future__ import annotations

import logging

import pytest
from proxbus_ingest_discord.interaction import Actor
from proxbus_ingest_discord.operators import Operators
from proxbus_ingest_discord.ratelimit import RateLimitedLog


def test_users_roles_and_bare_ids() -> None:
    ops = Operators.parse(" user:11, role:22 ,33,")
    assert ops.allows(Actor("11", "a"))
    assert ops.allows(Actor("99", "b", frozenset({"22"})))
    assert ops.allows(Actor("33", "c"))
    assert ops.allows(Actor("98", "d", frozenset({"33"})))
    assert not ops.allows(Actor("22", "e"))  # 22 is a role, not a user
    assert not ops.allows(Actor("44", "f", frozenset({"11"})))  # 11 is a user, not a role


def test_an_empty_allowlist_allows_nobody() -> None:
    ops = Operators.parse("")
    assert not ops
    assert not ops.allows(Actor("1", "x", frozenset({"1"})))


@pytest.mark.parametrize("text", ["alice", "user:", "group:12", "12 34", "user:12a"])
def test_bad_entries_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="DISCORD_OPERATORS"):
        Operators.parse(text)


def test_warnings_are_limited_per_interval_and_the_rest_summarised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    limited = RateLimitedLog(logging.getLogger("t"), burst=3, interval=60, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="t"):
        for i in range(10):
            limited.warning("bad request %d", i)
        assert [r.getMessage() for r in caplog.records] == [f"bad request {i}" for i in range(3)]
        assert limited.suppressed == 7
        now[0] = 61.0
        limited.warning("bad request %d", 10)
    messages = [r.getMessage() for r in caplog.records]
    assert messages[3] == "7 similar messages suppressed in the last 61s"
    assert messages[4] == "bad request 10"
    assert limited.suppressed == 0
