import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from proxbus_events import Severity
from proxbus_ingest_pve_ws.notification import (
    NotificationError,
    gotify_event,
    gotify_priority_severity,
    parse_webhook_body,
    webhook_event,
)


def _body(**over: object) -> dict[str, object]:
    body: dict[str, object] = {
        "title": "vzdump backup status (pve1.example.com): backup failed",
        "message": "100: ERROR: job failed with err -5 - Input/output error",
        "severity": "error",
        "timestamp": 1_732_400_000,
        "fields": {"type": "vzdump", "hostname": "pve1.example.com", "job-id": "backup-d1"},
    }
    body.update(over)
    return body


def test_documented_body_for_failed_backup_is_backup_failed() -> None:
    ev = webhook_event(_body(), site="lab")
    assert ev.kind == "backup.failed"
    assert ev.severity == Severity.ERROR
    assert ev.node == "pve1"
    assert ev.correlation_id == "backup-d1"
    assert ev.timestamp.timestamp() == 1_732_400_000
    assert ev.source == "pve-webhook"


VZDUMP_TABLE = """Details
=======
VMID    Name    Status    Time    Size           Filename
100     web1    ok        12s     1.2 GiB        vzdump-qemu-100.vma.zst
101     db1     err       3s      0 B            null
102     cache   ok        5s      200 MiB        vzdump-lxc-102.tar.zst

Total running time: 20s
"""


def test_failed_backup_names_the_one_failed_guest_from_the_table() -> None:
    ev = webhook_event(_body(message=VZDUMP_TABLE), site="lab")
    assert ev.kind == "backup.failed"
    assert ev.vmid == 101
    assert [g["vmid"] for g in ev.metadata["guests"]] == [100, 101, 102]


def test_several_failed_guests_leave_vmid_empty_and_list_them() -> None:
    table = VZDUMP_TABLE.replace("100     web1    ok", "100     web1    err")
    ev = webhook_event(_body(message=table), site="lab")
    assert ev.vmid is None
    assert ev.metadata["failed_vmids"] == [100, 101]


def test_a_vmid_field_wins_over_the_table() -> None:
    fields = {"type": "vzdump", "hostname": "pve1", "vmid": "999"}
    assert webhook_event(_body(message=VZDUMP_TABLE, fields=fields), site="lab").vmid == 999


@pytest.mark.parametrize(
    ("ntype", "severity", "kind"),
    [
        ("vzdump", "info", "backup.ok"),
        ("replication", "error", "replication.failed"),
        ("package-updates", "info", "updates.available"),
        ("system-mail", "info", "webhook.message"),
        ("gc", "error", "gc.failed"),
        ("gc", "info", "gc.ok"),
        ("verification", "error", "verify.failed"),
        ("sync", "info", "sync.ok"),
        ("prune", "error", "prune.failed"),
        ("tape-backup", "info", "tape.ok"),
        ("acme", "error", "acme.failed"),
        ("something-new", "warning", "webhook.message"),
    ],
)
def test_notification_type_and_severity_give_the_kind(ntype: str, severity: str, kind: str) -> None:
    ev = webhook_event(_body(title="x", severity=severity, fields={"type": ntype}), site="lab")
    assert ev.kind == kind


def test_fencing_is_critical_and_about_the_fenced_node() -> None:
    ev = webhook_event(
        _body(
            title="Trying to fence node 'pve2'",
            severity="error",
            fields={"type": "fencing", "hostname": "pve1"},
        ),
        site="lab",
    )
    assert (ev.kind, ev.severity, ev.node) == ("node.fencing", Severity.CRITICAL, "pve2")


def test_successful_fence_notification_is_node_fenced() -> None:
    # pve-ha-manager fencing-subject.txt.hbs with is-success; metadata hostname = failed node
    ev = webhook_event(
        _body(
            title="Successfully fenced node 'pve2'",
            severity="error",
            fields={"type": "fencing", "hostname": "pve2"},
        ),
        site="lab",
    )
    assert (ev.kind, ev.severity, ev.node) == ("node.fenced", Severity.CRITICAL, "pve2")


