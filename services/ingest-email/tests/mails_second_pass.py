"""Second coverage pass of the mail classifier: Proxmox VE 9.x / PBS 4.x notification mail and
the system mail a node forwards (proxmox-mail-forward: smartd, zed, mdadm), with expectations.

Subjects and bodies follow the templates they come from (cited per mail):
- pve-manager ``templates/default/*.hbs`` (PVE 9: ``vzdump-body.txt.hbs`` starts with
  ``{{error}}``, the guest table is proxmox-notify's ``{{table guest-table}}``; the status of a
  guest is its task state, ``ok``, ``err`` or ``todo`` for guests the job never reached,
  ``PVE/VZDump.pm`` ``build_guest_table``/``sanitize_task_list``);
- pve-ha-manager ``src/templates/default/fencing-*.hbs`` (the subject template renders a
  newline before ``Trying to fence``, which proxmox-notify's renderer turns into a space:
  proxmox-rs ``proxmox-notify/src/renderer/mod.rs`` ``postprocess``);
- proxmox-backup ``templates/default/*.hbs`` (the sync subjects end in a space for the same
  reason; the package-updates body lists ``<pkg>: <old> -> <new>``, and since 4.x
  ``<pkg>: NEW, <version>``; 4.2 adds ``Threshold Exceeded For Datastore '<store>'`` for the S3
  request counters of a datastore; read in proxmox-backup v4.2.0 via its loong64 port's mirror);
- OpenZFS ``cmd/zed/zed.d/scrub_finish-notify.sh``, ``generic-notify.sh``,
  ``statechange-notify.sh``: a ``scrub_finish`` mail is only sent for an unhealthy pool unless
  ``ZED_NOTIFY_VERBOSE=1``; its body ends in ``zpool status``;
- mdadm ``Monitor.c`` ``alert()``: ``Subject: <event> event on <md device>:<hostname>`` for
  Fail, FailSpare, DegradedArray, SparesMissing and TestMessage.

Mails carry their node in the subject, or not at all (then the headers say which host sent
it: ``Received: by <fqdn> (Postfix, from userid 0)`` of the node's own Postfix, the PBS author
``Proxmox Backup Server - <nodename>``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# --------------------------------------------------------------------------- mail builders


def mail(
    subject: str,
    text: str,
    *,
    node: str = "pve4",
    author: str = "Proxmox VE",
    html: str | None = None,
    sender: str | None = None,
) -> bytes:
    """A mail as proxmox-sendmail writes it after the node's Postfix took it (one local hop)."""
    from_header = sender or f"{author} <root@{node}.lab.example>"
    boundary = "----_=_NextPart_001_1764468010"
    parts = [
        f'--{boundary}\nContent-Type: text/plain; charset="UTF-8"\n'
        f"Content-Transfer-Encoding: 8bit\n\n{text}\n"
    ]
    if html is not None:
        parts.append(
            f'--{boundary}\nContent-Type: text/html; charset="UTF-8"\n'
            f"Content-Transfer-Encoding: 8bit\n\n{html}\n"
        )
    head = (
        f"Received: by {node}.lab.example (Postfix, from userid 0)\n"
        "\tid 5A3B21E0451; Mon, 30 Nov 2026 03:00:10 +0100 (CET)\n"
        f'Content-Type: multipart/alternative; boundary="{boundary}"\n'
        "MIME-Version: 1.0\n"
        f"Subject: {subject}\n"
        f"From: {from_header}\n"
        "To: admin@example.org\n"
        "Date: Mon, 30 Nov 2026 03:00:10 +0100\n"
        "Auto-Submitted: auto-generated;\n"
        f"Message-Id: <20261130020010.5A3B21E0451@{node}.lab.example>\n\n"
    )
    return (head + "".join(parts) + f"--{boundary}--\n").encode()


