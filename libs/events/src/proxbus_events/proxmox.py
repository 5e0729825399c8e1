"""Proxmox notification facts shared by every ingest path (mail, webhook, ...).

One failed backup must carry the same vmid whether it arrived as mail or as a webhook, so
the vzdump per-guest table is parsed in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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


def guest_id(text: str) -> int | None:
    """A guest id from digits, if it is one (PVE: 100 .. 999999999)."""
    return int(text) if text.isdigit() and len(text) <= 9 else None


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
