"""Classifier behaviour beyond the corpus: task details, ids, floors, the indexed table."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from proxbus_events import Event, Severity
from proxbus_ingest_syslog.classify import RULES, Classifier, rule
from proxbus_ingest_syslog.frames import Frame
from proxbus_ingest_syslog.parse import SyslogMessage
from proxbus_ingest_syslog.pipeline import Pipeline
from proxbus_ingest_syslog.settings import Settings

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
U1 = "UPID:pve1:00003039:00A1B2C3:65F0A1B2:qmstart:100:root@pam:"


def _event(line: str, **settings: object) -> Event:
    result = Pipeline(Settings(**settings)).event_or_rejection(Frame(line.encode()), NOW)
    assert isinstance(result, Event), result
    return result


def test_failed_task_carries_upid_error_and_error_severity() -> None:
    event = _event(f"<30>Nov 24 10:00:00 pve1 pvedaemon[1]: <root@pam> end task {U1} boom")
    assert event.correlation_id == U1
    assert event.severity == Severity.ERROR
    assert event.title == "Task qmstart 100 failed: boom"
    assert event.metadata["task_type"] == "qmstart"
    assert event.metadata["user"] == "root@pam"
    assert event.metadata["status"] == "boom"


def test_task_with_warnings_is_ok_at_warning_severity() -> None:
    event = _event(f"<30>Nov 24 10:00:00 pve1 pvedaemon[1]: <root@pam> end task {U1} WARNINGS: 3")
    assert (event.kind, event.severity) == ("task.ok", Severity.WARNING)


def test_same_task_end_seen_twice_gets_the_same_event_id() -> None:
    line = f"<30>Nov 24 10:00:00 pve1 pvedaemon[1]: <root@pam> end task {U1} OK"
    assert _event(line).id == _event(line).id


def test_oom_lines_of_one_kill_share_one_event_id() -> None:
    summary = (
        "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=qemu.slice,mems_allowed=0,"
        "global_oom,task_memcg=/qemu.slice/100.scope,task=kvm,pid=4242,uid=0"
    )
    killed = "Out of memory: Killed process 4242 (kvm) total-vm:8912344kB, anon-rss:8123456kB"
    first = _event(f"<6>Nov 24 10:00:00 pve2 kernel: {summary}")
    second = _event(f"<3>Nov 24 10:00:00 pve2 kernel: {killed}")
    assert first.id == second.id
    assert first.severity == second.severity == Severity.ERROR


@pytest.mark.parametrize(
    ("kind", "text", "floor"),
    [
        ("node.fencing", "node 'pve2': state changed from 'unknown' => 'fence'", Severity.CRITICAL),
        ("link.down", "  [KNET  ] link: host: 2 link: 0 is down", Severity.WARNING),
    ],
)
def test_severity_floor_applies_on_top_of_pri(kind: str, text: str, floor: Severity) -> None:
    app = "pve-ha-crm" if kind == "node.fencing" else "corosync"
    event = _event(f"<30>Nov 24 10:00:00 pve1 {app}[1]: {text}")
    assert (event.kind, event.severity) == (kind, floor)


def test_plain_lines_keep_pri_severity() -> None:
    assert _event("<27>Nov 24 10:00:00 pve1 systemd[1]: x failed").severity == Severity.ERROR
    assert _event("<31>Nov 24 10:00:00 pve1 systemd[1]: debug").severity == Severity.DEBUG


def test_hostname_map_renames_nodes_including_fenced_ones() -> None:
    event = _event(
        "<30>Nov 24 10:00:00 pve1.lab.example pve-ha-crm[1]: node 'pve2' : x",
        hostname_map="pve1.lab.example=alpha",
    )
    assert event.node == "alpha"
    fenced = _event(
        "<30>Nov 24 10:00:00 pve1 pve-ha-crm[1]: fencing: acknowledged - got agent lock for node 'pve2'",
        hostname_map="pve2=beta",
    )
    assert fenced.node == "beta"
    assert fenced.metadata["reporter"] == "pve1"


def test_rfc5424_pve_line_is_classified_like_rfc3164() -> None:
    line = f"<30>1 2026-11-24T10:00:00.123456+01:00 pve3.lab.example pvedaemon 2222 - - <root@pam> end task {U1} OK"
    event = _event(line)
    assert (event.kind, event.node, event.vmid) == ("task.ok", "pve3", 100)
    assert event.timestamp == datetime(2026, 11, 24, 9, 0, 0, 123456, tzinfo=UTC)


def test_adding_a_rule_is_one_entry() -> None:
    extra = rule("test", r"myapp", r"^disk (?P<dev>\w+) on fire$", "disk.error")
    classifier = Classifier([extra, *RULES])
    msg = SyslogMessage(pri=30, message="disk sda on fire", format="rfc3164", app="myapp")
    assert classifier.classify(msg).kind == "disk.error"
    assert Classifier().classify(msg).kind == "syslog.message"


def test_a_line_runs_only_its_programs_rules() -> None:
    table = Classifier().table
    kernel = {r.name for r in table.rules_for("kernel")}
    assert "oom-cgroup" in kernel
    assert "task-end" not in kernel
    assert "no-space" in kernel  # any-program rules apply everywhere
    unknown = {r.name for r in table.rules_for("some-daemon")}
    assert unknown == {r.name for r in RULES if "*" in r.programs}
    assert table.rules_for("PVEDaemon") == table.rules_for("pvedaemon")


def test_vzdump_task_end_is_a_task_outcome_not_a_backup_kind() -> None:
    line = (
        "<27>Nov 24 10:00:00 pve1 pvescheduler[3456]: <root@pam> end task "
        "UPID:pve1:00002F3A:0012AB34:65F0B000:vzdump::root@pam: job errors"
    )
    event = _event(line)
    assert (event.kind, event.vmid, event.severity) == ("task.failed", None, Severity.ERROR)


def test_fencing_lines_are_about_the_fenced_node() -> None:
    for text, kind in [
        ("node 'pve2': state changed from 'unknown' => 'fence'", "node.fencing"),
        ("fencing: acknowledged - got agent lock for node 'pve2'", "node.fenced"),
        ("node 'pve2': state changed from 'online' => 'unknown'", "node.offline"),
    ]:
        event = _event(f"<30>Nov 24 10:00:00 pve1 pve-ha-crm[1500]: {text}")
        assert (event.kind, event.node, event.metadata["reporter"]) == (kind, "pve2", "pve1")


def test_single_guest_needs_exactly_one_guest() -> None:
    from proxbus_ingest_syslog.rules import single_guest

    assert single_guest("VM 100 qmp command failed - VM 100 not running") == 100
    assert single_guest("migrate vm:100 and vm:101") is None
    assert single_guest("121.scope: Failed with result 'oom-kill'.") == 121
    assert single_guest("session-42.scope: Deactivated successfully.") is None


def test_task_vmid_reads_pve_ids_and_pbs_guest_groups() -> None:
    from proxbus_events.proxmox import find_upid
    from proxbus_ingest_syslog.rules import task_vmid

    def vmid(text: str) -> int | None:
        upid = find_upid(text)
        assert upid is not None
        return task_vmid(upid)

    assert vmid(U1) == 100
    pbs = "UPID:pbs1:00000332:00000B6C:00000005:65F0A1B4"
    assert vmid(f"{pbs}:backup:store1\\x3avm-100:root@pam:") == 100
    assert vmid(f"{pbs}:verify_group:store1\\x3act\\x2f205:root@pam:") == 205
    assert vmid(f"{pbs}:garbage_collection:store1:root@pam:") is None
    assert vmid(f"{pbs}:verificationjob:store1\\x3av\\x2d3f1a:root@pam:") is None


_FRAGMENTS = sorted({n for r in RULES for n in r.needles} | {"'", ":", " ", "100", "vm:", "="})


@settings(max_examples=300, deadline=None)
@given(
    program=st.sampled_from([*Classifier().table.programs, "", "unknown"]),
    parts=st.lists(st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=12)), max_size=12),
)
def test_classifier_never_raises_on_needle_soup(program: str, parts: list[str]) -> None:
    msg = SyslogMessage(pri=30, message="".join(parts), format="rfc3164", app=program)
    result = Classifier().classify(msg)
    assert result.kind
    assert result.vmid is None or 100 <= result.vmid <= 999_999_999


def test_vzdump_lines_of_the_task_worker_carry_its_upid() -> None:
    """The worker's pid is the UPID's (pve-common RESTEnvironment.pm fork_worker), so a backup
    job's own lines get the task's UPID; another pid or a finished task does not."""
    upid = "UPID:pve1:000A1B2C:00A1B2C3:65F0A1B2:vzdump:100:root@pam:"  # pid 0xA1B2C = 662316
    pipeline = Pipeline(Settings())

    def event(app: str, pid: int, text: str, host: str = "pve1") -> Event:
        line = f"<30>Nov 24 10:00:00 {host} {app}[{pid}]: {text}"
        result = pipeline.event_or_rejection(Frame(line.encode()), NOW)
        assert isinstance(result, Event), result
        return result

    event("pvedaemon", 1401, f"<root@pam> starting task {upid}")
    guest = event("pvedaemon", 662316, "ERROR: Backup of VM 100 failed - boom")
    job = event("pvedaemon", 662316, "INFO: Backup job finished with errors")
    other = event("pvedaemon", 662317, "INFO: Backup job finished with errors")
    assert (guest.kind, guest.vmid, guest.correlation_id) == ("backup.failed", 100, upid)
    assert (job.kind, job.vmid, job.correlation_id) == ("backup.failed", None, upid)
    assert other.correlation_id is None
    end = event("pvedaemon", 1401, f"<root@pam> end task {upid} job errors")
    assert (end.kind, end.correlation_id) == ("task.failed", upid)
    after = event("pvedaemon", 662316, "INFO: Backup job finished with errors")
    assert after.correlation_id is None
    event("pvedaemon", 1401, f"<root@pam> starting task {upid}")
    on_other_host = event("pvedaemon", 662316, "ERROR: Backup of VM 100 failed - x", "pve2")
    assert on_other_host.correlation_id is None