def system_mail(subject: str, text: str, *, node: str) -> bytes:
    """Local mail to root that proxmox-mail-forward hands on (plain text, original subject)."""
    return (
        f"Received: by {node}.lab.example (Postfix, from userid 0)\n"
        "\tid 7C1D2E0A11; Mon, 30 Nov 2026 03:12:40 +0100 (CET)\n"
        f"Subject: {subject}\n"
        f"From: root <root@{node}.lab.example>\n"
        "To: root\n"
        "Date: Mon, 30 Nov 2026 03:12:40 +0100\n"
        f"Message-Id: <20261130021240.7C1D2E0A11@{node}.lab.example>\n"
        "Content-Type: text/plain; charset=us-ascii\n\n"
        f"{text}\n"
    ).encode()


def pbs(subject: str, body: str, *, node: str = "pbs2", target: str = "tasks") -> bytes:
    link = f"<https://{node}.lab.example:8007/#pbsServerAdministration:{target}>"
    text = f"{body}\n\nPlease visit the web interface for further details:\n\n{link}\n"
    return mail(subject, text, node=node, author=f"Proxmox Backup Server - {node}")


def guest_table(rows: list[tuple[str, ...]]) -> str:
    """proxmox-notify's plaintext table: columns left-aligned, padded to the widest cell + 4."""
    header = ("VMID", "Name", "Status", "Time", "Size", "Filename")
    widths = [max(len(r[i]) for r in [header, *rows]) + 4 for i in range(6)]
    return "\n".join(
        "".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]
    )


def vzdump_body(error: str, rows: list[tuple[str, ...]], cmdline: str) -> str:
    # pve-manager templates/default/vzdump-body.txt.hbs (PVE 9)
    return (
        f"{error}\nDetails\n=======\n{guest_table(rows)}\n"
        "Total running time: 3m 12s\nTotal size: 14.1 GiB\n\nLogs\n====\n"
        f"{cmdline}\n\n"
    )


ZPOOL_DEGRADED = """  pool: tank
 state: DEGRADED
status: One or more devices could not be used because the label is missing or
\tinvalid.  Sufficient replicas exist for the pool to continue
\tfunctioning in a degraded state.
action: Replace the device using 'zpool replace'.
   see: https://openzfs.github.io/openzfs-docs/msg/ZFS-8000-4J
  scan: scrub repaired 0B in 00:12:34 with 0 errors on Mon Nov 30 03:12:34 2026
config:

\tNAME        STATE     READ WRITE CKSUM
\ttank        DEGRADED     0     0     0
\t  mirror-0  DEGRADED     0     0     0
\t    sda     ONLINE       0     0     0
\t    sdb     UNAVAIL      0     0     0

errors: No known data errors"""

ZPOOL_REPAIRED_ERRORS = """  pool: rpool
 state: ONLINE
status: One or more devices has experienced an unrecoverable error.  An
\tattempt was made to correct the error.  Applications are unaffected.
action: Determine if the device needs to be replaced, and clear the errors
\tusing 'zpool clear' or replace the device with 'zpool replace'.
  scan: scrub repaired 1.50M in 00:20:01 with 3 errors on Mon Nov 30 03:20:01 2026
config:

\tNAME        STATE     READ WRITE CKSUM
\trpool       ONLINE       0     0     0
\t  nvme0n1p3 ONLINE       0     0    12

errors: 3 data errors, use '-v' for a list"""

ZPOOL_HEALTHY = """  pool: rpool
 state: ONLINE
  scan: scrub repaired 0B in 00:05:12 with 0 errors on Mon Nov 30 03:05:12 2026
config:

\tNAME        STATE     READ WRITE CKSUM
\trpool       ONLINE       0     0     0
\t  nvme0n1p3 ONLINE       0     0     0

errors: No known data errors"""


