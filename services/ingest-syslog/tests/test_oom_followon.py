"""One OOM kill of a guest notifies once: the follow-on lines stay on the bus as details.

The kernel's OOM report opens with ``<comm> invoked oom-killer: gfp_mask=...`` (linux
mm/oom_kill.c dump_header, pr_warn) and the kill itself is ``oom-kill:...`` plus
``Killed process`` (dump_oom_summary, __oom_kill_process: the ``oom.kill`` event, one id).
__oom_kill_process also counts the kill in the victim's memory cgroup (memory.events
``oom_kill``), which systemd reads and reports as ``<unit>: A process of this unit has been
killed by the OOM killer.`` (src/core/cgroup.c unit_check_oom), then, with the default
OOMPolicy=stop, ``Failed with result 'oom-kill'``. Those lines follow a kernel kill that
already printed its own lines: they are plain ``syslog.message`` at info with
``metadata.detail_of = "oom.kill"`` (the dispatcher's seed floor for plain lines is notice).
systemd-oomd kills from user space and the kernel prints nothing: its line is the event.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from proxbus_events import Event, Severity
from proxbus_ingest_syslog.frames import Frame
from proxbus_ingest_syslog.pipeline import Pipeline
from proxbus_ingest_syslog.settings import Settings

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _event(line: str, pipeline: Pipeline | None = None) -> Event:
    result = (pipeline or Pipeline(Settings())).event_or_rejection(Frame(line.encode()), NOW)
    assert isinstance(result, Event), result
    return result


# One OOM kill of VM 121 as a PVE 8 host logs it (linux mm/oom_kill.c dump_header,
# dump_oom_summary, __oom_kill_process, oom_reap_task_mm; systemd src/core/cgroup.c
# unit_check_oom and the scope's OOMPolicy=stop result).
_OOM_KILL_OF_121 = [
    "<4>Nov 30 10:00:00 pve2 kernel: kvm invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_"
    "MOVABLE|__GFP_COMP), order=0, oom_score_adj=0",
    "<6>Nov 30 10:00:00 pve2 kernel: oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset="
    "qemu.slice,mems_allowed=0,global_oom,task_memcg=/qemu.slice/121.scope,task=kvm,pid=20431,"
    "uid=0",
    "<3>Nov 30 10:00:00 pve2 kernel: Out of memory: Killed process 20431 (kvm) total-vm:17231144kB"
    ", anon-rss:16652032kB, file-rss:2816kB, shmem-rss:4kB, UID:0 pgtables:33364kB "
    "oom_score_adj:0",
    "<6>Nov 30 10:00:00 pve2 kernel: oom_reaper: reaped process 20431 (kvm), now anon-rss:0kB, "
    "file-rss:0kB, shmem-rss:0kB",
    "<29>Nov 30 10:00:00 pve2 systemd[1]: 121.scope: A process of this unit has been killed by "
    "the OOM killer.",
    "<28>Nov 30 10:00:01 pve2 systemd[1]: 121.scope: Failed with result 'oom-kill'.",
]


def _notifies(event: Event) -> bool:
    """The dispatcher's seed routing: classified kinds, and plain lines from ``notice``."""
    return event.kind != "syslog.message" or event.severity.rank >= Severity.NOTICE.rank


def test_one_oom_kill_of_a_guest_notifies_once() -> None:
    pipeline = Pipeline(Settings())
    events = [_event(line, pipeline) for line in _OOM_KILL_OF_121]
    notifying: dict[str, Event] = {}
    for e in events:  # JetStream keeps the first of one id (the Nats-Msg-Id duplicate window)
        if _notifies(e):
            notifying.setdefault(e.id, e)
    assert [e.kind for e in notifying.values()] == ["oom.kill"], [
        (e.kind, e.severity.value, e.title) for e in notifying.values()
    ]
    assert next(iter(notifying.values())).vmid == 121
    follow_on = [e for e in events if e.kind == "syslog.message"]
    assert len(follow_on) == 4  # kept on the bus, not dropped
    for e in follow_on:
        assert e.severity == Severity.INFO
        assert e.metadata["detail_of"] == "oom.kill"
        assert e.metadata["syslog_severity"] in (3, 4, 5, 6)  # the line's own PRI is kept
    assert [e.vmid for e in follow_on] == [None, None, 121, 121]


