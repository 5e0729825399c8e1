"""Mails as Proxmox sends them: node from the mail's origin, subjects behind gateway prefixes.

Headers follow proxmox-rs ``proxmox-sendmail`` (``From: <author> <from>``, ``Auto-Submitted``,
multipart/alternative) handed to the node's Postfix (``Received: by <fqdn> (Postfix, from
userid 0)``, ``Message-Id: <date.id@fqdn>``), or sent directly by the ``smtp`` target (lettre:
no local hop, ``Message-ID: <uuid@hostname>``). Subjects and bodies follow the default
templates of pve-manager, pve-ha-manager and proxmox-backup (``templates/default``).
"""

from __future__ import annotations

import pytest
from proxbus_events import Event
from proxbus_ingest_email.intake import mail_to_event
from proxbus_ingest_email.mime import parse_mail
from proxbus_ingest_email.origin import clean_subject, origin_node, received_origin

POSTFIX_HOPS = (
    "Received: from mail-gw.example.org (mail-gw.example.org [203.0.113.25])\n"
    "\tby mx.example.org (Postfix) with ESMTPS id 4Rk2bT0q1Mz9sW\n"
    "\tfor <admin@example.org>; Mon, 30 Nov 2026 03:00:12 +0100 (CET)\n"
    "Received: from {node}.lab.example ({node}.lab.example [10.0.0.12])\n"
    "\tby mail-gw.example.org (Postfix) with ESMTP id 8C1F2A0123\n"
    "\tfor <admin@example.org>; Mon, 30 Nov 2026 03:00:11 +0100 (CET)\n"
    "Received: by {node}.lab.example (Postfix, from userid 0)\n"
    "\tid 5A3B21E0451; Mon, 30 Nov 2026 03:00:10 +0100 (CET)\n"
)


def pve_mail(subject: str, text: str, *, node: str = "pve2", sender: str = "") -> bytes:
    """A proxmox-sendmail mail that went through the node's Postfix and two relays."""
    sender = sender or "Proxmox VE <alerts@example.org>"
    head = POSTFIX_HOPS.format(node=node) + (
        'Content-Type: multipart/alternative;\n\tboundary="----_=_NextPart_001_1764468010"\n'
        "MIME-Version: 1.0\n"
        f"Subject: {subject}\n"
        f"From: {sender}\n"
        "To: admin@example.org\n"
        "Date: Mon, 30 Nov 2026 03:00:10 +0100\n"
        "Auto-Submitted: auto-generated;\n"
        f"Message-Id: <20261130020010.5A3B21E0451@{node}.lab.example>\n"
        "\n"
        "This is a multi-part message in MIME format.\n\n"
        "------_=_NextPart_001_1764468010\n"
        'Content-Type: text/plain;\n\tcharset="UTF-8"\nContent-Transfer-Encoding: 7bit\n\n'
        f"{text}\n"
        "------_=_NextPart_001_1764468010--\n"
    )
    return head.encode()


def event_of(raw: bytes) -> Event:
    result = mail_to_event(raw, site="lab")
    assert isinstance(result, Event), result
    return result


REPLICATION_BODY = (
    "Replication job '100-0' with target 'pve1' and schedule '*/15' failed!\n\n"
    "Last successful sync: 2026-11-30 01:45:00\nNext sync try: 2026-11-30 03:15:00\n"
    "Failure count: 2\n\nError:\ncommand 'zfs snapshot rpool/data/vm-100-disk-0@"
    "__replicate_100-0_1764468000__' failed: exit code 1\n"
)


def test_replication_mail_takes_its_node_from_the_first_postfix_hop() -> None:
    ev = event_of(pve_mail("Replication Job: '100-0' failed", REPLICATION_BODY))
    assert (ev.kind, ev.node, ev.vmid, ev.severity) == ("replication.failed", "pve2", 100, "error")
    assert ev.metadata["target"] == "pve1"


def test_message_id_domain_names_the_node_when_there_is_no_local_hop() -> None:
    raw = (
        b"From: Proxmox VE <pve@example.org>\n"
        b"To: admin@example.org\n"
        b"Subject: Test notification\n"
        b"Date: Mon, 30 Nov 2026 03:00:10 +0100\n"
        b"Message-ID: <0f6d1c3a-2b1e-4e0a-9d7c-3b1f2a4c5d6e@pve3>\n"
        b"Content-Type: text/plain; charset=utf-8\n\n"
        b"This is a test of the notification target 'proxbus-smtp'.\n"
    )
    ev = event_of(raw)
    assert (ev.kind, ev.node, ev.severity) == ("test.notification", "pve3", "info")
    assert ev.metadata["target"] == "proxbus-smtp"


def test_pbs_author_names_the_node_when_the_body_has_no_link() -> None:
    raw = pve_mail(
        "Pruning datastore 'store1' failed",
        "\nJob ID:       p-store1-daily\nDatastore:    store1\n\n"
        "Pruning failed: unable to acquire lock on datastore 'store1'\n",
        node="relay",  # a relay host in the trail: the PBS author must win
        sender="Proxmox Backup Server - pbs1 <root@backup.example.org>",
    )
    ev = event_of(raw)
    assert (ev.kind, ev.node, ev.severity) == ("prune.failed", "pbs1", "error")


