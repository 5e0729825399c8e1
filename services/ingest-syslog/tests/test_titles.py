"""What an operator reads: the titles of classified events.

A notification shows ``[SEVERITY] node: title``, so a classified event's title says the
happening in plain words: not the daemon's own level word (pmxcfs's qb_log format
``[%g] %p: %b``, pve-cluster src/pmxcfs/pmxcfs.c; vzdump's ``INFO:``), nor ``program:``.
Disk errors say the error (``I/O error on sdc``), not only the device.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from proxbus_events import Event, Severity
from proxbus_ingest_syslog.frames import Frame
from proxbus_ingest_syslog.pipeline import Pipeline
from proxbus_ingest_syslog.settings import Settings

from .corpus import CORPUS

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
# pmxcfs/corosync's "[group] level:" anywhere; a level word opening the title or a part of it
# ("INFO: ", "notice: "). An error text's own "error:" ("command error: ENOSPC") is content.
_LEVEL_WORD = re.compile(
    r"\[[\w ]{1,16}\]\s*(?:emerg|alert|crit|err|error|warning|notice|info|debug):|"
    r"(?:^|: )(?:INFO|WARN|WARNING|ERROR|notice|crit|err|info|debug|warning):\s"
)


def _event(line: str, pipeline: Pipeline | None = None) -> Event:
    result = (pipeline or Pipeline(Settings())).event_or_rejection(Frame(line.encode()), NOW)
    assert isinstance(result, Event), result
    return result


_CORPUS_EVENTS = [_event(line.raw) for line in CORPUS]


def test_quorum_lost_title_says_it_plainly() -> None:
    event = _event("<29>Nov 30 10:00:00 pve1 pmxcfs[1090]: [status] notice: node lost quorum")
    assert (event.kind, event.severity) == ("quorum.lost", Severity.ERROR)
    assert event.title == "Node lost quorum"


def test_no_classified_title_carries_a_level_word_or_the_program_prefix() -> None:
    wrong = [
        f"{e.metadata.get('rule')}: {e.title!r}"
        for e in _CORPUS_EVENTS
        if e.kind != "syslog.message"
        and (_LEVEL_WORD.search(e.title) or e.title.startswith(f"{e.metadata.get('app')}:"))
    ]
    assert not wrong, "\n".join(wrong)


def test_plain_lines_keep_the_line_as_title() -> None:
    event = _event("<29>Nov 30 10:00:00 pve3 pmxcfs[1091]: [dcdb] notice: leader is 1/1090")
    assert event.kind == "syslog.message"
    assert event.title == "pmxcfs: [dcdb] notice: leader is 1/1090"


@pytest.mark.parametrize(
    ("line", "title"),
    [
        ("<29>Nov 30 10:00:00 pve1 pvescheduler[7]: INFO: Backup job finished successfully",
         "Backup job finished successfully"),
        ("<27>Nov 30 10:00:00 pve1 pveupdate[7]: Renewing ACME certificate failed: Error: boom",
         "ACME certificate renewal failed: Error: boom"),
        ("<3>Nov 30 10:00:00 pve1 kernel: device-mapper: thin: 252:4: switching pool to "
         "out-of-data-space (queue IO) mode", "Thin pool 252:4 is out of data space"),
    ],
)  # fmt: skip
def test_titles_of_rules_without_their_own_wording(line: str, title: str) -> None:
    assert _event(line).title == title


_K = "<3>Nov 30 10:00:00 pve1 kernel: "
_Z = "<29>Nov 30 10:00:00 pve1 zed[912]: "
_S = "<26>Nov 30 10:00:00 pve1 smartd[880]: "


@pytest.mark.parametrize(
    ("line", "title"),
    [
        (f"{_K}I/O error, dev sdc, sector 1953525120 op 0x0:(READ) flags 0x0 phys_seg 1 prio "
         "class 2", "I/O error on sdc"),
        (f"{_K}critical medium error, dev sda, sector 12345 op 0x0:(READ) flags 0x0",
         "Critical medium error on sda"),
        (f"{_K}timeout error, dev sdd, sector 0 op 0x0:(READ) flags 0x0",
         "Timeout error on sdd"),
        (f"{_K}nvme nvme0: I/O tag 12 (a00c) opcode 0x1 (Write) QID 3 timeout, aborting",
         "I/O timeout on nvme0"),
        (f"{_K}nvme nvme1: controller is down; will reset: CSTS=0xffffffff, PCI_STATUS=0xffff",
         "NVMe controller nvme1 failed: controller is down"),
        (f"{_Z}eid=42 class=checksum pool='tank' vdev=sdb1 algorithm=fletcher4",
         "ZFS pool tank: checksum error on vdev sdb1"),
        (f"{_Z}eid=43 class=io pool='tank' vdev=sdb1 size=4096 offset=1234 priority=0 "
         "err=5 flags=0x180880", "ZFS pool tank: I/O error on vdev sdb1"),
        (f"{_Z}eid=44 class=data pool='tank' priority=0 err=52 flags=0x808881",
         "ZFS pool tank: data error"),
        (f"{_K}zio pool=rpool vdev=/dev/disk/by-id/ata-X-part3 error=5 type=1 offset=2 size=3 "
         "flags=4", "ZFS pool rpool: I/O error on vdev /dev/disk/by-id/ata-X-part3"),
        (f"{_S}Device: /dev/sda [SAT], 8 Currently unreadable (pending) sectors",
         "8 currently unreadable (pending) sectors on /dev/sda"),
        (f"{_S}Device: /dev/sdc [SAT], FAILED SMART self-check. BACK UP DATA NOW!",
         "SMART self-check failed on /dev/sdc"),
    ],
)  # fmt: skip
def test_disk_error_titles_say_what_happened(line: str, title: str) -> None:
    event = _event(line)
    assert (event.kind, event.title) == ("disk.error", title)


def test_every_disk_error_title_of_the_corpus_names_an_error_or_a_failure() -> None:
    said = re.compile(
        r"error|fail|timeout|not ready|sectors|critical|FAULTED|DEGRADED|UNAVAIL|REMOVED|"
        r"slow I/O|hung I/O|replicas|corrupt|bad label|unknown device",
        re.IGNORECASE,
    )
    vague = [e.title for e in _CORPUS_EVENTS if e.kind == "disk.error" and not said.search(e.title)]
    assert not vague, vague
    assert not [e.title for e in _CORPUS_EVENTS if e.title.startswith("Disk ")]
