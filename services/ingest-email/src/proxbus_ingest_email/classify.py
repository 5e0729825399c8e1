"""Proxmox VE / PBS notification mail to events: a table of subject rules, no I/O.

Subjects follow the proxmox-notify default templates (pve-manager, pve-ha-manager,
proxmox-backup ``templates/default/*-subject.txt.hbs``), matched after gateway prefixes are
stripped (``origin.clean_subject``); anything else is an ``email.message``. The node comes
from the subject or body where they name it, else from the mail's origin (``origin.py``).
The table is the shared classifier shape (``proxbus_events.classification``); mail that is
not a message at all is a ``Rejection``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from proxbus_events import (
    FINGERPRINT_SUBJECT_KEY,
    Event,
    Severity,
    Source,
    apply_severity_floor,
    deterministic_event_id,
)
from proxbus_events.classification import (
    ANY_PROGRAM,
    Builder,
    Classification,
    Rule,
    RuleTable,
    rule,
)
from proxbus_events.classification import (
    Rejection as Rejection,  # re-exported: intake, __main__
)
from proxbus_events.proxmox import find_upid, guest_id, parse_vzdump_table, short_host

from .mime import ParsedMail, printable_ratio
from .origin import clean_subject, origin_node

MailBuilder = Builder[ParsedMail]

_MESSAGE_CHARS = 16 * 1024  # body text carried in the event message
_FUTURE_SLACK = timedelta(hours=1)


def _mail(
    kind: str,
    severity: Severity,
    title: str,
    node: str | None = None,
    vmid: int | None = None,
    correlation_id: str | None = None,
    notification_type: str = "system-mail",
    metadata: dict[str, Any] | None = None,
) -> Classification:
    """A mail's classification; the notification type travels in the metadata."""
    return Classification(
        kind=kind,
        title=title,
        node=node,
        vmid=vmid,
        correlation_id=correlation_id,
        severity=severity,
        metadata={"notification_type": notification_type, **(metadata or {})},
    )


# --------------------------------------------------------------------------- helpers


_vmid = guest_id


_DATASTORE_RE = re.compile(r"^Datastore:\s*(\S+)\s*$", re.MULTILINE)
_PBS_GROUP_RE = re.compile(r"(?:^|[\s/:])(?:vm|ct)/(\d{1,9})(?=/|\s|$)", re.MULTILINE)
# PBS: "    <package>: <old> -> <new>", PBS 4 also "    <package>: NEW, <new>"
_PBS_UPDATE_RE = re.compile(
    r"^[ \t]+([A-Za-z0-9][A-Za-z0-9.+-]{0,127}): (?:\S{1,64} ->|NEW,) \S", re.MULTILINE
)
_JOB_ID_RE = re.compile(r"(?:--job-id[ =]|\bjob[- ]id:\s*)([A-Za-z0-9_.:-]+)", re.IGNORECASE)


def _outcome(word: str) -> bool:
    """``True`` for a success word in a subject."""
    return word.lower() in ("successful", "success", "ok")


# --------------------------------------------------------------------------- vzdump


