"""Audit of issue 17, item 7: bad input at the HTTP transport.

Oversized and deeply nested bodies, malformed JSON-RPC, unknown tools and wrongly typed
arguments each get a clear answer; what a client can trigger over and over costs at most one
log line per interval (``RateLimitedLog``), never a line (or a traceback) per request.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
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

AUTH = {"Authorization": f"Bearer {READ_SECRET}"}
MCP = {**AUTH, "Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
OTHER = {**MCP, "Authorization": f"Bearer {OPS_SECRET}"}
LIMIT = 4 * 1024 * 1024  # the SDK's DEFAULT_MAX_REQUEST_BODY_SIZE (mcp.server.transport_security)
INIT = INITIALIZE


@pytest.fixture
async def client(http_gateway: HttpGateway) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client of conftest's ``http_gateway`` (tokens on, default settings)."""
    async with httpx.AsyncClient(base_url=http_gateway.url, timeout=20) as c:
        yield c


async def session(client: httpx.AsyncClient) -> dict[str, str]:
    """Headers of a fresh, initialized streamable HTTP session."""
    r = await client.post("/mcp", json=INIT, headers=MCP)
    assert r.status_code == 200, r.text
    headers = {**MCP, "mcp-session-id": r.headers["mcp-session-id"]}
    headers["mcp-protocol-version"] = "2025-06-18"
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await client.post("/mcp", json=note, headers=headers)).status_code == 202
    return headers


async def sse_session_id(stream: Any) -> tuple[str, Any]:
    """The session id from the endpoint event, and the line iterator: the caller keeps it
    referenced (a collected iterator closes the stream, and with it the session)."""
    lines = stream.aiter_lines()
    async for line in lines:
        if line.startswith("data:") and "session_id=" in line:
            return str(line.split("session_id=", 1)[1].strip()), lines
    raise AssertionError("no endpoint event on /sse")


def call(name: str, arguments: Any, rid: int = 2) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": rid,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


async def test_a_body_over_the_limit_is_413_declared_or_chunked(client: httpx.AsyncClient) -> None:
    headers = await session(client)
    big = b'{"jsonrpc":"2.0","id":2,"method":"ping","params":{"x":"' + b"a" * LIMIT + b'"}}'
    declared = await client.post("/mcp", content=big, headers=headers)
    assert (declared.status_code, declared.text) == (413, "Request body too large")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    chunked = await client.post("/mcp", content=chunks(), headers=headers)
    assert chunked.status_code == 413
    # The session still answers afterwards.
    ok = await client.post(
        "/mcp", json={"jsonrpc": "2.0", "id": 3, "method": "ping"}, headers=headers
    )
    assert ok.json() == {"jsonrpc": "2.0", "id": 3, "result": {}}


async def test_a_body_over_the_limit_on_the_sse_message_path_is_413(
    client: httpx.AsyncClient,
) -> None:
    async with client.stream("GET", "/sse", headers=AUTH) as stream:
        sid, _lines_kept = await sse_session_id(stream)
        big = b'{"jsonrpc":"2.0","id":2,"method":"ping","params":{"x":"' + b"a" * LIMIT + b'"}}'
        r = await client.post(f"/messages/?session_id={sid}", content=big, headers=MCP)
        assert r.status_code == 413


