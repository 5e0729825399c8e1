"""classify.py: Proxmox VE / PBS notification mails to the right events."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from proxbus_events import Event, event_subject
from proxbus_events.proxmox import parse_vzdump_table, short_host
from proxbus_ingest_email.classify import Rejection
from proxbus_ingest_email.intake import mail_to_event


def event_of(raw: bytes) -> Event:
    result = mail_to_event(raw, site="lab")
    assert isinstance(result, Event), result
    return result


def test_vzdump_with_one_failed_guest_among_several_carries_its_vmid(mails):
    ev = event_of(mails.vzdump())
    assert ev.kind == "backup.failed"
    assert ev.severity == "error"
    assert ev.vmid == 101
    assert ev.node == "pve1"
    assert ev.source == "email"
    assert "101 (db01)" in ev.title
    assert ev.metadata["notification_type"] == "vzdump"
    assert ev.metadata["total_size"] == "2.43 GiB"
    assert ev.metadata["total_time"] == "1m 48s"
    assert [g["status"] for g in ev.metadata["guests"]] == ["ok", "failed", "ok"]
    assert ev.metadata["guests"][0] == {
        "vmid": 100,
        "name": "web01",
        "status": "ok",
        "time": "1m 32s",
        "size": "2.13 GiB",
    }
    assert event_subject(ev) == "proxbus.events.lab.email.error.pve1"


def test_vzdump_with_several_failures_has_no_vmid_and_lists_them(mails):
    rows = [
        ("100", "web01", "err", "1s", "0 B", "null"),
        ("101", "db01", "err", "4s", "0 B", "null"),
        ("102", "ct-dns", "ok", "12s", "301.4 MiB", "x.tar.zst"),
    ]
    ev = event_of(mails.vzdump(rows))
    assert ev.kind == "backup.failed"
    assert ev.vmid is None
    assert ev.metadata["failed_vmids"] == [100, 101]


def test_vzdump_all_ok_is_backup_ok_info(mails):
    rows = [r if r[2] == "ok" else (r[0], r[1], "ok", "9s", "1 GiB", "f") for r in mails.rows_mixed]
    ev = event_of(mails.vzdump(rows, host="pve3.lab.example.org"))
    assert ev.kind == "backup.ok"
    assert ev.severity == "info"
    assert ev.vmid is None
    assert ev.node == "pve3"


def test_vzdump_single_guest_ok_carries_its_vmid(mails):
    ev = event_of(mails.vzdump([("105", "mail", "ok", "3s", "10 MiB", "f.vma.zst")]))
    assert (ev.kind, ev.vmid) == ("backup.ok", 105)


def test_vzdump_html_only_mail_is_parsed_from_the_table(mails):
    raw = mails.notification(
        "vzdump backup status (pve1.example.com): backup failed",
        "",
        mails.vzdump_html(mails.rows_mixed),
    )
    ev = event_of(raw)
    assert (ev.kind, ev.vmid) == ("backup.failed", 101)
    assert "html_only" in ev.metadata["anomalies"]


def test_legacy_vzdump_table_with_uppercase_header_is_parsed():
    text = (
        "VMID       NAME                 STATUS       TIME       SIZE  FILENAME\n"
        "100        VM 100               ok       00:01:02     2.13GB  /var/lib/vz/dump/a.vma\n"
        "101        db                   err      00:00:04     0.00MB  -\n"
    )
    guests = parse_vzdump_table(text)
    assert [(g.vmid, g.name, g.status) for g in guests] == [
        (100, "VM 100", "ok"),
        (101, "db", "failed"),
    ]


def test_vzdump_job_error_without_table_is_backup_failed(mails):
    raw = mails.notification(
        "vzdump backup status (10.0.0.5): backup failed: could not activate storage 'pbs1'",
        "could not activate storage 'pbs1': pbs1: error fetching datastores - 500 Can't connect\n",
    )
    ev = event_of(raw)
    assert ev.kind == "backup.failed"
    assert ev.node == "10.0.0.5"
    assert ev.vmid is None


def test_replication_failure_has_guest_vmid_and_target(mails):
    ev = event_of(mails.replication("105-1"))
    assert ev.kind == "replication.failed"
    assert ev.severity == "error"
    assert ev.vmid == 105
    assert ev.node == "pve1"  # from root@pve1.example.com
    assert ev.metadata["target"] == "pve2"
    assert ev.metadata["failure_count"] == 1
    assert "dataset does not exist" in ev.metadata["error"]


@pytest.mark.parametrize(("success", "kind"), [(False, "node.fencing"), (True, "node.fenced")])
def test_fencing_is_critical_about_the_fenced_node(mails, success, kind):
    ev = event_of(mails.fencing("pve2.example.com", success=success))
    assert ev.kind == kind
    assert ev.severity == "critical"
    assert ev.node == "pve2"
    assert ev.metadata["cluster"] == "lab"


@pytest.mark.parametrize("pbs", [False, True])
def test_package_updates_are_info_with_package_list(mails, pbs):
    ev = event_of(mails.updates("pbs1.example.com" if pbs else "pve1.example.com", pbs=pbs))
    assert ev.kind == "updates.available"
    assert ev.severity == "info"
    assert ev.node == ("pbs1" if pbs else "pve1")
    assert ev.metadata["packages"] == ["pve-manager", "proxmox-kernel"]


@pytest.mark.parametrize(
    ("subject", "kind", "severity", "extra"),
    [
        ("Garbage Collect Datastore 'store1' successful", "gc.ok", "info", {"datastore": "store1"}),
        (
            "Garbage Collect Datastore 'store1' failed",
            "gc.failed",
            "error",
            {"datastore": "store1"},
        ),
        ("Pruning datastore 'store2' successful", "prune.ok", "info", {"datastore": "store2"}),
        ("Pruning datastore 'store2' failed", "prune.failed", "error", {}),
        (
            "Sync remote 'offsite' datastore 'tank' successful",
            "sync.ok",
            "info",
            {"remote": "offsite"},
        ),
        ("Sync local datastore 'tank' failed", "sync.failed", "error", {"datastore": "tank"}),
        ("Verify Datastore 'store1' successful", "verify.ok", "info", {}),
        ("Verify Datastore 'store1' failed", "verify.failed", "error", {}),
        (
            "Tape Backup 'weekly' datastore 'store1' successful",
            "tape.ok",
            "info",
            {"job": "weekly"},
        ),
        ("Tape Backup datastore 'store1' failed", "tape.failed", "error", {}),
        ("Could not renew certificate", "acme.failed", "error", {}),
        ("Test notification", "test.notification", "info", {}),
    ],
)
def test_pbs_notifications(mails, subject, kind, severity, extra):
    ev = event_of(mails.pbs(subject, "Datastore: store1\n\nGarbage collection failed: disk full"))
    assert ev.kind == kind
    assert ev.severity == severity
    assert ev.node == "pbs1"  # from the web interface link in the body
    for key, value in extra.items():
        assert ev.metadata[key] == value


def test_tape_load_request_is_a_notice_message(mails):
    ev = event_of(mails.pbs("Load Media 'tape-07' request for changer 'sl3'"))
    assert (ev.kind, ev.severity) == ("email.message", "notice")
    assert ev.metadata["notification_type"] == "tape-load"


def test_smartd_mail_is_a_disk_error(mails):
    ev = event_of(
        mails.notification(
            "SMART error (CurrentPendingSector) detected on host: pve1.example.com",
            "Device: /dev/sda [SAT], 8 Currently unreadable (pending) sectors\n",
        )
    )
    assert (ev.kind, ev.severity, ev.node) == ("disk.error", "error", "pve1")


def test_other_mail_is_email_message_with_headers(mails):
    ev = event_of(mails.notification("Cron <root@pve1> /usr/local/bin/check", "all fine"))
    assert ev.kind == "email.message"
    assert ev.severity == "info"
    assert ev.title == "Cron <root@pve1> /usr/local/bin/check"
    assert ev.metadata["from"] == "Proxmox VE <root@pve1.example.com>"
    assert ev.metadata["to"] == ["ops@example.com"]


def test_event_id_is_derived_from_message_id_so_redelivery_dedups(mails):
    raw = mails.vzdump(message_id="<abc@pve1>")
    again = mails.vzdump(message_id="<abc@pve1>", html=False)
    other = mails.vzdump(message_id="<def@pve1>")
    assert event_of(raw).id == event_of(again).id
    assert event_of(raw).id != event_of(other).id


def test_mail_without_message_id_is_identified_by_its_bytes(mails):
    raw = mails.vzdump(message_id=None)
    assert event_of(raw).id == event_of(raw).id
    assert event_of(raw).id != event_of(raw + b"\n").id


def test_timestamp_comes_from_the_date_header(mails):
    ev = event_of(mails.vzdump())
    assert ev.timestamp.isoformat() == "2026-11-24T01:02:03+00:00"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"  \r\n\r\n", "empty"),
        (bytes(range(256)) * 8, "not_a_mail"),
        (b"From: root@pve1\r\n\r\n", "no_content"),
    ],
)
def test_input_that_is_not_a_message_is_rejected(raw, reason):
    result = mail_to_event(raw, site="lab")
    assert isinstance(result, Rejection)
    assert result.reason == reason


@pytest.mark.parametrize(
    ("host", "short"),
    [("pve1.example.com", "pve1"), ("PVE-2", "PVE-2"), ("192.168.1.5", "192.168.1.5"), ("", None)],
)
def test_node_names_are_short_host_names(host, short):
    assert short_host(host) == short


_names = st.from_regex(r"[a-z][a-z0-9-]{0,18}", fullmatch=True)
_rows = st.lists(
    st.tuples(
        st.integers(100, 999_999_999),
        _names,
        st.sampled_from(["ok", "err"]),
        st.sampled_from(["4s", "1m 32s", "1h 2m 3s"]),
        st.sampled_from(["0 B", "2.13 GiB", "301.4 MiB"]),
    ),
    min_size=1,
    max_size=12,
    unique_by=lambda r: r[0],
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # `mails` is a constant
)
@given(rows=_rows)
def test_vzdump_table_round_trips_generated_rows(mails, rows):
    text_rows = [(str(v), n, s, t, z, f"vzdump-{v}.vma.zst") for v, n, s, t, z in rows]
    guests = parse_vzdump_table(mails.vzdump_text(text_rows))
    assert [(g.vmid, g.name, g.status, g.time, g.size) for g in guests] == [
        (v, n, "ok" if s == "ok" else "failed", t, z) for v, n, s, t, z in rows
    ]
    failed = [v for v, _, s, _, _ in rows if s != "ok"]
    ev = mail_to_event(
        mails.notification(
            f"vzdump backup status (pve9.example.com): backup {'failed' if failed else 'successful'}",
            mails.vzdump_text(text_rows),
        ),
        site="lab",
    )
    assert isinstance(ev, Event)
    assert ev.kind == ("backup.failed" if failed else "backup.ok")
    if len(failed) == 1:
        assert ev.vmid == failed[0]
    elif failed:
        assert ev.vmid is None
        assert ev.metadata["failed_vmids"] == failed


def test_subject_whitespace_left_by_template_conditionals_is_ignored(mails):
    raw = mails.notification(" Trying to fence node 'pve2' ", "The node 'pve2' failed")
    assert event_of(raw).kind == "node.fencing"


def test_pbs_html_pre_fallback_without_text_part_is_classified(mails):
    # PBS has no HTML templates: proxmox-notify wraps the escaped text in <pre>.
    body = (
        "Datastore: store1\n\nGarbage collection failed: no space left on device\n\n"
        "&lt;https://pbs1.example.com:8007/#pbsServerAdministration:tasks&gt;\n"
    )
    raw = mails.notification(
        "Garbage Collect Datastore 'store1' failed",
        "",
        f"<html><body><pre>{body}</pre></body></html>",
        sender="root@localhost",
    )
    ev = event_of(raw)
    assert (ev.kind, ev.node, ev.severity) == ("gc.failed", "pbs1", "error")
    assert ev.metadata["error"] == "no space left on device"


def test_a_date_far_in_the_future_is_not_the_event_time(mails):
    raw = mails.notification("hello", "x").replace(
        b"Date: Tue, 24 Nov 2026", b"Date: Sun, 24 Nov 2086"
    )
    ev = event_of(raw)
    assert ev.timestamp.year != 2086
    assert ev.metadata["date_header"].startswith("2086-11-24")
