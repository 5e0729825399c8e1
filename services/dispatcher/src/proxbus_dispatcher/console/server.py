"""The console's HTTP handlers, served on the dispatcher's health/metrics port.

Pages are rendered on the server (Jinja2, autoescape on: everything that comes from an event
is text, never markup); the live page's only script (``static/console.js``) inserts rows the
server rendered, received as server-sent events. The Content-Security-Policy allows scripts
and styles from this origin only, so even a rendering bug could not run an inline script.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import jinja2
import nats.js.errors
from aiohttp import web
from multidict import MultiDictProxy
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry
from proxbus_events import DLQ_STREAM, Event, Matcher, Severity, Silence, Source, audit_subject
from proxbus_runtime import RateLimitedLog, SilenceStore
from pydantic import ValidationError

from ..config import DispatcherConfig
from ..dlq import replay_entry
from ..durations import parse_duration
from ..settings import Settings
from ..stages.incidents import Incident
from ..stages.peers import PeerNames
from ..templates import with_peer
from .auth import (
    ANONYMOUS,
    CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_TTL,
    WRITE_SCOPE,
    Caller,
    Guard,
    Throttle,
    client_address,
    is_loopback,
    parse_console_tokens,
    parse_trusted_proxies,
)
from .deadletters import dlq_entry, dlq_page
from .feed import EventFeed, EventFilter, reported_by, service_node
from .health import DEFAULT_HEALTH_URLS, parse_health_urls, probe_all, stream_sizes
from .incidents import MAX_INCIDENTS, PAGE_SIZE, IncidentBoard, Outcome, outcomes
from .metrics import ConsoleMetrics
from .silences import active_silences

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
HEARTBEAT = 15.0
MAX_FORM = 64 * 1024  # a console form is a few lines; the app's own limit is 1 MiB
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # "no-referrer" would make POST Origin "null"
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".txt": "text/plain"}

Handler = Callable[[web.Request, Caller], Awaitable[web.StreamResponse]]
Form = MultiDictProxy[str | bytes | bytearray | web.FileField]
# Typed request storage (aiohttp warns on plain string keys).
CALLER = web.RequestKey("proxbus_console_caller", Caller)
FORM: web.RequestKey[Form] = web.RequestKey("proxbus_console_form")


def _fmt_time(value: object) -> str:
    """A time in UTC, saying so (notifications use each receiver's time zone; the console
    shows one zone for everyone). Anything else, a damaged record's, is shown as nothing."""
    if isinstance(value, datetime):
        moment = value.astimezone(UTC)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            moment = datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return ""
    else:
        return ""
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _path_part(value: object) -> str:
    """``value`` as one URL path segment: ``/``, ``?``, ``#`` and dots' meaning quoted away (an
    id ``../deadletters/1/discard?`` must not turn a form's action into another route)."""
    text = quote(str(value), safe="")
    return "%2E%2E" if text == ".." else "%2E" if text == "." else text


def _ack(acked: object) -> dict[str, Any] | None:
    """An incident's acknowledgement as the page shows it: ``by`` (``discord:<user id>``, or
    a display name in records from before user ids), the ``label`` (display name) if any,
    ``at`` if any. ``None`` when there is none or it is not a record at all."""
    if not isinstance(acked, dict) or not acked.get("by"):
        return None
    label = acked.get("label")
    return {
        "by": _short(acked["by"], 128),
        "label": _short(label, 64) if label else "",
        "at": acked.get("at"),
    }


def _record(value: object) -> dict[str, Any] | None:
    """A dict an incident record carries (``resolved``, ``resolves``), or ``None`` when there is
    none or a damaged record's is not a dict; missing keys read as ``None``."""
    return collections.defaultdict(lambda: None, value) if isinstance(value, dict) else None


def _notified_at(incident: object, route: object) -> object:
    """When ``incident`` notified (or was told on) ``route``; ``None`` when a damaged record's
    ``notified`` is not a mapping."""
    notified = getattr(incident, "notified", None)
    return notified.get(route) if isinstance(notified, dict) else None


