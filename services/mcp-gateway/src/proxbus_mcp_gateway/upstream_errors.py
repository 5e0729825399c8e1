"""Translation of upstream (aiohttp, API answer) exceptions into the gateway's errors.

:func:`map_exception` turns what a Proxmox call raised into a :class:`~.errors.ToolFailure`
(an answer for the caller) or a :class:`_Transient` failure that the pool may retry on another
attempt or member; :func:`describe_resource_error` renders an API error answer as text.
"""

from __future__ import annotations

import re
import ssl

from .config import Endpoint
from .errors import NotFound, ToolFailure, UpstreamError
from .upstream import AnswerTooLarge, ApiError

# Proxmox answers a missing object with a plain 500 whose reason says so (PVE
# PVE/API2/Tasks.pm and PBS src/api2/node/tasks.rs: "no such task"; "unable to parse worker
# upid"; qemu-server: "Configuration file ... does not exist"). Retrying cannot help: these
# are answered as 404 at once.
_MISSING = re.compile(
    r"no such (task|vm|container|guest|snapshot|file|storage|datastore)|does not exist|"
    r"unable to parse worker upid|not found",
    re.IGNORECASE,
)


class _Transient(Exception):
    """A failure worth retrying on another attempt or member (connection, timeout, 5xx)."""

    def __init__(self, message: str, *, sent: bool, answered: bool = False) -> None:
        super().__init__(message)
        self.sent = sent
        # The endpoint answered (an HTTP 5xx): worth retrying, but it is alive, so it must not
        # open the circuit breaker (Proxmox answers many plain errors with 500).
        self.answered = answered


def describe_resource_error(exc: ApiError) -> str:
    """``403 Permission check failed (/vms/100, VM.PowerMgmt)`` style text, no secrets."""
    code = exc.status_code
    reason = str(exc.content or exc.status_message or "").strip()
    errors = exc.errors
    if isinstance(errors, dict) and errors:
        detail = "; ".join(f"{k}: {str(v).strip()}" for k, v in sorted(errors.items()))
        return f"{code} {reason}: {detail}" if reason else f"{code} {detail}"
    if errors and not isinstance(errors, dict):
        return f"{code} {reason}: {str(errors)[:300]}"
    return f"{code} {reason}".strip()


def map_exception(exc: BaseException, ep: Endpoint, *, sent: bool) -> ToolFailure | _Transient:
    """Turn what an upstream call raised (:class:`~.upstream.ApiError`, aiohttp's errors,
    timeouts, bad answers) into a tool error or a retryable failure."""
    if isinstance(exc, ApiError):
        text = describe_resource_error(exc)
        code = int(exc.status_code)
        if code == 500 and _MISSING.search(text):
            return NotFound(text)
        if code >= 500 and code != 501:
            return _Transient(f"{ep.name}: {text}", sent=True, answered=True)
        if code == 401:
            return UpstreamError(
                f"401 authentication failed: the API token {ep.user}!{ep.token_name} "
                f"was refused by {ep.name}",
                code=502,
            )
        if code == 403:
            return ToolFailure(text, code=403)
        if code in (404, 501):
            # The audit and the RPC error keep the upstream's own status (501 = no such path).
            return NotFound(text, code=code)
        return ToolFailure(text, code=400 if code == 400 else code)
    if isinstance(exc, AnswerTooLarge):
        return UpstreamError(f"{ep.name}: {exc}")
    # Only calls (which imported aiohttp already) end up here.
    import aiohttp

    if isinstance(exc, aiohttp.ServerFingerprintMismatch | aiohttp.ClientSSLError | ssl.SSLError):
        hint = "certificate fingerprint mismatch" if ep.fingerprint else "certificate not trusted"
        return UpstreamError(
            f"TLS error talking to {ep.name} ({ep.address}): {hint}; set VERIFY_SSL to a CA file "
            f"or pin it with {ep.name.upper().replace('-', '_')}_FINGERPRINT"
        )
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return _Transient(f"{ep.name} ({ep.address}): connect timeout", sent=False)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return _Transient(f"{ep.name} ({ep.address}): no answer within the timeout", sent=sent)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _Transient(f"{ep.name} ({ep.address}): connection refused", sent=False)
    if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError | OSError):
        return _Transient(f"{ep.name} ({ep.address}): connection lost", sent=sent)
    if isinstance(exc, TimeoutError):
        return _Transient(f"{ep.name} ({ep.address}): call timed out", sent=sent)
    if isinstance(exc, ValueError):
        return UpstreamError(f"{ep.name}: invalid answer ({exc})")
    return UpstreamError(f"{ep.name}: {type(exc).__name__}")
