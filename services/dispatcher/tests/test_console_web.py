"""The web console in a real browser (Debian's chromium driven by Playwright) against a real
nats-server and the dispatcher process, plus its security rules over plain HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from proxbus_devtools.procs import stop_process
from proxbus_devtools.testing import free_port, require_binary
from proxbus_dispatcher.console.auth import parse_console_tokens
from proxbus_dispatcher.console.incidents import MAX_INCIDENTS
from proxbus_dispatcher.settings import Settings
from proxbus_dispatcher.stages.incidents import Incident
from proxbus_dispatcher.state import STATE_BUCKET, incident_key
from proxbus_runtime import SilenceStore

from .conftest import ev, publish, wait_until
from .test_process import spawn, wait_healthy

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SECRET = "s3cret-operator-token"
READER = "reader-token-123"
TOKENS = f"alice:operate:{SECRET},bob:read:{READER}"
PROXBUS = str(Path(sys.executable).parent / "proxbus")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    path = require_binary("chromium", CHROMIUM if Path(CHROMIUM).exists() else None)
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


class Console:
    """A dispatcher process with its console on a free loopback port."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int) -> None:
        self.proc = proc
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def console(
    nats_server: Any, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[Console]]]:
    procs: list[subprocess.Popen[bytes]] = []

    async def start(routes: str | None = None, **env: str) -> Console:
        port = free_port()
        full = {
            "NATS_URL": nats_server.url,
            "HEALTH_HOST": "127.0.0.1",
            "HEALTH_PORT": str(port),
            "CONSOLE_TOKENS": TOKENS,
            "CONSOLE_HEALTH_URLS": f"nowhere=http://127.0.0.1:{free_port()}/health",
            **env,
        }
        if routes is not None:
            path = tmp_path / f"routes{len(procs)}.yaml"
            path.write_text(routes)
            full["ROUTES_FILE"] = str(path)
        proc = spawn([], full)
        procs.append(proc)
        await wait_healthy(port, proc)
        return Console(proc, port)

    yield start
    for proc in procs:
        stop_process(proc, 10)


async def login(page: Page, console: Console, secret: str = SECRET) -> None:
    await page.goto(f"{console.url}/login")
    await page.fill("input[name=token]", secret)
    await page.click("button:has-text('log in')")
    await expect(page.locator(".who")).to_contain_text("log out")


async def test_published_event_appears_on_live_page_within_5s_without_reload(
    console: Any, browser: Browser, nc: Any, js: Any, tmp_path: Path
) -> None:
    c = await console()
    page = await browser.new_page()
    await page.goto(c.url + "/")
    await expect(page.locator("#live-state")).to_have_text("live", timeout=5000)
    await page.evaluate("window.__sameDocument = true")
    # Garbage on an event subject is ignored (counted), the stream goes on.
    await nc.publish("proxbus.events.lab.syslog.error.pve2", b"{not an event")
    started = time.monotonic()
    await publish(js, ev(title="backup of VM 101 failed", vmid=101, node="pve2"))
    row = page.locator("li.event", has_text="backup of VM 101 failed")
    await expect(row).to_be_visible(timeout=5000)
    assert time.monotonic() - started < 5
    assert await page.evaluate("window.__sameDocument") is True  # no reload happened
    await row.locator("summary").click()
    await expect(row.locator("pre.json")).to_contain_text('"vmid": 101')
    body = await row.locator("pre.json").inner_text()
    assert json.loads(body)["node"] == "pve2"
    await page.screenshot(path=str(tmp_path / "live.png"), full_page=True)

    # Filters: a node filter hides other nodes' events, also those arriving live.
    await page.goto(c.url + "/?node=pve3")
    await expect(page.locator("#live-state")).to_have_text("live", timeout=5000)
    await publish(js, ev(title="on pve2", node="pve2"), ev(title="on pve3", node="pve3"))
    await expect(page.locator("li.event", has_text="on pve3")).to_be_visible(timeout=5000)
    assert await page.locator("li.event", has_text="on pve2").count() == 0
    assert await page.locator("li.event", has_text="backup of VM 101").count() == 0


async def test_dispatcher_with_open_live_pages_stops_promptly_on_sigterm(
    console: Any, browser: Browser, tmp_path: Path
) -> None:
    c = await console()
    pages = []
    for _ in range(3):
        page = await browser.new_page()
        await page.goto(c.url + "/")
        await expect(page.locator("#live-state")).to_have_text("live", timeout=5000)
        pages.append(page)
    started = time.monotonic()
    c.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(c.proc.wait, 10) == 0
    # Well inside the runtime's 9.5 s budget, which a held SSE response would use up.
    assert time.monotonic() - started < 5
    await expect(pages[0].locator("#live-state")).to_have_text("reconnecting…", timeout=5000)
    await pages[0].screenshot(path=str(tmp_path / "reconnecting.png"), full_page=True)


async def test_event_title_with_script_tag_renders_as_text(
    console: Any, browser: Browser, js: Any, tmp_path: Path
) -> None:
    c = await console()
    hostile = "<script>alert(1)</script>"
    await publish(js, ev(title=hostile, message="<img src=x onerror=alert(2)>"))
    page = await browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    await page.goto(c.url + "/")
    await expect(page.locator("li.event .title").first).to_have_text(hostile, timeout=5000)
    await expect(page.locator("#live-state")).to_have_text("live", timeout=5000)
    await publish(js, ev(title=hostile + " live", node="pve9"))
    await expect(page.locator("li.event .title", has_text="live")).to_have_text(
        hostile + " live", timeout=5000
    )
    assert await page.locator("li.event script").count() == 0
    assert await page.locator("li.event img").count() == 0
    assert dialogs == []
    await page.screenshot(path=str(tmp_path / "escaped.png"), full_page=True)


