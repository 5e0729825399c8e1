"""Errors a tool call can end with; each carries an HTTP-like code for RPC and audit."""

from __future__ import annotations

import proxbus_events


class ToolFailure(Exception):
    """A tool call failed for a reason the caller can act on (shown as an ``isError`` result)."""

    code: int = 500

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidArgument(ToolFailure):
    """An argument failed validation before any request was built."""

    code = 400


class Forbidden(ToolFailure):
    """The caller's token lacks the scope or allowlist entry the call needs."""

    code = 403


class NotFound(ToolFailure):
    """The node, guest, cluster or task does not exist."""

    code = 404


class UpstreamError(ToolFailure):
    """Proxmox answered with an error or could not be reached."""

    code = 502


class EndpointDown(UpstreamError):
    """Every endpoint able to serve the request is down (circuit open) or unreachable."""

    code = 503


class ConfigError(proxbus_events.ConfigError, ValueError):
    """The gateway's configuration is invalid (raised at start, never during a call)."""
