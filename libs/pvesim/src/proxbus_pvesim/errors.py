"""Exceptions that carry a Proxmox-style outcome."""

from __future__ import annotations


class ApiError(Exception):
    """Raised by a handler to answer with a Proxmox status line (reason) and optional field errors."""

    status: int
    reason: str
    errors: dict[str, str] | None

    def __init__(self, status: int, reason: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.errors = errors


class TaskFailure(Exception):
    """Raised inside a simulated task: the task ends with ``TASK ERROR: <message>``."""

    message: str

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ScenarioError(ValueError):
    """Raised when a scenario file or dict does not describe a valid lab."""


def permission_denied(path: str, privs: str) -> ApiError:
    """Build the 403 the real API answers when an ACL check fails."""
    return ApiError(403, f"Permission check failed ({path}, {privs})")