@pytest.mark.parametrize(
    "subject",
    [
        "[EXT] vzdump backup status (pve1.lab.example): backup failed",
        "Re: vzdump backup status (pve1.lab.example): backup failed",
        "Fwd: [proxmox] RE: vzdump backup status (pve1.lab.example): backup failed",
        "***SPAM*** vzdump backup status (pve1.lab.example): backup failed",
        "[SPAM] AW: vzdump backup status (pve1.lab.example): backup failed",
        "=?UTF-8?Q?=5BEXT=5D_vzdump_backup_status_=28pve1=2Elab=2Eexample=29=3A_ba?=\n"
        " =?UTF-8?Q?ckup_failed?=",
        "=?utf-8?B?W0VYVF0gdnpkdW1wIGJhY2t1cCBzdGF0dXMgKHB2ZTEubGFiLmV4YW1wbGUpOiBiYWNrdXAgZmFpbGVk?=",
    ],
)
def test_gateway_prefixed_or_reencoded_subject_keeps_its_kind(subject: str) -> None:
    body = (
        "Details\n=======\nVMID    Name    Status    Time    Size           Filename\n"
        "100     web01   err       3s      0 B            null\n\n"
        "Total running time: 3s\nTotal size: 0 B\n"
    )
    ev = event_of(pve_mail(subject, body, node="pve2"))
    # The subject names the node (pve1); the mail's origin (pve2) is only a fallback.
    assert (ev.kind, ev.node, ev.vmid) == ("backup.failed", "pve1", 100)


def test_verify_failure_on_one_guest_group_carries_its_vmid() -> None:
    body = (
        "\nJob ID:    v-weekly\nDatastore: store1\n\n"
        "Verification failed on these snapshots/groups:\n\n"
        "    vm/101/2026-11-29T01:00:02Z\n    vm/101/2026-11-28T01:00:03Z\n\n\n"
        "Please visit the web interface for further details:\n\n"
        "<https://pbs1.backup.example:8007/#pbsServerAdministration:tasks>\n"
    )
    ev = event_of(pve_mail("Verify Datastore 'store1' failed", body))
    assert (ev.kind, ev.node, ev.vmid) == ("verify.failed", "pbs1", 101)
    two = body.replace("vm/101/2026-11-28", "ct/202/2026-11-28")
    assert event_of(pve_mail("Verify Datastore 'store1' failed", two)).vmid is None


def test_fencing_mail_is_about_the_failed_node_not_the_sender() -> None:
    body = (
        "The node 'pve3' in cluster 'lab' failed\nand needs manual intervention.\n\n"
        "The PVE HA manager will now fence 'pve3'.\nStatus:    Try to fence node 'pve3'\n"
    )
    ev = event_of(pve_mail("Trying to fence node 'pve3'", body, node="pve1"))
    assert (ev.kind, ev.node, ev.severity) == ("node.fencing", "pve3", "critical")


@pytest.mark.parametrize(
    ("subject", "node"),
    [
        ("ZFS device fault for pool tank on pve2", "pve2"),
        ("ZFS data error for tank on pve2", "pve2"),
        ("ZFS io error for rpool on pve1.lab.example", "pve1"),
    ],
)
def test_zed_mail_subjects_are_disk_errors(subject: str, node: str) -> None:
    ev = event_of(pve_mail(subject, "ZFS has detected a data error:\n\n   eid: 12\n"))
    assert (ev.kind, ev.node) == ("disk.error", node)


def test_zed_scrub_finished_is_not_an_error() -> None:
    # The subject names the host zed ran on ("on $(hostname)", scrub_finish-notify.sh): that
    # is the node, whichever relay the mail came through (pve2 here).
    ev = event_of(pve_mail("ZFS scrub_finish event for rpool on pve1", "scrub finished\n"))
    assert (ev.kind, ev.node) == ("email.message", "pve1")


def test_plain_mail_gets_the_origin_node_too() -> None:
    ev = event_of(pve_mail("Cron <root@pve2> test -x /usr/sbin/anacron", "output\n"))
    assert (ev.kind, ev.node) == ("email.message", "pve2")


def test_clean_subject_strips_only_prefixes() -> None:
    assert clean_subject("  [a] [b]  Re:  FW: Test   notification ") == "Test notification"
    assert clean_subject("Replication Job: '100-0' failed") == "Replication Job: '100-0' failed"
    assert clean_subject("[" * 500) == "[" * 500


def test_received_trail_edge_cases() -> None:
    assert received_origin([]) is None
    # every hop came over SMTP: the oldest hop's HELO name is the node
    assert received_origin(["from pve4.lab (pve4.lab [10.0.0.14]) by mx.example.org"]) == "pve4"
    # addresses and localhost say nothing about the node
    assert received_origin(["by localhost (Postfix, from userid 0)"]) is None
    assert received_origin(["from [10.0.0.9] by 192.0.2.1"]) is None


def test_origin_node_of_a_mail_without_any_origin_is_none() -> None:
    mail = parse_mail(b"From: someone\nSubject: hi\n\nbody\n")
    assert origin_node(mail) is None


def test_sync_mail_is_about_the_local_datastore() -> None:
    body = (
        "Job ID:             s-3f1a9c22-b0d1\nDatastore:          store1\n"
        "Remote:             offsite\nRemote Store:       backups\n"
        "Synchronization failed: connection refused\n"
    )
    ev = event_of(pve_mail("Sync remote 'offsite' datastore 'backups' failed", body))
    assert (ev.kind, ev.metadata["subject_id"]) == ("sync.failed", "store1")
