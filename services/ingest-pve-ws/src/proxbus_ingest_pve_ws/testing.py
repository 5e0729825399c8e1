"""Test helpers for ingest-pve-ws (also used by the benchmark): stored events, waits, settings."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

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
    """Poll an async condition until it holds (short interval, hard deadline)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


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


class SimulatorRpcResponder:
    """Test stand-in for the gateway: answers ``proxbus.rpc.proxmox_api`` (GET only) from a
    pvesim simulator over its HTTPS API, on a real NATS subscription (no mocks).

    Used while the gateway's NATS RPC is not available to this member's tests.
    """

    def __init__(self, nc: Any, session: Any) -> None:
        self._nc = nc
        self._session = session
        self._sub: Any = None
        self.calls = 0

    async def start(self) -> None:
        self._sub = await self._nc.subscribe("proxbus.rpc.proxmox_api", cb=self._handle)
        await self._nc.flush()

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def _handle(self, msg: Any) -> None:
        import json

        self.calls += 1
        try:
            args = json.loads(msg.data or b"{}")
            if args.get("method", "GET") != "GET":
                raise ValueError("only GET is served")
            path = str(args["path"])
            params = {k: str(v) for k, v in (args.get("params") or {}).items()}
            async with self._session.get(f"/api2/json{path}", params=params) as resp:
                if resp.status != 200:
                    await self._error(msg, resp.status, f"{resp.status} {resp.reason}")
                    return
                body = await resp.json()
            reply = {"method": "GET", "path": path, "data": body.get("data")}
            await msg.respond(json.dumps(reply).encode())
        except Exception as exc:  # answer like the gateway: an error reply, never silence
            await self._error(msg, 500, f"{type(exc).__name__}: {exc}")

    async def _error(self, msg: Any, code: int, text: str) -> None:
        import json

        headers = {"Nats-Service-Error": text, "Nats-Service-Error-Code": str(code)}
        await self._nc.publish(msg.reply, json.dumps({"error": text}).encode(), headers=headers)
