"""Hostile input on the console's own endpoints, against an in-process dispatcher on a real
nats-server: odd tokens and cookies, oversized forms, static path tricks, live-page floods and
readers that do not read."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
from proxbus_devtools.testing import free_port
from proxbus_dispatcher.app import DispatcherService
from proxbus_dispatcher.console.auth import CSRF_COOKIE, SESSION_COOKIE
from proxbus_runtime import SilenceStore

SECRET = "s3cret-operator-token"
TOKENS = f"alice:operate:{SECRET},bob:read:reader-token-123"
BEARER = {"Authorization": f"Bearer {SECRET}"}


async def start(dispatcher: Any, **kw: Any) -> tuple[DispatcherService, str]:
    kw.setdefault("console_tokens", TOKENS)
    kw.setdefault("console_health_urls", f"nowhere=http://127.0.0.1:{free_port()}/health")
    service: DispatcherService = await dispatcher(**kw)
    return service, f"http://127.0.0.1:{service.health.port}"


def metric(text: str, name: str) -> float:
    """The value of one sample (name with its labels) in a /metrics page; 0 when absent."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


async def metrics(url: str) -> str:
    async with httpx.AsyncClient() as client:
        return (await client.get(url + "/metrics")).text


async def logged_in(client: httpx.AsyncClient) -> str:
    """Log ``client`` in as alice through the form; the page's CSRF token."""
    page = await client.get("/login")
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    r = await client.post("/login", data={"token": SECRET, "csrf": csrf, "next": "/"})
    assert r.status_code == 303, r.text
    return csrf


async def raw_request(port: int, head: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """Send ``head`` (a request line and headers, exactly as given) and read the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    status = int(data.split(b" ", 2)[1])
    return status, data


# --- tokens and cookies ------------------------------------------------------------------


async def test_non_ascii_csrf_token_or_session_cookie_is_refused_not_a_server_error(
    dispatcher: Any,
) -> None:
    service, url = await start(dispatcher)
    async with httpx.AsyncClient(base_url=url, follow_redirects=False) as client:
        await logged_in(client)
        r = await client.post("/silences", data={"matchers": "node=pve1", "csrf": "é" * 64})
        assert r.status_code == 403, r.text
        assert "CSRF" in r.text
        r = await client.post("/silences/preview", data={"matchers": "node=pve1", "csrf": "ü"})
        assert r.status_code == 403
    # A forged session cookie with a non-ASCII signature is nobody: the page still renders.
    cookie = f"{SESSION_COOKIE}=YWxpY2V8b3BlcmF0ZXw5OTk5OTk5OTk5.%C3%A9%C3%A9"
    for value in (cookie, f"{SESSION_COOKIE}=abc.\u00e9\u00e9", f"{CSRF_COOKIE}=\u00e9"):
        status, body = await raw_request(
            service.health.port,
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {value}\r\nConnection: close\r\n\r\n",
        )
        assert status == 200, body[:300]
        assert b"log in" in body
    store = await SilenceStore.open(service.runtime.js)
    assert await store.list() == []


async def test_every_form_refuses_a_missing_or_wrong_csrf_token(dispatcher: Any) -> None:
    _, url = await start(dispatcher)
    forms = [
        "/silences",
        "/silences/preview",
        "/silences/0123456789abcdef/expire",
        "/deadletters/1/replay",
        "/deadletters/1/discard",
        "/login",
        "/logout",
    ]
    async with httpx.AsyncClient(base_url=url, follow_redirects=False) as client:
        csrf = await logged_in(client)
        wrong = ("0" if csrf[0] != "0" else "1") + csrf[1:]
        for path in forms:
            for token in (None, "", wrong):
                data = {"matchers": "node=pve1", "token": SECRET, "receiver": "hook"}
                if token is not None:
                    data["csrf"] = token
                r = await client.post(path, data=data)
                assert r.status_code == 403, (path, token, r.status_code)
        # Another browser's CSRF cookie with this page's token is refused too.
        client.cookies.set(CSRF_COOKIE, "f" * 32)
        r = await client.post("/silences", data={"matchers": "node=pve1", "csrf": csrf})
        assert r.status_code == 403
