"""Test helpers: interactions signed as Discord signs them, a recording stand-in of Discord's
webhook API, and readers of what the service stored. Used by this package's tests.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from proxbus_events import (
    AUDIT_STREAM,
    BUTTON_LIFETIME,
    EVENTS_STREAM,
    Event,
    ack_button_id,
    silence_button_id,
)

from proxbus_ingest_discord.settings import Settings

APP_ID = "900000000000000001"
OPERATOR = "111111111111111111"
OPERATOR_ROLE = "222222222222222222"
STRANGER = "333333333333333333"
GUILD = "400000000000000001"
CHANNEL = "500000000000000001"
# DISCORD_BUTTON_SECRET of the tests' service (and of the dispatcher in tests/test_e2e_discord).
BUTTON_SECRET = "test-button-secret-0123456789abcdef0123456789"  # noqa: S105 (tests only)
_ids = count(1)


def snowflake() -> str:
    """A fresh interaction id (Discord ids are decimal snowflakes)."""
    return str(700000000000000000 + next(_ids) * 1000 + int(time.time() * 1000) % 1000)


def command(sub: str, options: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    """An APPLICATION_COMMAND interaction for ``/proxbus <sub> ...``."""
    opts = [
        {"name": k, "type": 4 if k == "vmid" else 3, "value": v} for k, v in (options or {}).items()
    ]
    data = {
        "id": "1",
        "name": "proxbus",
        "type": 1,
        "options": [{"name": sub, "type": 1, "options": opts}],
    }
    return interaction(2, data, **kw)


def click(custom_id: str, **kw: Any) -> dict[str, Any]:
    """A MESSAGE_COMPONENT interaction: a button press."""
    body = interaction(3, {"custom_id": custom_id, "component_type": 2}, **kw)
    body["message"] = {"id": "800000000000000001", "content": "…"}
    return body


def silence_button(
    fingerprint: str,
    seconds: int = 3600,
    *,
    expires: int | None = None,
    secret: str = BUTTON_SECRET,
) -> str:
    """The custom_id of a "Silence" button as the dispatcher signs it."""
    until = int(time.time()) + BUTTON_LIFETIME if expires is None else expires
    return silence_button_id(secret.encode(), fingerprint, seconds, until)


def ack_button(fingerprint: str, *, expires: int | None = None, secret: str = BUTTON_SECRET) -> str:
    """The custom_id of an "Acknowledge" button as the dispatcher signs it."""
    until = int(time.time()) + BUTTON_LIFETIME if expires is None else expires
    return ack_button_id(secret.encode(), fingerprint, until)


def interaction(
    kind: int,
    data: dict[str, Any] | None = None,
    *,
    user: str = OPERATOR,
    roles: list[str] | None = None,
    interaction_id: str | None = None,
    guild: str | None = GUILD,
    channel: str = CHANNEL,
    parent: str | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """An interaction as Discord sends it: in a server (``member``), or with ``guild=None`` in
    a DM (``user`` only, no roles); ``parent``: the channel is a thread of that channel."""
    ident = interaction_id or snowflake()
    who = {"id": user, "username": f"user{user[:3]}", "global_name": name}
    body: dict[str, Any] = {
        "id": ident,
        "application_id": APP_ID,
        "type": kind,
        "token": f"tok-{ident}",
        "version": 1,
        "channel_id": channel,
        "channel": {"id": channel, "type": 11 if parent else (0 if guild else 1)},
        "data": data or {},
    }
    if parent:
        body["channel"]["parent_id"] = parent
    if guild is None:
        body["user"] = who
    else:
        body["guild_id"] = guild
        body["member"] = {"user": who, "roles": roles or []}
    return body


@dataclass
class Signed:
    """Signs and posts requests to the endpoint like Discord does."""

    url: str
    key: Ed25519PrivateKey
    http: aiohttp.ClientSession

    def headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signature = self.key.sign(ts.encode() + body).hex()
        return {
            "X-Signature-Ed25519": signature,
            "X-Signature-Timestamp": ts,
            "Content-Type": "application/json",
        }

    async def post(
        self, payload: dict[str, Any] | bytes, *, headers: dict[str, str] | None = None, **kw: Any
    ) -> tuple[int, Any]:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        hdrs = self.headers(body, **kw) if headers is None else headers
        async with self.http.post(self.url, data=body, headers=hdrs) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text


@dataclass
class DiscordStandIn:
    """A local stand-in of Discord's webhook API that records what it receives.

    ``statuses`` are answered first, in order (429 with ``retry_after``, 0.05 s unless set),
    then 200; ``times`` holds the arrival (monotonic) of each call.
    """

    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    statuses: list[int] = field(default_factory=list)
    retry_after: float = 0.05
    url: str = ""
    # Body of a refusal (status >= 300, not 429) instead of Discord's JSON, e.g. broken bytes.
    refusal_body: bytes | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append((request.method, request.path, await request.json()))
        self.times.append(time.monotonic())
        self.arrived.set()
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 429:
            body = {"message": "rate limited", "retry_after": self.retry_after, "global": False}
            return web.json_response(body, status=429)
        if status >= 300 and self.refusal_body is not None:
            return web.Response(
                body=self.refusal_body, status=status, content_type="text/plain", charset="utf-8"
            )
        if status >= 300:
            return web.json_response({"message": "refused", "code": 10015}, status=status)
        return web.json_response({"id": "600000000000000001"})

    async def wait(self, n: int = 1, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.calls) < n:
                self.arrived.clear()
                await self.arrived.wait()


def service_settings(nats_url: str, key: Ed25519PrivateKey, api_url: str, **kw: Any) -> Settings:
    public = key.public_key().public_bytes_raw().hex()
    base: dict[str, Any] = {
        "nats_url": nats_url,
        "proxbus_site": "lab",
        "discord_host": "127.0.0.1",
        "discord_port": 0,
        "discord_public_key": public,
        "discord_operators": f"user:{OPERATOR},role:{OPERATOR_ROLE}",
        "discord_guilds": GUILD,
        "discord_api_url": api_url,
        "discord_rpc_timeout": 10.0,
        "discord_button_secret": BUTTON_SECRET,
    }
    base.update(kw)
    return Settings(**base)


async def metrics_text(signed: Signed) -> str:
    """The service's Prometheus text (same listener as the endpoint)."""
    async with signed.http.get(signed.url.replace("/discord/interactions", "/metrics")) as r:
        return await r.text()


