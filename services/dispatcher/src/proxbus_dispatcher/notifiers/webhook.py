"""Generic webhook (n8n's Webhook node, anything HTTP): JSON body, HMAC signature, headers.

Body: ``{"schema": "proxbus.notification/v1", "id", "receiver", "route", "group_key",
"group_labels", "count", "severity", "title", "body", "event", "events", "enrichment",
"incident", "incidents"}``
where ``event`` is the first event. Header ``X-Proxbus-Signature: sha256=<hex>`` is the
HMAC-SHA256 of the raw body with the receiver's ``secret``; ``X-Proxbus-Delivery`` is the
delivery id (stable across retries, for idempotent receivers).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Literal

import aiohttp
from pydantic import Field

from ..notification import Notification
from ._base import ReceiverBase, post_json, render_body, render_title

SIGNATURE_HEADER = "X-Proxbus-Signature"
DELIVERY_HEADER = "X-Proxbus-Delivery"


class WebhookReceiver(ReceiverBase):
    """``type: webhook``: URL, optional HMAC secret and extra headers."""

    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    secret: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)


def sign(secret: str, body: bytes) -> str:
    """The ``X-Proxbus-Signature`` value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_payload(receiver: WebhookReceiver, notification: Notification) -> dict[str, Any]:
    events = notification.event_dicts()
    return {
        "schema": "proxbus.notification/v1",
        "id": notification.id,
        "receiver": notification.receiver,
        "route": notification.route,
        "group_key": notification.group_key,
        "group_labels": notification.group_labels,
        "count": len(events),
        "severity": notification.severity.value,
        "title": render_title(receiver, notification),
        "body": render_body(receiver, notification, 64_000),
        "event": events[0],
        "events": events,
        "enrichment": notification.enrichment,
        "incident": notification.incident,
        "incidents": notification.incidents,
    }


class WebhookNotifier:
    """POSTs the notification JSON to a URL."""

    def __init__(self, receiver: WebhookReceiver, http: aiohttp.ClientSession) -> None:
        self.receiver = receiver
        self._http = http

    async def send(self, notification: Notification) -> None:
        body = json.dumps(webhook_payload(self.receiver, notification)).encode()
        headers = {**self.receiver.headers, DELIVERY_HEADER: notification.id}
        if self.receiver.secret:
            headers[SIGNATURE_HEADER] = sign(self.receiver.secret, body)
        await post_json(
            self._http,
            self.receiver.url,
            target=f"webhook {self.receiver.name}",
            content=body,
            headers=headers,
            timeout=self.receiver.timeout,
        )
