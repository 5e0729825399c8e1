"""Errors of the Discord endpoint; each says why it exists and which answer it leads to."""

from __future__ import annotations


class SignatureError(Exception):
    """Raised when a request is not signed by Discord or is too old: answered 401."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class InteractionError(Exception):
    """Raised when a verified body is not an interaction this endpoint handles: answered 4xx.

    ``outcome`` is the metrics label (``invalid``, ``unknown_type``, ``unknown_command``...).
    """

    def __init__(self, outcome: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.message = message
        self.status = status


class UsageError(Exception):
    """Raised when a command's arguments are wrong (a bad vmid, duration or matcher).

    Answered as a visible-only-to-you message, not an HTTP error: the interaction is valid.
    """
