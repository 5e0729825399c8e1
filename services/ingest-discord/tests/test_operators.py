"""DISCORD_OPERATORS parsing."""

from __future__ import annotations

import pytest
from proxbus_ingest_discord.interaction import Actor
from proxbus_ingest_discord.operators import Operators


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