def _classify_vzdump(match: re.Match[str], mail: ParsedMail) -> Classification:
    node = short_host(match.group("host"))
    status_text = match.group("status").strip()
    failed_subject = not status_text.lower().startswith("backup successful")
    guests = parse_vzdump_table(mail.text)
    failed = [g for g in guests if g.status != "ok"]
    metadata: dict[str, Any] = {
        "status_text": status_text,
        "guests": [
            {"vmid": g.vmid, "name": g.name, "status": g.status, "time": g.time, "size": g.size}
            for g in guests
        ],
    }
    # [ \t], not \s: "^\s*" ran over every following newline from each line start (a body
    # of 200,000 newlines took 112 s).
    total_time = re.search(r"^[ \t]*Total running time:[ \t]*(.+)$", mail.text, re.MULTILINE)
    total_size = re.search(r"^[ \t]*Total size:[ \t]*(.+)$", mail.text, re.MULTILINE)
    if total_time:
        metadata["total_time"] = total_time.group(1).strip()
    if total_size:
        metadata["total_size"] = total_size.group(1).strip()
    job = _JOB_ID_RE.search(mail.text)
    if job:
        metadata["job_id"] = job.group(1)
    upid = find_upid(mail.text)
    where = f" on {node}" if node else ""
    vmid: int | None = None
    if failed or failed_subject:
        kind = "backup.failed"
        if len(failed) == 1:
            vmid = failed[0].vmid
            label = f"{vmid} ({failed[0].name})" if failed[0].name else str(vmid)
            title = f"Backup of guest {label} failed{where}"
            if len(guests) > 1:
                title += f" ({len(guests) - 1} other guests ok)"
        elif failed:
            metadata["failed_vmids"] = [g.vmid for g in failed]
            ids = ", ".join(str(g.vmid) for g in failed)
            title = f"Backup failed for {len(failed)} of {len(guests)} guests{where}: {ids}"
        else:
            if len(guests) == 1:
                vmid = guests[0].vmid
            title = f"vzdump backup failed{where}: {status_text}"
    else:
        kind = "backup.ok"
        if len(guests) == 1:
            vmid = guests[0].vmid
        count = f"{len(guests)} guest{'s' if len(guests) != 1 else ''}"
        size = f", {metadata['total_size']}" if "total_size" in metadata else ""
        title = f"Backup successful{where}: {count}{size}"
    return _mail(
        kind=kind,
        severity=Severity.ERROR if kind == "backup.failed" else Severity.INFO,
        title=title,
        node=node,
        vmid=vmid,
        correlation_id=upid.text if upid else None,
        notification_type="vzdump",
        metadata=metadata,
    )


# --------------------------------------------------------------------------- other rules


def _classify_replication(match: re.Match[str], mail: ParsedMail) -> Classification:
    job = match.group("job")
    guest = job.split("-", 1)[0]
    target = re.search(r"with target '([^']+)'", mail.text)
    failures = re.search(r"Failure count:\s*(\d+)", mail.text)
    error = re.search(r"^Error:\s*\n(.+)", mail.text, re.MULTILINE)
    metadata: dict[str, Any] = {"job_id": job, FINGERPRINT_SUBJECT_KEY: job}
    if target:
        metadata["target"] = target.group(1)
    if failures:
        metadata["failure_count"] = int(failures.group(1))
    if error:
        metadata["error"] = error.group(1).strip()[:1000]
    to = f" to {target.group(1)}" if target else ""
    return _mail(
        kind="replication.failed",
        severity=Severity.ERROR,
        title=f"Replication job '{job}'{to} failed",
        node=origin_node(mail),
        vmid=_vmid(guest),
        notification_type="replication",
        metadata=metadata,
    )


def _classify_fencing(match: re.Match[str], mail: ParsedMail) -> Classification:
    fenced = match.group("verb").lower().startswith("successfully")
    node = match.group("node")
    cluster = re.search(r"in cluster '([^']*)'", mail.text)
    metadata: dict[str, Any] = {"failed_node": node}
    if cluster:
        metadata["cluster"] = cluster.group(1)
    return _mail(
        kind="node.fenced" if fenced else "node.fencing",
        severity=Severity.CRITICAL,
        title=f"Node {node} {'fenced' if fenced else 'is being fenced'}",
        node=short_host(node),
        notification_type="fencing",
        metadata=metadata,
    )


def _classify_updates(match: re.Match[str], mail: ParsedMail) -> Classification:
    node = short_host(match.group("host"))
    packages: list[str] = []
    in_table = False
    for line in mail.text.splitlines():
        if re.match(r"\s*Package\s+Old Version\s+New Version", line, re.IGNORECASE):
            in_table = True
            continue
        if in_table:
            tokens = line.split()
            if not tokens:
                if packages:
                    break
                continue
            if set(line.strip()) <= set("-=+| "):
                continue
            packages.append(tokens[0])
    if not packages:  # PBS: "    <package>: <old> -> <new>" (package-updates-body.txt.hbs)
        packages = _PBS_UPDATE_RE.findall(mail.text)
    metadata: dict[str, Any] = {"packages": packages[:200], "package_count": len(packages)}
    count = f": {len(packages)} package{'s' if len(packages) != 1 else ''}" if packages else ""
    return _mail(
        kind="updates.available",
        severity=Severity.INFO,
        title=f"New software packages available on {node}{count}",
        node=node,
        notification_type="package-updates",
        metadata=metadata,
    )


