"""One happening reported by syslog and by mail is one alert: same kind, node, vmid, fingerprint.

Pure (no servers): the classifiers of ingest-syslog and ingest-email on the lines and mails
Proxmox writes for the same failure (pve-manager PVE/API2/Replication.pm logs the error and
sends the replication-subject/body templates).
"""

from __future__ import annotations

from datetime import UTC, datetime

from proxbus_events import Event
from proxbus_ingest_email.intake import mail_to_event
from proxbus_ingest_syslog.frames import Frame
from proxbus_ingest_syslog.pipeline import Pipeline
from proxbus_ingest_syslog.settings import Settings

WHEN = datetime(2026, 11, 30, 3, tzinfo=UTC)


def replication_mail(job: str) -> bytes:
    return (
        "Received: by pve2.lab.example (Postfix, from userid 0)\n"
        "\tid 5A3B21E0451; Mon, 30 Nov 2026 03:00:10 +0100 (CET)\n"
        f"Subject: Replication Job: '{job}' failed\n"
        "From: Proxmox VE <alerts@example.org>\n"
        "To: admin@example.org\n"
        "Date: Mon, 30 Nov 2026 03:00:10 +0100\n"
        "Message-Id: <20261130020010.5A3B21E0451@pve2.lab.example>\n"
        "Content-Type: text/plain; charset=UTF-8\n\n"
        f"Replication job '{job}' with target 'pve1' and schedule '*/15' failed!\n\n"
        "Failure count: 1\n\nError:\ncommand 'zfs snapshot' failed: exit code 1\n"
    ).encode()


def syslog_event(line: str) -> Event:
    result = Pipeline(Settings(proxbus_site="lab")).event_or_rejection(Frame(line.encode()), WHEN)
    assert isinstance(result, Event), result
    return result


def mail_event(raw: bytes) -> Event:
    result = mail_to_event(raw, site="lab")
    assert isinstance(result, Event), result
    return result


def test_replication_failure_by_mail_and_syslog_has_one_fingerprint() -> None:
    mail = mail_event(replication_mail("100-0"))
    syslog = syslog_event(
        "<28>Nov 30 03:00:10 pve2 pvescheduler[4101]: 100-0: got unexpected replication job "
        "error - command 'zfs snapshot rpool/data/vm-100-disk-0@__replicate_100-0_1764468000__' "
        "failed: exit code 1"
    )
    assert (syslog.kind, syslog.node, syslog.vmid) == ("replication.failed", "pve2", 100)
    assert (mail.kind, mail.node, mail.vmid) == ("replication.failed", "pve2", 100)
    assert syslog.metadata["subject_id"] == mail.metadata["subject_id"] == "100-0"
    assert syslog.fingerprint == mail.fingerprint
    assert mail_event(replication_mail("100-1")).fingerprint != mail.fingerprint


def test_fencing_by_mail_and_syslog_is_about_the_same_node() -> None:
    mail = mail_event(
        b"Subject: Successfully fenced node 'pve3'\nFrom: Proxmox VE <root@pve1.lab.example>\n"
        b"Message-Id: <1@pve1.lab.example>\n\nThe node 'pve3' in cluster 'lab' failed\n"
    )
    syslog = syslog_event(
        "<30>Nov 30 03:00:10 pve1 pve-ha-crm[1502]: fencing: acknowledged - got agent lock for "
        "node 'pve3'"
    )
    assert (mail.kind, mail.node) == (syslog.kind, syslog.node) == ("node.fenced", "pve3")
    assert mail.fingerprint == syslog.fingerprint


def test_replication_failure_by_webhook_has_the_mails_fingerprint() -> None:
    from proxbus_ingest_pve_ws.notification import webhook_event

    hook = webhook_event(
        {
            "title": "Replication Job: '100-0' failed",
            "message": "Replication job '100-0' with target 'pve1' and schedule '*/15' failed!",
            "severity": "error",
            "timestamp": 1764468010,
            "fields": {"type": "replication", "job-id": "100-0", "hostname": "pve2"},
        },
        site="lab",
    )
    mail = mail_event(replication_mail("100-0"))
    assert (hook.kind, hook.node, hook.vmid) == (mail.kind, mail.node, mail.vmid)
    assert hook.fingerprint == mail.fingerprint
