"""The interaction object Discord POSTs (the fields this endpoint reads), parsed at the edge.

Types (Discord "Interaction Type"): 1 PING, 2 APPLICATION_COMMAND, 3 MESSAGE_COMPONENT;
4 (autocomplete) and 5 (modal submit) are not used by proxbus's commands and are refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import InteractionError
from .render import plain

PING = 1
APPLICATION_COMMAND = 2
MESSAGE_COMPONENT = 3
HANDLED_TYPES = frozenset({PING, APPLICATION_COMMAND, MESSAGE_COMPONENT})

SNOWFLAKE = r"^[0-9]{1,20}$"
_ID_RE = re.compile(SNOWFLAKE)


class _User(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(pattern=SNOWFLAKE)
    username: str = Field(default="", max_length=64)
    global_name: str | None = Field(default=None, max_length=64)


class _Member(BaseModel):
    model_config = ConfigDict(extra="ignore")
    user: _User | None = None
    roles: list[str] = Field(default_factory=list, max_length=500)


class _Payload(BaseModel):
    """The wire shape; unknown fields are ignored (Discord adds fields over time)."""

    model_config = ConfigDict(extra="ignore")
    id: str = Field(pattern=SNOWFLAKE)
    application_id: str = Field(pattern=SNOWFLAKE)
    type: int
    # Goes into the follow-up URL path: no "/" and no dot-only segment.
    token: str = Field(default="", max_length=1000, pattern=r"^([A-Za-z0-9_\-][A-Za-z0-9_.\-]*)?$")
    data: dict[str, Any] = Field(default_factory=dict)
    guild_id: str | None = Field(default=None, pattern=SNOWFLAKE)
    channel_id: str | None = Field(default=None, pattern=SNOWFLAKE)
    member: _Member | None = None
    user: _User | None = None
    message: dict[str, Any] | None = None
    channel: dict[str, Any] | None = None


@dataclass(slots=True, frozen=True)
class Actor:
    """Who clicked or typed: the Discord user and, in a guild, their role ids."""

    user_id: str
    name: str
    roles: frozenset[str] = frozenset()

    @property
    def caller(self) -> str:
        """The caller in audit records and gateway calls: ``discord:<user id>`` (a display
        name is neither unique nor fixed; it is in the records' ``discord_user``)."""
        return f"discord:{self.user_id}"


@dataclass(slots=True, frozen=True)
class Interaction:
    """One verified interaction."""

    id: str
    application_id: str
    type: int
    token: str
    actor: Actor | None
    data: dict[str, Any] = field(default_factory=dict)
    guild_id: str | None = None
    channel_id: str | None = None
    message_id: str | None = None
    parent_channel_id: str | None = None  # the channel a thread belongs to


def display_name(raw: str) -> str:
    """A Discord name fit to show and store: control, format (zero-width, direction
    overrides), private-use and unassigned characters dropped, whitespace runs (newlines
    included) made one space, at most 64 characters."""
    return plain(raw)[:64]


def parse_interaction(body: bytes) -> Interaction:
    """Parse a verified request body.

    Raises:
        InteractionError: not JSON (``invalid_json``), not an interaction object
            (``invalid``), or a type this endpoint does not handle (``unknown_type``).
    """
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InteractionError("invalid_json", f"body is not JSON: {exc}") from None
    except RecursionError:
        raise InteractionError("invalid_json", "body is not JSON: nested too deeply") from None
    if not isinstance(raw, dict):
        raise InteractionError("invalid", "body must be a JSON object (an interaction)")
    try:
        payload = _Payload.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InteractionError("invalid", f"not an interaction: {where}: {first['msg']}") from None
    if payload.type not in HANDLED_TYPES:
        raise InteractionError("unknown_type", f"interaction type {payload.type} is not handled")
    if payload.type != PING and not payload.token:
        raise InteractionError("invalid", "interaction has no token")
    user = payload.member.user if payload.member and payload.member.user else payload.user
    actor = None
    if user is not None:
        roles = frozenset(payload.member.roles) if payload.member else frozenset()
        name = display_name(user.global_name or "") or display_name(user.username) or user.id
        actor = Actor(user.id, name, roles)
    if payload.type != PING and actor is None:
        raise InteractionError("invalid", "interaction names no user")
    message_id = None
    if payload.message is not None and isinstance(payload.message.get("id"), str):
        message_id = payload.message["id"]
    parent = payload.channel.get("parent_id") if payload.channel is not None else None
    return Interaction(
        id=payload.id,
        application_id=payload.application_id,
        type=payload.type,
        token=payload.token,
        actor=actor,
        data=payload.data,
        guild_id=payload.guild_id,
        channel_id=payload.channel_id,
        message_id=message_id,
        parent_channel_id=parent if isinstance(parent, str) and _ID_RE.match(parent) else None,
    )
