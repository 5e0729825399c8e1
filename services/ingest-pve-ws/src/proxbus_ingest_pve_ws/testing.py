"""Test helpers for ingest-pve-ws (also used by the benchmark): stored events, waits, settings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
from nats.js.errors import NotFoundError
from proxbus_events import EVENTS_STREAM, Event

from .settings import Settings


async def stored_events(js: Any) -> list[Event]:
    """Every event in the events stream, in stream order."""
    info = await js.stream_info(EVENTS_STREAM)
    out = []
    for seq in range(max(1, info.state.first_seq), info.state.last_seq + 1):
        try:
            msg = await js.get_msg(EVENTS_STREAM, seq)
        except NotFoundError:  # deleted/purged sequence
            pass
        else:
            out.append(Event.from_json(msg.data))
    return out


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], timeout: float = 15.0, interval: float = 0.05
) -> None:
    """Poll an async condition; NATS errors (a broker restarting) count as "not yet"."""
    from proxbus_devtools.testing import wait_until as wait

    await wait(predicate, timeout, interval=interval, ignore=(TimeoutError, nats.errors.Error))


def make_settings(nats_url: str, **over: Any) -> Settings:
    base: dict[str, Any] = {
        "nats_url": nats_url,
        "health_host": "127.0.0.1",
        "health_port": 0,
        "proxbus_site": "lab",
        "event_ws_enabled": False,
        "pve_webhook_secret": "s3cret",
    }
    base.update(over)
    return Settings(_env_file=None, **base)  # type: ignore[call-arg]  # pydantic-settings init kwarg
