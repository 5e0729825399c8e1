"""The ``/proxbus`` slash command: its definition (registered with Discord) and its parsing.

One top-level command with subcommands keeps the bot to a single entry in Discord's command
picker. Option types are Discord's "Application Command Option Type": 1 SUB_COMMAND,
3 STRING, 4 INTEGER.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from proxbus_events import Matcher, Severity
from pydantic import ValidationError

from .errors import InteractionError, UsageError

COMMAND_NAME = "proxbus"
SUB_COMMAND, STRING, INTEGER = 1, 3, 4
ACTIONS = ("start", "stop", "reboot")
READS = ("status", "vms", "events")
CHANGES = ("silence", *ACTIONS)
SUBCOMMANDS = (*READS, *CHANGES)
VMID_MIN, VMID_MAX = 100, 999_999_999
MAX_SILENCE = timedelta(days=7)
TARGET_MAX, DURATION_MAX = 512, 16
_NODE_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")
_FINGERPRINT_RE = re.compile(r"^[0-9a-f]{8,64}$")
_DURATION_PART = re.compile(r"([0-9]{1,6})([smhdw])")  # ASCII: \d takes any Unicode digit
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _vmid_option(verb: str) -> dict[str, Any]:
    return {
        "type": INTEGER,
        "name": "vmid",
        "description": f"Guest to {verb} (VM or container id)",
        "required": True,
        "min_value": VMID_MIN,
        "max_value": VMID_MAX,
    }


COMMAND_DEFINITION: dict[str, Any] = {
    "name": COMMAND_NAME,
    "type": 1,
    "description": "Look at and act on the Proxmox lab through proxbus",
    "options": [
        {
            "type": SUB_COMMAND,
            "name": "status",
            "description": "Cluster summary: quorum, nodes, guests",
        },
        {
            "type": SUB_COMMAND,
            "name": "vms",
            "description": "List the VMs, optionally of one node",
            "options": [
                {"type": STRING, "name": "node", "description": "Node name", "required": False}
            ],
        },
        {
            "type": SUB_COMMAND,
            "name": "events",
            "description": "Recent events from the bus",
            "options": [
                {
                    "type": STRING,
                    "name": "severity",
                    "description": "Lowest severity shown (default warning)",
                    "required": False,
                    "choices": [{"name": s.value, "value": s.value} for s in Severity],
                }
            ],
        },
        {
            "type": SUB_COMMAND,
            "name": "silence",
            "description": "Mute notifications of an alert (fingerprint) or matchers for a while",
            "options": [
                {
                    "type": STRING,
                    "name": "target",
                    "description": "Alert fingerprint, or matchers like node=pve2,kind=backup.*",
                    "required": True,
                    "max_length": TARGET_MAX,
                },
                {
                    "type": STRING,
                    "name": "duration",
                    "description": "How long, e.g. 30m, 1h, 2d (at most 7d)",
                    "required": True,
                    "max_length": DURATION_MAX,
                },
            ],
        },
        *(
            {
                "type": SUB_COMMAND,
                "name": verb,
                "description": f"{verb.capitalize()} a guest (operators only, asks to confirm)",
                "options": [_vmid_option(verb)],
            }
            for verb in ACTIONS
        ),
    ],
}


@dataclass(slots=True, frozen=True)
class Command:
    """A parsed ``/proxbus <name> ...``: the subcommand and its validated arguments."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    usage_error: str | None = None

    @property
    def is_change(self) -> bool:
        """Changes something (operators only)."""
        return self.name in CHANGES