def _last_notified(incident: object, most: int = 4) -> list[tuple[str, float]]:
    """(route, when) an incident's alert was last notified on each route (``notified``,
    carried from the fingerprint's earlier incidents), newest first, at most ``most``."""
    notified = getattr(incident, "notified", None)
    if not isinstance(notified, dict):
        return []
    told = [
        (str(rid), float(at))
        for rid, at in notified.items()
        if isinstance(at, int | float) and not isinstance(at, bool)
    ]
    return sorted(told, key=lambda item: item[1], reverse=True)[:most]


def _states(incident: object) -> list[str]:
    """The states an incident's run reported, oldest first, ending with its own (``state``),
    at most the last 4; empty when it reports none (or a damaged record's are not text)."""
    state = getattr(incident, "state", None)
    if not isinstance(state, str) or not state:
        return []
    states = getattr(incident, "states", None)
    run = [s for s in states if isinstance(s, str)] if isinstance(states, list) else []
    if not run or run[-1] != state:
        run.append(state)
    return [_short(s, 64) for s in run[-4:]]


def _short(value: object, limit: int = 128) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fmt_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


class ConsoleServer:
    """Every page and action of the console; ``add_routes`` before the server starts."""

    def __init__(
        self,
        settings: Settings,
        config: DispatcherConfig,
        nc: NATS,
        js: JetStreamContext,
        registry: CollectorRegistry | None = None,
        *,
        peer_names: PeerNames | None = None,
    ) -> None:
        self.settings = settings
        self.config = config
        self.nc = nc
        self.js = js
        tokens = settings.console_tokens.get_secret_value() if settings.console_tokens else None
        self.guard = Guard(parse_console_tokens(tokens))
        self.open_reads = is_loopback(settings.health_host)
        self.throttle = Throttle()
        # whose X-Forwarded-For names the client (the throttle's key, refusal logs)
        self.trusted_proxies = parse_trusted_proxies(settings.console_trusted_proxies)
        self.feed = EventFeed(
            nc,
            js,
            size=settings.console_recent_events,
            max_bytes=settings.console_recent_bytes,
            # this replica's intake's names (none when its intake is off: "host 3" stays)
            name_peer=peer_names.name_known if peer_names is not None else None,
        )
        self.board = IncidentBoard(js)
        self.health_targets = parse_health_urls(settings.console_health_urls or DEFAULT_HEALTH_URLS)
        self.http: aiohttp.ClientSession | None = None
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.env.filters["time"] = _fmt_time
        self.env.filters["bytes"] = _fmt_bytes
        # A kind has no length limit in the event schema: rows show its first 128 characters
        # (the full value is in the event's JSON), so 100 rows stay within the page budget.
        self.env.filters["short"] = _short
        self.env.filters["pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False)
        self.env.filters["path"] = _path_part
        self.env.filters["ack"] = _ack
        self.env.filters["states"] = _states
        self.env.filters["record"] = _record
        self.env.filters["notified_at"] = _notified_at
        self.env.filters["last_notified"] = _last_notified
        self.env.filters["service_node"] = service_node
        self.env.filters["reported_by"] = reported_by
        self.env.filters["with_peer"] = with_peer
        self._streams: set[asyncio.Task[Any]] = set()
        self.metrics = ConsoleMetrics(
            registry or CollectorRegistry(),
            live_pages=lambda: len(self._streams),
            dropped=lambda: self.feed.dropped,
            oversize=lambda: self.feed.oversize,
        )
        self._closing = False
        self._refusals = RateLimitedLog(log, "refused console writes")
        self._failures = RateLimitedLog(log, "console pages failed (NATS/JetStream)")
        self._static = {p.name: p.read_bytes() for p in (HERE / "static").iterdir() if p.is_file()}

    # --- lifecycle --------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/", self._page(self.live))
        r.add_get("/events/stream", self._page(self.stream))
        r.add_get("/events/{id}", self._page(self.event_json))
        r.add_get("/incidents", self._page(self.incidents))
        r.add_get("/incidents/{id}", self._page(self.incident_one))
        r.add_get("/incidents/{id}/message", self._page(self.incident_message))
        r.add_get("/silences", self._page(self.silences))
        r.add_post("/silences", self._write(self.silence_create))
        # A preview runs the matchers (full-match regexes among them) over the recent events in
        # this event loop: the same scope as creating the silence, whose matchers the intake
        # runs on every event ((.*a){20} backtracks for minutes on a 31-character title).
        preview = self._write(self.silence_preview)
        r.add_post("/silences/preview", self._page(lambda request, _: preview(request)))
        r.add_post("/silences/{id}/expire", self._write(self.silence_expire))
        r.add_get("/deadletters", self._page(self.deadletters))
        r.add_get("/deadletters/{seq}/json", self._page(self.deadletter_json))
        r.add_post("/deadletters/{seq}/replay", self._write(self.dlq_replay))
        r.add_post("/deadletters/{seq}/discard", self._write(self.dlq_discard))
        r.add_get("/status", self._page(self.status))
        r.add_get("/login", self.login_form)
        r.add_post("/login", self.login)
        r.add_post("/logout", self.logout)
        r.add_get("/static/{name}", self.static)

    async def start(self) -> None:
        self.http = aiohttp.ClientSession()
        await self.feed.start()
        self.board.start()

    async def stop(self) -> None:
        # Open live pages would hold the HTTP server's shutdown: end them, refuse new ones.
        self._closing = True
        for task in list(self._streams):
            task.cancel()
        if self._streams:
            await asyncio.gather(*self._streams, return_exceptions=True)
        await self.feed.stop()
        await self.board.stop()
        if self.http is not None:
            await self.http.close()

    # --- plumbing: callers, CSRF, rendering --------------------------------------------

    def _client(self, request: web.Request) -> str:
        """The client's address: the peer's, or behind a trusted proxy the one it forwarded
        (``CONSOLE_TRUSTED_PROXIES``, ``auth.client_address``)."""
        return client_address(
            request.remote, request.headers.getall("X-Forwarded-For", []), self.trusted_proxies
        )

    def _caller(self, request: web.Request) -> Caller | None:
        """The caller of a bearer token (a wrong one counts for the throttle) or of a session
        cookie; ``None`` for neither.

        Raises:
            web.HTTPTooManyRequests: a bearer token from an address that guessed too often.
        """
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return self._token_caller(request, header[7:].strip())
        return self.guard.session_caller(request.cookies.get(SESSION_COOKIE))

    def _token_caller(self, request: web.Request, secret: str) -> Caller | None:
        """Whose token ``secret`` is, unless its address is throttled (then 429)."""
        address = self._client(request)
        wait = self.throttle.wait(address)
        if wait:
            self.metrics.refused.labels("throttled").inc()
            self._refusals.record("429 token attempts throttled", address)
            body = self._render(
                request,
                "refused.html",
                status=429,
                why=f"too many wrong tokens from {address}: retry in {wait:.0f} s",
            )
            raise web.HTTPTooManyRequests(
                text=body.text,
                content_type="text/html",
                headers={**SECURITY_HEADERS, "Retry-After": str(int(wait + 0.999))},
            )
        caller = self.guard.lookup(secret)
        if caller is None:
            self.throttle.failed(address)
        return caller

    def _foreign_host(self, request: web.Request) -> str | None:
        """The Host a request named when it is not one of this machine's loopback names, on a
        console whose reads need no token (loopback bind): a page whose name was rebound to
        127.0.0.1 (DNS rebinding) is same-origin there and would read everything."""
        if not self.open_reads:
            return None
        host = (request.url.host or "").rstrip(".").lower()
        if host == "localhost" or host.endswith(".localhost") or is_loopback(host):
            return None
        return host or "(none)"

    def _render(
        self, request: web.Request, template: str, status: int = 200, **context: Any
    ) -> web.Response:
        csrf_cookie = request.cookies.get(CSRF_COOKIE)
        new_cookie = None
        if not self.guard.csrf_cookie_ok(csrf_cookie):
            csrf_cookie = new_cookie = self.guard.new_csrf_cookie()
        caller = request.get(CALLER) or self.guard.session_caller(
            request.cookies.get(SESSION_COOKIE)
        )
        body = self.env.get_template(template).render(
            csrf=self.guard.csrf_token(csrf_cookie),
            caller=caller,
            can_write=bool(caller and caller.can(WRITE_SCOPE)),
            tokens_configured=bool(self.guard.tokens),
            flash=self._flash(request),
            path=request.path,
            site=self.settings.proxbus_site,
            zones=self._zones(),
            **context,
        )
        resp = web.Response(
            text=body, status=status, content_type="text/html", headers=SECURITY_HEADERS
        )
        if new_cookie:
            resp.set_cookie(CSRF_COOKIE, new_cookie, httponly=True, samesite="Strict", path="/")
        return resp

    def _page(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            caller = self._caller(request)
            if caller is None and not self.open_reads:
                raise web.HTTPSeeOther("/login?" + urlencode({"next": request.path_qs}))
            if caller is None and (host := self._foreign_host(request)) is not None:
                self.metrics.refused.labels("foreign_host").inc()
                self._refusals.record(f"421 Host {host[:64]}", self._client(request))
                return self._render(
                    request,
                    "refused.html",
                    status=421,
                    why=(
                        f"this console answers reads without a token only under a loopback "
                        f"name (localhost, 127.0.0.1, [::1]), not {host[:253]!r}: set "
                        "CONSOLE_TOKENS to serve it under another name"
                    ),
                )
            if caller is not None:
                request[CALLER] = caller
            try:
                return await handler(request, caller or ANONYMOUS)
            except web.HTTPException:
                raise
            except (asyncio.CancelledError, ConnectionResetError):
                raise
            except Exception as exc:  # NATS/JetStream trouble: say so, keep serving
                self._failures.record(type(exc).__name__, request.path)
                return self._render(
                    request,
                    "refused.html",
                    status=503,
                    heading="Unavailable",
                    why=f"unavailable: {exc!r}",
                )

        return wrapped

    def _write(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            form = await self._form(request)
            bearer = request.headers.get("Authorization", "").startswith("Bearer ")
            if not bearer and not self._same_origin(request):
                return self._refuse(request, 403, "cross-origin request refused", "cross_origin")
            if not bearer and not self.guard.csrf_ok(
                request.cookies.get(CSRF_COOKIE), str(form.get("csrf", ""))
            ):
                return self._refuse(
                    request, 403, "CSRF check failed: reload the page and retry", "csrf"
                )
            caller = self._caller(request)
            if caller is None:
                why = (
                    "this action needs a token: log in"
                    if self.guard.tokens
                    else "writes are disabled: no CONSOLE_TOKENS configured"
                )
                return self._refuse(request, 401, why, "no_token")
            if not caller.can(WRITE_SCOPE):
                return self._refuse(
                    request, 403, f"token '{caller.name}' lacks the '{WRITE_SCOPE}' scope", "scope"
                )
            request[CALLER] = caller
            request[FORM] = form
            return await handler(request, caller)

        return wrapped

    @staticmethod
    def _same_origin(request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None or origin == "null":
            return origin is None
        return origin.split("://", 1)[-1] == request.host

    def _refuse(self, request: web.Request, status: int, why: str, reason: str) -> web.Response:
        self.metrics.refused.labels(reason).inc()
        self._refusals.record(f"{status} {request.path}", self._client(request))
        return self._render(request, "refused.html", status=status, why=why)

    async def _form(self, request: web.Request) -> Form:
        """The request's form, read only up to ``MAX_FORM`` bytes (also when chunked).

        Raises:
            web.HTTPRequestEntityTooLarge: a bigger body (counted, answered 413).
        """
        length = request.content_length
        try:
            if length is not None and length > MAX_FORM:
                raise web.HTTPRequestEntityTooLarge(MAX_FORM, length)
            return await request.clone(client_max_size=MAX_FORM).post()
        except web.HTTPRequestEntityTooLarge:
            self.metrics.refused.labels("body_too_large").inc()
            self._refusals.record(f"413 {request.path}", self._client(request))
            raise

    async def _audit(
        self,
        caller: Caller,
        action: str,
        arguments: dict[str, Any],
        outcome: str,
        started: float,
        message: str | None = None,
    ) -> None:
        tool = f"console.{action}"
        record = {
            "schema": "proxbus.audit/v1",
            "ts": time.time(),
            "site": self.settings.proxbus_site,
            "tool": tool,
            "caller": caller.name,
            "transport": "console",
            "arguments": arguments,
            "outcome": outcome,
            "code": None,
            "message": message,
            "duration_ms": round((time.monotonic() - started) * 1000, 3),
        }
        try:
            await self.js.publish(
                audit_subject(self.settings.proxbus_site, tool),
                json.dumps(record, default=str, separators=(",", ":")).encode(),
                timeout=5.0,
            )
        except Exception as exc:
            log.error("console: audit record of %s by %s not stored: %s", tool, caller.name, exc)

    def _zones(self) -> list[str]:
        """``receiver: zone`` for each receiver, at most 8 (the rest counted): notifications
        say times in their receiver's zone, the console in UTC."""
        names = sorted(self.config.receivers)
        out = [f"{n}: {getattr(self.config.receivers[n], 'timezone', 'UTC')}" for n in names[:8]]
        if len(names) > 8:
            out.append(f"{len(names) - 8} more")
        return out

    def _flash(self, request: web.Request) -> str:
        """The status line's text: a ``msg`` the console signed when it redirected here."""
        msg = request.query.get("msg", "")[:300]
        return msg if msg and self.guard.flash_ok(msg, request.query.get("sig", "")) else ""

    def _flash_query(self, msg: str) -> dict[str, str]:
        msg = msg[:300]
        return {"msg": msg, "sig": self.guard.flash_sig(msg)}

    def _back(self, location: str, msg: str) -> web.HTTPSeeOther:
        return web.HTTPSeeOther(location + "?" + urlencode(self._flash_query(msg)))

    # --- pages --------------------------------------------------------------------------

    async def live(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        await self.feed.ensure_running()
        f = EventFilter.from_query(dict(request.query))
        events, hidden = self.feed.newest_and_hidden(f)
        return self._render(
            request,
            "live.html",
            events=events,
            hidden_details=hidden,
            show_details_url="/?" + urlencode({**f.query(), "details": "1"}),
            filter=f,
            stream_url="/events/stream?" + urlencode(f.query()),
            severities=[s.value for s in Severity],
            sources=[s.value for s in Source],
        )

    async def stream(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        if self._closing:
            return web.Response(status=503, text="the dispatcher is stopping")
        if len(self._streams) >= self.settings.console_max_live_pages:
            self.metrics.refused.labels("too_many_live_pages").inc()
            self._refusals.record("503 too many live pages", self._client(request))
            return web.Response(
                status=503, text="too many live pages open", headers={"Retry-After": "10"}
            )
        # Counted before the first await: a flood arriving together cannot all pass the check
        # while the first ones wait for the feed's back-fill.
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        client = None
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        try:
            f = EventFilter.from_query(dict(request.query))
            await self.feed.ensure_running()
            client = self.feed.connect(f)
            row = self.env.get_template("_event.html")
            await resp.prepare(request)
            await self._send(resp, b"retry: 2000\n: connected\n\n")
            while True:
                try:
                    event = await asyncio.wait_for(client.get(), HEARTBEAT)
                except TimeoutError:
                    await self._send(resp, b": keep-alive\n\n")
                    continue
                html = row.render(event=event)
                data = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
                await self._send(resp, f"id: {event.id}\n{data}\n".encode())
        except _Stalled:
            # The page stopped reading: its events queue up in the kernel and the transport
            # until a write blocks. Drop the connection so it frees its place.
            self.metrics.stalled.inc()
            self._refusals.record("live page stalled, disconnected", self._client(request))
            if request.transport is not None:
                request.transport.abort()
        except (asyncio.CancelledError, ConnectionResetError):
            pass
        finally:
            if client is not None:
                self.feed.disconnect(client)
            self._streams.discard(task)
        return resp

    async def _send(self, resp: web.StreamResponse, data: bytes) -> None:
        """One write to a live page, bounded in time (a blocked write raises ``_Stalled``)."""
        try:
            await asyncio.wait_for(resp.write(data), self.settings.console_live_write_timeout)
        except TimeoutError:
            raise _Stalled from None

    async def event_json(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        await self.feed.ensure_running()
        event = self.feed.find(request.match_info["id"][:128])
        if event is None:
            return web.json_response(
                {"error": "no longer among the recent events"}, status=404, headers=SECURITY_HEADERS
            )
        return web.Response(
            body=event.model_dump_json(by_alias=True, indent=2),
            content_type="application/json",
            headers=SECURITY_HEADERS,
        )

    async def incidents(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        await self.board.ensure_running()
        skip = min(_positive_int(request.query.get("skip", "")) or 0, MAX_INCIDENTS)
        page = self.board.page(self.settings.incident_window, skip=skip, limit=PAGE_SIZE)
        routes = {r.id: r.receiver for r in self.config.iter_routes()}
        results = await outcomes(self.js, page.open + page.recent, routes.get)
        return self._render(
            request,
            "incidents.html",
            page=page,
            open=page.open,
            recent=page.recent,
            outcomes=results,
            tellers=self._tellers(results, page.open + page.recent),
            window=self.settings.incident_window,
            page_size=PAGE_SIZE,
            kept=MAX_INCIDENTS,
            single=None,
        )

    def _tellers(
        self, results: dict[str, list[Outcome]], shown: list[Incident]
    ) -> dict[str, Incident]:
        """The held incidents the shown ones link to: those that told an end these outcomes
        were not sent for (``told``), and the successes that resolved them (``resolved.by``,
        the event that opened the success's incident)."""
        ids = {o.told_by for rows in results.values() for o in rows if o.told_by}
        for incident in shown:
            res = incident.resolved
            if isinstance(res, dict) and isinstance(res.get("by"), str):
                ids.add(res["by"])
        return self.board.by_id(ids)

    async def incident_one(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        """One incident by id (the link of a "told by" outcome), open or not, on any page."""
        await self.board.ensure_running()
        incident_id = request.match_info["id"][:128]
        found = self.board.by_id({incident_id}).get(incident_id)
        if found is None:
            return web.Response(
                status=404, text="no such incident among those held", headers=SECURITY_HEADERS
            )
        routes = {r.id: r.receiver for r in self.config.iter_routes()}
        results = await outcomes(self.js, [found], routes.get)
        page = self.board.page(self.settings.incident_window, limit=0)
        return self._render(
            request,
            "incidents.html",
            page=page,
            open=[],
            recent=[],
            outcomes=results,
            tellers=self._tellers(results, [found]),
            window=self.settings.incident_window,
            page_size=PAGE_SIZE,
            kept=MAX_INCIDENTS,
            single=found,
        )

    async def incident_message(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        """An incident's message (up to 4 KiB of job log), fetched when its card is expanded:
        sent with the page, 100 of them made it 476 KB."""
        await self.board.ensure_running()
        incident_id = request.match_info["id"][:128]
        found = next((i for i in self.board.incidents.values() if i.id == incident_id), None)
        if found is None:
            return web.Response(
                status=404, text="no such incident among those shown", headers=SECURITY_HEADERS
            )
        return web.Response(text=found.message, content_type="text/plain", headers=SECURITY_HEADERS)

    async def silences(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        q = request.query
        return await self._silences_page(
            request, q.get("matchers", ""), q.get("duration", "2h"), q.get("comment", "")
        )

    async def silence_preview(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        """What a silence would mute (not audited: nothing is written; needs the write scope)."""
        form = request[FORM]
        return await self._silences_page(
            request,
            str(form.get("matchers", "")),
            str(form.get("duration", "2h")),
            str(form.get("comment", "")),
            preview=True,
        )

    async def _silences_page(
        self, request: web.Request, text: str, duration: str, comment: str, preview: bool = False
    ) -> web.StreamResponse:
        await self.feed.ensure_running()
        text = text[:4096]
        hits: list[Event] | None = None
        error = ""
        if preview or text.strip():
            try:
                hits = list(self.feed.matching(_parse_matchers(text)))
            except ValueError as exc:
                error = str(exc)
        active = await active_silences(self.js)
        skip = min(_positive_int(request.query.get("skip", "")) or 0, len(active.silences))
        return self._render(
            request,
            "silences.html",
            silences=active.silences[skip : skip + PAGE_SIZE],
            silences_total=len(active.silences),
            unreadable=active.unreadable,
            skip=skip,
            page_size=PAGE_SIZE,
            matchers=text,
            duration=duration[:32],
            comment=comment[:1024],
            preview=None if hits is None else hits[:50],
            preview_count=len(hits or []),
            preview_total=self.feed.count,
            error=error,
        )

    async def deadletters(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        before = _positive_int(request.query.get("before", ""))
        try:
            page = await asyncio.wait_for(dlq_page(self.js, before), 5.0)
        except Exception as exc:  # a slow or absent JetStream is a message, not a 500
            return self._render(
                request,
                "deadletters.html",
                page=None,
                before=before,
                error=f"DLQ unavailable: {exc!r}",
            )
        return self._render(request, "deadletters.html", page=page, before=before, error="")

    async def deadletter_json(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        """One dead letter's notification, fetched when its row is expanded."""
        seq = _positive_int(request.match_info["seq"])
        entry = await asyncio.wait_for(dlq_entry(self.js, seq), 5.0) if seq else None
        if entry is None:
            return web.json_response(
                {"error": "no such dead letter"}, status=404, headers=SECURITY_HEADERS
            )
        return web.Response(
            body=entry.letter.notification.model_dump_json(by_alias=True, indent=2),
            content_type="application/json",
            headers=SECURITY_HEADERS,
        )

    async def status(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        assert self.http is not None
        services, streams = await asyncio.gather(
            probe_all(self.http, self.health_targets), stream_sizes(self.js)
        )
        return self._render(
            request,
            "status.html",
            services=services,
            streams=streams,
            nats=self.nc.is_connected,
            nats_url=self.nc.connected_url.netloc if self.nc.connected_url else "",
            feed_clients=len(self.feed.clients),
            feed_reading=self.feed.reading,
            invalid=self.feed.invalid,
        )

    # --- writes -------------------------------------------------------------------------

    async def silence_create(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        form = request[FORM]
        started = time.monotonic()
        text = str(form.get("matchers", ""))[:4096]
        duration_text = str(form.get("duration", "2h"))[:32]
        comment = str(form.get("comment", ""))[:1024]
        try:
            matchers = _parse_matchers(text)
            duration = parse_duration(duration_text)
            if duration <= 0:
                raise ValueError("the duration must be positive")
            silence = Silence.for_duration(
                matchers, timedelta(seconds=duration), caller.name, comment
            )
        except (ValueError, ValidationError) as exc:
            query = urlencode(
                {
                    "matchers": text,
                    "duration": duration_text,
                    "comment": comment,
                    **self._flash_query(str(exc)),
                }
            )
            raise web.HTTPSeeOther("/silences?" + query) from None
        store = await SilenceStore.open(self.js)
        await store.add(silence)
        await self._audit(
            caller,
            "silence_add",
            {
                "id": silence.id,
                "matchers": [str(m) for m in matchers],
                "duration": duration_text,
                "comment": comment,
            },
            "ok",
            started,
        )
        raise self._back("/silences", f"silence {silence.id} created")

    async def silence_expire(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        started = time.monotonic()
        silence_id = request.match_info["id"][:64]
        store = await SilenceStore.open(self.js)
        try:
            expired = await store.expire(silence_id)
        except nats.js.errors.InvalidKeyError:  # no silence can have that id as its key
            expired = None
        outcome = "ok" if expired else "not_found"
        await self._audit(caller, "silence_expire", {"id": silence_id}, outcome, started)
        raise self._back(
            "/silences", f"silence {silence_id} expired" if expired else f"no silence {silence_id}"
        )

    def _dlq_target(self, request: web.Request) -> tuple[int, str]:
        seq = _positive_int(request.match_info["seq"])
        if seq is None:
            raise self._back("/deadletters", "not a dead letter number")
        return seq, str(request[FORM].get("receiver", ""))[:128]

    async def dlq_replay(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        started = time.monotonic()
        seq, receiver = self._dlq_target(request)
        # By its sequence, not by reading the receiver's whole queue (dlq.dlq_replay).
        entry = await dlq_entry(self.js, seq)
        replayed = entry is not None and bool(receiver) and entry.letter.receiver == receiver
        if entry is not None and replayed:
            await replay_entry(self.js, entry, receiver)
        outcome = "ok" if replayed else "not_found"
        await self._audit(
            caller, "dlq_replay", {"seq": seq, "receiver": receiver}, outcome, started
        )
        msg = f"dead letter {seq} replayed to {receiver}" if replayed else f"no dead letter {seq}"
        raise self._back("/deadletters", msg)

    async def dlq_discard(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        started = time.monotonic()
        seq, receiver = self._dlq_target(request)
        try:
            found = await self.js.delete_msg(DLQ_STREAM, seq)
        except Exception:
            found = False
        outcome = "ok" if found else "not_found"
        await self._audit(
            caller, "dlq_discard", {"seq": seq, "receiver": receiver}, outcome, started
        )
        raise self._back(
            "/deadletters", f"dead letter {seq} discarded" if found else f"no dead letter {seq}"
        )

    # --- login ------------------------------------------------------------------------

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        return self._render(
            request, "login.html", next=_safe_next(request.query.get("next", "/")), error=""
        )

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await self._form(request)
        next_url = _safe_next(str(form.get("next", "/")))
        if not self._same_origin(request) or not self.guard.csrf_ok(
            request.cookies.get(CSRF_COOKIE), str(form.get("csrf", ""))
        ):
            return self._refuse(
                request, 403, "CSRF check failed: reload the page and retry", "csrf"
            )
        caller = self._token_caller(request, str(form.get("token", ""))[:1024])
        if caller is None:
            self.metrics.refused.labels("bad_token").inc()
            self._refusals.record("bad token", self._client(request))
            return self._render(
                request, "login.html", status=401, next=next_url, error="unknown token"
            )
        resp = web.HTTPSeeOther(next_url)
        resp.set_cookie(
            SESSION_COOKIE,
            self.guard.session_cookie(caller),
            httponly=True,
            samesite="Strict",
            path="/",
            max_age=int(SESSION_TTL),
        )
        raise resp

    async def logout(self, request: web.Request) -> web.StreamResponse:
        form = await self._form(request)
        if not self.guard.csrf_ok(request.cookies.get(CSRF_COOKIE), str(form.get("csrf", ""))):
            return self._refuse(
                request, 403, "CSRF check failed: reload the page and retry", "csrf"
            )
        resp = web.HTTPSeeOther("/")
        resp.del_cookie(SESSION_COOKIE, path="/")
        raise resp

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        body = self._static.get(name)
        if body is None:
            raise web.HTTPNotFound()
        ctype = STATIC_TYPES.get(Path(name).suffix, "application/octet-stream")
        return web.Response(
            body=body,
            content_type=ctype,
            headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"},
        )


class _Stalled(Exception):
    """A write to a live page did not complete within ``CONSOLE_LIVE_WRITE_TIMEOUT``."""


def _parse_matchers(text: str) -> list[Matcher]:
    """One matcher per line (``node=pve1``, ``kind=vm.*``).

    Raises:
        ValueError: no matcher, or a line that is not one.
    """
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            out.append(Matcher.parse(line))
        except ValidationError as exc:
            raise ValueError(
                f"invalid matcher {line.strip()!r}: {exc.errors()[0]['msg']}"
            ) from None
        except ValueError as exc:
            raise ValueError(f"invalid matcher {line.strip()!r}: {exc}") from None
    if not out:
        raise ValueError("a silence needs at least one matcher")
    return out


def _positive_int(text: str) -> int | None:
    """``text`` as a positive integer of at most 19 digits, else ``None``."""
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 19 or int(text) < 1:
        return None
    return int(text)


def _safe_next(value: str) -> str:
    """Only a path on this site (never ``//evil`` or a full URL).

    Whitespace and control characters are refused too: browsers drop tabs and newlines from a
    URL, so ``/<TAB>/evil`` would become ``//evil``, another host.
    """
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(c.isspace() or not c.isprintable() for c in value):
        return "/"
    return value[:512]