def zed_finish(cls: str, pool: str, status: str, *, host: str = "pve5") -> bytes:
    action = "scrub" if cls == "scrub_finish" else "resilver"
    return system_mail(
        f"ZFS {cls} event for {pool} on {host}",
        f"ZFS has finished a {action}:\n\n   eid: 21\n class: {cls}\n  host: {host}\n"
        f"  time: 2026-11-30 03:12:34+0100\n{status}",
        node=host,
    )


def mdadm(event: str, device: str, *, host: str = "pve5") -> bytes:
    # mdadm Monitor.c alert(): the mail is piped to sendmail, From "mdadm monitoring <root>"
    text = (
        f"This is an automatically generated mail message from mdadm\nrunning on {host}\n\n"
        f"A {event} event had been detected on md device {device}.\n\n"
        "It could be related to component device /dev/sdb1.\n\nFaithfully yours, etc.\n"
    )
    return system_mail(f"{event} event on {device}:{host}", text, node=host)


# --------------------------------------------------------------------------- expectations


@dataclass(frozen=True, slots=True)
class Expect:
    name: str
    source: str
    raw: bytes
    kind: str
    node: str | None
    vmid: int | None
    severity: str
    metadata: dict[str, Any] = field(default_factory=dict)


_CMD = "vzdump 104 105 106 --storage pbs-store1 --mode snapshot --notes-template '{{guestname}}'"

