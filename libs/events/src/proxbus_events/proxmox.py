"""Proxmox facts shared by every service: UPIDs, host names, guest ids, the vzdump table.

One failed backup must carry the same vmid whether it arrived as mail, syslog or a webhook,
so each of these is parsed in exactly one place.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

# PVE (pve-common src/PVE/Tools.pm, upid_decode):
#   UPID:$node:$pid:$pstart:$starttime:$type:$id:$user:   pstart has 8 or 9 hex digits.
# PBS (proxmox-rs pbs-api-types/src/upid.rs): one more field, the task id, before starttime:
#   UPID:{node}:{pid:08X}:{pstart:08X}:{task_id:08X}:{starttime:08X}:{type}:{id}:{auth_id}:
# ``08X`` is a minimum width: pstart (clock ticks since boot) and the task counter may grow
# past 8 digits, so up to 16 are accepted.
UPID_PATTERN = (
    r"UPID:(?P<node>[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?):(?P<pid>[0-9A-Fa-f]{8}):"
    r"(?P<pstart>[0-9A-Fa-f]{8,16}):(?:(?P<taskid>[0-9A-Fa-f]{8,16}):)?(?P<start>[0-9A-Fa-f]{8}):"
    r"(?P<type>[^:\s]+):(?P<id>[^:\s]*):(?P<user>[^:\s]+):"
)
_UPID_RE = re.compile(UPID_PATTERN)
_HOST_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
VMID_MIN = 100
VMID_MAX = 999_999_999


@dataclass(slots=True, frozen=True)
class Upid:
    """A decoded Proxmox task id (PVE or PBS)."""

    text: str
    node: str
    pid: int
    starttime: int
    type: str
    id: str
    user: str
    pbs: bool

    @property
    def vmid(self) -> int | None:
        """The guest the task is about, when its id is one (``qmstart`` ``100``)."""
        return guest_id(self.id)


def _upid(match: re.Match[str]) -> Upid:
    return Upid(
        text=match.group(0),
        node=match["node"],
        pid=int(match["pid"], 16),
        starttime=int(match["start"], 16),
        type=match["type"],
        id=match["id"],
        user=match["user"],
        pbs=match["taskid"] is not None,
    )


def parse_upid(text: str) -> Upid | None:
    """``text`` as a whole UPID, or ``None`` when it is not one."""
    match = _UPID_RE.fullmatch(text)
    return _upid(match) if match else None


def find_upid(text: str) -> Upid | None:
    """The first UPID inside ``text`` (a log line, a mail body), or ``None``."""
    match = _UPID_RE.search(text)
    return _upid(match) if match else None


def short_host(name: object) -> str | None:
    """The short host name of ``name`` (``pve1.lab.example`` → ``pve1``).

    IP addresses stay whole; anything that is not a host name or address gives ``None``.
    """
    if not isinstance(name, str):
        return None
    host = name.strip().strip("[]<>'\"").rstrip(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    label = host.split(".", 1)[0]
    return label if _HOST_LABEL_RE.fullmatch(label) else None


_VZDUMP_HEADER_RE = re.compile(r"^\s*VMID\s+(?:NAME\s+)?STATUS\s+TIME\s+SIZE\b", re.IGNORECASE)
_STATUS_WORDS = {
    "ok": "ok",
    "success": "ok",
    "successful": "ok",
    "err": "failed",
    "error": "failed",
    "failed": "failed",
    "fail": "failed",
    "aborted": "failed",
    "todo": "failed",
}


@dataclass(slots=True, frozen=True)
class VzdumpGuest:
    """One row of a vzdump notification's per-guest table."""

    vmid: int
    name: str
    status: str  # "ok" or "failed"
    time: str
    size: str


def guest_id(text: object) -> int | None:
    """A guest id (PVE: 100 .. 999999999) from an int or a string of digits, else ``None``."""
    if isinstance(text, bool):
        return None
    if isinstance(text, int):
        value = text
    elif isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= 9:
        value = int(text)
    else:
        return None
    return value if VMID_MIN <= value <= VMID_MAX else None


def _parse_vzdump_row(line: str) -> VzdumpGuest | None:
    """One table row; columns are separated by two or more spaces (text and HTML tables)."""
    fields = re.split(r"\s{2,}|\t", line.strip())
    if not fields or guest_id(fields[0]) is None:
        return None
    named = len(fields) >= 3 and fields[2].lower() in _STATUS_WORDS
    if not named and len(fields) >= 2 and fields[1].lower() in _STATUS_WORDS:
        fields.insert(1, "")  # tables without a name column
    if len(fields) >= 3 and fields[2].lower() in _STATUS_WORDS:
        rest = [*fields[3:], "", ""]
        return VzdumpGuest(
            vmid=int(fields[0]),
            name=fields[1],
            status=_STATUS_WORDS[fields[2].lower()],
            time=rest[0],
            size=rest[1],
        )
    # Single-space separated: find the status word among the tokens.
    tokens = line.split()
    index = next((i for i, t in enumerate(tokens[1:], 1) if t.lower() in _STATUS_WORDS), None)
    if index is None:
        return None
    rest = [*tokens[index + 1 :], "", ""]
    return VzdumpGuest(
        vmid=int(tokens[0]),
        name=" ".join(tokens[1:index]),
        status=_STATUS_WORDS[tokens[index].lower()],
        time=rest[0],
        size=rest[1],
    )


def parse_vzdump_table(text: str) -> list[VzdumpGuest]:
    """The per-guest rows of a vzdump notification (text or HTML-derived text)."""
    guests: list[VzdumpGuest] = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if not _VZDUMP_HEADER_RE.match(line):
            continue
        for row in lines[index + 1 :]:
            if not row.strip() or set(row.strip()) <= set("-=+| "):
                continue
            guest = _parse_vzdump_row(row)
            if guest is None:
                break
            guests.append(guest)
        if guests:
            break
    return guests


def backup_subject_vmid(guests: list[VzdumpGuest], failed: bool) -> int | None:
    """The vmid a backup report is about: the one failed guest, or the only guest.

    ``None`` when several guests failed or, for a success, several guests were backed up.
    """
    bad = [g for g in guests if g.status != "ok"]
    if failed and len(bad) == 1:
        return bad[0].vmid
    if not bad and len(guests) == 1:
        return guests[0].vmid
    return None