def _pbs_job(kind: str, what: str) -> Callable[[re.Match[str], ParsedMail], Classification]:
    """A rule builder for PBS ``<what> ... successful|failed`` subjects."""

    def classify(match: re.Match[str], mail: ParsedMail) -> Classification:
        ok = _outcome(match.group("outcome"))
        groups = {k: v for k, v in match.groupdict().items() if v and k != "outcome"}
        store = groups.get("store", "")
        # Sync subjects name the remote store; the body's "Datastore:" line is the local one.
        local = _DATASTORE_RE.search(mail.text)
        datastore = local.group(1) if local else store
        metadata: dict[str, Any] = {
            "datastore": store,
            **groups,
            FINGERPRINT_SUBJECT_KEY: datastore,  # the datastore the job is about
        }
        error = re.search(r"failed:\s*(.+)", mail.text)
        if not ok and error:
            metadata["error"] = error.group(1).strip()[:1000]
        outcome = "successful" if ok else "failed"
        # verify-err-body lists the failed snapshots/groups: "vm/100/2026-11-30T01:00:02Z".
        guests = {int(g) for g in _PBS_GROUP_RE.findall(mail.text)} if not ok else set()
        return _mail(
            kind=f"{kind}.{'ok' if ok else 'failed'}",
            severity=Severity.INFO if ok else Severity.ERROR,
            title=f"{what} of datastore '{store}' {outcome}",
            node=origin_node(mail),
            vmid=guest_id(str(guests.pop())) if len(guests) == 1 else None,
            notification_type=kind if kind != "verify" else "verification",
            metadata=metadata,
        )

    return classify


def _classify_tape(match: re.Match[str], mail: ParsedMail) -> Classification:
    result = _pbs_job("tape", "Tape backup")(match, mail)
    result.metadata["notification_type"] = "tape-backup"
    return result


def _classify_acme(match: re.Match[str], mail: ParsedMail) -> Classification:
    return _mail(
        kind="acme.failed",
        severity=Severity.ERROR,
        title="Could not renew ACME certificate",
        node=origin_node(mail),
        notification_type="acme",
        metadata={"error": mail.text.strip()[:1000]},
    )


def _classify_test(match: re.Match[str], mail: ParsedMail) -> Classification:
    target = re.search(r"notification target '([^']+)'", mail.text)
    return _mail(
        kind="test.notification",
        severity=Severity.INFO,
        title="Test notification" + (f" for target '{target.group(1)}'" if target else ""),
        node=origin_node(mail),
        notification_type="test",
        metadata={"target": target.group(1)} if target else {},
    )


def _classify_tape_load(match: re.Match[str], mail: ParsedMail) -> Classification:
    return _mail(
        kind="email.message",
        severity=Severity.NOTICE,
        title=mail.subject,
        node=origin_node(mail),
        notification_type="tape-load",
        metadata={"label": match.group("label"), "device": match.group("device")},
    )


_THRESHOLD_RE = re.compile(r"exceeded the configured ([\w-]{1,32}) threshold")


def _classify_threshold(match: re.Match[str], mail: ParsedMail) -> Classification:
    """PBS 4.2 ``Threshold Exceeded For Datastore 'x'``: a datastore's S3 request counters
    (uploaded/downloaded bytes, requests) passed their limit. No kind in the contract: a
    plain mail, at the warning severity PBS sends it with."""
    store = match.group("store")
    which = _THRESHOLD_RE.search(mail.text)
    metadata: dict[str, Any] = {"datastore": store, FINGERPRINT_SUBJECT_KEY: store}
    if which:
        metadata["threshold"] = which.group(1)
    what = f"{which.group(1)} threshold" if which else "threshold"
    return _mail(
        kind="email.message",
        severity=Severity.WARNING,
        title=f"Datastore '{store}' exceeded its {what}",
        node=origin_node(mail),
        notification_type="thresholds",
        metadata=metadata,
    )