@pytest.mark.parametrize(
    ("body", "status", "code", "text"),
    [
        (b"{", 400, -32700, "Parse error"),
        (b"\xff\xfe", 400, -32700, "Parse error"),
        (b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}", 400, -32700, "recursion limit exceeded"),
        (b"[]", 400, -32602, "Validation error"),
        (b'{"jsonrpc":"2.0"}', 400, -32602, "Validation error"),
        (b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":"x"}', 400, -32602, ""),
        (b'{"jsonrpc":"2.0","id":8,"method":"no/such"}', 200, -32601, "Method not found"),
        (
            b'{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"arguments":{}}}',
            200,
            -32602,
            "",
        ),
    ],
)
async def test_malformed_json_rpc_gets_a_json_rpc_error(
    client: httpx.AsyncClient, body: bytes, status: int, code: int, text: str
) -> None:
    headers = await session(client)
    r = await client.post("/mcp", content=body, headers=headers)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code
    assert text in error["message"]


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        ("no_such_tool", {}, "unknown tool 'no_such_tool'"),
        (
            "get_guest_status",
            {"vmid": "abc"},
            "invalid arguments: vmid: Input should be a valid integer",
        ),
        ("get_guest_status", {"vmid": 1}, "invalid arguments: vmid:"),
        (
            "get_guest_status",
            {"vmid": 100, "extra": 1},
            "invalid arguments: extra: unknown argument",
        ),
        ("get_vms", {"node": ["a"] * 100}, "invalid arguments: node:"),
        (
            "proxmox_api",
            {"path": "/nodes", "params": {"x": {"a": {"b": [[[[1]]]]}}}},
            "invalid arguments: params.x",
        ),
        (
            "get_vms",
            {"x": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]},
            "invalid arguments: x: unknown argument",
        ),
    ],
)
async def test_bad_tool_calls_are_is_error_results_naming_the_problem(
    client: httpx.AsyncClient, name: str, arguments: Any, message: str
) -> None:
    headers = await session(client)
    r = await client.post("/mcp", json=call(name, arguments), headers=headers)
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    assert result["isError"] is True
    assert result["content"][0]["text"].startswith(message), result["content"][0]["text"]


async def test_arguments_that_are_not_an_object_are_invalid_params(
    client: httpx.AsyncClient,
) -> None:
    headers = await session(client)
    r = await client.post("/mcp", json=call("get_vms", [1, 2]), headers=headers)
    assert r.json()["error"]["code"] == -32602


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Basic cmVhZGVyOnJlYWQ=",
        "Bearer nope",
        f"Bearer {READ_SECRET}x",
        f"Bearer {READ_SECRET[:-1]}",
        "Bearer \u00e9\u00e9",
    ],
)
async def test_a_missing_or_wrong_token_is_401_without_a_session(
    http_gateway: HttpGateway, client: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {k: v for k, v in MCP.items() if k != "Authorization"}
    if authorization is not None:
        headers["Authorization"] = authorization.encode("latin-1")  # type: ignore[assignment]
    r = await client.post("/mcp", json=INIT, headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer ")
    assert http_gateway.gateway.sessions.open_sessions == 0


# -- what a client can repeat costs no log line per request ---------------------------------

REPEATS = 40


async def _flood(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]
) -> set[int]:
    codes = set()
    for _ in range(REPEATS):
        codes.add((await client.post(url, content=body, headers=headers)).status_code)
    return codes


def _lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.INFO and r.name != "httpx"]


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("sse unparsable message", 400),
        ("sse unknown session", 404),
        ("sse invalid session id", 400),
        ("sse no session id", 400),
        ("mcp unknown session", 404),
        ("mcp session of another token", 404),
        ("sse session of another token", 404),
        ("bad Host header", 421),
        ("bad Origin header", 403),
    ],
)
async def test_repeated_bad_requests_are_logged_rate_limited(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, kind: str, status: int
) -> None:
    ping = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
    mine = await session(client)
    other_token = {**mine, **OTHER}
    async with client.stream("GET", "/sse", headers=AUTH) as stream:
        sid, _lines_kept = await sse_session_id(stream)
        url, body, headers = {
            "sse unparsable message": (f"/messages/?session_id={sid}", b"{", MCP),
            "sse unknown session": ("/messages/?session_id=" + "0" * 32, ping, MCP),
            "sse invalid session id": ("/messages/?session_id=zz", ping, MCP),
            "sse no session id": ("/messages/", ping, MCP),
            "mcp unknown session": ("/mcp", ping, {**MCP, "mcp-session-id": "0" * 32}),
            "mcp session of another token": ("/mcp", ping, other_token),
            "sse session of another token": (f"/messages/?session_id={sid}", ping, OTHER),
            "bad Host header": ("/mcp", ping, {**MCP, "Host": "evil.example"}),
            "bad Origin header": ("/mcp", ping, {**MCP, "Origin": "http://evil.example"}),
        }[kind]
        caplog.clear()
        with caplog.at_level(logging.INFO):
            assert await _flood(client, url, body, headers) == {status}
        lines = _lines(caplog)
        assert len(lines) <= 1, [f"{r.name}: {r.getMessage()}" for r in lines[:3]]
        assert not any(r.exc_info for r in lines), "a client's bad input logged a traceback"


