"""Streamable HTTP answers: plain JSON unless the call carries a progress token (transport.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from proxbus_mcp_gateway.gateway import Gateway
from proxbus_mcp_gateway.testing import (
    OPS_SECRET,
    TOKENS,
    HttpGateway,
    make_settings,
    serve,
    sim_env,
)
from proxbus_mcp_gateway.transport import wants_stream
from proxbus_pvesim.simulator import Simulator

ACCEPT_BOTH = "application/json, text/event-stream"
PROTOCOL = "2025-06-18"


class RawSession:
    """A hand-driven streamable HTTP session, to see the wire answers themselves."""

    def __init__(self, http: httpx.AsyncClient, url: str, protocol: str = PROTOCOL) -> None:
        self.http = http
        self.url = url
        self.protocol = protocol
        self.headers = {
            "Authorization": f"Bearer {OPS_SECRET}",
            "Accept": ACCEPT_BOTH,
            "Content-Type": "application/json",
        }

    async def open(self) -> None:
        init = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": self.protocol,
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "1"},
            },
        }
        resp = await self.http.post(self.url, json=init, headers=self.headers)
        assert resp.status_code == 200, resp.text
        self.headers["Mcp-Session-Id"] = resp.headers["mcp-session-id"]
        answer = sse_messages(resp.text) if "event-stream" in resp.headers["content-type"] else []
        agreed = answer[0] if answer else resp.json()
        assert agreed["result"]["protocolVersion"] == self.protocol
        self.headers["Mcp-Protocol-Version"] = self.protocol
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await self.post(note)).status_code == 202

    async def post(self, body: Any, **headers: str) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await self.http.post(self.url, content=content, headers={**self.headers, **headers})

    async def call(self, rid: int, name: str, args: dict[str, Any], **meta: Any) -> httpx.Response:
        params: dict[str, Any] = {"name": name, "arguments": args}
        if meta:
            params["_meta"] = meta
        return await self.post(
            {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": params}
        )


def sse_messages(text: str) -> list[dict[str, Any]]:
    return [
        json.loads(line[5:])
        for line in text.splitlines()
        if line.startswith("data:") and line[5:].strip()
    ]


@pytest.fixture
async def raw(http_gateway: HttpGateway) -> AsyncIterator[RawSession]:
    async with httpx.AsyncClient(timeout=20) as http:
        session = RawSession(http, f"{http_gateway.url}/mcp")
        await session.open()
        yield session


async def test_a_client_of_the_2025_03_26_protocol_is_shown_titles(
    http_gateway: HttpGateway,
) -> None:
    """``Tool.title`` came with MCP 2025-06-18; a client of 2025-03-26 shows
    ``annotations.title`` or else the name. Such a session gets the title there instead of at
    the top (the listing is no bigger); a newer one gets it once, at the top."""
    listings, sizes = {}, {}
    async with httpx.AsyncClient(timeout=20) as http:
        for protocol in ("2025-03-26", PROTOCOL):
            session = RawSession(http, f"{http_gateway.url}/mcp", protocol)
            await session.open()
            listed = await session.post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            listings[protocol] = {t["name"]: t for t in listed.json()["result"]["tools"]}
            sizes[protocol] = len(listed.content)
    old, new = listings["2025-03-26"], listings[PROTOCOL]
    assert old.keys() == new.keys()
    assert "get_vms" in old
    for name, tool in new.items():
        assert tool["title"], name
        assert "title" not in tool["annotations"], name
        assert old[name]["annotations"]["title"] == tool["title"], name
        assert "title" not in old[name], name
        rest = {k: v for k, v in old[name]["annotations"].items() if k != "title"}
        assert rest == tool["annotations"], name
    assert sizes["2025-03-26"] <= sizes[PROTOCOL] + 64, sizes


def test_only_calls_with_a_progress_token_or_initialize_want_a_stream() -> None:
    assert not wants_stream({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {}})
    assert not wants_stream({"id": 1, "method": "tools/list"})
    assert not wants_stream({"id": 1, "method": "x", "params": {"_meta": {"other": 1}}})
    assert wants_stream({"id": 1, "method": "x", "params": {"_meta": {"progressToken": 7}}})
    assert wants_stream({"id": 1, "method": "initialize", "params": {}})
    assert wants_stream({"method": "notifications/initialized"})  # no id: not a request
    assert wants_stream([{"id": 1, "method": "tools/list"}])  # batch: the SDK decides
    assert wants_stream("nonsense")


async def test_a_plain_call_is_answered_with_one_json_body(raw: RawSession) -> None:
    resp = await raw.call(1, "get_vms", {})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers["mcp-session-id"] == raw.headers["Mcp-Session-Id"]
    body = resp.json()
    assert body["id"] == 1
    assert body["result"]["structuredContent"]["count"] > 0
    listed = await raw.post({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    assert listed.headers["content-type"].startswith("application/json")
    assert any(t["name"] == "get_vms" for t in listed.json()["result"]["tools"])


async def test_a_call_with_a_progress_token_streams_progress_then_the_result(
    sim: Simulator, raw: RawSession
) -> None:
    stopped = next(g for g in sim.lab.guests.values() if g.kind == "qemu" and not g.running)
    args = {"vmid": stopped.vmid, "command": "start", "wait": True}
    resp = await raw.call(3, "execute_vm_command", args, progressToken="p3")
    assert resp.headers["content-type"].startswith("text/event-stream")
    messages = sse_messages(resp.text)
    progress = [m for m in messages if m.get("method") == "notifications/progress"]
    assert progress
    assert all(m["params"]["progressToken"] == "p3" for m in progress)
    assert messages[-1]["id"] == 3
    assert messages[-1]["result"]["structuredContent"]["status"] == "ok"


async def test_a_plain_call_that_waits_on_a_task_gets_only_its_result(
    sim: Simulator, raw: RawSession
) -> None:
    """Without a token there is no progress to send: one JSON body, the result."""
    stopped = next(g for g in sim.lab.guests.values() if g.kind == "qemu" and not g.running)
    args = {"vmid": stopped.vmid, "command": "start", "wait": True}
    resp = await raw.call(4, "execute_vm_command", args)
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert body["id"] == 4
    assert body["result"]["structuredContent"]["status"] == "ok"
    assert sim.lab.guests[stopped.vmid].running


async def test_bad_requests_still_get_the_sdk_answers(raw: RawSession) -> None:
    broken = await raw.post(b'{"jsonrpc": "2.0", "id": 5, "method": ')
    assert broken.status_code == 400
    assert broken.json()["error"]["code"] == -32700  # parse error
    invalid = await raw.post({"jsonrpc": "2.0", "id": 6, "method": 7})
    assert invalid.status_code == 400
    json_only = await raw.post(
        {"jsonrpc": "2.0", "id": 7, "method": "tools/list"}, Accept="application/json"
    )
    assert json_only.status_code == 406
    wrong_session = await raw.post(
        {"jsonrpc": "2.0", "id": 8, "method": "tools/list"}, **{"Mcp-Session-Id": "nope"}
    )
    assert wrong_session.status_code == 404
    # The session still works after all of that.
    again = await raw.call(9, "get_vms", {})
    assert again.json()["result"]["structuredContent"]["count"] > 0


async def test_a_cancelled_plain_call_gets_an_error_answer_not_a_hang(
    sim: Simulator, raw: RawSession
) -> None:
    sim.add_latency("/nodes", 5.0)
    call = asyncio.create_task(raw.call(10, "get_node_status", {"node": "pve1"}))
    await asyncio.sleep(0.5)
    cancel = {
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": 10, "reason": "user gave up"},
    }
    assert (await raw.post(cancel)).status_code == 202
    resp = await asyncio.wait_for(call, 3)
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json()["id"] == 10
    assert resp.json()["error"]["message"] == "Request cancelled"


async def test_json_response_setting_answers_json_even_with_a_progress_token(
    sim: Simulator,
) -> None:
    gw = Gateway.from_settings(
        make_settings(gateway_tokens=TOKENS, mcp_json_response=True), sim_env(sim)
    )
    gw.start()
    try:
        async with serve(gw) as served, httpx.AsyncClient(timeout=20) as http:
            session = RawSession(http, f"{served.url}/mcp")
            await session.open()
            resp = await session.call(1, "get_vms", {}, progressToken="p1")
            assert resp.headers["content-type"].startswith("application/json")
            assert resp.json()["result"]["structuredContent"]["count"] > 0
    finally:
        await gw.close()


async def test_a_plain_call_in_flight_when_the_session_is_deleted_gets_an_error_not_a_hang(
    sim: Simulator, raw: RawSession
) -> None:
    sim.add_latency("/nodes", 5.0)
    call = asyncio.create_task(raw.call(11, "get_node_status", {"node": "pve2"}))
    await asyncio.sleep(0.5)
    deleted = await raw.http.delete(raw.url, headers=raw.headers)
    assert deleted.status_code == 200
    resp = await asyncio.wait_for(call, 3)
    assert resp.status_code == 500
    assert "terminated" in resp.json()["error"]["message"]