def _classify_smart(match: re.Match[str], mail: ParsedMail) -> Classification:
    if match.group("what") == "EmailTest":  # smartd -M test: whichfail[0], not a disk error
        return _mail(
            kind="test.notification",
            severity=Severity.INFO,
            title=f"smartd test mail from {match.group('host')}",
            node=short_host(match.group("host")),
            notification_type="system-mail",
            metadata={"smart_error": "EmailTest"},
        )
    device = re.search(r"Device:\s*(\S+)", mail.text)
    return _mail(
        kind="disk.error",
        severity=Severity.ERROR,
        title=f"SMART error ({match.group('what')}) on {match.group('host')}"
        + (f" device {device.group(1).rstrip(',')}" if device else ""),
        node=short_host(match.group("host")),
        notification_type="system-mail",
        metadata={"smart_error": match.group("what")},
    )


def _classify_zfs(match: re.Match[str], mail: ParsedMail) -> Classification:
    return _mail(
        kind="disk.error",
        severity=Severity.ERROR,
        title=mail.subject,
        node=short_host(match.group("host")),
        notification_type="system-mail",
        metadata={"zfs_event": match.group("what")},
    )


# ``zpool status`` in a zed mail body says whether the pool is hurt: a state other than
# ONLINE, a scrub/resilver that ended "with N errors", or "errors: N data errors". Lines
# start with [ \t]*, not \s*, so a body of newlines cannot make the search quadratic.
_ZPOOL_UNHEALTHY = re.compile(
    r"^[ \t]*state:[ \t]*(?P<state>DEGRADED|FAULTED|UNAVAIL|SUSPENDED|REMOVED|OFFLINE)\b|"
    r" with (?P<errors>[1-9]\d{0,12}) errors\b|^errors:[ \t]*(?P<data>[1-9]\d{0,12}) data errors",
    re.MULTILINE,
)
# zevent classes that are a failure whatever the pool's state (zed generic-notify.sh links)
_ZED_ERROR_CLASSES = frozenset(
    {"checksum", "io", "data", "deadman", "delay", "probe_failure", "io_failure"}
)


def _classify_zed_event(match: re.Match[str], mail: ParsedMail) -> Classification:
    """``ZFS <class> event for <pool> on <host>``: scrub/resilver/trim results, generic events.

    OpenZFS ``scrub_finish-notify.sh`` mails a scrub only when the pool is unhealthy (unless
    ``ZED_NOTIFY_VERBOSE=1``), with ``zpool status`` in the body: that status decides.
    """
    cls, pool, host = match.group("cls"), match.group("pool") or "", match.group("host")
    hurt = _ZPOOL_UNHEALTHY.search(mail.text)
    metadata: dict[str, Any] = {"zfs_event": cls, "pool": pool}
    if hurt and hurt.group("state"):
        metadata["pool_state"] = hurt.group("state")
    if cls in _ZED_ERROR_CLASSES or hurt:
        why = f" (pool {hurt.group('state')})" if hurt and hurt.group("state") else ""
        where = f" on pool {pool}" if pool else ""
        return _mail(
            kind="disk.error",
            severity=Severity.ERROR,
            title=f"ZFS {cls}{where} on {host}{why}",
            node=short_host(host),
            metadata=metadata,
        )
    return _mail(
        kind="email.message",
        severity=Severity.INFO,
        title=mail.subject.strip(),
        node=short_host(host),
        metadata=metadata,
    )


def _classify_mdadm(match: re.Match[str], mail: ParsedMail) -> Classification:
    event, device, host = match.group("event"), match.group("device"), match.group("host")
    test = event == "TestMessage"
    return _mail(
        kind="email.message" if test else "disk.error",
        severity=Severity.INFO if test else Severity.ERROR,
        title=f"mdadm: {event} event on {device} on {host}",
        node=short_host(host),
        metadata={"md_event": event, "md_device": device},
    )


_OUTCOME = r"(?P<outcome>successful|failed)"
_PVE_TPL = "pve-manager templates/default"
_PBS_TPL = "proxmox-backup templates/default"


