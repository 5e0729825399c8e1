"""Hostile input on the console's own endpoints, against an in-process dispatcher on a real
nats-server: odd tokens and cookies, oversized forms, static path tricks, live-page floods and
readers that do not read."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
from proxbus_devtools.testing import free_port
from proxbus_dispatcher.app import DispatcherService
from proxbus_dispatcher.console.auth import CSRF_COOKIE, SESSION_COOKIE
from proxbus_dispatcher.console.feed import CLIENT_QUEUE
from proxbus_dispatcher.console.server import MAX_FORM
from proxbus_events import Matcher
from proxbus_runtime import SilenceStore

from .conftest import ev, wait_until

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


# --- bodies -----------------------------------------------------------------------------


async def test_oversized_form_is_refused_with_413_and_counted(dispatcher: Any) -> None:
    service, url = await start(dispatcher)
    big = {"matchers": "node=pve1\n" + "x" * MAX_FORM, "duration": "1h"}
    async with httpx.AsyncClient(base_url=url, follow_redirects=False, timeout=10) as client:
        for path in ("/silences", "/silences/preview", "/deadletters/1/replay", "/login"):
            r = await client.post(path, data=big, headers=BEARER)
            assert r.status_code == 413, (path, r.status_code)

        # Without a Content-Length (chunked), the limit holds while reading.
        async def chunks() -> AsyncIterator[bytes]:
            yield b"matchers=node%3Dpve1&comment="
            for _ in range(MAX_FORM // 1024 + 8):
                yield b"y" * 1024

        r = await client.post(
            "/silences",
            content=chunks(),
            headers={**BEARER, "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 413
        # A form within the limit still works.
        r = await client.post("/silences", data={"matchers": "node=pve1"}, headers=BEARER)
        assert r.status_code == 303
    text = await metrics(url)
    assert metric(text, 'proxbus_dispatcher_console_refused_total{reason="body_too_large"}') == 5
    store = await SilenceStore.open(service.runtime.js)
    assert len(await store.list()) == 1


# --- static files -----------------------------------------------------------------------


async def test_static_path_tricks_serve_nothing_but_the_static_files(dispatcher: Any) -> None:
    service, _ = await start(dispatcher)
    port = service.health.port
    tricks = [
        "/static/../server.py",
        "/static/..%2fserver.py",
        "/static/%2e%2e/server.py",
        "/static/%2e%2e%2fserver.py",
        "/static/%2e%2e%2f%2e%2e%2fsettings.py",
        "/static/..%5cserver.py",
        "/static/.",
        "/static/",
        "/static/console.js%00.py",
        "/static/console.js/",
        "/static//etc/passwd",
        "/static/%252e%252e%252fserver.py",
        "/static/" + "a" * 5000,
    ]
    for target in tricks:
        status, body = await raw_request(
            port, f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        assert status in (400, 404, 414), (target, status)
        assert b"import " not in body, target
        assert b"root:" not in body, target
    status, body = await raw_request(
        port, "GET /static/console.js HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    assert status == 200
    assert b"EventSource" in body


# --- live pages ---------------------------------------------------------------------------


async def open_stream(port: int) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter]:
    """An SSE request; returns its status once the headers arrived, the connection open."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await writer.drain()
    line = await asyncio.wait_for(reader.readline(), 10)
    return int(line.split(b" ", 2)[1]), reader, writer


async def test_concurrent_live_page_flood_is_capped_and_counted(dispatcher: Any) -> None:
    service, url = await start(dispatcher, console_max_live_pages=3)
    assert service.console is not None
    port = service.health.port
    # All at once: the cap must hold while the first ones wait for the feed's back-fill.
    opened = await asyncio.gather(*(open_stream(port) for _ in range(12)))
    try:
        statuses = sorted(status for status, _, _ in opened)
        assert statuses == [200] * 3 + [503] * 9
        await wait_until(lambda: len(service.console.feed.clients) == 3, what="3 live pages")
        text = await metrics(url)
        assert metric(text, "proxbus_dispatcher_console_live_pages") == 3
        assert (
            metric(text, 'proxbus_dispatcher_console_refused_total{reason="too_many_live_pages"}')
            == 9
        )
    finally:
        for _, _, writer in opened:
            writer.close()
    # Closed pages give their places back.
    await wait_until(lambda: not service.console.feed.clients, what="live pages closed")
    status, _, writer = await open_stream(port)
    writer.close()
    assert status == 200


