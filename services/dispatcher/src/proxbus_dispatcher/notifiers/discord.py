"""Discord webhook: one embed per notification, coloured by severity, with fields."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

import aiohttp
from proxbus_events import Severity
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
    # on an application-owned webhook (see services/ingest-discord/README.md).
    buttons: bool = False


SEVERITY_COLOURS: dict[Severity, int] = {
    Severity.DEBUG: 0x95A5A6,
    Severity.INFO: 0x3498DB,
    Severity.NOTICE: 0x1ABC9C,
    Severity.WARNING: 0xF1C40F,
    Severity.ERROR: 0xE74C3C,
    Severity.CRITICAL: 0x8E0000,
}
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


def discord_payload(receiver: DiscordReceiver, notification: Notification) -> dict[str, Any]:
    """The webhook JSON body for ``notification``."""
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
        "color": SEVERITY_COLOURS[notification.severity],
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
    if receiver.buttons and alert and re.fullmatch(r"[0-9a-f]{8,64}", fingerprint):
        # custom_id format owned by ingest-discord's components.py
        payload["components"] = [{"type": 1, "components": [
            {"type": 2, "style": 2, "label": "Silence 1h", "custom_id": f"pbx:silence:{fingerprint}:3600"},
            {"type": 2, "style": 1, "label": "Acknowledge", "custom_id": f"pbx:ack:{fingerprint}"},
        ]}]  # fmt: skip
    return payload


class DiscordNotifier:
    """Posts to a Discord webhook URL (``?wait=true`` so errors come back; with buttons also
    ``with_components=true``, without which Discord drops a webhook message's components —
    docs.discord.com, "Using Message Components")."""

    def __init__(self, receiver: DiscordReceiver, http: aiohttp.ClientSession) -> None:
        self.receiver = receiver
        self._http = http
        url = receiver.url
        if "wait=" not in url:
            url += ("&" if "?" in url else "?") + "wait=true"
        if receiver.buttons and "with_components=" not in url:
            url += "&with_components=true"
        self._url = url

    async def send(self, notification: Notification) -> None:
        body = json.dumps(discord_payload(self.receiver, notification)).encode()
        await post_json(
            self._http,
            self._url,
            target=f"discord {self.receiver.name}",
            content=body,
            timeout=self.receiver.timeout,
        )
