"""Pending confirmations of power actions: offered by a command, consumed by one click.

``/proxbus stop 100`` stores ``confirm.<nonce>`` in the ``proxbus_discord_interactions`` bucket
(who asked, the action, the guest, when it expires) and puts the nonce in the confirm button's
``custom_id``. A click is honoured only if that record exists, names the same action, kind and
guest, was asked by the same Discord user and has not expired; it is then marked ``used`` with a
compare-and-set on its revision, so of two clicks (a double click, two devices, two replicas)
exactly one runs the action. A cancel marks it ``cancelled`` the same way. The record lives as
long as the bucket keeps entries (15 minutes after its last write, ``DISCORD_CONFIRM_SECONDS``
is at most that), so a button the service never offered matches nothing.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

KEY_PREFIX = "confirm."
OFFERED, USED, CANCELLED = "offered", "used", "cancelled"
# What ``take`` found (the click's answer follows from it).
TAKEN, UNKNOWN, EXPIRED, MISMATCH, OTHER_USER, ALREADY = (
    "taken",
    "unknown",
    "expired",
    "mismatch",
    "other_user",
    "already",
)


@dataclass(slots=True, frozen=True)
class Pending:
    """One offered confirmation."""

    action: str
    kind: str
    vmid: int
    user_id: str
    user_name: str
    expires: float
    state: str = OFFERED
    by: str = ""

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "action": self.action,
                "kind": self.kind,
                "vmid": self.vmid,
                "user_id": self.user_id,
                "user_name": self.user_name,
                "expires": self.expires,
                "state": self.state,
                "by": self.by,
            }
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Pending | None:
        try:
            raw: Any = json.loads(data)
            return cls(
                action=str(raw["action"]),
                kind=str(raw["kind"]),
                vmid=int(raw["vmid"]),
                user_id=str(raw["user_id"]),
                user_name=str(raw.get("user_name", "")),
                expires=float(raw["expires"]),
                state=str(raw.get("state", OFFERED)),
                by=str(raw.get("by", "")),
            )
        except (ValueError, TypeError, KeyError):
            return None


@dataclass(slots=True, frozen=True)
class Taken:
    """The outcome of a click on a confirm (or cancel) button."""

    result: str
    pending: Pending | None = None


class Confirmations:
    """Offers and consumes confirmations in the interactions bucket."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def offer(
        self, action: str, kind: str, vmid: int, user_id: str, user_name: str, seconds: float
    ) -> str:
        """Store a new confirmation; its nonce goes into the buttons' custom_ids."""
        nonce = secrets.token_hex(12)
        pending = Pending(action, kind, vmid, user_id, user_name, time.time() + seconds)
        await self.kv.create(KEY_PREFIX + nonce, pending.to_json())
        return nonce

    async def take(
        self,
        nonce: str,
        *,
        action: str | None,
        kind: str | None,
        vmid: int | None,
        user_id: str,
        user_name: str,
        state: str = USED,
        any_user: bool = False,
    ) -> Taken:
        """Consume the confirmation ``nonce`` for ``user_id`` (``state`` used or cancelled).

        ``action``/``kind``/``vmid`` must equal what was offered (``None`` for a cancel, which
        names no action); ``any_user``: another user may (a cancel by any operator). Nothing
        is changed unless the result is ``taken``.
        """
        key = KEY_PREFIX + nonce
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return Taken(UNKNOWN)
        pending = Pending.from_json(entry.value or b"")
        if pending is None:
            return Taken(UNKNOWN)
        if action is not None and (pending.action, pending.kind, pending.vmid) != (
            action,
            kind,
            vmid,
        ):
            return Taken(MISMATCH, pending)
        if pending.state != OFFERED:
            return Taken(ALREADY, pending)
        if pending.user_id != user_id and not any_user:
            return Taken(OTHER_USER, pending)
        if time.time() > pending.expires:
            return Taken(EXPIRED, pending)
        done = Pending(
            pending.action,
            pending.kind,
            pending.vmid,
            pending.user_id,
            pending.user_name,
            pending.expires,
            state,
            user_name,
        )
        try:
            await self.kv.update(key, done.to_json(), last=entry.revision)
        except KeyWrongLastSequenceError:
            # Another click (here or on another replica) got there first.
            try:
                again = await self.kv.get(key)
            except KeyNotFoundError:
                return Taken(UNKNOWN)
            return Taken(ALREADY, Pending.from_json(again.value or b"") or pending)
        return Taken(TAKEN, done)
