"""Audit of issue 17, item 6: session caps as the official client meets them, and what an
ended or expired session leaves behind (nothing: no transport, no task, no bookkeeping)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest
from mcp import MCPError
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from proxbus_devtools.testing import wait_until
from proxbus_mcp_gateway.gateway import Gateway
from proxbus_mcp_gateway.testing import (
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


@pytest.fixture
async def served(sim: Simulator) -> AsyncIterator[HttpGateway]:
    settings = make_settings(
        gateway_tokens=TOKENS, max_sessions_per_caller=3, max_sessions=5, session_idle_timeout=1.0
    )
    gw = Gateway.from_settings(settings, sim_env(sim))
    gw.start()
    try:
        async with serve(gw) as s:
            yield s
    finally:
        await gw.close()


def tasks() -> set[asyncio.Task[object]]:
    """The loop's tasks, without sse_starlette's one shutdown watcher per event loop (started
    by the first SSE answer and kept for the loop's life, not per session)."""
    return {
        t
        for t in asyncio.all_tasks()
        if getattr(t.get_coro(), "__qualname__", "") != "_shutdown_watcher"
    }


async def open_official(stack: AsyncExitStack, url: str, secret: str) -> ClientSession:
    client = create_mcp_http_client(headers={"Authorization": f"Bearer {secret}"})
    await stack.enter_async_context(client)
    read, write = await stack.enter_async_context(
        streamable_http_client(f"{url}/mcp", http_client=client)
    )
    session = await stack.enter_async_context(ClientSession(read, write))
    await asyncio.wait_for(session.initialize(), 10)
    return session


async def test_the_official_client_over_the_cap_gets_too_many_open_sessions(
    served: HttpGateway,
) -> None:
    async with AsyncExitStack() as stack:
        for _ in range(3):
            session = await open_official(stack, served.url, READ_SECRET)
            assert not (await session.call_tool("list_clusters", {})).is_error
        with pytest.raises(MCPError) as refused:
            await open_official(stack, served.url, READ_SECRET)
        assert refused.value.error.message == "Too many open sessions"
        # Another token: two more fit under MAX_SESSIONS=5, the sixth does not.
        await open_official(stack, served.url, OPS_SECRET)
        await open_official(stack, served.url, OPS_SECRET)
        with pytest.raises(MCPError):
            await open_official(stack, served.url, OPS_SECRET)
    # The clients ended their sessions (DELETE): the slots are free again.
    manager = served.gateway.sessions
    await wait_until(lambda: manager.open_sessions == 0, timeout=10)
    async with AsyncExitStack() as stack:
        for _ in range(3):
            await open_official(stack, served.url, READ_SECRET)


async def test_expired_sessions_leave_nothing_behind(served: HttpGateway) -> None:
    """Sessions opened and abandoned (never DELETEd) expire after SESSION_IDLE_TIMEOUT; their
    transports, tasks and per-caller entries go with them, and the caller may open new ones."""
    headers = {
        "Authorization": f"Bearer {READ_SECRET}",
        "Accept": "application/json, text/event-stream",
    }
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        assert (await client.get("/health")).status_code == 200
        baseline = len(tasks())
        manager = served.gateway.sessions
        for _round in range(3):
            for _ in range(3):
                assert (await client.post("/mcp", json=INIT, headers=headers)).status_code == 200
            assert (await client.post("/mcp", json=INIT, headers=headers)).status_code == 503
            assert manager.open_sessions == 3
            await wait_until(lambda: manager.open_sessions == 0, timeout=10)
        await wait_until(lambda: len(tasks()) <= baseline, timeout=10)
        assert manager._session_owners == {}
        # The caller's bookkeeping is dropped at the next admission, never more than a cap's worth.
        assert len(manager._session_callers) <= 3
        assert (await client.post("/mcp", json=INIT, headers=headers)).status_code == 200
        assert len(manager._session_callers) == 1


async def test_a_session_answers_only_the_token_that_opened_it(served: HttpGateway) -> None:
    """Knowing another caller's session id is not enough: over streamable HTTP and legacy SSE
    a request with another token is answered as if the session did not exist (the SDK's
    owner check, fed with the gateway's caller), so its answers never reach the owner's
    stream and its own requests cannot take the owner's request ids."""
    accept = "application/json, text/event-stream"
    reader = {"Authorization": f"Bearer {READ_SECRET}", "Accept": accept}
    other = {"Authorization": f"Bearer {OPS_SECRET}", "Accept": accept}
    ping = {"jsonrpc": "2.0", "id": 5, "method": "ping"}
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        opened = await client.post("/mcp", json=INIT, headers=reader)
        sid = opened.headers["mcp-session-id"]
        version = {"mcp-session-id": sid, "mcp-protocol-version": "2025-06-18"}
        assert (await client.post("/mcp", json=ping, headers=reader | version)).status_code == 200
        assert (await client.post("/mcp", json=ping, headers=other | version)).status_code == 404
        deleted = await client.delete("/mcp", headers=other | version)
        assert deleted.status_code == 404
        assert served.gateway.sessions.open_sessions == 1

        async with client.stream("GET", "/sse", headers=reader) as stream:
            lines = stream.aiter_lines()
            sse_id = ""
            async for line in lines:
                if "session_id=" in line:
                    sse_id = line.split("session_id=", 1)[1].strip()
                    break
            url = f"/messages/?session_id={sse_id}"
            mine = await client.post(url, json=ping, headers=reader)
            theirs = await client.post(url, json=ping, headers=other)
            assert (mine.status_code, theirs.status_code) == (202, 404)
