"""The routes `proxbus up --demo` gives the dispatcher, loaded by the dispatcher's own loader.

The demo prints notifications the way the default (seed) configuration would send them: plain
log lines no rule recognised (``syslog.message``) only from ``notice`` up (the seed's
``SEED_SYSLOG_MIN_SEVERITY``), everything else from ``info``. Before, the terminal showed every
"pvedaemon: INFO: starting new backup job" and "qmeventd: Finished cleanup" line too: three or
four notifications per simulated backup, where a real deployment sends one or two.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from proxbus_devtools.demo import write_demo_routes
from proxbus_dispatcher.config.loading import load_config
from proxbus_dispatcher.settings import Settings
from proxbus_dispatcher.stages.routing import match_routes
from proxbus_events import Event


def _receivers(routes: Path, kind: str, severity: str) -> list[str]:
    config = load_config(routes)
    event = Event(source="syslog", site="lab", node="pve1", severity=severity, kind=kind,
                  title="t")  # fmt: skip
    return [route.receiver for route in match_routes(config.root, event)]


@pytest.mark.parametrize(
    ("kind", "severity", "printed"),
    [
        ("syslog.message", "info", False),
        ("syslog.message", "notice", True),
        ("syslog.message", "error", True),
        ("backup.failed", "error", True),
        ("backup.ok", "info", True),
        ("task.started", "info", True),
    ],
)
def test_the_demo_prints_what_the_seed_would_send(
    tmp_path: Path, kind: str, severity: str, printed: bool
) -> None:
    routes = write_demo_routes(tmp_path)
    assert ("terminal" in _receivers(routes, kind, severity)) is printed


def test_the_floor_the_demo_mirrors_is_the_seeds_default() -> None:
    """If SEED_SYSLOG_MIN_SEVERITY's default moves, the demo's routes must move with it."""
    assert Settings.model_fields["seed_syslog_min_severity"].default.value == "notice"