async def test_silence_created_in_page_mutes_matching_event_and_is_listed_by_the_cli(
    console: Any, browser: Browser, nc: Any, js: Any, nats_server: Any, sink: Any, tmp_path: Path
) -> None:
    hook = await sink()
    c = await console(
        f"receivers: [{{name: hook, type: webhook, url: '{hook.url}/h'}}]\nroute: {{receiver: hook}}\n"
    )
    await publish(js, ev(title="vm 300 stopped", kind="vm.stopped", node="pve7", vmid=300))
    page = await browser.new_page()
    await page.goto(c.url + "/")
    await expect(page.locator("li.event", has_text="vm 300 stopped")).to_be_visible(timeout=5000)
    await login(page, c)
    await page.goto(c.url + "/silences")
    await page.fill("textarea[name=matchers]", "node=pve7\nkind=vm.*")
    await page.fill("input[name=duration]", "1h")
    await page.fill("input[name=comment]", "maintenance of pve7")
    await page.click("button:has-text('preview')")
    await expect(page.locator("h3")).to_contain_text("Would mute 1 of the last")
    await expect(page.locator("li.event", has_text="vm 300 stopped")).to_be_visible()
    await page.click("button:has-text('create silence')")
    await expect(page.locator(".flash")).to_contain_text("created")
    await expect(page.locator("li.card code")).to_have_text("node=pve7 · kind=vm.*")
    await page.screenshot(path=str(tmp_path / "silences.png"), full_page=True)

    store = await SilenceStore.open(js)
    silences = await store.list()
    assert len(silences) == 1
    silence = silences[0]
    assert silence.created_by == "alice"

    suppressed: list[dict[str, Any]] = []

    async def on_suppressed(msg: Any) -> None:
        suppressed.append(json.loads(msg.data))

    await nc.subscribe("proxbus.suppressed.>", cb=on_suppressed)
    muted = ev(title="vm 301 stopped", kind="vm.stopped", node="pve7", vmid=301)
    await publish(js, muted)
    await wait_until(
        lambda: any(s["event_id"] == muted.id for s in suppressed), what="suppression record"
    )
    record = next(s for s in suppressed if s["event_id"] == muted.id)
    assert record["reason"] == "silenced"
    assert record["detail"] == silence.id

    listed = await asyncio.to_thread(
        subprocess.run,
        [PROXBUS, "silence", "list"],
        env={**os.environ, "NATS_URL": nats_server.url},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert silence.id in listed.stdout
    assert "node=pve7" in listed.stdout

    audit = await js.get_last_msg("PROXBUS_AUDIT", "proxbus.audit.*.console_silence_add")
    entry = json.loads(audit.data)
    assert entry["caller"] == "alice"
    assert entry["arguments"]["id"] == silence.id

    # Expire from the page: the silence leaves the active list; audited too.
    await page.click("button:has-text('expire')")
    await expect(page.locator(".flash")).to_contain_text("expired")
    assert await store.list() == []
    audit = await js.get_last_msg("PROXBUS_AUDIT", "proxbus.audit.*.console_silence_expire")
    entry = json.loads(audit.data)
    assert (entry["caller"], entry["outcome"], entry["arguments"]["id"]) == (
        "alice",
        "ok",
        silence.id,
    )


async def test_dead_letter_replayed_from_page_reaches_recording_sink(
    console: Any, browser: Browser, js: Any, sink: Any, tmp_path: Path
) -> None:
    hook = await sink(always_fail=True, fail_status=400)
    c = await console(
        f"receivers: [{{name: hook, type: webhook, url: '{hook.url}/h', max_attempts: 1}}]\n"
        "route: {receiver: hook}\n"
    )
    await publish(js, ev(title="replication job 100-0 failed", vmid=100))
    page = await browser.new_page()
    await login(page, c)
    await page.goto(c.url + "/deadletters")
    deadline = time.monotonic() + 15
    while await page.locator("li.card", has_text="replication job 100-0").count() == 0:
        assert time.monotonic() < deadline, "no dead letter listed"
        await page.reload()
    card = page.locator("li.card", has_text="replication job 100-0")
    await expect(card.locator(".error")).to_contain_text("400")
    await card.locator("summary", has_text="notification").click()  # JSON fetched when expanded
    await expect(card.locator("pre.json")).to_contain_text('"receiver": "hook"')
    await page.screenshot(path=str(tmp_path / "deadletters.png"), full_page=True)

    hook.always_fail = False
    await card.locator("button:has-text('replay')").click()
    await expect(page.locator(".flash")).to_contain_text("replayed to hook")
    await wait_until(lambda: len(hook.requests) == 1, what="replayed delivery at the sink")
    assert hook.requests[0].json["event"]["title"] == "replication job 100-0 failed"
    audit = await js.get_last_msg("PROXBUS_AUDIT", "proxbus.audit.*.console_dlq_replay")
    entry = json.loads(audit.data)
    assert (entry["caller"], entry["outcome"], entry["arguments"]["receiver"]) == (
        "alice",
        "ok",
        "hook",
    )
    await expect(page.locator("li.card", has_text="replication job 100-0")).to_have_count(0)


async def test_dead_letter_discarded_from_page_is_gone(
    console: Any, browser: Browser, js: Any, sink: Any, tmp_path: Path
) -> None:
    hook = await sink(always_fail=True, fail_status=400)
    c = await console(
        f"receivers: [{{name: hook, type: webhook, url: '{hook.url}/h', max_attempts: 1}}]\n"
        "route: {receiver: hook}\n"
    )
    await publish(js, ev(title="to be discarded"))
    info: list[Any] = []

    async def dead() -> bool:
        info.append(await js.stream_info("PROXBUS_DLQ"))
        return info[-1].state.messages == 1

    deadline = time.monotonic() + 15
    while not await dead():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    page = await browser.new_page()
    await login(page, c)
    await page.goto(c.url + "/deadletters")
    await (
        page.locator("li.card", has_text="to be discarded")
        .locator("button:has-text('discard')")
        .click()
    )
    await expect(page.locator(".flash")).to_contain_text("discarded")
    await page.screenshot(path=str(tmp_path / "discarded.png"), full_page=True)
    assert (await js.stream_info("PROXBUS_DLQ")).state.messages == 0
    audit = await js.get_last_msg("PROXBUS_AUDIT", "proxbus.audit.*.console_dlq_discard")
    entry = json.loads(audit.data)
    assert (entry["caller"], entry["outcome"], entry["arguments"]["receiver"]) == (
        "alice",
        "ok",
        "hook",
    )


async def test_write_without_token_is_refused(
    console: Any, browser: Browser, js: Any, tmp_path: Path
) -> None:
    c = await console()
    page = await browser.new_page()
    await page.goto(c.url + "/silences")
    await page.fill("textarea[name=matchers]", "node=pve1")
    await page.click("button:has-text('create silence')")
    await expect(page.locator("#refused")).to_contain_text("needs a token")
    await page.screenshot(path=str(tmp_path / "refused.png"), full_page=True)
    store = await SilenceStore.open(js)
    assert await store.list() == []

    # A read-only token is refused too, with the scope it lacks.
    await login(page, c, READER)
    await page.goto(c.url + "/silences")
    await page.fill("textarea[name=matchers]", "node=pve1")
    await page.click("button:has-text('create silence')")
    await expect(page.locator("#refused")).to_contain_text("lacks the 'operate' scope")
    assert await store.list() == []


async def test_incidents_page_shows_sources_and_receiver_outcome(
    console: Any, browser: Browser, js: Any, sink: Any, tmp_path: Path
) -> None:
    hook = await sink()
    c = await console(
        f"receivers: [{{name: hook, type: webhook, url: '{hook.url}/h'}}]\n"
        "route: {receiver: hook, group_wait: 1s}\n"
    )
    common = {"kind": "backup.failed", "vmid": 105, "node": "pve1", "severity": "error"}
    await publish(
        js,
        ev(source="syslog", title="backup of 105 failed", **common),
        ev(
            source="email", title="vzdump backup status: backup failed", message="job log", **common
        ),
    )
    await wait_until(lambda: len(hook.requests) == 1, what="one notification")
    page = await browser.new_page()
    await page.goto(c.url + "/incidents")
    card = page.locator("li.card", has_text="vzdump backup status")
    await expect(card).to_be_visible(timeout=5000)
    await expect(card.locator(".sources .tag")).to_have_text(["syslog", "email"])
    await expect(card.locator(".outcomes")).to_contain_text("hook")
    await expect(card.locator(".outcomes .state")).to_have_text("delivered")
    await card.locator("summary", has_text="message").click()  # fetched when expanded
    await expect(card.locator("details pre")).to_have_text("job log")
    await page.screenshot(path=str(tmp_path / "incidents.png"), full_page=True)


async def test_health_page_shows_services_and_stream_sizes(
    console: Any, browser: Browser, js: Any, tmp_path: Path
) -> None:
    c = await console()
    await publish(js, ev(title="one"))
    page = await browser.new_page(viewport={"width": 390, "height": 844})  # a phone
    await page.goto(c.url + "/status")
    await expect(page.locator("tr", has_text="dispatcher").locator(".state")).to_have_text("ok")
    await expect(page.locator("tr", has_text="nowhere").locator(".state")).to_have_text(
        "not running"
    )
    await expect(page.locator("tr", has_text="PROXBUS_EVENTS")).to_contain_text("1")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"page is {width}px wide on a 390px phone screen"
    await page.screenshot(path=str(tmp_path / "health-phone.png"), full_page=True)


# --- security rules over plain HTTP ------------------------------------------------------


async def test_forged_and_cross_origin_writes_are_refused(console: Any, js: Any) -> None:
    c = await console()
    form = {"matchers": "node=pve1", "duration": "1h"}
    async with httpx.AsyncClient(base_url=c.url, follow_redirects=False) as client:
        # Logged in (session cookie) but without the CSRF token of the page.
        r = await client.post("/login", data={"token": SECRET})
        assert r.status_code == 403  # the login form is CSRF-protected too
        page = await client.get("/login")
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        r = await client.post("/login", data={"token": SECRET, "csrf": csrf, "next": "/"})
        assert r.status_code == 303
        assert "httponly" in r.headers["set-cookie"].lower()
        assert "samesite=strict" in r.headers["set-cookie"].lower()
        r = await client.post("/silences", data=form)
        assert r.status_code == 403
        assert "CSRF" in r.text
        r = await client.post(
            "/silences", data={**form, "csrf": csrf}, headers={"Origin": "http://evil.example"}
        )
        assert r.status_code == 403
        r = await client.post("/silences", data={**form, "csrf": csrf})
        assert r.status_code == 303
    # A bearer token works without a cookie (scripts); a wrong one does not.
    async with httpx.AsyncClient(base_url=c.url) as client:
        r = await client.post(
            "/silences",
            data=form,
            headers={"Authorization": "Bearer wrong"},
            follow_redirects=False,
        )
        assert r.status_code == 401
    store = await SilenceStore.open(js)
    assert len(await store.list()) == 1


async def test_silence_preview_needs_the_write_scope_so_a_reader_cannot_stall_the_dispatcher(
    console: Any, js: Any
) -> None:
    # A preview runs the matchers over the recent events in the dispatcher's event loop; a
    # full-match regex such as (.*a){20} backtracks for minutes on a 31-character title. Who may
    # create a silence (whose matchers the intake runs on every event) may preview one; a
    # reader or an anonymous loopback visitor may not.
    c = await console()
    await publish(js, ev(title="a" * 30 + "!"))
    evil = {"matchers": "title=~(.*a){20}", "duration": "1h"}
    async with httpx.AsyncClient(base_url=c.url, timeout=10, follow_redirects=False) as client:
        assert "a" * 30 in (await client.get("/")).text  # the event is among the recent ones
        page = await client.get("/silences")
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        r = await client.post("/silences/preview", data={**evil, "csrf": csrf})
        assert r.status_code == 401
        assert "needs a token" in r.text
        r = await client.post(
            "/silences/preview", data=evil, headers={"Authorization": f"Bearer {READER}"}
        )
        assert r.status_code == 403
        # The dispatcher still answers at once.
        assert (await client.get("/health", timeout=2)).status_code == 200
        # With the write scope a (harmless) preview works.
        r = await client.post(
            "/silences/preview",
            data={"matchers": "node=pve1", "duration": "1h"},
            headers={"Authorization": f"Bearer {SECRET}"},
        )
        assert r.status_code == 200
        assert "Would mute 1 of the last" in r.text


async def test_console_pages_set_a_strict_content_security_policy(console: Any) -> None:
    c = await console()
    async with httpx.AsyncClient(base_url=c.url) as client:
        for path in ("/", "/incidents", "/silences", "/deadletters", "/status", "/login"):
            r = await client.get(path)
            assert r.status_code == 200, path
            assert "script-src 'self'" in r.headers["content-security-policy"]
            assert r.headers["x-frame-options"] == "DENY"


async def test_pages_say_what_is_unavailable_while_nats_is_down(
    console: Any, js: Any, nats_server: Any
) -> None:
    c = await console()
    await publish(js, ev(title="seen before the outage"))
    async with httpx.AsyncClient(base_url=c.url, timeout=20) as client:
        assert "seen before the outage" in (await client.get("/")).text
        nats_server.stop()
        live = await client.get("/")
        assert live.status_code == 200
        assert "seen before the outage" in live.text  # the ring is in memory
        silences = await client.get("/silences")
        assert silences.status_code == 503
        assert "unavailable" in silences.text
        dead = await client.get("/deadletters")
        assert dead.status_code == 200
        assert "DLQ unavailable" in dead.text
    assert c.proc.poll() is None


def test_non_loopback_bind_without_tokens_exits_2(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HEALTH_HOST": "0.0.0.0",
        "CONSOLE_TOKENS": "",
        "NATS_URL": "nats://127.0.0.1:1",
    }
    script = str(Path(sys.executable).parent / "proxbus-dispatcher")
    done = subprocess.run(
        [script], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 2
    assert "CONSOLE_TOKENS" in done.stderr
    assert "not loopback" in done.stderr
    # With the console off, or a token, the same bind is accepted.
    Settings(health_host="0.0.0.0", console_enabled=False, _env_file=None)  # type: ignore[call-arg]
    Settings(health_host="0.0.0.0", console_tokens=TOKENS, _env_file=None)  # type: ignore[call-arg]


def test_console_tokens_are_parsed_like_the_gateways() -> None:
    tokens = parse_console_tokens(TOKENS)
    assert [(t.name, sorted(t.scopes)) for t in tokens] == [
        ("alice", ["operate", "read"]),
        ("bob", ["read"]),
    ]
    assert tokens[0].matches(SECRET)
    assert not tokens[0].matches(READER)
    for bad in ("alice:operate", "alice:nothing:x", "a:read:x,a:read:y", "b@d name:read:x"):
        with pytest.raises(ValueError):  # noqa: PT011 - each message is asserted below
            parse_console_tokens(bad)
    with pytest.raises(ValueError, match="name:scopes:secret"):
        Settings(console_tokens="oops", _env_file=None)  # type: ignore[call-arg]


async def test_every_page_fits_a_phone_screen_even_with_long_unbroken_fields(
    console: Any, browser: Browser, js: Any, sink: Any, tmp_path: Path
) -> None:
    from datetime import timedelta

    from proxbus_events import Matcher, Silence

    hook = await sink(always_fail=True, fail_status=400)
    c = await console(
        f"receivers: [{{name: hook, type: webhook, url: '{hook.url}/h', max_attempts: 1}}]\n"
        "route: {receiver: hook}\n"
    )
    # What a phone must still fit: words with no break point, as hostnames, UPIDs and
    # storage paths give (an event's title, node and message; a silence's matcher).
    word = "vzdump-backup-" + "x" * 120
    await publish(js, ev(title=f"{word} failed", node="n" * 200, message=word * 3, vmid=101))
    store = await SilenceStore.open(js)
    await store.add(
        Silence.for_duration([Matcher.parse(f"node={'m' * 300}")], timedelta(hours=1), "t", word)
    )
    info: list[Any] = []

    async def dead() -> bool:
        info.append(await js.stream_info("PROXBUS_DLQ"))
        return info[-1].state.messages == 1

    deadline = time.monotonic() + 15
    while not await dead():
        assert time.monotonic() < deadline, "no dead letter"
        await asyncio.sleep(0.05)
    page = await browser.new_page(viewport={"width": 390, "height": 844})
    await login(page, c)
    for path, shown in (
        ("/", "li.event"),
        ("/incidents", "li.card"),
        ("/silences", "li.card"),
        ("/deadletters", "li.card"),
        ("/status", "tr"),
    ):
        await page.goto(c.url + path)
        await expect(page.locator(shown).first).to_be_visible(timeout=5000)
        for details in await page.locator("details").all():  # expanded: JSON, message
            await details.locator("summary").click()
        width = await page.evaluate("document.documentElement.scrollWidth")
        name = path.strip("/") or "live"
        await page.screenshot(path=str(tmp_path / f"phone-{name}.png"), full_page=True)
        assert width <= 390, f"{path} is {width}px wide on a 390px phone screen"


# --- as an operator reads it: acknowledgements old and new, a run of incidents (since /
# earlier reports), which time zone, an OOM kill among its detail lines, severity colours that
# can be read, ids that carry path characters, a bucket of 10,000 incidents -----------------

NOW = time.time()
UTC_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


def incident(n: int, **kw: Any) -> Incident:
    fields: dict[str, Any] = {
        "id": f"ev{n:05d}",
        "fingerprint": f"{n:016x}",
        "opened": NOW - 60,
        "last": NOW - 30,
        "kind": "disk.error",
        "site": "lab",
        "node": "pve1",
        "vmid": None,
        "severity": "error",
        "title": f"I/O error on sdc ({n})",
        "message": "",
        "score": [4, 1, 0],
        "labels": {},
        "sources": ["syslog"],
        "event_ids": [f"ev{n:05d}"],
        "count": 1,
    }
    fields.update(kw)
    return Incident(**fields)


async def state_bucket(js: Any) -> Any:
    """The dispatcher's state bucket, once its intake has created it."""
    found: list[Any] = []

    async def opened() -> bool:
        found.append(await js.key_value(STATE_BUCKET))
        return True

    await wait_until(opened, what="the dispatcher's state bucket", ignore=(Exception,))
    return found[-1]


async def put(js: Any, *incidents: Incident | tuple[str, bytes]) -> None:
    kv = await state_bucket(js)
    for item in incidents:
        if isinstance(item, Incident):
            await kv.put(incident_key(item.fingerprint), item.to_json())
        else:
            await kv.put(*item)


async def left_to_right(page: Page, first: str, second: str) -> tuple[float, float]:
    """The right edge of ``first`` and the left edge of ``second`` (CSS px)."""
    a = await page.locator(first).bounding_box()
    b = await page.locator(second).bounding_box()
    assert a is not None
    assert b is not None
    return a["x"] + a["width"], b["x"]


async def test_acknowledgements_old_and_new_a_run_of_reports_and_the_time_zone_are_shown(
    console: Any, browser: Browser, js: Any, tmp_path: Any
) -> None:
    c = await console()
    ack = {"by": "discord:1234567890", "user_id": "1234567890", "label": "Alice"}
    # A display name is the member's to choose: right-to-left override and all.
    spoof = {"by": "discord:999", "user_id": "999", "label": "\u202eMallory", "at": NOW - 5}
    old = {"by": "Bob", "at": NOW - 10, "event": "e1"}  # before user ids (no label)
    oldest = {"by": "Carol"}  # no time either
    await put(
        js,
        incident(1, title="Node lost quorum", acked={**ack, "at": NOW - 20, "event": "e0"}),
        incident(2, title="old ack", acked=old),
        incident(3, title="oldest ack", acked=oldest),
        incident(4, title="spoofed ack", acked=spoof),
        incident(5, title="I/O error on sdc", since=NOW - 3 * 3600, earlier=12),
        incident(6, title="damaged ack", acked="nobody"),
        # A damaged record: the page shows the others.
        (incident_key("f" * 16), json.dumps({"id": "x", "acked": "nobody"}).encode()),
    )
    page = await browser.new_page()
    await page.goto(c.url + "/incidents")
    card = page.locator("li.card", has_text="Node lost quorum")
    await expect(card.locator(".acked")).to_contain_text(
        "acknowledged by Alice (discord:1234567890)", timeout=5000
    )
    await expect(
        page.locator("li.card", has_text="old ack").first.locator(".acked")
    ).to_contain_text("acknowledged by Bob")
    await expect(page.locator("li.card", has_text="oldest ack").locator(".acked")).to_contain_text(
        "acknowledged by Carol"
    )
    # The override stays inside the name: the user id still reads after it, left to right.
    label_right, by_left = await left_to_right(
        page,
        "li.card:has-text('spoofed ack') .ack-label",
        "li.card:has-text('spoofed ack') .ack-by",
    )
    assert by_left >= label_right, (label_right, by_left)
    run = page.locator("li.card", has_text="I/O error on sdc")
    await expect(run.locator(".run")).to_contain_text("ongoing since")
    await expect(run.locator(".run")).to_contain_text("12 earlier reports")
    # Every time says its zone.
    for text in [await run.locator(".run").inner_text(), await run.locator(".meta").inner_text()]:
        assert UTC_TIME.search(text), text
    assert UTC_TIME.search(await card.locator(".acked").inner_text())
    await page.screenshot(path=str(tmp_path / "incidents-acks.png"), full_page=True)

    await publish(js, ev(title="a row with its time"))
    await page.goto(c.url + "/")
    row = page.locator("li.event", has_text="a row with its time")
    await expect(row).to_be_visible(timeout=5000)
    assert UTC_TIME.search(await row.locator("time").inner_text())


def oom_detail(n: int) -> Any:
    return ev(
        kind="syslog.message",
        severity="info",
        title=f"kernel: Call Trace frame {n}",
        metadata={"detail_of": "oom.kill", "rule": "kernel-oom-report"},
    )


async def test_an_oom_kill_is_not_drowned_in_its_detail_lines(
    console: Any, browser: Browser, js: Any, tmp_path: Any
) -> None:
    c = await console()
    await publish(js, ev(title="earlier: backup of VM 100 failed", kind="backup.failed"))
    await publish(js, *(oom_detail(n) for n in range(120)))
    await publish(js, ev(title="OOM kill in VM 101", kind="oom.kill", vmid=101))
    page = await browser.new_page()
    await page.goto(c.url + "/")
    await expect(page.locator("li.event", has_text="OOM kill in VM 101")).to_be_visible(
        timeout=5000
    )
    # The detail lines are not rows of the first screen: what came before the kill still is.
    await expect(page.locator("li.event", has_text="earlier: backup")).to_be_visible()
    assert await page.locator("li.event", has_text="Call Trace").count() == 0
    await expect(page.locator("#details-hidden")).to_contain_text("120 detail lines")
    # Live too: a detail line does not appear, the next kill does.
    await expect(page.locator("#live-state")).to_have_text("live", timeout=5000)
    await publish(js, oom_detail(999), ev(title="OOM kill in VM 102", kind="oom.kill", vmid=102))
    await expect(page.locator("li.event", has_text="OOM kill in VM 102")).to_be_visible(
        timeout=5000
    )
    assert await page.locator("li.event", has_text="frame 999").count() == 0
    await page.screenshot(path=str(tmp_path / "oom-hidden.png"), full_page=True)

    # Asked for, they are shown dimmed and say what they are a detail of.
    await page.click("#details-hidden a")
    detail = page.locator("li.event", has_text="Call Trace frame 119")
    await expect(detail).to_be_visible(timeout=5000)
    await expect(detail).to_contain_text("detail of oom.kill")
    kill = page.locator("li.event", has_text="OOM kill in VM 101")
    size = "e => parseFloat(getComputedStyle(e).fontSize)"
    assert await detail.evaluate(size) < await kill.evaluate(size)
    await expect(page.locator("input[name=details]")).to_be_checked()
    await page.screenshot(path=str(tmp_path / "oom-details.png"), full_page=True)


CONTRAST = """
(selector) => {
  function rgb(s) { return s.match(/[\\d.]+/g).slice(0, 3).map(Number); }
  function lum(c) {
    const [r, g, b] = c.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  }
  function bg(e) {
    for (; e; e = e.parentElement) {
      const c = getComputedStyle(e).backgroundColor;
      if (c && c !== "rgba(0, 0, 0, 0)" && c !== "transparent") { return rgb(c); }
    }
    return [255, 255, 255];
  }
  return [...document.querySelectorAll(selector)].map(e => {
    const a = lum(rgb(getComputedStyle(e).color)), b = lum(bg(e));
    return [e.textContent.trim().slice(0, 40), (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)];
  });
}
"""


async def test_every_severity_reads_with_enough_contrast_in_light_and_dark(
    console: Any, browser: Browser, js: Any, tmp_path: Any
) -> None:
    c = await console()
    severities = ["debug", "info", "notice", "warning", "error", "critical"]
    await publish(js, *(ev(title=f"a {s} event", severity=s) for s in severities))
    for scheme in ("light", "dark"):
        page = await browser.new_page(color_scheme=scheme)
        await page.goto(c.url + "/")
        await expect(page.locator("li.event")).to_have_count(6, timeout=5000)
        ratios = dict(await page.evaluate(CONTRAST, "li.event .sev"))
        await page.screenshot(path=str(tmp_path / f"severities-{scheme}.png"), full_page=True)
        # WCAG AA for small text (the label is 0.7rem bold): 4.5:1.
        low = {s: round(r, 2) for s, r in ratios.items() if r < 4.5}
        assert sorted(ratios) == sorted(severities)
        assert low == {}, f"{scheme}: {low}"
        # The other coloured and muted text: the rows' details, the health page's states.
        texts = await page.evaluate(CONTRAST, "li.event .meta, li.event time, .muted")
        await page.goto(c.url + "/status")
        await expect(page.locator("tr", has_text="nowhere")).to_be_visible()
        texts += await page.evaluate(CONTRAST, ".state, .muted, th, td")
        low = {t: round(r, 2) for t, r in texts if r < 4.5}
        assert low == {}, f"{scheme}: {low}"


async def test_ids_with_path_characters_stay_in_their_own_route(
    console: Any, browser: Browser, js: Any, sink: Any, tmp_path: Any
) -> None:
    from datetime import timedelta

    from proxbus_events import Matcher, Silence

    hook = await sink(always_fail=True, fail_status=400)
    c = await console(
        f"receivers: [{{name: hook, type: webhook, url: '{hook.url}/h', max_attempts: 1}}]\n"
        "route: {receiver: hook}\n"
    )
    await publish(js, ev(title="dead on arrival"))

    async def dead() -> bool:
        return (await js.stream_info("PROXBUS_DLQ")).state.messages == 1

    await wait_until(dead, what="a dead letter")
    seq = (await js.stream_info("PROXBUS_DLQ")).state.last_seq
    # A silence whose id walks out of /silences/<id>/expire into the dead letter's discard
    # (anyone who can write the silences bucket chooses the id).
    store = await SilenceStore.open(js)
    trick = Silence.for_duration([Matcher.parse("node=pve9")], timedelta(hours=1), "t", "x")
    trick = trick.model_copy(update={"id": f"../deadletters/{seq}/discard?"})
    await store.kv.put("trick", trick.model_dump_json().encode())
    # An event whose id walks from /events/<id> to the dead letter's JSON.
    walker = ev(title="walker", id=f"../deadletters/{seq}/json?")
    await publish(js, walker)

    page = await browser.new_page()
    await login(page, c)
    await page.goto(c.url + "/silences")
    await page.locator("li.card", has_text="node=pve9").locator("button:has-text('expire')").click()
    await page.wait_for_load_state()
    assert (await js.stream_info("PROXBUS_DLQ")).state.messages == 1, "the click discarded it"
    await page.goto(c.url + "/")
    row = page.locator("li.event", has_text="walker")
    await row.locator("summary").click()
    await expect(row.locator("pre.json")).to_contain_text('"title": "walker"')
    await page.screenshot(path=str(tmp_path / "path-ids.png"), full_page=True)


async def test_ten_thousand_incidents_give_a_bounded_page_that_says_what_it_leaves_out(
    console: Any, browser: Browser, js: Any, tmp_path: Any
) -> None:
    c = await console()
    kv = await state_bucket(js)
    total = 10_000
    for start in range(0, total, 500):
        await asyncio.gather(
            *(
                kv.put(
                    incident_key(f"{n:016x}"),
                    incident(
                        n, opened=NOW - 2 * total + n, last=NOW - 2 * total + n, message="m" * 200
                    ).to_json(),
                )
                for n in range(start, min(start + 500, total))
            )
        )
    async with httpx.AsyncClient(base_url=c.url, timeout=30) as client:
        # While the console reads the bucket, the dispatcher keeps answering.
        slowest = 0.0
        first = asyncio.create_task(client.get("/incidents"))
        while not first.done():
            started = time.monotonic()
            assert (await client.get("/health")).status_code == 200
            slowest = max(slowest, time.monotonic() - started)
            await asyncio.sleep(0.05)
        r = await first
        assert r.status_code == 200
        assert slowest < 1.0, f"/health took {slowest:.2f} s while the incidents loaded"
        # Loaded: a page view takes well under a second and stays small.
        last = ""

        async def loaded() -> bool:
            nonlocal last
            text = (await client.get("/incidents")).text
            found = re.search(r'id="incidents-shown">([^<]*)', text)
            last = found.group(1) if found else text[:500]
            return f"0 open, {MAX_INCIDENTS} recent" in last

        await wait_until(loaded, what="the incidents loaded", timeout=30, detail=lambda: last)
        started = time.monotonic()
        r = await client.get("/incidents")
        took = time.monotonic() - started
        assert r.status_code == 200
        assert len(r.content) < 200_000, len(r.content)
        assert took < 1.0, f"/incidents took {took:.2f} s"
    page = await browser.new_page()
    await page.goto(c.url + "/incidents")
    await expect(page.locator("li.card")).to_have_count(100, timeout=10000)
    shown = page.locator("#incidents-shown")
    await expect(shown).to_contain_text(f"0 open, {MAX_INCIDENTS} recent: incidents 1 to 100")
    await expect(shown).to_contain_text(f"newest {MAX_INCIDENTS} incidents")
    first = await page.locator("li.card strong").first.inner_text()
    await page.click("a[rel=next]")
    await expect(shown).to_contain_text("incidents 101 to 200")
    assert await page.locator("li.card strong").first.inner_text() != first
    await page.screenshot(path=str(tmp_path / "incidents-10000.png"))


async def test_an_incident_of_a_state_change_shows_the_states_of_its_run(
    console: Any, browser: Browser, js: Any, sink: Any, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    from .test_recovery import _node_line

    hook = await sink()
    c = await console(
        f"receivers: [{{name: hook, type: webhook, url: '{hook.url}/h'}}]\nroute: {{receiver: hook}}\n"
    )
    start = datetime.now(UTC) - timedelta(minutes=5)
    await publish(
        js,
        _node_line(start, "pve2", "online", "unknown"),
        _node_line(start + timedelta(seconds=60), "pve2", "unknown", "fence"),
        _node_line(start + timedelta(seconds=300), "pve2", "fence", "online"),
    )
    page = await browser.new_page()

    seen = [""]

    async def shown() -> bool:
        await page.goto(c.url + "/incidents")
        seen[0] = await page.locator("main").inner_text()
        return await page.locator("li.card .states", has_text="→ online").count() == 1

    await wait_until(shown, what="the incident of pve2 back online", detail=lambda: seen[0])
    states = page.locator("li.card .states", has_text="→ online")
    await expect(states).to_contain_text("state unknown → fence → online")
    await expect(states.locator("strong")).to_have_text("online")  # the current one
    assert UTC_TIME.search(await states.inner_text())
    await page.screenshot(path=str(tmp_path / "incident-states.png"), full_page=True)


async def test_a_page_on_a_rebound_name_reads_nothing_from_a_console_open_to_loopback(
    console: Any, js: Any, tmp_path: Path
) -> None:
    # DNS rebinding: a page from rebind.example, whose name then resolves to 127.0.0.1, is
    # same-origin with the console it reaches there; reads need no token on loopback, so its
    # script could read every event, incident and dead letter. Chromium maps the name as a
    # rebinding resolver would.
    c = await console()
    await publish(js, ev(title="only for this machine"))
    path = require_binary("chromium", CHROMIUM if Path(CHROMIUM).exists() else None)
    rules = "--host-resolver-rules=MAP rebind.example 127.0.0.1"
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=path, args=[*CHROMIUM_ARGS, rules])
        try:
            page = await b.new_page()
            answer = await page.goto(f"http://rebind.example:{c.port}/")
            assert answer is not None
            assert answer.status == 421
            await expect(page.locator("#refused")).to_contain_text("rebind.example")
            assert await page.locator("li.event").count() == 0
            for route in ("/incidents", "/deadletters", "/status", "/events/x", "/silences"):
                status = await page.evaluate(f"fetch({route!r}).then(r => r.status)")
                assert status == 421, route
            await page.screenshot(path=str(tmp_path / "rebound.png"), full_page=True)
            # The console's own names still read.
            for host in ("localhost", "127.0.0.1"):
                await page.goto(f"http://{host}:{c.port}/")
                await expect(
                    page.locator("li.event", has_text="only for this machine")
                ).to_be_visible(timeout=5000)
        finally:
            await b.close()


async def test_a_reader_is_offered_no_replay_or_discard(
    console: Any, browser: Browser, js: Any, sink: Any, tmp_path: Path
) -> None:
    hook = await sink(always_fail=True, fail_status=400)
    c = await console(
        f"receivers: [{{name: hook, type: webhook, url: '{hook.url}/h', max_attempts: 1}}]\n"
        "route: {receiver: hook}\n"
    )
    await publish(js, ev(title="left for the operator"))

    async def dead() -> bool:
        return (await js.stream_info("PROXBUS_DLQ")).state.messages == 1

    await wait_until(dead, what="a dead letter")
    page = await browser.new_page()
    for secret in (None, READER):
        if secret is not None:
            await login(page, c, secret)
        await page.goto(c.url + "/deadletters")
        card = page.locator("li.card", has_text="left for the operator")
        await expect(card).to_be_visible(timeout=5000)
        assert await card.locator("button").count() == 0, secret
        await expect(card.locator(".actions")).to_contain_text("operate")
    await page.screenshot(path=str(tmp_path / "reader-deadletters.png"), full_page=True)
    await login(page, c)
    await page.goto(c.url + "/deadletters")
    card = page.locator("li.card", has_text="left for the operator")
    await expect(card.locator("button")).to_have_text(["replay", "discard"])


async def test_an_operator_with_only_a_keyboard_logs_in_reads_an_event_and_silences(
    console: Any, browser: Browser, js: Any, tmp_path: Path
) -> None:
    c = await console()
    await publish(js, ev(title="read by keyboard", node="pve4"))
    page = await browser.new_page()
    await page.goto(c.url + "/login")
    await page.get_by_label("token").fill(SECRET)  # every field has its label
    await page.keyboard.press("Enter")
    await expect(page.locator(".who")).to_contain_text("log out")
    for name in ("site", "node", "kind", "severity", "source", "detail lines"):
        await expect(page.get_by_label(re.compile(rf"^\s*{name}"))).to_have_count(1)

    async def tab_to(selector: str, limit: int = 40) -> None:
        for _ in range(limit):
            await page.keyboard.press("Tab")
            if await page.evaluate(f"document.activeElement.matches({selector!r})"):
                return
        raise AssertionError(f"Tab never reached {selector}")

    # The connection state is announced (a screen reader hears "reconnecting…").
    await expect(page.get_by_role("status")).to_have_text("live", timeout=5000)
    await tab_to("li.event summary")
    outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # where the focus is can be seen
    await page.keyboard.press("Enter")
    await expect(page.locator("li.event pre.json").first).to_contain_text('"node": "pve4"')

    await page.goto(c.url + "/silences")
    await page.get_by_label("matchers", exact=False).fill("node=pve4")
    await page.get_by_label("duration").fill("30m")
    await tab_to("button.primary")
    await page.keyboard.press("Enter")
    await expect(page.locator(".flash")).to_contain_text("created")
    await page.screenshot(path=str(tmp_path / "keyboard.png"), full_page=True)
    store = await SilenceStore.open(js)
    assert [str(m) for s in await store.list() for m in s.matchers] == ["node=pve4"]


async def test_a_link_cannot_put_its_own_words_in_the_consoles_status_line(
    console: Any, browser: Browser, js: Any, tmp_path: Path
) -> None:
    # The status line (role=status) says what an action did; its text came from ?msg= alone,
    # so a link could make the console itself tell the operator to go somewhere.
    c = await console()
    lure = "Session expired: log in again at http://evil.example/proxbus"
    page = await browser.new_page()
    for path in ("/", "/silences", "/deadletters", "/incidents"):
        await page.goto(c.url + path + "?" + urlencode({"msg": lure}))
        await expect(page.locator("h1")).to_be_visible()
        assert await page.locator(".flash").count() == 0, path
        assert "evil.example" not in await page.locator("main").inner_text(), path
    await page.screenshot(path=str(tmp_path / "no-lure.png"), full_page=True)
    # The console's own messages still show: an action's outcome, a form's error.
    await login(page, c)
    await page.goto(c.url + "/silences")
    await page.fill("textarea[name=matchers]", "nonsense")
    await page.click("button:has-text('create silence')")
    await expect(page.locator(".flash")).to_contain_text("invalid matcher")
    await page.fill("textarea[name=matchers]", "node=pve5")
    await page.click("button:has-text('create silence')")
    await expect(page.locator(".flash")).to_contain_text("created")
    # A genuine message's link, edited, is not shown either.
    edited = page.url.replace("created", "created%2C+now+visit+evil.example")
    await page.goto(edited)
    assert await page.locator(".flash").count() == 0


async def test_the_console_says_its_times_are_utc_and_which_zones_the_notifications_use(
    console: Any, browser: Browser, js: Any, sink: Any
) -> None:
    hook = await sink()
    c = await console(
        "receivers:\n"
        f"  - {{name: paris, type: webhook, url: '{hook.url}/p', timezone: Europe/Paris}}\n"
        f"  - {{name: plain, type: webhook, url: '{hook.url}/u'}}\n"
        "route: {receiver: paris, routes: [{receiver: plain, continue: true}]}\n"
    )
    page = await browser.new_page()
    for path in ("/", "/incidents"):
        await page.goto(c.url + path)
        note = page.locator("#time-zone")
        await expect(note).to_contain_text("Times here are UTC")
        await expect(note).to_contain_text("paris: Europe/Paris")
        await expect(note).to_contain_text("plain: UTC")


async def test_a_failure_a_success_resolved_says_so_and_the_success_names_it(
    console: Any, browser: Browser, js: Any, tmp_path: Path
) -> None:
    c = await console()
    failed_since = NOW - 86400
    await put(
        js,
        incident(
            20,
            kind="backup.failed",
            title="Backup of VM 103 failed",
            resolved={
                "by": "ev00021",  # the success's event, which opened its incident
                "at": NOW - 5,
                "kind": "backup.ok",
                "title": "Backup of VM 103 finished",
            },
        ),
        incident(
            21,
            kind="backup.ok",
            severity="info",
            title="Backup of VM 103 finished",
            resolves={
                "id": "ev00020",
                "fingerprint": f"{20:016x}",
                "kind": "backup.failed",
                "title": "Backup of VM 103 failed",
                "severity": "error",
                "since": failed_since,
                "count": 3,
            },
        ),
        incident(22, title="damaged resolution", resolved="yes", resolves=["no"]),
    )
    page = await browser.new_page()
    await page.goto(c.url + "/incidents")
    failure = page.locator("li.card", has=page.locator("strong", has_text="failed"))
    await expect(failure.locator(".resolved")).to_contain_text(
        "resolved by Backup of VM 103 finished", timeout=5000
    )
    assert UTC_TIME.search(await failure.locator(".resolved").inner_text())
    success = page.locator("li.card", has=page.locator("strong", has_text="finished"))
    await expect(success.locator(".resolves")).to_contain_text(
        "resolves Backup of VM 103 failed (failing since"
    )
    await expect(success.locator(".resolves")).to_contain_text("3 reports")
    await expect(page.locator("li.card", has_text="damaged resolution")).to_be_visible()
    await page.screenshot(path=str(tmp_path / "resolved.png"), full_page=True)
    # the count of open incidents says how many of them are over (a damaged record's is not)
    await expect(page.locator("#incidents-shown")).to_contain_text(
        "3 open (1 of them resolved), 0 recent"
    )
    # each links to the other's incident
    await expect(success.locator(".resolves a")).to_have_attribute("href", "/incidents/ev00020")
    await expect(failure.locator(".resolved a")).to_have_attribute("href", "/incidents/ev00021")
    await expect(page.locator("li.card", has_text="damaged resolution").locator("a")).to_have_count(
        0
    )
    await success.locator(".resolves a").click()
    await expect(page.locator("li.card .head strong")).to_have_text("Backup of VM 103 failed")


async def _decided(c: Console, n: int) -> bool:
    """Whether the console's dispatcher has decided (routed or suppressed) ``n`` events."""
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"{c.url}/metrics")).text
    found = re.findall(
        r'^proxbus_dispatcher_events_total\{outcome="(?:routed|suppressed)"\} (\S+)$',
        text,
        re.MULTILINE,
    )
    return sum(float(v) for v in found) >= n


