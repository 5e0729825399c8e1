"""Streamable HTTP that picks the answer's form per request.

The MCP spec lets a server answer a POSTed request with either one JSON body or an SSE
stream. The SDK chooses once per session manager: SSE for everything (each call pays for
an SSE response, its task group and memory streams) or JSON for everything (progress
notifications during a call are dropped). A call can only receive progress if it carried
``_meta.progressToken``, so this transport answers plain JSON unless it did: a
``get_task_status`` with ``wait`` still streams its progress, a ``get_vms`` costs about
half the CPU (measured in ``bench/bench_mcp_gateway.py``).

Everything else (initialize, notifications, GET/DELETE, malformed bodies, progress-carrying
calls) goes through the SDK's own code path unchanged.

This subclasses SDK internals (``_handle_post_request``, ``_request_streams``,
``_admit_session``...), so the gateway pins ``mcp>=2.3,<2.4``; before widening the pin, run
``tests/test_http_answers.py``, which checks every answer form and the cancel path.
"""

from __future__ import annotations

import contextvars
import logging
from functools import partial
from http import HTTPStatus
from typing import Any

import anyio
import pydantic_core
from mcp.server.streamable_http import (
    EventMessage,
    StreamableHTTPServerTransport,
    check_accept_headers,
)
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from mcp.types import INTERNAL_ERROR, JSONRPCError, JSONRPCRequest, JSONRPCResponse
from proxbus_runtime.ratelog import RateLimitedLog
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

log = logging.getLogger(__name__)
_SDK_MANAGER_LOG = "mcp.server.streamable_http_manager"

# Notifications a request may emit before its response (progress, logs) are buffered here
# and skipped: a JSON answer carries only the response.
_BUFFER = 16


def wants_stream(raw: Any) -> bool:
    """True unless ``raw`` is a request that cannot receive anything but its response."""
    if not isinstance(raw, dict) or "id" not in raw or raw.get("method") == "initialize":
        return True
    params = raw.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return isinstance(meta, dict) and "progressToken" in meta


class AdaptiveTransport(StreamableHTTPServerTransport):
    """``StreamableHTTPServerTransport`` answering JSON for requests without a progress token."""

    async def _handle_post_request(
        self, scope: Scope, request: Request, receive: Receive, send: Send
    ) -> None:
        message = None
        if not self.is_json_response_enabled:
            message = await self._plain_request(request)
        if message is None:
            # Starlette caches the body, so the SDK's path reads the same bytes again.
            await super()._handle_post_request(scope, request, receive, send)
            return
        try:
            await self._answer_json(message, scope, request, receive, send)
        except Exception as err:
            log.exception("error handling POST request")
            response = self._create_error_response(
                "Error handling POST request", HTTPStatus.INTERNAL_SERVER_ERROR, INTERNAL_ERROR
            )
            await response(scope, receive, send)
            if self._read_stream_writer is not None:
                await self._read_stream_writer.send(Exception(err))

    async def _plain_request(self, request: Request) -> JSONRPCRequest | None:
        """The request if it qualifies for a JSON answer, else None (the SDK handles it)."""
        has_json, has_sse = check_accept_headers(request)
        if not (has_json and has_sse) or not self._check_content_type(request):
            return None  # the SDK answers 406 / 415
        try:
            raw = pydantic_core.from_json(await request.body())
        except ValueError:
            return None
        if wants_stream(raw):
            return None
        try:
            return JSONRPCRequest.model_validate(raw, by_name=False)
        except ValidationError:
            return None

    async def _answer_json(
        self, message: JSONRPCRequest, scope: Scope, request: Request, receive: Receive, send: Send
    ) -> None:
        writer = self._read_stream_writer
        if writer is None:  # pragma: no cover - connect() always runs first
            raise RuntimeError("transport is not connected")
        if not await self._validate_request_headers(request, send):
            return
        request_id = str(message.id)
        streams = anyio.create_memory_object_stream[EventMessage](_BUFFER)
        self._request_streams[request_id] = streams
        metadata = ServerMessageMetadata(
            request_context=request,
            on_request_unanswered=partial(self._terminate_unanswered_request, message.id),
            # One JSON body has no room for a server-initiated request tied to this call.
            can_send_request=False,
        )
        try:
            await writer.send(SessionMessage(message, metadata=metadata))
            while True:
                event = await streams[1].receive()
                if isinstance(event.message, JSONRPCResponse | JSONRPCError):
                    break
            response = self._create_json_response(event.message)
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            response = self._create_error_response(
                "Session terminated before the request completed",
                HTTPStatus.INTERNAL_SERVER_ERROR,
                INTERNAL_ERROR,
            )
        finally:
            await self._clean_up_memory_streams(request_id)
        await response(scope, receive, send)


