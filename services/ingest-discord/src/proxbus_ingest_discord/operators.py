"""``DISCORD_OPERATORS``: the Discord users and roles allowed to change things."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .interaction import Actor

_ENTRY_RE = re.compile(r"^(?:(user|role):)?([0-9]{1,20})$")


@dataclass(slots=True, frozen=True)
class Operators:
    """User ids and role ids; an empty allowlist allows nobody (reads stay open)."""

    users: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str) -> Operators:
        """``user:<id>``, ``role:<id>`` or a bare id (user or role), comma-separated.

        Raises:
            ValueError: an entry is not one of these.
        """
        users: set[str] = set()
        roles: set[str] = set()
        for raw in text.split(","):
            entry = raw.strip()
            if not entry:
                continue
            m = _ENTRY_RE.match(entry)
            if not m:
                raise ValueError(
                    f"DISCORD_OPERATORS entry {entry[:40]!r} is not user:<id>, role:<id> or <id>"
                )
            kind, snowflake = m.groups()
            if kind in (None, "user"):
                users.add(snowflake)
            if kind in (None, "role"):
                roles.add(snowflake)
        return cls(frozenset(users), frozenset(roles))

    def allows(self, actor: Actor) -> bool:
        return actor.user_id in self.users or bool(actor.roles & self.roles)

    def __bool__(self) -> bool:
        return bool(self.users or self.roles)


_SNOWFLAKE_RE = re.compile(r"^[0-9]{1,20}$")


def parse_ids(text: str, setting: str) -> frozenset[str]:
    """Comma-separated Discord ids (``DISCORD_GUILDS``, ``DISCORD_CHANNELS``).

    Raises:
        ValueError: an entry is not a snowflake.
    """
    ids: set[str] = set()
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        if not _SNOWFLAKE_RE.match(entry):
            raise ValueError(f"{setting} entry {entry[:40]!r} is not a Discord id (digits)")
        ids.add(entry)
    return frozenset(ids)


@dataclass(slots=True, frozen=True)
class Access:
    """Who may use /proxbus where (every command and click is checked, reads included).

    - ``guilds`` (``DISCORD_GUILDS``) set: only interactions from those servers count, for
      everyone, operators too (not DMs, not a server someone else added the bot to); their
      members may read, operators may change things.
    - ``guilds`` empty: only operators, anywhere (their user or role id identifies them).
    - ``channels`` (``DISCORD_CHANNELS``) set: only those channels and their threads.
    With nothing configured nobody may read or act.
    """

    operators: Operators
    guilds: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()

    def outside(
        self, guild_id: str | None, channel_id: str | None, parent_id: str | None
    ) -> str | None:
        """Why this place (server, DM, channel) is not one proxbus answers in, or ``None``."""
        if self.guilds and guild_id not in self.guilds:
            where = "in direct messages" if guild_id is None else "in this server"
            return f"proxbus does not answer {where} (DISCORD_GUILDS)."
        if self.channels and not ({channel_id, parent_id} & self.channels):
            return "proxbus does not answer in this channel (DISCORD_CHANNELS)."
        return None

    def refusal(
        self,
        actor: Actor,
        guild_id: str | None,
        channel_id: str | None,
        parent_id: str | None,
        *,
        change: bool,
    ) -> str | None:
        """Why ``actor`` may not do this here (shown to them), or ``None``."""
        outside = self.outside(guild_id, channel_id, parent_id)
        if outside is not None:
            return outside
        if self.operators.allows(actor):
            return None
        if change:
            return "Only proxbus operators may do that (DISCORD_OPERATORS)."
        if not self.guilds:
            return "Only proxbus operators may use /proxbus until DISCORD_GUILDS names this server."
        return None
