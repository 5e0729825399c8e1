"""The web console on the dispatcher's HTTP port: live events, incidents, silences, dead
letters and health (issue 16). ``ConsoleServer.add_routes`` mounts it next to ``/health`` and
``/metrics``; ``CONSOLE_ENABLED=false`` leaves it out."""

from .auth import ConsoleToken, TokenFormatError, is_loopback, parse_console_tokens
from .server import ConsoleServer

__all__ = [
    "ConsoleServer",
    "ConsoleToken",
    "TokenFormatError",
    "is_loopback",
    "parse_console_tokens",
]