@pytest.mark.parametrize(
    ("allowed", "host", "status"),
    [
        ("", "gateway:8080", 421),
        ("", "10.1.2.3:8080", 421),
        ("gateway:*,10.1.2.3:*", "gateway:8080", 200),
        ("gateway:*,10.1.2.3:*", "10.1.2.3:8080", 200),
        ("gateway:*", "evil.example:8080", 421),
    ],
)
async def test_the_readme_n8n_setup_on_all_interfaces(
    sim: Simulator, allowed: str, host: str, status: int
) -> None:
    """README (n8n): GATEWAY_HOST=0.0.0.0 with tokens answers only the Host names/addresses
    listed in GATEWAY_ALLOWED_HOSTS (the served socket itself stays on loopback here)."""
    settings = make_settings(
        gateway_tokens=TOKENS, gateway_host="0.0.0.0", gateway_allowed_hosts=allowed
    )
    gw = Gateway.from_settings(settings, sim_env(sim))
    gw.start()
    try:
        async with serve(gw) as s, httpx.AsyncClient(base_url=s.url, timeout=10) as c:
            r = await c.post("/mcp", json=INIT, headers={**MCP, "Host": host})
            assert r.status_code == status, r.text
    finally:
        await gw.close()


# -- slow or silent connections (slowloris) ---------------------------------------------------


async def _closed_within(reader: Any, seconds: float) -> bool:
    """True when the server closes the connection (EOF or reset) within ``seconds``."""
    import asyncio

    try:
        while await asyncio.wait_for(reader.read(4096), seconds):
            pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


async def test_a_connection_that_sends_no_whole_request_is_closed(sim: Simulator) -> None:
    """HTTP_REQUEST_TIMEOUT: a connection that sends nothing, one that trickles its headers
    and one that stops in its body are closed (uvicorn alone kept each open for good); a
    request sent in time is answered, and a kept-alive connection gets a fresh deadline."""
    import asyncio
    import json
    import time

    settings = make_settings(gateway_tokens=TOKENS, http_request_timeout=1.0)
    gw = Gateway.from_settings(settings, sim_env(sim))
    gw.start()
    try:
        async with serve(gw) as s:
            started = time.monotonic()
            silent = await asyncio.open_connection("127.0.0.1", s.port)
            partial = await asyncio.open_connection("127.0.0.1", s.port)
            partial[1].write(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            body = await asyncio.open_connection("127.0.0.1", s.port)
            body[1].write(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")
            for _, writer in (partial, body):
                await writer.drain()
            # the trickle: one more header line every 0.3 s never completes the request
            partial[1].write(b"X-A: 1\r\n")
            for reader, _ in (silent, partial, body):
                assert await _closed_within(reader, 5)
            assert time.monotonic() - started < 4
            assert gw.http_request_timeouts == 3
            # in time, twice on one kept-alive connection: answered both times
            reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
            for _ in range(2):
                await asyncio.sleep(0.6)
                writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                await writer.drain()
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                assert head.startswith(b"HTTP/1.1 200")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                json.loads(await reader.readexactly(length))
            writer.close()
            async with httpx.AsyncClient(base_url=s.url, timeout=5) as c:
                metrics = (await c.get("/metrics")).text
            assert "proxbus_gateway_http_request_timeouts_total 3.0" in metrics
    finally:
        await gw.close()
