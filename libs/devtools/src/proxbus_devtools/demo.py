"""``proxbus up --demo``: the console receiver, and the simulator's secrets kept off the screen.

The dispatcher gets a routes file with one ``console`` receiver, so the notifications the
default configuration would send are printed in the terminal (and counted like any
receiver's); plain log lines below ``notice`` go to a NATS subject instead, as the seed
leaves them out. The simulator prints its API tokens
and root password when it starts; those lines go to ``<data-dir>/demo/credentials.txt``
(mode 0600) instead of the terminal or its log, and every secret value is redacted from all
logs from then on.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from .childlogs import Redactor

DEMO_ROUTES = """\
# Written by `proxbus up --demo`: notifications printed in the terminal, as the default (seed)
# configuration would send them: plain log lines no rule recognised (syslog.message) from
# notice up (SEED_SYSLOG_MIN_SEVERITY), everything else from info.
receivers:
  - {name: terminal, type: console, max_lines: 1}
  - {name: quiet, type: nats, subject: proxbus.demo.quiet}
route:
  receiver: terminal
  routes:
    - matchers: ["kind=syslog.message", "severity<notice"]
      receiver: quiet
"""

# The simulator's start-up lines that carry a secret (proxbus_pvesim.__main__).
_SECRET_LINE = re.compile(
    r"^(API token|header|PBS token|read-only|password|admin token):\s+(?P<rest>.+)$"
)


def write_demo_routes(demo_dir: Path) -> Path:
    path = demo_dir / "routes.yaml"
    path.write_text(DEMO_ROUTES)
    return path


def write_demo_scenario(demo_dir: Path) -> Path:
    """The simulator's default lab with a fresh root password (its default is public)."""
    path = demo_dir / "scenario.yaml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(
            "# Written by `proxbus up --demo`: the default lab, a fresh root password.\n"
            f"root_password: {secrets.token_urlsafe(12)}\n"
        )
    return path


def secret_of(line: str) -> str | None:
    """The secret value in one of the simulator's credential lines, else None.

    ``token_value=S``, ``PVEAPIToken=u@r!t=S``, ``PBSAPIToken=u@r!t:S``, ``root@pam / S`` and
    ``Bearer S`` all end with it.
    """
    m = _SECRET_LINE.match(line.strip())
    if m is None:
        return None
    value = re.split(r"[=:/\s]", m.group("rest").rstrip())[-1]
    return value or None


class DemoCredentials:
    """``credentials.txt``: the simulator's secret lines, never shown, redacted everywhere."""

    def __init__(self, demo_dir: Path, redact: Redactor) -> None:
        self.path = demo_dir / "credentials.txt"
        self.redact = redact
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("# proxbus up --demo: the simulator's credentials (public demo values)\n")
        os.chmod(self.path, 0o600)

    def add(self, label: str, value: str) -> None:
        """Record one secret (e.g. the generated webhook secret) and redact it from now on."""
        self.redact.add([value])
        with self.path.open("a") as fh:
            fh.write(f"{label}: {value}\n")

    def capture(self, line: str) -> bool:
        """Whether ``line`` was a credential line (kept in the file instead of the log)."""
        secret = secret_of(line)
        if secret is None:
            return False
        self.redact.add([secret])
        with self.path.open("a") as fh:
            fh.write(line.rstrip("\n") + "\n")
        return True

    def add_env_file(self, env: dict[str, str]) -> None:
        """The token values of the simulator's env file for the gateway."""
        self.redact.add(v for k, v in env.items() if k.endswith(("_TOKEN_VALUE", "_PASSWORD")))
