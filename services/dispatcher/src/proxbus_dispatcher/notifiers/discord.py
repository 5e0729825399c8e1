"""Discord webhook: one embed per notification, coloured by severity, with fields."""

from __future__ import annotations

import json
import re
import time
from typing import Any, Literal

import aiohttp
from proxbus_events import BUTTON_LIFETIME, Severity, ack_button_id, silence_button_id
from pydantic import Field

from ..notification import Notification
from ..templates import DEFAULT_BODY_DISCORD, md
from ._base import ReceiverBase, post_json, render_body, render_title


class DiscordReceiver(ReceiverBase):
    """``type: discord``: a Discord webhook URL (holds its token: never logged)."""

    type: Literal["discord"]
    url: str = Field(pattern=r"^https?://")
    username: str = "proxbus"
    avatar_url: str | None = None
    # "Silence 1h" / "Acknowledge" buttons, answered by ingest-discord; Discord shows them only
    # on an application-owned webhook (see services/ingest-discord/README.md). Signed with
    # DISCORD_BUTTON_SECRET; without it none are sent (ingest-discord would refuse them).
    buttons: bool = False


SEVERITY_COLOURS: dict[Severity, int] = {
    Severity.DEBUG: 0x95A5A6,
    Severity.INFO: 0x3498DB,
    Severity.NOTICE: 0x1ABC9C,
    Severity.WARNING: 0xF1C40F,
    Severity.ERROR: 0xE74C3C,
    Severity.CRITICAL: 0x8E0000,
}
# what is over (``Notification.recovery``: a node back online, a failure resolved): green
RECOVERY_COLOUR = 0x2ECC71
# Discord's embed limits: title 256, description 4096, 25 fields, value 1024.
_DESCRIPTION_LIMIT = 4000


_EMBED_TOTAL = 6000


def _embed_size(embed: dict[str, Any]) -> int:
    fields = embed["fields"]
    return (
        len(embed["title"])
        + len(embed["description"])
        + sum(len(f["name"]) + len(f["value"]) for f in fields)
        + len(embed["footer"]["text"])
    )


def _field(value: object) -> str:
    """An event's value as a field value: literal text (``md``), at most 1024 characters."""
    text = md(value) or "-"
    return text if len(text) <= 1024 else text[:1023] + "…"


SILENCE_SECONDS = 3600
_CUSTOM_ID_LIMIT = 100  # Discord's


def alert_buttons(
    fingerprint: str, button_secret: bytes, now: float | None = None
) -> list[dict[str, Any]] | None:
    """The action row of "Silence 1h" / "Acknowledge", signed (``proxbus_events.buttons``;
    ingest-discord checks the tags), or ``None`` if an id would not fit Discord's limit."""
    expires = int(time.time() if now is None else now) + BUTTON_LIFETIME
    silence = silence_button_id(button_secret, fingerprint, SILENCE_SECONDS, expires)
    ack = ack_button_id(button_secret, fingerprint, expires)
    if max(len(silence), len(ack)) > _CUSTOM_ID_LIMIT:
        return None  # a fingerprint longer than the contract's 32 hex digits
    return [{"type": 1, "components": [
        {"type": 2, "style": 2, "label": "Silence 1h", "custom_id": silence},
        {"type": 2, "style": 1, "label": "Acknowledge", "custom_id": ack},
    ]}]  # fmt: skip


def discord_payload(
    receiver: DiscordReceiver,
    notification: Notification,
    *,
    button_secret: bytes | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The webhook JSON body for ``notification`` (buttons only with ``button_secret``)."""
    first = notification.first
    fields: list[dict[str, Any]] = [
        {"name": "severity", "value": notification.severity.value, "inline": True},
        # The contract bounds a kind's shape, not its length: Discord refuses a field value
        # over 1024 characters (HTTP 400, the notification dead-lettered).
        {"name": "kind", "value": _field(first["kind"]), "inline": True},
    ]
    if first.get("node"):
        fields.append({"name": "node", "value": _field(first["node"]), "inline": True})
    if first.get("vmid") is not None:
        fields.append({"name": "vmid", "value": str(first["vmid"]), "inline": True})
    if len(notification.events) > 1:
        fields.append({"name": "events", "value": str(len(notification.events)), "inline": True})
    fields.append({"name": "site", "value": _field(first.get("site", "")), "inline": True})
    embed: dict[str, Any] = {
        "title": render_title(receiver, notification, 256),
        # Discord markdown: with the default template, nothing from an event becomes markup
        # (a masked link in an sshd "Invalid user" line, a mention) and a multi-line message is
        # a code block; a body_template is the operator's markdown.
        "description": render_body(
            receiver, notification, _DESCRIPTION_LIMIT, DEFAULT_BODY_DISCORD
        ),
        "color": RECOVERY_COLOUR
        if notification.recovery
        else SEVERITY_COLOURS[notification.severity],
        "fields": fields[:25],
        "timestamp": first.get("timestamp"),
        "footer": {"text": f"proxbus · {first.get('source', '')}"},
    }
    # Discord refuses an embed over 6000 characters in all (title, description, field names
    # and values, footer): the description gives way.
    over = _embed_size(embed) - _EMBED_TOTAL
    if over > 0:
        embed["description"] = embed["description"][: -(over + 1)] + "…"
    payload: dict[str, Any] = {"username": receiver.username, "embeds": [embed]}
    if receiver.avatar_url:
        payload["avatar_url"] = receiver.avatar_url
    fingerprint = str(first.get("fingerprint", ""))
    # Not on command.* events (the clicks themselves): silencing those means nothing.
    alert = not str(first.get("kind", "")).startswith("command.")
    buttons = receiver.buttons and button_secret is not None
    if buttons and alert and re.fullmatch(r"[0-9a-f]{8,64}", fingerprint):
        assert button_secret is not None
        row = alert_buttons(fingerprint, button_secret, now)
        if row is not None:
            payload["components"] = row
    return payload


class DiscordNotifier:
    """Posts to a Discord webhook URL (``?wait=true`` so errors come back; with buttons also
    ``with_components=true``, without which Discord drops a webhook message's components —
    docs.discord.com, "Using Message Components")."""

    def __init__(
        self,
        receiver: DiscordReceiver,
        http: aiohttp.ClientSession,
        button_secret: bytes | None = None,
    ) -> None:
        self.receiver = receiver
        self._http = http
        self._button_secret = button_secret if receiver.buttons else None
        url = receiver.url
        if "wait=" not in url:
            url += ("&" if "?" in url else "?") + "wait=true"
        if self._button_secret is not None and "with_components=" not in url:
            url += "&with_components=true"
        self._url = url

    async def send(self, notification: Notification) -> None:
        payload = discord_payload(self.receiver, notification, button_secret=self._button_secret)
        body = json.dumps(payload).encode()
        await post_json(
            self._http,
            self._url,
            target=f"discord {self.receiver.name}",
            content=body,
            timeout=self.receiver.timeout,
        )
