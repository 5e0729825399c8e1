"""Dedup (Alertmanager's notification log): the same fingerprint on the same route is notified
at most once per ``repeat_interval``; no I/O. The log itself is the ``notified`` map kept with
each fingerprint's incident (``stages/incidents``), persisted by ``state``."""

from __future__ import annotations

from ..config import Route


def within_repeat_interval(route: Route, last_notified: float | None, at: float) -> bool:
    """True if a notification on ``route`` at ``at`` repeats one sent at ``last_notified``
    within the route's ``repeat_interval`` (``0s`` turns dedup off)."""
    if route.repeat_interval <= 0 or last_notified is None:
        return False
    return at - last_notified < route.repeat_interval
