"""Errors the dispatcher raises on purpose; each says why it exists."""

from __future__ import annotations

import proxbus_events


class DispatcherError(Exception):
    """Base class for dispatcher errors."""


class ConfigError(DispatcherError, proxbus_events.ConfigError):
    """Raised when ``routes.yaml`` is invalid; ``str()`` names the file, line and reason."""

    def __init__(self, reason: str, *, path: str = "", line: int | None = None) -> None:
        where = path or "<config>"
        if line is not None:
            where += f":{line}"
        super().__init__(f"{where}: {reason}")
        self.reason = reason
        self.path = path
        self.line = line


class DeliveryError(DispatcherError):
    """Base class for a notifier's failure to deliver one notification."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RetryableError(DeliveryError):
    """The target may accept the notification later (timeouts, 5xx, 429)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(DeliveryError):
    """The target will never accept this notification as sent (4xx, bad config)."""