class _SdkRefusalFilter(logging.Filter):
    """Drops the SDK's per-request "Refusing to open a new session" WARNING (which also
    names the limit as the count): :class:`AdaptiveSessionManager` logs refusals rate-limited.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Refusing to open a new session")


# What the SDK logs once per request a client can repeat at will (a bad Host/Origin, an
# unknown session id, an unparsable SSE message: the last with a traceback). The gateway
# counts them in one RateLimitedLog instead: one line, then a summary per interval.
_SDK_REFUSALS: dict[tuple[str, str], str] = {
    ("mcp.server.sse", "Failed to parse message"): "unparsable SSE message",
    ("mcp.server.sse", "Could not find session"): "unknown SSE session",
    ("mcp.server.sse", "Received invalid session ID"): "invalid SSE session id",
    ("mcp.server.sse", "Received request without session_id"): "SSE message without session_id",
    ("mcp.server.sse", "Rejecting message for session"): "SSE session of another credential",
    ("mcp.server.transport_security", "Invalid Host header"): "Host header not allowed",
    ("mcp.server.transport_security", "Invalid Origin header"): "Origin header not allowed",
    ("mcp.server.transport_security", "Missing Host header"): "no Host header",
    (
        _SDK_MANAGER_LOG,
        "Rejected request with unknown or expired session ID",
    ): "unknown or expired MCP session",
    (_SDK_MANAGER_LOG, "Rejecting request for session"): "MCP session of another credential",
}
# INFO lines per session (a client may open and drop sessions in a loop): DEBUG only.
_SDK_PER_SESSION = (
    (_SDK_MANAGER_LOG, "Created new transport with session ID"),
    ("mcp.server.streamable_http", "Terminating session"),
)


class _SdkRequestNoiseFilter(logging.Filter):
    """Routes the SDK's per-request refusal lines (:data:`_SDK_REFUSALS`) into one
    :class:`RateLimitedLog` (no traceback: the cause is the client's input) and keeps its
    per-session INFO lines for DEBUG."""

    def __init__(self, refusals: RateLimitedLog) -> None:
        super().__init__()
        self.refusals = refusals

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        for (name, start), reason in _SDK_REFUSALS.items():
            if record.name == name and text.startswith(start):
                # Client-chosen text (a Host, a session id): escaped, cut short.
                self.refusals.record(reason, detail=ascii(record.getMessage())[1:161])
                return False
        if record.levelno == logging.INFO and any(
            record.name == name and text.startswith(start) for name, start in _SDK_PER_SESSION
        ):
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        if record.name == _SDK_MANAGER_LOG and text.endswith(" idle timeout"):
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def quiet_sdk_request_logs() -> None:
    """Install :class:`_SdkRequestNoiseFilter` on the SDK's loggers (once per process)."""
    names = {name for name, _ in _SDK_REFUSALS} | {name for name, _ in _SDK_PER_SESSION}
    loggers = [logging.getLogger(n) for n in sorted(names)]
    if any(isinstance(f, _SdkRequestNoiseFilter) for lg in loggers for f in lg.filters):
        return
    refused = _SdkRequestNoiseFilter(RateLimitedLog(log, "refused MCP requests"))
    for lg in loggers:
        lg.addFilter(refused)


# Who is opening a session: set per request (a contextvar follows the request's task into
# the SDK's admission, which runs under its creation lock).
_opening_for: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "proxbus_session_caller", default=None
)


class AdaptiveSessionManager(StreamableHTTPSessionManager):
    """Session manager whose sessions use :class:`AdaptiveTransport`, capped per caller.

    The SDK caps sessions globally (``max_sessions``) and expires idle ones
    (``session_idle_timeout``); this adds ``max_sessions_per_caller`` (per token name), so
    one client opening sessions in a loop cannot take every slot. A refused session gets the
    SDK's own answer: 503 "Too many open sessions".
    """

    def __init__(
        self,
        *args: Any,
        max_sessions_per_caller: int | None = None,
        other_sessions: dict[str, int] | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.max_sessions_per_caller = max_sessions_per_caller
        # Sessions held elsewhere (legacy SSE streams) per caller: they count against the caps.
        self.other_sessions = other_sessions if other_sessions is not None else {}
        self._session_callers: dict[str, str] = {}
        self.refused_sessions = 0
        # A client that never ends its sessions meets the cap on every request: one line,
        # then a count per interval (the metric counts each). The SDK's own WARNING for the
        # same refusal is dropped: it would be one line per request again.
        self.refusals = RateLimitedLog(log, "refused MCP sessions")
        sdk_log = logging.getLogger(_SDK_MANAGER_LOG)
        if not any(isinstance(f, _SdkRefusalFilter) for f in sdk_log.filters):
            sdk_log.addFilter(_SdkRefusalFilter())

    async def _handle_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        from .mcp_server import CALLER_STATE_KEY

        caller = scope.get("state", {}).get(CALLER_STATE_KEY)
        token = _opening_for.set(getattr(caller, "name", None))
        try:
            await super()._handle_request(scope, receive, send)
        finally:
            _opening_for.reset(token)

    def sessions_of(self, caller: str) -> int:
        """Open streamable HTTP sessions of ``caller`` (not counting other transports)."""
        return sum(1 for sid, who in self._session_callers.items() if who == caller)

    def _admit_session(self, requestor: Any) -> StreamableHTTPServerTransport | None:
        caller = _opening_for.get()
        for sid in [s for s in self._session_callers if s not in self._server_instances]:
            del self._session_callers[sid]  # ended sessions (discarded by the SDK)
        others = sum(self.other_sessions.values())
        if self.max_sessions is not None and self.open_sessions + others >= self.max_sessions:
            self.refused_sessions += 1
            self.refusals.record("MAX_SESSIONS", caller or "", f"{self.max_sessions} open")
            return None
        if (
            caller is not None
            and self.max_sessions_per_caller is not None
            and self.sessions_of(caller) + self.other_sessions.get(caller, 0)
            >= self.max_sessions_per_caller
        ):
            self.refused_sessions += 1
            self.refusals.record(
                "MAX_SESSIONS_PER_CALLER", caller, f"{self.max_sessions_per_caller} open"
            )
            return None
        transport = super()._admit_session(requestor)
        if transport is None:
            self.refused_sessions += 1
            self.refusals.record("MAX_SESSIONS", caller or "", f"{self.max_sessions} open")
            return None
        if caller is not None and transport.mcp_session_id is not None:
            self._session_callers[transport.mcp_session_id] = caller
        if type(transport) is not StreamableHTTPServerTransport:
            return transport
        # Re-class the freshly built transport: same state, one overridden method.
        transport.__class__ = AdaptiveTransport
        return transport

    @property
    def open_sessions(self) -> int:
        return len(self._server_instances)