async def test_a_receiver_told_a_nodes_return_by_another_report_says_by_which(
    console: Any, browser: Browser, js: Any, sink: Any, tmp_path: Path
) -> None:
    # A node's return is told once (README "A node's return is told once"): the HA line
    # "unknown → online" after the API's "Node pve3 is back online" is recorded (told_by the
    # API's incident), not sent to the phone, which was told that end. Its card named only the
    # HA channel (and with the phone's route alone said "not notified (no route claimed it:
    # silenced, inhibited, unrouted ...)"): the phone's outcome was missing. Now it says the
    # phone was not sent it, told by which incident, with a link to it. Reports built by
    # ingest-syslog's pipeline and ingest-pve-ws's diff (as in test_recovery).
    from proxbus_ingest_syslog.frames import Frame
    from proxbus_ingest_syslog.pipeline import Pipeline
    from proxbus_ingest_syslog.settings import Settings as SyslogSettings

    from .test_recovery import _api_nodes, _ha_crm, _received

    phone, ha = await sink(), await sink()
    c = await console(
        f"""\
receivers:
  - {{name: phone, type: webhook, url: "{phone.url}/phone"}}
  - {{name: ha, type: webhook, url: "{ha.url}/ha"}}
route:
  receiver: phone
  routes:
    - {{receiver: ha, matchers: ["kind=ha.state"], continue: true}}
    - {{receiver: phone}}
""",
        INCIDENT_WINDOW="600",
    )
    pipeline = Pipeline(SyslogSettings())
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)

    def syslog(seconds: int, node: str, old: str, new: str) -> Any:
        text = f"node '{node}': state changed from '{old}' => '{new}'"
        frame = Frame(_ha_crm(start + timedelta(seconds=seconds), text))
        (event,) = pipeline.process([frame], "udp", "127.0.0.1")
        return _received(event)

    def api(seconds: int, node: str, old: str, new: str) -> Any:
        prev, cur = {"pve1": "online", node: old}, {"pve1": "online", node: new}
        (event,) = _api_nodes((start + timedelta(seconds=seconds)).timestamp(), prev, cur)
        return _received(event)

    reports = [
        syslog(0, "pve3", "online", "unknown"),
        api(5, "pve3", "online", "offline"),
        api(305, "pve3", "offline", "online"),
        syslog(300, "pve3", "unknown", "online"),
    ]
    for n, one in enumerate(reports, start=1):
        await publish(js, one)
        await wait_until(lambda n=n: _decided(c, n), what=f"report {n} decided")
    await wait_until(lambda: len(phone.requests) >= 2 and len(ha.requests) >= 1)
    assert [r.json["title"] for r in phone.requests] == [
        "[WARNING] Node pve3 is offline (HA state online → unknown)",
        "[INFO] Node pve3 is back online",
    ]

    page = await browser.new_page()
    await page.goto(c.url + "/incidents")
    ha3 = page.locator("li.card", has=page.locator("strong", has_text="HA node pve3: unknown"))
    await expect(ha3.locator(".outcomes tr")).to_have_count(2, timeout=5000)
    await expect(ha3.locator(".outcomes tr:not(.told)")).to_contain_text("ha")
    await expect(ha3.locator(".outcomes tr:not(.told) .state")).to_have_text("delivered")
    told = ha3.locator(".outcomes tr.told")
    await expect(told.locator("td").first).to_have_text("phone")
    await expect(told.locator(".state")).to_have_text("not sent")
    await expect(told).to_contain_text("told by Node pve3 is back online")
    assert UTC_TIME.search(await told.inner_text())
    await page.screenshot(path=str(tmp_path / "told.png"), full_page=True)
    # the link opens the incident that told it, whatever page of incidents it is on
    await told.locator("a").click()
    await expect(page.locator("h1")).to_have_text("Incident")
    await expect(page.locator("li.card")).to_have_count(1)
    await expect(page.locator("li.card .head strong")).to_have_text("Node pve3 is back online")
    await expect(page.locator("li.card .outcomes tr")).to_have_count(1)
    await expect(page.locator("li.card .outcomes")).to_contain_text("phone")
    await expect(page.locator("li.card .outcomes .state")).to_have_text("delivered")


