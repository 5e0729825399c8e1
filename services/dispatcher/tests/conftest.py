"""Fixtures: recording HTTP sinks (Discord/Gotify/webhook targets) and a dispatcher runner."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from proxbus_devtools.testing import serve_app
from proxbus_devtools.testing import wait_until as wait_until  # re-exported to the tests
from proxbus_dispatcher.app import DispatcherService
from proxbus_dispatcher.settings import Settings
from proxbus_events import Event, event_subject
from proxbus_runtime import event_headers


@dataclass
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Sink:
    """A loopback HTTP server that records every request; failures are scripted."""

    port: int = 0
    requests: list[Request] = field(default_factory=list)
    fail_first: int = 0
    fail_status: int = 503
    always_fail: bool = False
    rate_limit_first: int = 0
    retry_after: float = 0.3
    attempts: int = 0
    hold: asyncio.Event | None = None
    hold_after: int = 0
    delay: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    holding: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.attempts += 1
        if self.delay:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                await asyncio.sleep(self.delay)  # a slow target, not synchronisation
            finally:
                self.in_flight -= 1
        if self.hold is not None and not self.hold.is_set() and self.attempts > self.hold_after:
            self.holding.set()
            await self.hold.wait()
            return web.Response(status=503)
        if self.always_fail or self.attempts <= self.fail_first:
            return web.Response(status=self.fail_status, text="down")
        if self.attempts <= self.rate_limit_first:
            return web.json_response(
                {
                    "message": "You are being rate limited.",
                    "retry_after": self.retry_after,
                    "global": False,
                },
                status=429,
            )
        self.requests.append(
            Request(
                request.path, dict(request.query), dict(request.headers), body, time.monotonic()
            )
        )
        return web.json_response({"id": str(len(self.requests))})

    def events(self) -> list[dict[str, Any]]:
        """Every event listed by every recorded webhook body."""
        return [e for r in self.requests for e in r.json.get("events", [])]


@pytest.fixture
async def sink() -> AsyncIterator[Callable[..., Awaitable[Sink]]]:
    async with contextlib.AsyncExitStack() as servers:

        async def make(**kwargs: Any) -> Sink:
            s = Sink(**kwargs)
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", s.handle)
            s.port = await servers.enter_async_context(serve_app(app))
            return s

        yield make


def settings_for(nats_url: str, routes_file: Path | None = None, **kw: Any) -> Settings:
    return Settings(
        nats_url=nats_url,
        routes_file=routes_file,
        health_host="127.0.0.1",
        health_port=0,
        consumer_ack_wait=kw.pop("consumer_ack_wait", 5.0),
        _env_file=None,  # type: ignore[call-arg]
        **kw,
    )


@pytest.fixture
async def dispatcher(
    nats_server: Any, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[DispatcherService]]]:
    services: list[DispatcherService] = []

    async def start(routes_yaml: str | None = None, **kw: Any) -> DispatcherService:
        path = None
        if routes_yaml is not None:
            path = tmp_path / f"routes{len(services)}.yaml"
            path.write_text(routes_yaml)
        service = DispatcherService(settings_for(nats_server.url, path, **kw))
        await service.start()
        services.append(service)
        return service

    yield start
    for service in services:
        await service.stop()


async def publish(js: Any, *events: Event) -> None:
    for ev in events:
        await js.publish(event_subject(ev), ev.to_json(), headers=event_headers(ev))


def ev(**kw: Any) -> Event:
    base: dict[str, Any] = {
        "source": "syslog",
        "site": "lab",
        "node": "pve1",
        "severity": "error",
        "kind": "task.failed",
        "title": "task failed",
    }
    base.update(kw)
    return Event(**base)
