"""MCP sessions: capped per token and globally, idle ones expire (issue 17)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from proxbus_devtools.testing import wait_until
from proxbus_mcp_gateway.gateway import Gateway
from proxbus_mcp_gateway.testing import (
    ADMIN_SECRET,
    INITIALIZE,
    OPS_SECRET,
    READ_SECRET,
    TOKENS,
    HttpGateway,
    make_settings,
    serve,
    sim_env,
)
from proxbus_pvesim.simulator import Simulator

INIT = INITIALIZE
ACCEPT = "application/json, text/event-stream"


@pytest.fixture
async def capped(sim: Simulator, request: pytest.FixtureRequest) -> AsyncIterator[HttpGateway]:
    overrides: dict[str, Any] = getattr(request, "param", {})
    gw = Gateway.from_settings(make_settings(gateway_tokens=TOKENS, **overrides), sim_env(sim))
    gw.start()
    try:
        async with serve(gw) as served:
            yield served
    finally:
        await gw.close()


async def open_session(client: httpx.AsyncClient, secret: str) -> httpx.Response:
    return await client.post(
        "/mcp", json=INIT, headers={"Authorization": f"Bearer {secret}", "Accept": ACCEPT}
    )


async def ping(client: httpx.AsyncClient, secret: str, session: str) -> httpx.Response:
    return await client.post(
        "/mcp",
        json={"jsonrpc": "2.0", "id": 2, "method": "ping"},
        headers={
            "Authorization": f"Bearer {secret}",
            "Accept": ACCEPT,
            "Mcp-Session-Id": session,
            "Mcp-Protocol-Version": "2025-06-18",
        },
    )


@pytest.mark.parametrize("capped", [{"max_sessions_per_caller": 2}], indirect=True)
async def test_sessions_are_capped_per_token(capped: HttpGateway) -> None:
    async with httpx.AsyncClient(base_url=capped.url, timeout=10) as client:
        first = await open_session(client, READ_SECRET)
        second = await open_session(client, READ_SECRET)
        assert first.status_code == second.status_code == 200
        third = await open_session(client, READ_SECRET)
        assert third.status_code == 503
        assert "Too many open sessions" in third.text
        # Another token still gets a session.
        assert (await open_session(client, OPS_SECRET)).status_code == 200
        # Ending one of the reader's sessions frees a slot.
        sid = first.headers["mcp-session-id"]
        ended = await client.delete(
            "/mcp",
            headers={
                "Authorization": f"Bearer {READ_SECRET}",
                "Mcp-Session-Id": sid,
                "Mcp-Protocol-Version": "2025-06-18",
            },
        )
        assert ended.status_code == 200
        assert (await open_session(client, READ_SECRET)).status_code == 200
        metrics = (await client.get("/metrics")).text
        assert 'proxbus_gateway_sessions{transport="streamable_http"} 3.0' in metrics
        assert "proxbus_gateway_sessions_refused_total 1.0" in metrics


@pytest.mark.parametrize("capped", [{"max_sessions": 2}], indirect=True)
async def test_sessions_are_capped_globally(capped: HttpGateway) -> None:
    async with httpx.AsyncClient(base_url=capped.url, timeout=10) as client:
        assert (await open_session(client, READ_SECRET)).status_code == 200
        assert (await open_session(client, OPS_SECRET)).status_code == 200
        assert (await open_session(client, ADMIN_SECRET)).status_code == 503


@pytest.mark.parametrize("capped", [{"session_idle_timeout": 0.5}], indirect=True)
async def test_idle_session_expires_and_its_id_is_then_unknown(capped: HttpGateway) -> None:
    manager = capped.gateway.sessions
    async with httpx.AsyncClient(base_url=capped.url, timeout=10) as client:
        opened = await open_session(client, READ_SECRET)
        sid = opened.headers["mcp-session-id"]
        assert (await ping(client, READ_SECRET, sid)).status_code == 200
        await wait_until(lambda: manager.open_sessions == 0, timeout=10)
        assert (await ping(client, READ_SECRET, sid)).status_code == 404


@pytest.mark.parametrize("capped", [{"max_sessions_per_caller": 1}], indirect=True)
async def test_legacy_sse_streams_count_against_the_caps(capped: HttpGateway) -> None:
    auth = {"Authorization": f"Bearer {READ_SECRET}"}
    async with (
        httpx.AsyncClient(base_url=capped.url, timeout=10) as client,
        client.stream("GET", "/sse", headers=auth) as stream,
    ):
        assert stream.status_code == 200
        await wait_until(lambda: capped.gateway.sse_sessions.get("reader") == 1, timeout=10)
        second = await client.get("/sse", headers=auth)
        assert second.status_code == 503
        # The streamable HTTP side counts the same sessions.
        assert (await open_session(client, READ_SECRET)).status_code == 503
        assert (await open_session(client, OPS_SECRET)).status_code == 200
    await wait_until(lambda: not capped.gateway.sse_sessions, timeout=10)


@pytest.mark.parametrize("capped", [{"max_sessions_per_caller": 1}], indirect=True)
async def test_refused_sessions_are_logged_rate_limited(
    capped: HttpGateway, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that never ends its sessions (the official TypeScript SDK's, e.g. the MCP
    conformance suite) meets the cap on every new one: one log line, then a count, not two
    WARNINGs per request (the gateway's and the SDK's) for as long as it keeps trying.
    """
    caplog.set_level(logging.WARNING)
    async with httpx.AsyncClient(base_url=capped.url, timeout=10) as client:
        assert (await open_session(client, READ_SECRET)).status_code == 200
        for _ in range(25):
            assert (await open_session(client, READ_SECRET)).status_code == 503
        metrics = (await client.get("/metrics")).text
    assert "proxbus_gateway_sessions_refused_total 25.0" in metrics
    refusals = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(refusals) == 1, refusals
    assert "refused MCP sessions: MAX_SESSIONS_PER_CALLER from reader" in refusals[0]
