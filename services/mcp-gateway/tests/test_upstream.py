"""The upstream HTTP session on the wire: a local HTTPS aiohttp server records what it receives.

The simulator folds repeated form fields into one value, so the exact bytes a Proxmox API
receives (token header, repeated fields, query string) are checked against this stand-in; the
simulator tests cover the rest (CA bundle, fingerprint, failover, errors).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from proxbus_mcp_gateway.config import Endpoint, normalize_fingerprint
from proxbus_mcp_gateway.errors import NotFound, UpstreamError
from proxbus_mcp_gateway.upstream import AnswerTooLarge, ApiError, UpstreamSession, form_pairs
from proxbus_mcp_gateway.upstream_errors import _Transient, map_exception
from proxbus_pvesim.tls import TlsMaterial, generate_tls


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class StandIn:
    port: int
    tls: TlsMaterial
    seen: list[Seen] = field(default_factory=list)
    answers: dict[str, web.StreamResponse] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    version: int = 0


@contextlib.asynccontextmanager
async def stand_in(tmp_path: Path) -> AsyncIterator[StandIn]:
    tls = generate_tls(tmp_path)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    state = StandIn(sock.getsockname()[1], tls)

    async def handle(request: web.Request) -> web.StreamResponse:
        state.seen.append(
            Seen(
                request.method,
                request.raw_path.split("?", 1)[0],
                request.query_string,
                dict(request.headers),
                await request.read(),
            )
        )
        if request.path.endswith("/slow"):
            await asyncio.wait_for(state.release.wait(), 10)
        if request.path.endswith("/large"):
            return web.Response(body=b'{"data": "' + b"x" * 5000 + b'"}')
        if request.path.endswith("/missing"):
            return web.json_response(
                {"data": None, "errors": {"upid": "no such task"}},
                status=500,
                reason="no such task",
            )
        if request.path.endswith("/changing"):
            return web.json_response({"data": {"version": state.version, "rows": [1, 2]}})
        if request.path.endswith("/garbage"):
            return web.Response(text="<html>proxy page</html>")
        return web.json_response({"data": {"ok": 1}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.SockSite(runner, sock, ssl_context=tls.server_context())
    await site.start()
    try:
        yield state
    finally:
        state.release.set()
        await runner.cleanup()


def endpoint(port: int, tls: TlsMaterial, product: str = "pve", **kw: Any) -> Endpoint:
    return Endpoint(
        name="edge",
        host="127.0.0.1",
        port=port,
        user="bench@pam" if product == "pve" else "bench@pbs",
        token_name="gw",
        token_value="s3cret",
        product=product,  # type: ignore[arg-type]
        verify=kw.pop("verify", str(tls.ca_path)),
        **kw,
    )


def session(ep: Endpoint, **kw: Any) -> UpstreamSession:
    return UpstreamSession(
        ep,
        connect_timeout=kw.pop("connect_timeout", 2.0),
        read_timeout=kw.pop("read_timeout", 5.0),
        max_connections=4,
        **kw,
    )


def test_form_pairs_repeat_lists_drop_none_and_send_booleans_as_digits() -> None:
    assert form_pairs({"command": ["ls", "-l"], "skip": None, "force": True, "n": 3}) == [
        ("command", "ls"),
        ("command", "-l"),
        ("force", "1"),
        ("n", "3"),
    ]
    assert form_pairs(None) == []


async def test_pve_post_sends_the_token_and_repeated_form_fields(tmp_path: Path) -> None:
    async with stand_in(tmp_path) as srv:
        http = session(endpoint(srv.port, srv.tls))
        try:
            answer = await http.request(
                "POST",
                "/nodes/pve1/qemu/100/agent/exec",
                {"command": ["ls", "-l", "/tmp dir"], "input-data": None},
            )
            assert answer == {"ok": 1}
            vol = "local%3Abackup%2Fvzdump-qemu-100.vma.zst"  # a tool's own escaping is kept
            await http.request("DELETE", f"/nodes/pve1/storage/local/content/{vol}", {"delay": 5})
        finally:
            await http.close()
    post, delete = srv.seen
    assert (post.method, post.path, post.query) == (
        "POST",
        "/api2/json/nodes/pve1/qemu/100/agent/exec",
        "",
    )
    assert post.headers["Authorization"] == "PVEAPIToken=bench@pam!gw=s3cret"
    assert post.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert post.body == b"command=ls&command=-l&command=%2Ftmp+dir"
    assert delete.path == f"/api2/json/nodes/pve1/storage/local/content/{vol}"
    assert (delete.query, delete.body) == ("delay=5", b"")


async def test_pbs_get_sends_its_token_form_and_parameters_in_the_query(tmp_path: Path) -> None:
    async with stand_in(tmp_path) as srv:
        fp = normalize_fingerprint(srv.tls.fingerprint)
        http = session(endpoint(srv.port, srv.tls, "pbs", verify=False, fingerprint=fp))
        try:
            await http.request("GET", "/admin/datastore/store1/snapshots", {"ns": ["a", "b"]})
            await http.request("GET", "/version", {})  # the connection is reused
        finally:
            await http.close()
    first, second = srv.seen
    assert first.headers["Authorization"] == "PBSAPIToken=bench@pbs!gw:s3cret"
    assert (first.query, first.body) == ("ns=a&ns=b", b"")
    assert second.path == "/api2/json/version"


async def test_error_answers_keep_the_reason_and_the_errors_object(tmp_path: Path) -> None:
    async with stand_in(tmp_path) as srv:
        ep = endpoint(srv.port, srv.tls)
        http = session(ep)
        try:
            with pytest.raises(ApiError) as info:
                await http.request("GET", "/nodes/pve1/tasks/x/missing", None)
            assert (info.value.status_code, info.value.content) == (500, "no such task")
            assert info.value.errors == {"upid": "no such task"}
            assert isinstance(map_exception(info.value, ep, sent=True), NotFound)
            with pytest.raises(ValueError, match=r"expected value") as bad:
                await http.request("GET", "/garbage", None)
            mapped = map_exception(bad.value, ep, sent=True)
            assert isinstance(mapped, UpstreamError)
            assert "invalid answer" in mapped.message
        finally:
            await http.close()


async def test_an_answer_over_the_limit_is_refused(tmp_path: Path) -> None:
    async with stand_in(tmp_path) as srv:
        ep = endpoint(srv.port, srv.tls)
        http = session(ep, max_answer_bytes=1024)
        try:
            with pytest.raises(AnswerTooLarge) as info:
                await http.request("GET", "/large", None)
            assert "limit 1024" in str(info.value)
            assert isinstance(map_exception(info.value, ep, sent=True), UpstreamError)
        finally:
            await http.close()


async def test_a_silent_server_is_a_read_timeout_worth_retrying(tmp_path: Path) -> None:
    async with stand_in(tmp_path) as srv:
        ep = endpoint(srv.port, srv.tls)
        http = session(ep, read_timeout=0.3)
        try:
            with pytest.raises(TimeoutError) as info:
                await http.request("GET", "/slow", None)
        finally:
            await http.close()
    mapped = map_exception(info.value, ep, sent=True)
    assert isinstance(mapped, _Transient)
    assert "no answer within the timeout" in str(mapped)


async def test_a_wrong_pin_or_an_untrusted_certificate_is_a_tls_error(tmp_path: Path) -> None:
    async with stand_in(tmp_path) as srv:
        pinned = endpoint(srv.port, srv.tls, verify=False, fingerprint="ab" * 32)
        untrusted = endpoint(srv.port, srv.tls, verify=True)
        for ep, hint in ((pinned, "fingerprint mismatch"), (untrusted, "not trusted")):
            http = session(ep)
            try:
                with pytest.raises(Exception) as info:  # noqa: PT011 - mapped below
                    await http.request("GET", "/version", None)
            finally:
                await http.close()
            mapped = map_exception(info.value, ep, sent=True)
            assert isinstance(mapped, UpstreamError)
            assert hint in mapped.message
    assert srv.seen == []  # nothing was sent to a server that was not trusted


async def test_a_closed_port_is_refused_without_being_sent(tmp_path: Path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    ep = endpoint(port, generate_tls(tmp_path))
    http = session(ep)
    try:
        with pytest.raises(Exception) as info:  # noqa: PT011 - mapped below
            await http.request("POST", "/nodes/pve1/qemu/100/status/start", None)
    finally:
        await http.close()
    mapped = map_exception(info.value, ep, sent=True)
    assert isinstance(mapped, _Transient)
    assert "connection refused" in str(mapped)
    assert mapped.sent is False


async def test_an_unchanged_get_answer_is_the_same_object_and_a_changed_one_is_new(
    tmp_path: Path,
) -> None:
    """Every call reaches the server; identical bytes reuse the decoded data (tools' memo)."""
    async with stand_in(tmp_path) as srv:
        http = session(endpoint(srv.port, srv.tls))
        try:
            first = await http.request("GET", "/cluster/changing", None)
            again = await http.request("GET", "/cluster/changing", None)
            assert again is first
            other_query = await http.request("GET", "/cluster/changing", {"type": "vm"})
            assert other_query == first
            assert other_query is not first  # another URL, its own entry
            srv.version = 1
            changed = await http.request("GET", "/cluster/changing", None)
            assert changed == {"version": 1, "rows": [1, 2]}
            assert changed is not first
            posted = await http.request("POST", "/cluster/changing", None)
            assert posted == changed
            assert posted is not changed  # writes are never reused
        finally:
            await http.close()
    assert len(srv.seen) == 5


async def test_remembered_answers_stay_within_their_count_and_byte_budget(tmp_path: Path) -> None:
    async with stand_in(tmp_path) as srv:
        # Each /changing answer is about 40 bytes: two fit in 100, a third evicts the oldest.
        http = session(endpoint(srv.port, srv.tls), reuse_budget_bytes=100)
        small = session(endpoint(srv.port, srv.tls), reuse_budget_bytes=10)
        try:
            a = await http.request("GET", "/a/changing", None)
            b = await http.request("GET", "/b/changing", None)
            assert await http.request("GET", "/a/changing", None) is a
            await http.request("GET", "/c/changing", None)  # over budget: /a goes
            assert await http.request("GET", "/b/changing", None) is b
            assert await http.request("GET", "/a/changing", None) is not a
            first = await small.request("GET", "/a/changing", None)
            assert await small.request("GET", "/a/changing", None) is not first  # never kept
        finally:
            await http.close()
            await small.close()
