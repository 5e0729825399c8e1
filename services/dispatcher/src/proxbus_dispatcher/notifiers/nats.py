"""Republish the notification JSON to a NATS subject (core NATS, flushed)."""

from __future__ import annotations

from typing import Literal

import nats.errors
from nats.aio.client import Client as NATS
from pydantic import Field

from ..errors import RetryableError
from ..notification import Notification
from ._base import ReceiverBase


class NatsReceiver(ReceiverBase):
    """``type: nats``: a core NATS subject the delivery JSON is published on."""

    type: Literal["nats"]
    subject: str = Field(pattern=r"^[^\s*>]+$")


class NatsNotifier:
    """Publishes the delivery body as-is on ``subject``."""

    def __init__(self, receiver: NatsReceiver, nc: NATS) -> None:
        self.receiver = receiver
        self._nc = nc

    async def send(self, notification: Notification) -> None:
        try:
            await self._nc.publish(
                self.receiver.subject,
                notification.to_json(),
                headers={"Nats-Msg-Id": notification.id, "content-type": "application/json"},
            )
            await self._nc.flush(timeout=max(1, round(self.receiver.timeout)))
        except (nats.errors.Error, TimeoutError) as exc:
            raise RetryableError(
                f"nats {self.receiver.name}: {type(exc).__name__}: {exc}"
            ) from None