async def test_an_incident_told_by_another_says_not_sent_over_http(console: Any, js: Any) -> None:
    # The records as the intake writes them (intake._decide): a route held back because
    # another incident told the end is in ``notified`` at the report's arrival, never in
    # ``routes``. With that route alone (the seed's one route) the page said "not notified (no
    # route claimed it: silenced, inhibited, unrouted or below the floor)": untrue.
    c = await console(
        f"receivers: [{{name: phone, type: webhook, url: 'http://127.0.0.1:{free_port()}/p'}}]\n"
        "route: {receiver: phone}\n"
    )
    teller = incident(30, title="Node pve2 is back online", severity="info", routes={"root": "x"})
    told = incident(
        31,
        kind="ha.state",
        severity="info",
        title="HA node pve2: unknown → online",
        told_by=teller.id,
        # "old": a route the fingerprint's earlier incident notified (before this one opened)
        notified={"root": NOW - 60, "old": NOW - 3600},
    )
    gone = incident(32, title="told by one let go", told_by="ev99999", notified={"root": NOW - 60})
    damaged = incident(
        33, title="damaged told", told_by=["x"], notified=["root"], routes={"root": "ev00033"}
    )
    repeat = incident(34, notified={"root": NOW - 120})
    await put(js, teller, told, gone, damaged, repeat)
    async with httpx.AsyncClient(base_url=c.url, timeout=10) as client:

        async def card(title: str) -> str:
            page = (await client.get("/incidents")).text
            cards = [part for part in page.split('<li class="card') if title in part]
            return cards[0] if cards else ""

        await wait_until(
            lambda: card("damaged told"),
            what="the incidents shown",
            detail=lambda: httpx.get(c.url + "/incidents").text[-3000:],
        )
        html = await card("HA node pve2")
        assert "no route claimed it" not in html, html
        assert re.search(r'<tr class="told"><td>phone</td><td><span class="state st-told">'
                         r"not sent</span>", html), html  # fmt: skip
        assert f'told by <a href="/incidents/{teller.id}"><bdi>Node pve2 is back online' in html
        assert "route old" not in html  # the earlier incident's route is not this one's
        html = await card("told by one let go")
        assert 'told by <a href="/incidents/ev99999">incident <bdi>ev99999</bdi></a>' in html
        # a repeat held back on its route (repeat_interval): not "no route", but when the
        # alert was last told there (``notified``, carried from its earlier incident)
        html = await card("I/O error on sdc (34)")
        assert "no route claimed it" in html
        assert re.search(r"last notified on route root · \d{4}-\d\d-\d\d [\d:]+ UTC", html), html
        html = await card("damaged told")
        assert "st-delivered" in html  # a damaged record is shown, not a 500
        assert "told" not in html.replace("damaged told", "")
        one = await client.get(f"/incidents/{teller.id}")
        assert one.status_code == 200
        assert one.text.count('<li class="card') == 1
        assert "Node pve2 is back online" in one.text
        assert (await client.get("/incidents/ev99999")).status_code == 404
        assert (await client.get("/incidents/%2E%2E")).status_code == 404


