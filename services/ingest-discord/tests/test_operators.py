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


@pytest.mark.parametrize("text", ["abc", "12,x", "123456789012345678901"])
def test_bad_guild_or_channel_ids_are_refused(text: str) -> None:
    from proxbus_ingest_discord.operators import parse_ids

    with pytest.raises(ValueError, match="DISCORD_GUILDS"):
        parse_ids(text, "DISCORD_GUILDS")


def test_access_rules() -> None:
    from proxbus_ingest_discord.operators import Access, parse_ids

    ops = Operators.parse("user:11")
    op, other = Actor("11", "op"), Actor("99", "x")
    nothing = Access(Operators.parse(""))
    assert nothing.refusal(op, "1", "2", None, change=False) is not None
    assert nothing.refusal(other, "1", "2", None, change=False) is not None
    no_guilds = Access(ops)
    assert no_guilds.refusal(op, None, "2", None, change=True) is None  # an operator, in a DM
    assert no_guilds.refusal(other, "1", "2", None, change=False) is not None
    guilds = Access(ops, parse_ids("1", "DISCORD_GUILDS"))
    assert guilds.refusal(other, "1", "2", None, change=False) is None
    assert guilds.refusal(other, "1", "2", None, change=True) is not None
    assert guilds.refusal(op, "3", "2", None, change=False) is not None
    assert guilds.refusal(op, None, "2", None, change=True) is not None
    channels = Access(ops, frozenset({"1"}), frozenset({"2"}))
    assert channels.refusal(op, "1", "5", "2", change=True) is None  # a thread of channel 2
    assert channels.refusal(op, "1", "5", None, change=True) is not None
