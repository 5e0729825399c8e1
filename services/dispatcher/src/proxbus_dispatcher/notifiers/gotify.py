"""Gotify: ``POST /message?token=`` with priority by severity and markdown rendering."""

from __future__ import annotations

import json
from typing import Any, Literal
from urllib.parse import quote

import aiohttp
from proxbus_events import Severity
from pydantic import Field

from ..notification import Notification
from ..templates import DEFAULT_BODY, DEFAULT_BODY_MARKDOWN
from ._base import ReceiverBase, post_json, render_body, render_title

DEFAULT_GOTIFY_PRIORITIES: dict[Severity, int] = {
    Severity.DEBUG: 0,
    Severity.INFO: 2,
    Severity.NOTICE: 4,
    Severity.WARNING: 5,
    Severity.ERROR: 8,
    Severity.CRITICAL: 10,
}


class GotifyReceiver(ReceiverBase):
    """``type: gotify``: server URL, application token, priority per severity."""

    type: Literal["gotify"]
    url: str = Field(pattern=r"^https?://")
    token: str = Field(min_length=1)
    priorities: dict[Severity, int] = Field(default_factory=lambda: dict(DEFAULT_GOTIFY_PRIORITIES))
    markdown: bool = True


def gotify_payload(receiver: GotifyReceiver, notification: Notification) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "title": render_title(receiver, notification),
        "message": render_body(
            receiver,
            notification,
            60_000,
            DEFAULT_BODY_MARKDOWN if receiver.markdown else DEFAULT_BODY,
        ),
        "priority": receiver.priorities.get(notification.severity, 5),
        "extras": {
            "proxbus::event": {
                "ids": [e["id"] for e in notification.events],
                "kind": notification.first["kind"],
                "severity": notification.severity.value,
            }
        },
    }
    if receiver.markdown:
        payload["extras"]["client::display"] = {"contentType": "text/markdown"}
    return payload


class GotifyNotifier:
    """Posts to a Gotify server's message endpoint with an application token."""

    def __init__(self, receiver: GotifyReceiver, http: aiohttp.ClientSession) -> None:
        self.receiver = receiver
        self._http = http
        self._url = f"{receiver.url.rstrip('/')}/message?token={quote(receiver.token, safe='')}"

    async def send(self, notification: Notification) -> None:
        body = json.dumps(gotify_payload(self.receiver, notification)).encode()
        await post_json(
            self._http,
            self._url,
            target=f"gotify {self.receiver.name}",
            content=body,
            timeout=self.receiver.timeout,
        )
