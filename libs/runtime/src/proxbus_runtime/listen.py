"""A port that cannot be bound is a configuration problem: one line, exit 2, no traceback.

Every listener of a service (the health/metrics server, SMTP, syslog, Discord) binds inside
``listening(host, port, setting)``; ``main`` prints the ``ListenError`` as
``proxbus-<service>: cannot listen on 127.0.0.1:8080: address already in use (set HEALTH_PORT
to move it)`` and exits 2, as the MCP gateway does for ``GATEWAY_PORT``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from proxbus_events import ConfigError

__all__ = ["ListenError", "listening"]


class ListenError(ConfigError):
    """Raised when a listening socket cannot be bound; names the address and its setting."""

    def __init__(self, host: str, port: int, setting: str, reason: str) -> None:
        shown = f"[{host}]" if ":" in host else host
        super().__init__(f"cannot listen on {shown}:{port}: {reason} (set {setting} to move it)")
        self.host = host
        self.port = port
        self.setting = setting
        self.reason = reason


@contextlib.contextmanager
def listening(host: str, port: int, setting: str) -> Iterator[None]:
    """Turn the ``OSError`` of a bind in the block into a ``ListenError``.

    Raises:
        ListenError: the address is in use, not local, or not allowed.
    """
    try:
        yield
    except OSError as exc:
        # asyncio's text repeats the address ("error while attempting to bind on address
        # ('127.0.0.1', 8080): address already in use"): keep the reason only.
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc) or type(exc).__name__
        raise ListenError(host, port, setting, reason) from None