def test_same_body_twice_has_the_same_id() -> None:
    assert webhook_event(_body(), site="lab").id == webhook_event(_body(), site="lab").id


def test_test_notification_is_recognised() -> None:
    ev = webhook_event(_body(title="Test notification", severity="info", fields={}), site="lab")
    assert ev.kind == "test.notification"


def test_plain_text_body_is_accepted() -> None:
    data = parse_webhook_body(b"backup done\nall good", "text/plain")
    assert webhook_event(data, site="lab").title == "backup done"


@pytest.mark.parametrize("body", [b"", b"   ", b"{not json", b"[1,2]", b"\xff\xfe"])
def test_malformed_bodies_raise_a_clear_error(body: bytes) -> None:
    with pytest.raises(NotificationError):
        parse_webhook_body(body, "application/json")


def test_body_without_title_or_message_is_rejected() -> None:
    with pytest.raises(NotificationError):
        webhook_event({"severity": "info"}, site="lab")


@given(
    st.dictionaries(st.text(max_size=10), st.one_of(st.none(), st.integers(), st.text(max_size=50)))
)
def test_arbitrary_objects_give_an_event_or_notification_error(data: dict[str, object]) -> None:
    with contextlib.suppress(NotificationError):
        webhook_event(data, site="lab")


@pytest.mark.parametrize(
    ("priority", "severity"),
    [
        (0, "debug"),
        (1, "info"),
        (3, "notice"),
        (5, "warning"),
        (9, "error"),
        (11, "critical"),
        (None, "info"),
        ("x", "info"),
    ],
)
def test_gotify_priority_maps_to_severity(priority: object, severity: str) -> None:
    assert gotify_priority_severity(priority) == severity


def test_gotify_message_id_depends_on_server_and_message_id_only() -> None:
    msg = {
        "id": 7,
        "appid": 1,
        "title": "t",
        "message": "m",
        "priority": 5,
        "date": "2024-02-27T19:36:10.5045044+01:00",
        "extras": {},
    }
    a = gotify_event(msg, site="lab", server="s1")
    assert a.id == gotify_event(dict(msg), site="lab", server="s1").id
    assert a.id != gotify_event(msg, site="lab", server="s2").id
    assert a.kind == "gotify.message"
    assert a.severity == "warning"
    assert json.loads(a.to_json())["metadata"]["gotify_id"] == 7


def test_gotify_message_without_id_is_rejected() -> None:
    with pytest.raises(NotificationError):
        gotify_event({"title": "x"}, site="lab", server="s")


def test_replication_notification_names_the_guest_and_the_job() -> None:
    # pve-manager PVE/API2/Replication.pm metadata: type, job-id, hostname
    ev = webhook_event(
        _body(
            title="Replication Job: '105-0' failed",
            message="Replication job '105-0' with target 'pve1' and schedule '*/15' failed!",
            fields={"type": "replication", "job-id": "105-0", "hostname": "pve2"},
        ),
        site="lab",
    )
    assert (ev.kind, ev.node, ev.vmid) == ("replication.failed", "pve2", 105)
    assert ev.metadata["subject_id"] == "105-0"


def test_pbs_job_notification_is_about_its_datastore() -> None:
    # proxmox-backup src/server/notifications.rs metadata: job-id, datastore, hostname, type
    ev = webhook_event(
        _body(
            title="Verify Datastore 'store1' failed",
            message="Verification failed on these snapshots/groups:",
            fields={"type": "verify", "job-id": "v-1", "datastore": "store1", "hostname": "pbs1"},
        ),
        site="lab",
    )
    assert (ev.kind, ev.node, ev.metadata["subject_id"]) == ("verify.failed", "pbs1", "store1")