def _rule(name: str, pattern: str, build: MailBuilder, source: str) -> Rule[ParsedMail]:
    """A subject rule: mail has no program, so every rule applies to every mail."""
    return rule(name, ANY_PROGRAM, pattern, "email.message", build, source=source,
                flags=re.IGNORECASE)  # fmt: skip


RULES: list[Rule[ParsedMail]] = [
    _rule("vzdump", r"^vzdump backup status \((?P<host>[^)]*)\)\s*:\s*(?P<status>.*)$",
          _classify_vzdump, f"{_PVE_TPL}/vzdump-subject.txt.hbs"),
    _rule("replication", r"^Replication Job: '(?P<job>[^']+)' failed", _classify_replication,
          f"{_PVE_TPL}/replication-subject.txt.hbs"),
    _rule("fencing", r"^(?P<verb>Trying to fence|Successfully fenced) node '(?P<node>[^']+)'",
          _classify_fencing, "pve-ha-manager src/templates/default/fencing-subject.txt.hbs"),
    _rule("package-updates", r"^New software packages available \((?P<host>[^)]+)\)",
          _classify_updates, f"{_PVE_TPL}, {_PBS_TPL}/package-updates-subject.txt.hbs"),
    _rule("gc", rf"^Garbage Collect Datastore '(?P<store>[^']+)' {_OUTCOME}",
          _pbs_job("gc", "Garbage collection"), f"{_PBS_TPL}/gc-*-subject.txt.hbs"),
    _rule("prune", rf"^Pruning datastore '(?P<store>[^']+)' {_OUTCOME}",
          _pbs_job("prune", "Pruning"), f"{_PBS_TPL}/prune-*-subject.txt.hbs"),
    _rule("sync",
          rf"^Sync (?:remote '(?P<remote>[^']+)'|local) datastore '(?P<store>[^']+)' {_OUTCOME}",
          _pbs_job("sync", "Sync"), f"{_PBS_TPL}/sync-*-subject.txt.hbs"),
    _rule("verification", rf"^Verify Datastore '(?P<store>[^']+)' {_OUTCOME}",
          _pbs_job("verify", "Verification"), f"{_PBS_TPL}/verify-*-subject.txt.hbs"),
    _rule("tape-backup",
          rf"^Tape Backup (?:'(?P<job>[^']+)' )?datastore '(?P<store>[^']+)' {_OUTCOME}",
          _classify_tape, f"{_PBS_TPL}/tape-backup-*-subject.txt.hbs"),
    _rule("tape-load", r"^Load Media '(?P<label>[^']*)' request for \S+ '(?P<device>[^']*)'",
          _classify_tape_load, f"{_PBS_TPL}/tape-load-subject.txt.hbs"),
    _rule("thresholds", r"^Threshold Exceeded For Datastore '(?P<store>[^']{1,256})'",
          _classify_threshold,
          f"{_PBS_TPL}/thresholds-exceeded-subject.txt.hbs (PBS 4.2), src/server/notifications"),
    _rule("acme", r"^Could not renew certificate", _classify_acme,
          f"{_PBS_TPL}/acme-err-subject.txt.hbs"),
    _rule("test", r"^Test notification\b", _classify_test,
          f"{_PVE_TPL}/test-subject.txt.hbs, {_PBS_TPL}/test-subject.txt.hbs"),
    _rule("smartd", r"^SMART error \((?P<what>[^)]+)\) detected on host:\s*(?P<host>\S+)",
          _classify_smart, "smartmontools smartd.cpp MailWarning"),
    _rule("zed", r"^ZFS (?P<what>device fault for pool|[\w-]+ error for) (?P<pool>\S+) on "
          r"(?P<host>\S+)", _classify_zfs,
          "openzfs cmd/zed/zed.d/statechange-notify.sh, data-notify.sh"),
    _rule("zed-event", r"^ZFS (?P<cls>[\w.-]{1,64}) event(?: for (?P<pool>\S{1,256}))? on "
          r"(?P<host>\S{1,255})$", _classify_zed_event,
          "openzfs cmd/zed/zed.d/scrub_finish-notify.sh, trim_finish-notify.sh, generic-notify.sh"),
    _rule("mdadm", r"^(?P<event>Fail|FailSpare|DegradedArray|SparesMissing|TestMessage) event on "
          r"(?P<device>/\S{1,255}):(?P<host>[^\s:]{1,255})$", _classify_mdadm,
          "mdadm Monitor.c alert()"),
]  # fmt: skip
TABLE: RuleTable[ParsedMail] = RuleTable(RULES, "email.message")


