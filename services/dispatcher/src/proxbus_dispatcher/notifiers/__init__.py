"""Notifiers: one small module per target type, all with ``async def send(notification)``.

``send`` returns when the target accepted the notification and raises
``RetryableError(retry_after=...)`` (try again later) or ``PermanentError`` (never will).
"""

from __future__ import annotations

import aiohttp
from nats.aio.client import Client as NATS

from ..config import (
    AppriseReceiver,
    DiscordReceiver,
    EmailReceiver,
    GotifyReceiver,
    NatsReceiver,
    ReceiverBase,
    WebhookReceiver,
)
from ._base import Notifier, render_body, render_title
from .apprise import AppriseNotifier
from .discord import DiscordNotifier
from .email import EmailNotifier
from .gotify import GotifyNotifier
from .nats import NatsNotifier
from .webhook import WebhookNotifier

__all__ = ["Notifier", "build_notifier", "render_body", "render_title"]


def build_notifier(receiver: ReceiverBase, *, http: aiohttp.ClientSession, nc: NATS) -> Notifier:
    """The notifier for a receiver's ``type``."""
    if isinstance(receiver, DiscordReceiver):
        return DiscordNotifier(receiver, http)
    if isinstance(receiver, GotifyReceiver):
        return GotifyNotifier(receiver, http)
    if isinstance(receiver, WebhookReceiver):
        return WebhookNotifier(receiver, http)
    if isinstance(receiver, EmailReceiver):
        return EmailNotifier(receiver)
    if isinstance(receiver, AppriseReceiver):
        return AppriseNotifier(receiver)
    if isinstance(receiver, NatsReceiver):
        return NatsNotifier(receiver, nc)
    raise TypeError(f"no notifier for receiver type {type(receiver).__name__}")
