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
