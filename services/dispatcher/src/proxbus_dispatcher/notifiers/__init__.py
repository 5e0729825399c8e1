"""Notifiers: one module per target type, each with its receiver config model and its sender.

``send`` returns when the target accepted the notification and raises
``RetryableError(retry_after=...)`` (try again later) or ``PermanentError`` (never will).
``NOTIFIERS`` is the registry keyed by the receiver's ``type``: adding a target is one module
(``XReceiver`` + ``XNotifier``) and one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import aiohttp
from nats.aio.client import Client as NATS
from pydantic import Field

from ._base import Notifier, ReceiverBase, render_body, render_title
from .apprise import AppriseNotifier, AppriseReceiver
from .console import ConsoleNotifier, ConsoleReceiver
from .discord import DiscordNotifier, DiscordReceiver
from .email import EmailNotifier, EmailReceiver
from .gotify import GotifyNotifier, GotifyReceiver
from .nats import NatsNotifier, NatsReceiver
from .webhook import WebhookNotifier, WebhookReceiver

__all__ = [
    "NOTIFIERS",
    "Notifier",
    "NotifierDeps",
    "ReceiverBase",
    "ReceiverConfig",
    "build_notifier",
    "render_body",
    "render_title",
]


@dataclass(slots=True, frozen=True)
class NotifierDeps:
    """What notifiers may share: one HTTP session, the service's NATS connection, the key
    that signs Discord notification buttons (``DISCORD_BUTTON_SECRET``)."""

    http: aiohttp.ClientSession
    nc: NATS
    discord_button_secret: bytes | None = None


@dataclass(slots=True, frozen=True)
class NotifierType:
    """A registry entry: the receiver's config model and how to build its notifier."""

    model: type[ReceiverBase]
    build: Callable[[Any, NotifierDeps], Notifier]


NOTIFIERS: dict[str, NotifierType] = {
    "discord": NotifierType(
        DiscordReceiver, lambda r, d: DiscordNotifier(r, d.http, d.discord_button_secret)
    ),
    "gotify": NotifierType(GotifyReceiver, lambda r, d: GotifyNotifier(r, d.http)),
    "webhook": NotifierType(WebhookReceiver, lambda r, d: WebhookNotifier(r, d.http)),
    "email": NotifierType(EmailReceiver, lambda r, d: EmailNotifier(r)),
    "apprise": NotifierType(AppriseReceiver, lambda r, d: AppriseNotifier(r)),
    "nats": NotifierType(NatsReceiver, lambda r, d: NatsNotifier(r, d.nc)),
    "console": NotifierType(ConsoleReceiver, lambda r, d: ConsoleNotifier(r)),
}

# The ``receivers:`` item of routes.yaml: pydantic picks the model by ``type``.
ReceiverConfig = Annotated[
    DiscordReceiver
    | GotifyReceiver
    | WebhookReceiver
    | EmailReceiver
    | AppriseReceiver
    | NatsReceiver
    | ConsoleReceiver,
    Field(discriminator="type"),
]


def build_notifier(receiver: ReceiverBase, deps: NotifierDeps) -> Notifier:
    """The notifier for a receiver, looked up by its ``type``.

    Raises:
        TypeError: no notifier is registered for that type.
    """
    kind = getattr(receiver, "type", None)
    entry = NOTIFIERS.get(kind) if isinstance(kind, str) else None
    if entry is None or not isinstance(receiver, entry.model):
        raise TypeError(f"no notifier for receiver type {kind!r}")
    return entry.build(receiver, deps)
