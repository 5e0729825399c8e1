import pytest
from hypothesis import given
from hypothesis import strategies as st
from proxbus_events import Severity
from proxbus_ingest_pve_ws.tasks import (
    is_task_line,
    log_event,
    parse_log_entry,
    parse_task,
    task_events,
)

UPID = "UPID:pve1:00001234:00ABCDEF:65F00000:{type}:{id}:root@pam:"


def _entry(
    ttype: str, tid: str = "100", status: str = "OK", end: int = 1_710_000_010
) -> dict[str, object]:
    return {
        "upid": UPID.format(type=ttype, id=tid),
        "node": "pve1",
        "pid": 4660,
        "pstart": 1,
        "starttime": 1_710_000_000,
        "type": ttype,
        "id": tid,
        "user": "root@pam",
        "endtime": end,
        "status": status,
    }


def test_running_task_is_not_finished() -> None:
    e = _entry("qmstart")
    del e["endtime"], e["status"]
    assert parse_task(e) is None


def test_qmstart_ok_gives_task_ok_and_vm_started() -> None:
    task = parse_task(_entry("qmstart"))
    assert task is not None
    kinds = [e.kind for e in task_events(task, cluster="lab", site="lab")]
    assert kinds == ["task.ok", "vm.started"]
    ev = task_events(task, cluster="lab", site="lab")[0]
    assert ev.vmid == 100
    assert ev.correlation_id == task.upid
    assert ev.metadata["duration"] == 10


def test_qmshutdown_ok_gives_vm_stopped() -> None:
    task = parse_task(_entry("qmshutdown"))
    assert task is not None
    assert [e.kind for e in task_events(task, cluster="lab", site="lab")] == [
        "task.ok",
        "vm.stopped",
    ]


def test_failed_backup_carries_error_and_log_tail() -> None:
    task = parse_task(_entry("vzdump", status="job errors"))
    assert task is not None
    [ev] = task_events(task, cluster="lab", site="lab", log_tail=["INFO: x", "ERROR: disk full"])
    assert ev.kind == "backup.failed"
    assert ev.severity == Severity.ERROR
    assert "job errors" in ev.title
    assert "ERROR: disk full" in ev.message


def test_warnings_are_not_failures() -> None:
    task = parse_task(_entry("vzdump", status="WARNINGS: 2"))
    assert task is not None
    [ev] = task_events(task, cluster="lab", site="lab")
    assert (ev.kind, ev.severity) == ("backup.ok", Severity.WARNING)


@pytest.mark.parametrize(
    ("ttype", "kind"),
    [
        ("qmigrate", "task.failed"),
        ("replication", "replication.failed"),
        ("qmstart", "task.failed"),
    ],
)
def test_failed_tasks_have_failure_kinds_and_no_state_event(ttype: str, kind: str) -> None:
    task = parse_task(_entry(ttype, status="some error"))
    assert task is not None
    assert [e.kind for e in task_events(task, cluster="lab", site="lab")] == [kind]


def test_task_event_ids_are_deterministic_per_cluster() -> None:
    task = parse_task(_entry("qmstart"))
    assert task is not None
    a = [e.id for e in task_events(task, cluster="lab", site="lab")]
    b = [e.id for e in task_events(task, cluster="lab", site="lab")]
    c = [e.id for e in task_events(task, cluster="other", site="lab")]
    assert a == b
    assert a != c


def test_cluster_log_entry_severity_from_pri() -> None:
    entry = parse_log_entry(
        {
            "uid": 5,
            "time": 1_710_000_000,
            "node": "pve2",
            "pid": 1,
            "tag": "pvedaemon",
            "pri": 3,
            "user": "root@pam",
            "msg": "something broke",
        }
    )
    assert entry is not None
    ev = log_event(entry, cluster="lab", site="lab")
    assert (ev.kind, ev.severity, ev.node) == ("syslog.message", Severity.ERROR, "pve2")


def test_auth_failure_in_cluster_log_is_auth_failed() -> None:
    entry = parse_log_entry(
        {
            "uid": 6,
            "time": 1,
            "node": "pve1",
            "pri": 6,
            "tag": "pvedaemon",
            "msg": "authentication failure; rhost=::ffff:10.0.0.9 user=root@pam msg=no such user",
        }
    )
    assert entry is not None
    ev = log_event(entry, cluster="lab", site="lab")
    assert (ev.kind, ev.severity) == ("auth.failed", Severity.WARNING)


def test_task_lines_in_cluster_log_are_recognised() -> None:
    entry = parse_log_entry(
        {
            "uid": 7,
            "time": 1,
            "node": "pve1",
            "pri": 6,
            "tag": "pvedaemon",
            "msg": "<root@pam> end task UPID:pve1:0000:0000:0000:qmstart:100:root@pam: OK",
        }
    )
    assert entry is not None
    assert is_task_line(entry)


_values = st.one_of(st.none(), st.booleans(), st.integers(-5, 2**40), st.text(max_size=30))


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "upid",
                "node",
                "type",
                "id",
                "user",
                "starttime",
                "endtime",
                "status",
                "worker_type",
                "worker_id",
            ]
        ),
        _values,
    )
)
def test_arbitrary_task_entries_never_raise(entry: dict[str, object]) -> None:
    entry.setdefault("upid", UPID.format(type="qmstart", id="100"))
    entry.setdefault("status", "OK")
    task = parse_task(entry)
    if task is not None:
        task_events(task, cluster="lab", site="lab", log_tail=["x"])


@given(
    st.dictionaries(
        st.sampled_from(["uid", "time", "node", "pid", "tag", "pri", "user", "msg"]), _values
    )
)
def test_arbitrary_log_entries_never_raise(entry: dict[str, object]) -> None:
    entry.setdefault("uid", 1)
    entry.setdefault("time", 1_700_000_000)
    entry.setdefault("msg", "x")
    parsed = parse_log_entry(entry)
    if parsed is not None:
        log_event(parsed, cluster="lab", site="lab")