SECOND_PASS: list[Expect] = [
    Expect(
        "vzdump-one-guest-failed",
        "pve-manager templates/default/vzdump-*.hbs, PVE/VZDump.pm send_notification",
        mail(
            "vzdump backup status (pve4.lab.example): backup failed",
            vzdump_body(
                "",
                [
                    ("104", "web04", "ok", "1m 32s", "9.1 GiB", "vm/104/2026-11-30T02:00:02Z"),
                    ("105", "db05", "err", "4s", "0 B", ""),
                    ("106", "ct-dns", "ok", "12s", "301.4 MiB", "ct/106/2026-11-30T02:01:38Z"),
                ],
                _CMD,
            ),
        ),
        "backup.failed",
        "pve4",
        105,
        "error",
    ),
    Expect(
        "vzdump-job-error-no-guests",
        "pve-manager templates/default/vzdump-*.hbs (status-text 'backup failed: <err>')",
        mail(
            "vzdump backup status (pve4.lab.example): backup failed: storage 'pbs-store1' is "
            "not online",
            vzdump_body("", [], "vzdump --all 1 --storage pbs-store1 --mode snapshot"),
        ),
        "backup.failed",
        "pve4",
        None,
        "error",
    ),
    Expect(
        "vzdump-multiple-problems-aborted-guests",
        "pve-manager PVE/VZDump.pm send_notification ('multiple problems', state 'todo')",
        mail(
            "vzdump backup status (pve4.lab.example): backup failed: multiple problems",
            vzdump_body(
                "job aborted\ninterrupted by signal",
                [
                    ("104", "web04", "ok", "1m 32s", "9.1 GiB", "vm/104/2026-11-30T02:00:02Z"),
                    ("105", "db05", "err", "4s", "0 B", ""),
                    ("106", "VM 106", "todo", "0s", "0 B", ""),
                ],
                _CMD,
            ),
        ),
        "backup.failed",
        "pve4",
        None,
        "error",
        {"failed_vmids": [105, 106]},
    ),
    Expect(
        "replication-no-node-in-subject",
        "pve-manager templates/default/replication-*.hbs",
        mail(
            "Replication Job: '104-1' failed",
            "Replication job '104-1' with target 'pve5' and schedule '*/15' failed!\n\n"
            "Last successful sync: 2026-11-30 02:45:00\nNext sync try: 2026-11-30 03:15:00\n"
            "Failure count: 3\n\nNote: The system  will now reduce the frequency of error "
            "reports, as the job\nappears to be stuck.\n\nError:\ncommand 'zfs snapshot "
            "rpool/data/vm-104-disk-0@__replicate_104-1_1764468000__' failed: out of space\n",
        ),
        "replication.failed",
        "pve4",
        104,
        "error",
        {"failure_count": 3},
    ),
    Expect(
        "fencing-leading-space",
        "pve-ha-manager src/templates/default/fencing-subject.txt.hbs ({{else}} newline)",
        mail(
            " Trying to fence node 'pve6' ",
            "The node 'pve6' in cluster 'lab' failed\nand needs manual intervention.\n\n"
            "The PVE HA manager will now fence 'pve6'.\nStatus:    Try to fence node 'pve6'\n"
            "Timestamp: 2026-11-30 03:00:10\n\nCluster Node Status:\n--------------------\n"
            "  - pve4: online [master]\n  - pve5: online \n  - pve6: unknown \n",
        ),
        "node.fencing",
        "pve6",
        None,
        "critical",
    ),
    Expect(
        "fenced-html-only",
        "pve-ha-manager src/templates/default/fencing-body.html.hbs",
        mail(
            "Successfully fenced node 'pve6'",
            "",
            html="<html><body>The node 'pve6' in cluster 'lab' failed and needs manual "
            "intervention.<br/><br/>The PVE HA manager successfully fenced 'pve6'.<br/><br/>"
            "</body></html>",
        ),
        "node.fenced",
        "pve6",
        None,
        "critical",
    ),
    Expect(
        "pve-package-updates",
        "pve-manager templates/default/package-updates-*.hbs ({{table available-updates}})",
        mail(
            "New software packages available (pve4.lab.example)",
            "The following updates are available:\n\n"
            + "Package                Old Version    New Version    \n"
            + "pve-manager            9.0.10         9.1.2          \n"
            + "proxmox-kernel-6.14    6.14.8-2       6.14.11-1      \n",
        ),
        "updates.available",
        "pve4",
        None,
        "info",
        {"package_count": 2},
    ),
    Expect(
        "pve-test-notification",
        "pve-manager templates/default/test-*.hbs",
        mail("Test notification", "This is a test of the notification target 'mail-to-root'."),
        "test.notification",
        "pve4",
        None,
        "info",
    ),
    Expect(
        "pbs-gc-failed",
        "proxmox-backup templates/default/gc-err-*.hbs",
        pbs(
            "Garbage Collect Datastore 's3-store' failed",
            "Datastore: s3-store\n\nGarbage collection failed: unable to get exclusive lock",
        ),
        "gc.failed",
        "pbs2",
        None,
        "error",
    ),
    Expect(
        "pbs-verify-failed-namespaced-group",
        "proxmox-backup templates/default/verify-err-*.hbs",
        pbs(
            "Verify Datastore 'store1' failed",
            "\nJob ID:    v-weekly\nDatastore: store1\n\n"
            "Verification failed on these snapshots/groups:\n\n"
            "    ns/prod/vm/104/2026-11-30T02:00:02Z\n",
        ),
        "verify.failed",
        "pbs2",
        104,
        "error",
    ),
    Expect(
        "pbs-sync-remote-failed-trailing-space",
        "proxmox-backup templates/default/sync-err-subject.txt.hbs",
        pbs(
            "Sync remote 'offsite' datastore 'store1' failed ",
            "Job ID:             s-3f1a9c22-b0d1\nDatastore:          store-offsite\n"
            "Remote:             offsite\nRemote Store:       store1\n"
            "Synchronization failed: sync failed with some errors.",
        ),
        "sync.failed",
        "pbs2",
        None,
        "error",
        {"subject_id": "store-offsite"},
    ),
    Expect(
        "pbs-sync-local-ok",
        "proxmox-backup templates/default/sync-ok-*.hbs",
        pbs(
            "Sync local datastore 'store1' successful ",
            "Job ID:             s-local-1\nDatastore:          store-archive\n"
            "Local Source Store: store1\nSynchronization successful.",
            target="DataStore-store-archive",
        ),
        "sync.ok",
        "pbs2",
        None,
        "info",
    ),
    Expect(
        "pbs-prune-failed",
        "proxmox-backup templates/default/prune-err-*.hbs",
        pbs(
            "Pruning datastore 'store1' failed",
            "\nJob ID:       p-store1-daily\nDatastore:    store1\n\n"
            "Pruning failed: removing backup snapshot failed - Directory not empty",
        ),
        "prune.failed",
        "pbs2",
        None,
        "error",
    ),
    Expect(
        "pbs-tape-failed",
        "proxmox-backup templates/default/tape-backup-err-*.hbs",
        pbs(
            "Tape Backup 'tape-weekly' datastore 'store1' failed",
            "Job ID:     tape-weekly\nDatastore:  store1\nTape Pool:  weekly\n"
            "Tape Drive: lto8\n\nTape Backup failed: media is write protected",
        ),
        "tape.failed",
        "pbs2",
        None,
        "error",
    ),
    Expect(
        "pbs-acme-failed",
        "proxmox-backup templates/default/acme-err-*.hbs",
        pbs(
            "Could not renew certificate",
            "Proxmox Backup Server was not able to renew a TLS certificate.\n\n"
            "Error: Failed to renew certificate: acme error: rate limited",
            target="Certificates",
        ),
        "acme.failed",
        "pbs2",
        None,
        "error",
    ),
    Expect(
        "pbs-package-updates-list",
        "proxmox-backup templates/default/package-updates-body.txt.hbs",
        pbs(
            "New software packages available (pbs2.lab.example)",
            "Proxmox Backup Server has the following updates available:\n"
            "    proxmox-backup-server: 4.0.14-1 -> 4.0.18-1\n"
            "    proxmox-kernel-6.14: 6.14.8-2 -> 6.14.11-1\n\nTo upgrade visit the web "
            "interface:",
            target="updates",
        ),
        "updates.available",
        "pbs2",
        None,
        "info",
        {"package_count": 2},
    ),
    Expect(
        "pbs4-package-updates-new-package",
        "proxmox-backup 4.2 templates/default/package-updates-body.txt.hbs ('NEW,' for a new one)",
        pbs(
            "New software packages available (pbs2.lab.example)",
            "Proxmox Backup Server has the following updates available:\n"
            "    proxmox-backup-server: 4.1.9-1 -> 4.2.0-1\n"
            "    proxmox-s3-client-tools: NEW, 1.0.2\n\nTo upgrade visit the web interface:",
            target="updates",
        ),
        "updates.available",
        "pbs2",
        None,
        "info",
        {"package_count": 2, "packages": ["proxmox-backup-server", "proxmox-s3-client-tools"]},
    ),
    Expect(
        "pbs4-threshold-exceeded",
        "proxmox-backup 4.2 templates/default/thresholds-exceeded-*.hbs, src/server/notifications/"
        "mod.rs send_datastore_threshold_exceeded (Severity::Warning, S3 request counters)",
        mail(
            "Threshold Exceeded For Datastore 's3-store'",
            "Datastore 's3-store' exceeded the configured uploaded threshold.\n\n"
            "Limit: 100 GiB\nValue: 100.02 GiB\n\nPlease visit the web interface for further "
            "details:\n\n<https://pbs2.lab.example:8007/#DataStore-s3-store>\n",
            node="pbs2",
            author="Proxmox Backup Server - pbs2",
        ),
        "email.message",
        "pbs2",
        None,
        "warning",
        {"notification_type": "thresholds", "datastore": "s3-store", "threshold": "uploaded"},
    ),
    Expect(
        "zed-scrub-finish-degraded",
        "openzfs cmd/zed/zed.d/scrub_finish-notify.sh (sent only for an unhealthy pool)",
        zed_finish("scrub_finish", "tank", ZPOOL_DEGRADED),
        "disk.error",
        "pve5",
        None,
        "error",
    ),
    Expect(
        "zed-scrub-finish-repaired-with-errors",
        "openzfs cmd/zed/zed.d/scrub_finish-notify.sh",
        zed_finish("scrub_finish", "rpool", ZPOOL_REPAIRED_ERRORS),
        "disk.error",
        "pve5",
        None,
        "error",
    ),
    Expect(
        "zed-scrub-finish-healthy-verbose",
        "openzfs cmd/zed/zed.d/scrub_finish-notify.sh (ZED_NOTIFY_VERBOSE=1)",
        zed_finish("scrub_finish", "rpool", ZPOOL_HEALTHY),
        "email.message",
        "pve5",
        None,
        "info",
    ),
    Expect(
        "zed-resilver-finish-healthy",
        "openzfs cmd/zed/zed.d/resilver_finish-notify.sh (scrub_finish-notify.sh)",
        zed_finish("resilver_finish", "rpool", ZPOOL_HEALTHY),
        "email.message",
        "pve5",
        None,
        "info",
    ),
    Expect(
        "zed-generic-probe-failure",
        "openzfs cmd/zed/zed.d/generic-notify.sh (linked as probe_failure-notify.sh)",
        system_mail(
            "ZFS probe_failure event for tank on pve5",
            "ZFS has posted the following event:\n\n   eid: 44\n class: probe_failure\n"
            "  host: pve5\n  time: 2026-11-30 03:14:00+0100\n  vpath: /dev/sdb1\n  pool: tank",
            node="pve5",
        ),
        "disk.error",
        "pve5",
        None,
        "error",
    ),
    Expect(
        "zed-device-fault",
        "openzfs cmd/zed/zed.d/statechange-notify.sh",
        system_mail(
            "ZFS device fault for pool tank on pve5",
            "The number of I/O errors associated with a ZFS device exceeded\nacceptable "
            "levels. ZFS has marked the device as faulted.\n\n impact: Fault tolerance of the "
            "pool may be compromised.\n    eid: 45\n  class: statechange\n  state: FAULTED\n"
            "   host: pve5",
            node="pve5",
        ),
        "disk.error",
        "pve5",
        None,
        "error",
    ),
    Expect(
        "mdadm-fail",
        "mdadm Monitor.c alert()",
        mdadm("Fail", "/dev/md0"),
        "disk.error",
        "pve5",
        None,
        "error",
    ),
    Expect(
        "mdadm-degraded-array",
        "mdadm Monitor.c alert()",
        mdadm("DegradedArray", "/dev/md/0"),
        "disk.error",
        "pve5",
        None,
        "error",
    ),
    Expect(
        "mdadm-test-message",
        "mdadm Monitor.c alert() (mdadm --monitor --test)",
        mdadm("TestMessage", "/dev/md0"),
        "email.message",
        "pve5",
        None,
        "info",
    ),
    Expect(
        "smartd-test-mail",
        "smartmontools smartd.cpp MailWarning (whichfail[0] 'EmailTest', smartd -M test)",
        system_mail(
            "SMART error (EmailTest) detected on host: pve5",
            "This message was generated by the smartd daemon running on:\n\n"
            "   host name:  pve5\n   DNS domain: lab.example\n\n"
            "The following warning/error was logged by the smartd daemon:\n\n"
            "TEST EMAIL from smartd for device: /dev/sda [SAT]\n",
            node="pve5",
        ),
        "test.notification",
        "pve5",
        None,
        "info",
    ),
    Expect(
        "smartd-fqdn",
        "smartmontools smartd.cpp MailWarning",
        system_mail(
            "SMART error (CurrentPendingSector) detected on host: pve5.lab.example",
            "This message was generated by the smartd daemon running on:\n\n"
            "   host name:  pve5.lab.example\n   DNS domain: lab.example\n\n"
            "The following warning/error was logged by the smartd daemon:\n\n"
            "Device: /dev/sdb [SAT], 8 Currently unreadable (pending) sectors\n",
            node="pve5",
        ),
        "disk.error",
        "pve5",
        None,
        "error",
    ),
]