async def stream_messages(js: Any, stream: str) -> list[dict[str, Any]]:
    """Every message of ``stream`` (JSON bodies, with their subject)."""
    info = await js.stream_info(stream)
    out: list[dict[str, Any]] = []
    if info.state.messages == 0:
        return out
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(stream, seq)
        out.append({"subject": msg.subject, **json.loads(msg.data)})
    return out


async def discord_audit(js: Any, at_least: int) -> list[dict[str, Any]]:
    """The audit records this service wrote (the gateway's own left out), once ``at_least``."""
    async with asyncio.timeout(5.0):
        while True:
            records = [
                r for r in await stream_messages(js, AUDIT_STREAM) if r["transport"] == "discord"
            ]
            if len(records) >= at_least:
                return records
            await asyncio.sleep(0.02)


async def discord_events(js: Any, at_least: int) -> list[Event]:
    """The events this service published (``source=discord``), once there are ``at_least``."""
    async with asyncio.timeout(5.0):
        while True:
            events = [
                Event.model_validate({k: v for k, v in m.items() if k != "subject"})
                for m in await stream_messages(js, EVENTS_STREAM)
            ]
            mine = [e for e in events if e.source.value == "discord"]
            if len(mine) >= at_least:
                return mine
            await asyncio.sleep(0.02)


def counter(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample in a /metrics text (0 if absent)."""
    want = {f'{k}="{v}"' for k, v in labels.items()}
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        metric, _, label_text = sample.partition("{")
        if metric == name and set(label_text.rstrip("}").split(",")) - {""} == want:
            return float(value)
    return 0.0