async def test_live_page_that_does_not_read_loses_events_and_its_place_not_memory(
    dispatcher: Any,
) -> None:
    service, url = await start(dispatcher, console_max_live_pages=1, console_live_write_timeout=1)
    assert service.console is not None
    feed = service.console.feed
    # A reader with a tiny receive window that never reads.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", service.health.port))
    sock.send(b"GET /events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    try:
        await wait_until(lambda: len(feed.clients) == 1, what="the live page")
        client = next(iter(feed.clients))
        # Events keep coming, the page takes none: the writer fills the socket and the
        # transport, then blocks; its queue stays bounded (the excess is dropped, counted), and
        # once a write has blocked past the timeout the page is disconnected.
        raw = [ev(title=f"flood {i} " + "w" * 200).to_json() for i in range(500)]
        deadline = asyncio.get_running_loop().time() + 20
        added = 0
        while feed.clients:
            assert asyncio.get_running_loop().time() < deadline, "stuck page still connected"
            feed.add(raw[added % len(raw)])
            added += 1
            assert client.queue.qsize() <= CLIENT_QUEUE
            await asyncio.sleep(0)  # the writer's turn, as between two NATS messages
        assert client.dropped > 0
        assert added > CLIENT_QUEUE
        text = await metrics(url)
        assert metric(text, "proxbus_dispatcher_console_live_dropped_total") >= client.dropped
        assert metric(text, "proxbus_dispatcher_console_live_pages") == 0
        assert metric(text, "proxbus_dispatcher_console_live_stalled_total") == 1
        status, _, writer = await open_stream(service.health.port)
        writer.close()
        assert status == 200
    finally:
        sock.close()


# --- the setting that turns it off ---------------------------------------------------------


async def test_console_enabled_false_serves_no_page_but_health_and_metrics(
    dispatcher: Any,
) -> None:
    service, url = await start(dispatcher, console_enabled=False)
    assert service.console is None
    async with httpx.AsyncClient(base_url=url) as client:
        for path in ("/", "/silences", "/events/stream", "/static/console.js"):
            assert (await client.get(path)).status_code == 404, path
        assert (await client.post("/silences", headers=BEARER)).status_code in (404, 405)
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200


async def test_login_redirects_only_to_a_path_on_this_console(dispatcher: Any) -> None:
    # Browsers drop tabs and newlines from a URL (WHATWG URL parser), so "/\t/evil" becomes
    # "//evil": another host.
    _, url = await start(dispatcher)
    async with httpx.AsyncClient(base_url=url, follow_redirects=False) as client:
        page = await client.get("/login")
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        for target in (
            "//evil.example/",
            "/\t/evil.example/",
            "/\n/evil.example/",
            "/\\evil.example/",
            "\t//evil.example/",
            "https://evil.example/",
            "/ /evil.example/",
            "/\x00/evil.example/",
        ):
            r = await client.post("/login", data={"token": SECRET, "csrf": csrf, "next": target})
            assert r.status_code == 303, (target, r.status_code)
            assert r.headers["location"] == "/", (target, r.headers["location"])
        r = await client.post(
            "/login", data={"token": SECRET, "csrf": csrf, "next": "/silences?matchers=node%3Dpve1"}
        )
        assert r.headers["location"] == "/silences?matchers=node%3Dpve1"


# --- a large or damaged dead-letter queue ------------------------------------------------


async def test_dead_letters_page_stays_small_and_fast_with_thousands_and_a_damaged_one(
    dispatcher: Any,
) -> None:
    from proxbus_dispatcher.dlq import DeadLetter
    from proxbus_dispatcher.notification import Notification
    from proxbus_events import DELIVERIES_STREAM, DLQ_STREAM, dlq_subject

    service, url = await start(
        dispatcher,
        webhook_out_enabled=True,
        webhook_url="http://127.0.0.1:9/h",
        delivery_enabled=False,
    )
    js = service.runtime.js
    total = 2000
    for i in range(total):
        notification = Notification(
            id=f"n{i}",
            receiver="webhook",
            route="root",
            events=[ev(title=f"backup {i} failed", message="log line\n" * 100)],
        )
        letter = DeadLetter(
            receiver="webhook",
            delivery_id=f"n{i}",
            error="HTTP 400 " + "e" * 300,
            attempts=10,
            notification=notification,
        )
        await js.publish(dlq_subject("webhook"), letter.model_dump_json(by_alias=True).encode())
        if i == 1000:  # anyone on the bus can publish here
            await js.publish(dlq_subject("webhook"), b"{not a dead letter")
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        started = asyncio.get_running_loop().time()
        r = await client.get("/deadletters")
        took = asyncio.get_running_loop().time() - started
        assert r.status_code == 200
        assert "unavailable" not in r.text
        assert len(r.content) < 200 * 1024, f"{len(r.content)} bytes"
        assert took < 2.0, f"{took:.2f} s"
        assert f"backup {total - 1} failed" in r.text  # newest first
        assert f"of {total + 1}" in r.text  # how many there are in all
        older = r.text.split('href="/deadletters?before=', 1)[1].split('"', 1)[0]
        r2 = await client.get(f"/deadletters?before={older}")
        assert r2.status_code == 200
        assert f"backup {total - 1} failed" not in r2.text
        assert "1 unreadable" in (await client.get("/deadletters?before=1010")).text
        # The notification's JSON is fetched when expanded, not sent with the list.
        seq = r.text.split('data-seq="', 1)[1].split('"', 1)[0]
        j = await client.get(f"/deadletters/{seq}/json")
        assert j.status_code == 200
        assert j.json()["receiver"] == "webhook"
        # Replaying an old one does not read the whole queue.
        before = (await js.stream_info(DELIVERIES_STREAM)).state.messages
        started = asyncio.get_running_loop().time()
        r = await client.post("/deadletters/5/replay", data={"receiver": "webhook"}, headers=BEARER)
        assert r.status_code in (200, 303)
        assert asyncio.get_running_loop().time() - started < 2.0
        assert (await js.stream_info(DELIVERIES_STREAM)).state.messages == before + 1
        assert (await js.stream_info(DLQ_STREAM)).state.messages == total


async def test_incident_outcomes_survive_a_damaged_dead_letter(
    dispatcher: Any, sink: Any, tmp_path: Any
) -> None:
    from proxbus_events import dlq_subject

    from .conftest import publish

    hook = await sink(always_fail=True, fail_status=400)
    service, url = await start(
        dispatcher,
        routes_yaml=(
            f"receivers: [{{name: hook, type: webhook, url: '{hook.url}/h', max_attempts: 1}}]\n"
            "route: {receiver: hook}\n"
        ),
    )
    js = service.runtime.js
    await js.publish(dlq_subject("hook"), b"{not a dead letter")
    await publish(js, ev(title="replication job 100-0 failed", vmid=100))
    await wait_until(lambda: hook.attempts >= 1, what="the failed attempt")
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def dead_shown() -> bool:
            text = (await client.get("/incidents")).text
            return 'class="state st-dead"' in text

        deadline = asyncio.get_running_loop().time() + 15
        while not await dead_shown():
            text = (await client.get("/incidents")).text
            assert "JetStream unavailable" not in text
            assert asyncio.get_running_loop().time() < deadline, "no dead outcome shown"
            await asyncio.sleep(0.1)


async def test_incidents_page_stays_under_200_kb_with_long_job_logs(dispatcher: Any) -> None:
    from nats.js.api import KeyValueConfig
    from proxbus_dispatcher.stages.incidents import Incident
    from proxbus_dispatcher.state import STATE_BUCKET, incident_key

    service, url = await start(dispatcher, intake_enabled=False)
    js = service.runtime.js
    kv = await js.create_key_value(KeyValueConfig(bucket=STATE_BUCKET, history=1))
    # A vzdump mail carries the whole job log: each incident keeps up to 4 KiB of it.
    log_line = "INFO: status: 42% (27.5 GiB of 64.0 GiB), duration 91, read: 310 MiB/s\n"
    for i in range(100):
        incident = Incident.open(
            ev(title=f"backup of VM {100 + i} failed", vmid=100 + i, message=log_line * 80)
        )
        await kv.put(incident_key(incident.fingerprint), incident.to_json())
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        deadline = asyncio.get_running_loop().time() + 15
        while True:
            r = await client.get("/incidents")
            if "backup of VM 199 failed" in r.text and "backup of VM 100 failed" in r.text:
                break
            assert asyncio.get_running_loop().time() < deadline, "incidents not shown"
        assert len(r.content) < 200 * 1024, f"{len(r.content)} bytes"
        src = r.text.split('data-src="/incidents/', 1)[1].split('"', 1)[0]
        m = await client.get(f"/incidents/{src}")
        assert m.status_code == 200
        assert m.headers["content-type"].startswith("text/plain")
        assert m.text.startswith("INFO: status: 42%")
        assert len(m.text) == 4096
        assert (await client.get("/incidents/nope/message")).status_code == 404


async def test_live_page_stays_under_200_kb_whatever_the_events_kinds(dispatcher: Any) -> None:
    from .conftest import publish

    # An event's kind has no length limit in the schema; anyone on the bus can publish one.
    service, url = await start(dispatcher, intake_enabled=False)
    long_kind = "vm." + "k" * 4000
    await publish(
        service.runtime.js,
        *(ev(title=f"odd {i}", kind=long_kind, node="n" * 253, site="s" * 128) for i in range(100)),
    )
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        deadline = asyncio.get_running_loop().time() + 15
        while "odd 0" not in (r := await client.get("/")).text:
            assert asyncio.get_running_loop().time() < deadline, "events not shown"
        assert r.text.count('class="event ') == 100
        assert len(r.content) < 200 * 1024, f"{len(r.content)} bytes"


async def test_guessing_tokens_is_throttled_per_address_and_counted(dispatcher: Any) -> None:
    from proxbus_dispatcher.console.auth import LOGIN_FAILURES

    _, url = await start(dispatcher)
    async with httpx.AsyncClient(base_url=url, follow_redirects=False) as client:
        page = await client.get("/login")
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        for n in range(LOGIN_FAILURES):
            r = await client.post("/login", data={"token": f"guess-{n}", "csrf": csrf})
            assert r.status_code == 401, n
        # Over the limit, the right token is refused too (else the answer is an oracle), by
        # the form and as a bearer token alike, and the refusal says when to come back.
        r = await client.post("/login", data={"token": SECRET, "csrf": csrf})
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) > 0
        r = await client.post("/silences", data={"matchers": "node=x"}, headers=BEARER)
        assert r.status_code == 429
    text = await metrics(url)
    assert metric(text, 'proxbus_dispatcher_console_refused_total{reason="bad_token"}') == (
        LOGIN_FAILURES
    )
    assert metric(text, 'proxbus_dispatcher_console_refused_total{reason="throttled"}') == 2