def parse_command(data: dict[str, Any]) -> Command:
    """The subcommand of an APPLICATION_COMMAND interaction's ``data``.

    An argument that is out of range or malformed gives a command with ``usage_error`` set
    (answered to the user, audited), not an exception.

    Raises:
        InteractionError: not ``/proxbus`` or an unknown subcommand (``unknown_command``).
    """
    if data.get("name") != COMMAND_NAME:
        raise InteractionError("unknown_command", f"unknown command {str(data.get('name'))[:64]!r}")
    options = data.get("options")
    if not isinstance(options, list) or len(options) != 1 or not isinstance(options[0], dict):
        raise InteractionError("unknown_command", "expected exactly one /proxbus subcommand")
    sub = options[0]
    name = sub.get("name")
    if sub.get("type") != SUB_COMMAND or name not in SUBCOMMANDS:
        raise InteractionError("unknown_command", f"unknown subcommand {str(name)[:64]!r}")
    given = sub.get("options") or []
    if not isinstance(given, list):  # iterating an int raised TypeError: answered 503
        raise InteractionError("invalid", "subcommand options must be a list")
    values: dict[str, Any] = {}
    for opt in given:
        if isinstance(opt, dict) and isinstance(opt.get("name"), str):
            values[opt["name"]] = opt.get("value")
    try:
        return Command(name, _arguments(name, values))
    except UsageError as exc:
        raw = {k: str(v)[:64] for k, v in list(values.items())[:5]}
        return Command(name, raw, usage_error=str(exc))


def _arguments(name: str, values: dict[str, Any]) -> dict[str, Any]:
    if name == "status":
        return {}
    if name == "vms":
        node = values.get("node")
        if node is None:
            return {}
        if not isinstance(node, str) or not _NODE_RE.match(node):
            raise UsageError(f"not a node name: {str(node)[:64]!r}")
        return {"node": node}
    if name == "events":
        severity = values.get("severity") or Severity.WARNING.value
        try:
            return {"severity": Severity(severity).value}
        except ValueError:
            raise UsageError(f"unknown severity {str(severity)[:32]!r}") from None
    if name == "silence":
        target, duration = values.get("target"), values.get("duration")
        if not isinstance(target, str) or not isinstance(duration, str):
            raise UsageError("silence needs a target and a duration")
        # The registered max_length, enforced here too (not only by Discord).
        if len(target) > TARGET_MAX:
            raise UsageError(f"the target is at most {TARGET_MAX} characters")
        if len(duration) > DURATION_MAX:
            raise UsageError(f"the duration is at most {DURATION_MAX} characters (e.g. 1h)")
        matchers = silence_matchers(target)
        seconds = int(parse_duration(duration).total_seconds())
        return {"matchers": [str(m) for m in matchers], "seconds": seconds}
    vmid = values.get("vmid")
    if isinstance(vmid, bool) or not isinstance(vmid, int) or not VMID_MIN <= vmid <= VMID_MAX:
        raise UsageError(f"vmid must be a number from {VMID_MIN} to {VMID_MAX}")
    return {"vmid": vmid}


def silence_matchers(target: str) -> list[Matcher]:
    """An alert fingerprint (hex) or comma-separated matchers (``node=pve2,kind=backup.*``).

    Raises:
        UsageError: neither a fingerprint nor valid matchers.
    """
    text = target.strip()
    if _FINGERPRINT_RE.match(text):
        return [Matcher(name="fingerprint", op="=", value=text)]
    parts = [p for p in text.split(",") if p.strip()]
    if not parts or len(parts) > 10:
        raise UsageError("give an alert fingerprint or 1 to 10 matchers like node=pve2")
    matchers = []
    for part in parts:
        try:
            matchers.append(Matcher.parse(part))
        except ValidationError as exc:
            why = exc.errors()[0]["msg"]
            raise UsageError(f"not a matcher {part.strip()[:64]!r}: {why}"[:300]) from None
        except ValueError as exc:
            raise UsageError(str(exc)[:300]) from None
    return matchers


def parse_duration(text: str) -> timedelta:
    """``30m``, ``1h``, ``1h30m``, ``2d``, ``1w`` (at most 7 days).

    Raises:
        UsageError: not such a duration, zero, or longer than 7 days.
    """
    compact = text.strip().lower().replace(" ", "")
    pos, seconds = 0, 0
    for match in _DURATION_PART.finditer(compact):
        if match.start() != pos:
            break
        seconds += int(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
        if seconds > MAX_SILENCE.total_seconds():  # "999999w" * 200 overflowed timedelta
            raise UsageError("a silence lasts from 1 second to 7 days")
    if pos == 0 or pos != len(compact):
        raise UsageError(f"not a duration: {text[:16]!r} (e.g. 30m, 1h, 2d)")
    duration = timedelta(seconds=seconds)
    if not timedelta(0) < duration <= MAX_SILENCE:
        raise UsageError("a silence lasts from 1 second to 7 days")
    return duration