def test_a_container_oom_unit_line_is_a_detail_of_the_kernel_kill() -> None:
    event = _event(
        "<28>Nov 30 10:00:00 pve4 systemd[1]: pve-container@205.service: A process of this unit "
        "has been killed by the OOM killer."
    )
    assert (event.kind, event.vmid, event.severity) == ("syslog.message", 205, Severity.INFO)
    assert event.metadata["detail_of"] == "oom.kill"


@pytest.mark.parametrize(("unit", "vmid"), [("121.scope", 121), ("pve-container@205.service", 205)])
def test_a_systemd_oomd_kill_is_the_oom_event_itself(unit: str, vmid: int) -> None:
    """systemd-oomd kills from user space (a cgroup kill): the kernel prints no OOM report,
    so systemd's line (src/core/cgroup.c unit_check_oomd_kill) is the only one."""
    event = _event(
        f"<29>Nov 30 10:00:00 pve2 systemd[1]: {unit}: systemd-oomd killed 3 process(es) in this "
        "unit."
    )
    assert (event.kind, event.vmid, event.severity) == ("oom.kill", vmid, Severity.ERROR)
    assert event.title == f"systemd-oomd killed 3 process(es) of guest {vmid}"


# The stack dump between the opening line and the kill, as kernel 6.8 prints it (dump_stack
# at the default level, warning) and a part of the memory state.
_REPORT_BODY = [
    "<4>Nov 30 10:00:00 pve2 kernel: CPU: 3 PID: 20440 Comm: kvm Tainted: P           O       "
    "6.8.12-4-pve #1",
    "<4>Nov 30 10:00:00 pve2 kernel: Hardware name: Supermicro Super Server/X11SPL-F, BIOS 3.9",
    "<4>Nov 30 10:00:00 pve2 kernel: Call Trace:",
    "<4>Nov 30 10:00:00 pve2 kernel:  <TASK>",
    "<4>Nov 30 10:00:00 pve2 kernel:  dump_stack_lvl+0x76/0xa0",
    "<4>Nov 30 10:00:00 pve2 kernel:  oom_kill_process+0x110/0x240",
    "<4>Nov 30 10:00:00 pve2 kernel:  </TASK>",
    "<6>Nov 30 10:00:00 pve2 kernel: Mem-Info:",
    "<4>Nov 30 10:00:00 pve2 kernel: active_anon:4163008 inactive_anon:12 isolated_anon:0",
]


def test_the_kernel_oom_report_between_its_first_line_and_the_kill_is_detail() -> None:
    pipeline = Pipeline(Settings())
    opening, summary, killed = _OOM_KILL_OF_121[0], _OOM_KILL_OF_121[1], _OOM_KILL_OF_121[2]
    other_host = "<4>Nov 30 10:00:00 pve3 kernel: Call Trace:"
    events = [_event(line, pipeline) for line in [opening, *_REPORT_BODY]]
    assert all(e.kind == "syslog.message" and e.severity == Severity.INFO for e in events)
    assert all(e.metadata["detail_of"] == "oom.kill" for e in events)
    assert "detail_of" not in _event(other_host, pipeline).metadata  # another host's lines
    assert _event(summary, pipeline).kind == "oom.kill"
    assert _event(killed, pipeline).kind == "oom.kill"
    after = _event(_REPORT_BODY[2], pipeline)  # the kill closed the report
    assert (after.severity, "detail_of" in after.metadata) == (Severity.WARNING, False)


def test_an_oom_report_without_its_kill_line_closes_after_a_bounded_number_of_lines() -> None:
    from proxbus_ingest_syslog.classify import OOM_REPORT_LINES

    pipeline = Pipeline(Settings())
    _event(_OOM_KILL_OF_121[0], pipeline)
    marked = sum(
        "detail_of" in _event(_REPORT_BODY[2], pipeline).metadata
        for _ in range(OOM_REPORT_LINES + 5)
    )
    assert marked == OOM_REPORT_LINES