async def test_behind_a_trusted_proxy_each_client_has_its_own_token_budget(
    dispatcher: Any,
) -> None:
    # Behind a reverse proxy every client had the proxy's address: one guesser used up the
    # budget and locked every operator out. The proxy (127.0.0.2, trusted) appends each
    # client's address to X-Forwarded-For; a guesser from 127.0.0.1 (not trusted) forging the
    # header gets nothing from it.
    from proxbus_dispatcher.console.auth import LOGIN_FAILURES

    _, url = await start(dispatcher, console_trusted_proxies="127.0.0.2,10.0.0.0/8")

    def via(local: str) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(local_address=local)
        return httpx.AsyncClient(base_url=url, transport=transport, follow_redirects=False)

    async def attempt(client: httpx.AsyncClient, token: str, forwarded: str | None) -> int:
        page = await client.get("/login")
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        headers = {"X-Forwarded-For": forwarded} if forwarded else {}
        r = await client.post("/login", data={"token": token, "csrf": csrf}, headers=headers)
        return r.status_code

    async with via("127.0.0.2") as proxy, via("127.0.0.1") as direct:
        # a guesser behind the proxy, its own forged entry left of what the proxy appended
        for n in range(LOGIN_FAILURES):
            assert await attempt(proxy, f"guess-{n}", f"6.6.6.{n}, 203.0.113.66") == 401
        assert await attempt(proxy, SECRET, "203.0.113.66") == 429
        assert await attempt(proxy, SECRET, "6.6.6.99, 203.0.113.66") == 429
        # through a second trusted hop (10.0.0.5) it is still the same client
        assert await attempt(proxy, SECRET, "203.0.113.66, 10.0.0.5") == 429
        # another operator behind the same proxy logs in
        assert await attempt(proxy, SECRET, "198.51.100.7") == 303
        # a forged X-Forwarded-For from an untrusted address does not escape the throttle
        for n in range(LOGIN_FAILURES):
            assert await attempt(direct, f"guess-{n}", f"192.0.2.{n}") == 401
        assert await attempt(direct, SECRET, "192.0.2.200") == 429
        assert await attempt(direct, SECRET, "198.51.100.7") == 429
        assert await attempt(direct, SECRET, None) == 429
        # the bearer token is keyed the same way
        r = await direct.get("/silences", headers={**BEARER, "X-Forwarded-For": "192.0.2.201"})
        assert r.status_code == 429
        r = await proxy.get("/silences", headers={**BEARER, "X-Forwarded-For": "198.51.100.8"})
        assert r.status_code == 200