def classify_mail(mail: ParsedMail) -> Classification:
    """What ``mail`` is about: the first rule matching its cleaned subject, else a plain mail.

    The node is the subject's or body's where a rule found one, else the mail's origin.
    """
    subject = clean_subject(mail.subject)
    result = TABLE.classify("", subject, mail)
    if not result.rule:
        result = _mail(
            kind="email.message",
            severity=Severity.INFO,
            title=subject or _first_line(mail.text) or "(no subject)",
        )
    if result.node is None:
        result.node = origin_node(mail)
    result.severity = apply_severity_floor(result.kind, result.severity or Severity.INFO)
    return result


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def check_mail(raw: bytes, mail: ParsedMail) -> Rejection | None:
    """A ``Rejection`` when ``raw`` is not a message at all (DESIGN.md: rejected, counted)."""
    if not raw.strip():
        return Rejection("empty", "no bytes (or only whitespace)")
    if not mail.has_mail_headers:
        if printable_ratio(raw[:4096].decode("utf-8", "replace")) < 0.85:
            return Rejection("not_a_mail", "no mail headers and the body is binary")
        if not mail.text.strip():
            return Rejection("not_a_mail", "no mail headers and no text")
    if not mail.subject.strip() and not mail.text.strip() and not mail.attachments:
        return Rejection("no_content", "no subject, no text and no attachments")
    return None


def mail_event_id(raw: bytes, mail: ParsedMail, timestamp: datetime) -> str:
    """Deterministic id: redelivery of the same mail (same Message-ID) is one event."""
    if mail.message_id:
        return deterministic_event_id(timestamp, "email", mail.message_id)
    return deterministic_event_id(timestamp, "email-sha256", hashlib.sha256(raw).hexdigest())


def build_event(
    raw: bytes, mail: ParsedMail, *, site: str, now: datetime | None = None, via: str = ""
) -> Event | Rejection:
    """The event for a parsed mail, or why there is none."""
    rejection = check_mail(raw, mail)
    if rejection is not None:
        return rejection
    result = classify_mail(mail)
    received = now or datetime.now(UTC)
    timestamp = mail.date or received
    if timestamp - received > _FUTURE_SLACK:
        timestamp = received  # a sender clock far ahead must not put the event in the future
    metadata: dict[str, Any] = {
        "notification_type": result.metadata.pop("notification_type", "system-mail"),
        "subject": mail.subject[:998],
        "from": mail.sender[:998],
        "to": mail.recipients[:20],
        "message_id": mail.message_id,
        "text_source": mail.text_source,
        "date_header": mail.date.isoformat() if mail.date else None,
        "size": mail.size,
        **result.metadata,
    }
    if via:
        metadata["via"] = via
    if mail.anomalies:
        metadata["anomalies"] = list(mail.anomalies)
    if mail.defects:
        metadata["mime_defects"] = sorted(set(mail.defects))[:20]
    if mail.attachments:
        metadata["attachments"] = mail.attachments[:20]
    message = mail.text[:_MESSAGE_CHARS]
    if not message.strip() and mail.attachments:
        message = "(no text part; attachments: " + ", ".join(mail.attachments[:20]) + ")"
    return Event(
        id=mail_event_id(raw, mail, timestamp),
        source=Source.EMAIL,
        site=site,
        node=result.node,
        severity=result.severity or Severity.INFO,
        kind=result.kind,
        title=result.title,
        message=message,
        timestamp=timestamp,
        received_at=received,
        vmid=result.vmid,
        correlation_id=result.correlation_id,
        metadata=metadata,
    )