async def test_the_live_pages_node_filter_shows_the_ha_services_on_that_node(
    console: Any, browser: Browser, js: Any
) -> None:
    # A fence through ingest-syslog's own pipeline (test_recovery.fence_and_return): vm:100's
    # HA lines are about no node, the service's node in metadata.service_node where a line
    # names it. A route node=pve1 gets them; the live page filtered on pve1 showed none of
    # them, and a row did not say which node the service was on.
    from .test_recovery import fence_and_return

    c = await console()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    events = fence_and_return(start)
    page = await browser.new_page()
    await page.goto(c.url + "/?node=pve1")
    await expect(page.locator("#live-state")).to_have_text("live", timeout=5000)
    await publish(js, *events, ev(title="last one", node="pve1"))
    rows = page.locator("li.event")
    await expect(rows.filter(has_text="last one")).to_have_count(1, timeout=10_000)
    await expect(page.locator("li.event", has_text="pve-ha-crm slave")).to_have_count(0)
    on_pve1 = page.locator("li.event", has_text="HA service vm:100")
    # the LRM's lines on pve1, the recovery to pve1 and "recovery → started on pve1" (not
    # started → fence or fence → recovery: those lines name no node)
    await expect(on_pve1).to_have_count(4, timeout=10_000)
    await expect(on_pve1.locator(".meta .service-node").first).to_have_text("service on pve1")
    await expect(rows.filter(has_text="started → fence")).to_have_count(0)
    # the node's own lines stay the node's: none of pve2's is shown under pve1
    await expect(rows.filter(has_text="HA node pve2")).to_have_count(0)
    await page.goto(c.url + "/?node=pve1")  # the first screen (back-filled) agrees
    await expect(page.locator("li.event", has_text="HA service vm:100")).to_have_count(4)