async def test_silences_page_stays_small_and_quick_with_thousands_of_silences(
    dispatcher: Any, js: Any
) -> None:
    import time
    from datetime import timedelta

    from proxbus_events import Silence

    _, url = await start(dispatcher)
    store = await SilenceStore.open(js)
    total = 3000
    for first in range(0, total, 500):
        await asyncio.gather(
            *(
                store.add(
                    Silence.for_duration(
                        [Matcher.parse(f"node=pve{n}")], timedelta(hours=1), "t", "c" * 200
                    )
                )
                for n in range(first, min(first + 500, total))
            )
        )
    await store.kv.put("damaged", b"{not a silence")  # counted, not a 503
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        started = time.monotonic()
        r = await client.get("/silences")
        took = time.monotonic() - started
        assert r.status_code == 200
        assert len(r.content) < 200_000, len(r.content)
        assert took < 1.0, f"/silences took {took:.2f} s"
        assert "3000 active: 1 to 100, newest first" in r.text
        assert "1 unreadable" in r.text
        assert r.text.count('class="card"') == 100
        assert "node=pve2999" in r.text  # the newest first
        r = await client.get("/silences?skip=2900")
        assert "2901 to 3000" in r.text
        assert "node=pve0<" in r.text


async def test_expiring_a_silence_id_that_cannot_be_a_key_is_no_such_silence(
    dispatcher: Any,
) -> None:
    _, url = await start(dispatcher)
    async with httpx.AsyncClient(base_url=url, follow_redirects=False) as client:
        for silence_id in ("a%20b", "%3Cx%3E", "..%2Fdeadletters%2F1%2Fdiscard%3F", "%C3%A9"):
            r = await client.post(f"/silences/{silence_id}/expire", headers=BEARER)
            assert r.status_code == 303, (silence_id, r.status_code)
            assert "no+silence" in r.headers["Location"], silence_id
