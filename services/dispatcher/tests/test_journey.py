"""The human loop as an operator lives it: what each notifier shows for real happenings, and
that a notification survives what a homelab goes through (a target down for minutes).

Events are built as the ingest services produce them (fields taken from
`proxbus-ingest-syslog parse` / `proxbus-ingest-email parse` output of the corpora's lines).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from proxbus_devtools.testing import free_port
from proxbus_dispatcher.dlq import dlq_list
from proxbus_events import Event, Matcher, Silence
from proxbus_runtime import SilenceStore

from .conftest import ev, publish, wait_until


async def test_a_target_down_longer_than_ten_attempts_still_gets_the_notification(
    dispatcher, sink, js
) -> None:
    # A Gotify server rebooting for an upgrade, Discord down for ten minutes: with the default
    # backoff (1 s doubling to 5 min) ten attempts are spent in 4-8.5 minutes, and the alert
    # went to the dead-letter queue, never to arrive unless someone replays it. Retrying is
    # bounded by max_age (24 h) by default, not by a count. Time is scaled down here: the
    # target fails 25 times (more than the old default of 10 attempts), then comes back.
    hook = await sink(fail_first=25)
    service = await dispatcher(f"""\
receivers:
  - name: hook
    type: webhook
    url: {hook.url}/hook
    backoff_base: 5ms
    backoff_max: 20ms
    breaker_interval: 20ms
route: {{receiver: hook}}
""")
    event = ev(kind="backup.failed", vmid=103, title="Backup of VM 103 failed: ENOSPC")
    await publish(js, event)
    await wait_until(lambda: len(hook.requests) == 1, timeout=20)
    assert hook.attempts == 26
    assert [r.json["event"]["id"] for r in hook.requests] == [event.id]
    assert await dlq_list(js, "hook") == []
    assert (
        service.registry.get_sample_value(
            "proxbus_dispatcher_notifications_total", {"receiver": "hook", "outcome": "dead"}
        )
        is None
    )


# --- a nightly vzdump job of five guests, one failing, seen by syslog, mail and webhook --------
# Field values as `proxbus-ingest-syslog parse` gives them for pve-manager's vzdump lines (the
# job's worker pid is the UPID's, so every line carries the UPID), as
# `proxbus-ingest-email parse` gives them for the job's notification mail (proxmox-notify's
# vzdump template: the per-guest table, the one failed guest's vmid), and as ingest-pve-ws's
# webhook_event gives them for the same notification through a webhook target.
UPID = "UPID:pve1:000158A7:0031D40B:6749F000:vzdump::root@pam:"
ENOSPC = (
    "VM 103 qmp command 'backup' failed - backup register image failed: "
    "command error: ENOSPC: No space left on device"
)
MAIL_TEXT = (
    "Details\n=======\nVMID    Name      Status    Time      Size       Filename\n"
    + "".join(
        f"{v}     web{v}    {'err' if v == 103 else 'ok '}       2m 10s    2.1 GiB    "
        f"{'null' if v == 103 else f'vzdump-qemu-{v}-2026_11_30-02_00_02.vma.zst'}\n"
        for v in (100, 101, 102, 103, 104)
    )
    + "\nTotal running time: 10m 39s\nTotal size: 8.4 GiB\n"
)


def vzdump_job_reports(failing: int = 103) -> list[Event]:
    """Every event one nightly job on pve1 (guests 100-104) gives, in the order it comes."""

    def syslog(**kw: Any) -> Event:
        base = {"source": "syslog", "node": "pve1", "severity": "info", "correlation_id": UPID}
        return ev(**{**base, **kw})

    out = [
        syslog(kind="syslog.message", title="Task vzdump started by root@pam"),
        syslog(
            kind="syslog.message",
            title="vzdump: INFO: starting new backup job: vzdump 100 101 102 103 104 "
            "--storage pbs1 --mode snapshot",
        ),
    ]
    for vmid in (100, 101, 102, 103, 104):
        out.append(
            syslog(
                kind="syslog.message",
                vmid=vmid,
                title=f"vzdump: INFO: Starting Backup of VM {vmid} (qemu)",
            )
        )
        if vmid == failing:
            out.append(
                syslog(
                    kind="backup.failed",
                    severity="error",
                    vmid=vmid,
                    title=f"Backup of VM {vmid} failed: {ENOSPC}",
                    message=f"ERROR: Backup of VM {vmid} failed - {ENOSPC}",
                )
            )
        else:
            out.append(
                syslog(
                    kind="backup.ok",
                    vmid=vmid,
                    title=f"Backup of VM {vmid} finished (00:02:10)",
                    message=f"INFO: Finished Backup of VM {vmid} (00:02:10)",
                )
            )
    out += [
        syslog(kind="backup.failed", severity="error", title="Backup job finished with errors"),
        syslog(kind="task.failed", severity="error", title="Task vzdump failed: job errors"),
        ev(
            source="email",
            node="pve1",
            severity="error",
            kind="backup.failed",
            vmid=failing,
            title=f"Backup of guest {failing} (web{failing}) failed on pve1 (4 other guests ok)",
            message=MAIL_TEXT,
        ),
        ev(
            source="pve-webhook",
            node="pve1",
            severity="error",
            kind="backup.failed",
            vmid=failing,
            title="vzdump backup status (pve1.example.com): backup failed",
            message=MAIL_TEXT,
            correlation_id="backup-nightly",
        ),
    ]
    return out


async def test_a_nightly_backup_with_one_failed_guest_is_one_alert_about_that_guest(
    dispatcher, sink, js
) -> None:
    # Before: the job's "finished with errors" and its task.failed (no guest, the job's UPID)
    # attached to *every* incident of the job, the four successful guests' backup.ok
    # incidents included, and claimed a notification for each on an alerting route: five
    # red alerts, four of them titled "[INFO] Backup of VM 10x finished". A report now never
    # joins an incident calmer than itself.
    hook = await sink()
    service = await dispatcher(f"""\
receivers:
  - {{name: hook, type: webhook, url: "{hook.url}/hook"}}
  - {{name: elsewhere, type: nats, subject: journey.info}}
route:
  receiver: elsewhere
  routes:
    - {{receiver: hook, matchers: ["severity>=warning"]}}
""")
    reports = vzdump_job_reports()
    await publish(js, *reports)
    await wait_until(
        lambda: (
            (
                service.registry.get_sample_value(
                    "proxbus_dispatcher_events_total", {"outcome": "routed"}
                )
                or 0
            )
            + (
                service.registry.get_sample_value(
                    "proxbus_dispatcher_events_total", {"outcome": "suppressed"}
                )
                or 0
            )
            >= len(reports)
        )
    )
    await asyncio.sleep(0.5)  # a wrong extra notification would be on its way by now
    titles = [r.json["title"] for r in hook.requests]
    assert titles == [f"[ERROR] pve1: Backup of VM 103 failed: {ENOSPC}"], titles
    body = hook.requests[0].json
    assert body["incident"]["vmid"] == 103


async def test_the_seed_does_not_notify_every_plain_log_line(dispatcher, sink, js) -> None:
    # Only DISCORD/GOTIFY/WEBHOOK_OUT_ENABLED set, MIN_SEVERITY at its default (info): every
    # unrecognised info line of every daemon (sessions, pveproxy workers, each "Starting
    # Backup of VM N") was a notification: a busy node floods the channel. Plain lines
    # (syslog.message: syslog and the cluster log) are notified from notice by default
    # (SEED_SYSLOG_MIN_SEVERITY); classified events and Proxmox's own notifications
    # (webhook.message, email.message) keep MIN_SEVERITY. Notice stays: pmxcfs's "node has
    # quorum" (the only word that quorum is back) is a notice line.
    hook = await sink()
    # plain lines at once (their digest per node, SEED_LINES_GROUP_WAIT: test_recovery)
    await dispatcher(
        None, webhook_out_enabled=True, webhook_url=f"{hook.url}/hook", seed_lines_group_wait=0
    )
    quiet = [
        ev(
            kind="syslog.message",
            severity="info",
            title="pvedaemon: <root@pam> successful auth for user 'root@pam'",
        ),
        ev(kind="syslog.message", severity="info", title="systemd: Started session-42.scope"),
        ev(kind="syslog.message", severity="info", title="corosync: [KNET ] rx: host: 2 link: 0 is up"),
        ev(kind="syslog.message", severity="info", vmid=101, title="vzdump: INFO: Starting "
           "Backup of VM 101 (qemu)"),
    ]  # fmt: skip
    loud = [
        ev(
            kind="syslog.message", severity="warning", title="kernel: EXT4-fs warning (device sdb1)"
        ),
        # the only word that quorum is back (pmxcfs logs it at notice; no kind in the contract)
        ev(
            kind="syslog.message",
            severity="notice",
            title="pmxcfs: [status] notice: node has quorum",
        ),
        ev(kind="vm.started", severity="info", vmid=100, title="VM 100 started"),
        ev(
            source="pve-webhook",
            kind="webhook.message",
            severity="info",
            title="Proxmox VE replication test notification",
        ),
    ]
    await publish(js, *quiet, *loud)
    await wait_until(lambda: len(hook.requests) >= len(loud))
    await asyncio.sleep(0.5)  # a quiet line would be delivered by now
    assert sorted(r.json["event"]["title"] for r in hook.requests) == sorted(e.title for e in loud)


async def test_the_seeds_plain_line_floor_can_be_lowered(dispatcher, sink, js) -> None:
    hook = await sink()
    await dispatcher(
        None,
        webhook_out_enabled=True,
        webhook_url=f"{hook.url}/hook",
        seed_syslog_min_severity="info",
        seed_lines_group_wait=0,
    )
    await publish(js, ev(kind="syslog.message", severity="info", title="pvedaemon: hello"))
    await wait_until(lambda: len(hook.requests) == 1)


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"


@contextlib.contextmanager
def mailbox() -> Iterator[tuple[_Mailbox, int]]:
    box = _Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def every_notifier(sinks: dict[str, Any], smtp_port: int) -> str:
    return f"""\
receivers:
  - {{name: discord, type: discord, url: "{sinks["discord"].url}/api/webhooks/1/tok"}}
  - {{name: gotify, type: gotify, url: "{sinks["gotify"].url}", token: apptoken}}
  - {{name: hook, type: webhook, url: "{sinks["hook"].url}/hook"}}
  - {{name: mail, type: email, host: 127.0.0.1, port: {smtp_port}, security: none,
      from: proxbus@example.org, to: [ops@example.org]}}
route:
  receiver: hook
  routes:
    - {{receiver: discord, continue: true}}
    - {{receiver: gotify, continue: true}}
    - {{receiver: mail, continue: true}}
    - {{receiver: hook}}
"""


async def test_each_notifier_names_the_node_and_says_when_it_happened(dispatcher, sink, js) -> None:
    # Before: "[ERROR] Backup of VM 103 failed: ..." in the mail subject, the Gotify title and
    # the Discord title, with no node (which of the cluster's nodes?), and no time in any
    # body (a notification retried after an outage, or read the next morning, did not say
    # when the backup failed: only Discord's embed carried a timestamp).
    sinks = {name: await sink() for name in ("discord", "gotify", "hook")}
    with mailbox() as (box, port):
        await dispatcher(every_notifier(sinks, port))
        failed = ev(
            node="pve2",
            kind="backup.failed",
            vmid=103,
            title=f"Backup of VM 103 failed: {ENOSPC}",
            message=f"ERROR: Backup of VM 103 failed - {ENOSPC}",
            timestamp="2026-11-30T02:04:12.345Z",
        )
        # A title that names its node already is not prefixed again ("pve1" in "pve1.lab"),
        # while "pve10" does not name pve1.
        named = ev(
            source="email",
            node="pve1",
            kind="backup.failed",
            vmid=104,
            title="Backup of guest 104 (web104) failed on pve1.lab.example (4 other guests ok)",
            timestamp="2026-11-30T03:00:00Z",
        )
        other = ev(
            node="pve1", kind="vm.crashed", vmid=105, title="VM 105 migrated from pve10 crashed"
        )
        await publish(js, failed, named, other)
        await wait_until(
            lambda: all(len(s.requests) == 3 for s in sinks.values()) and len(box.messages) == 3
        )
    want = {
        failed.id: f"[ERROR] pve2: Backup of VM 103 failed: {ENOSPC}",
        named.id: f"[ERROR] {named.title}",
        other.id: f"[ERROR] pve1: {other.title}",
    }
    by_event = {r.json["event"]["id"]: r.json for r in sinks["hook"].requests}
    assert {k: v["title"] for k, v in by_event.items()} == want
    assert "at: 2026-11-30 02:04:12 UTC" in by_event[failed.id]["body"].splitlines()
    titles = {r.json["embeds"][0]["title"] for r in sinks["discord"].requests}
    assert titles == set(want.values())
    assert {r.json["title"] for r in sinks["gotify"].requests} == set(want.values())
    assert {str(m["Subject"]) for m in box.messages} == set(want.values())
    mail = next(m for m in box.messages if "pve2" in str(m["Subject"]))
    text = mail.get_body(("plain",))
    assert text is not None
    assert "at: 2026-11-30 02:04:12 UTC" in text.get_content().splitlines()


async def test_a_grouped_notification_names_every_kind_it_lists(dispatcher, sink, js) -> None:
    # Before: "[ERROR] 2 events: backup.failed on pve1" for a backup failure and a crash.
    hook = await sink()
    await dispatcher(f"""\
receivers: [{{name: hook, type: webhook, url: "{hook.url}/hook"}}]
route: {{receiver: hook, group_by: [node], group_wait: 300ms}}
""")
    await publish(
        js,
        ev(kind="backup.failed", vmid=101, title="Backup of VM 101 failed: timeout"),
        ev(kind="vm.crashed", vmid=102, title="VM 102 crashed"),
    )
    await wait_until(lambda: len(hook.requests) == 1)
    body = hook.requests[0].json
    assert (
        body["title"] == "[ERROR] 2 events: backup.failed and vm.crashed on pve1 (guests 101, 102)"
    )
    lines = body["body"].splitlines()
    assert len(lines) == 2
    assert all(line.startswith("- [error] pve1: ") and line.endswith(" UTC)") for line in lines)


def _gotify_view(markdown: str) -> tuple[str, str]:
    """What a Gotify client shows for a markdown message (its web UI and Android app render
    CommonMark): the HTML, and its text with line breaks as newlines."""
    from markdown_it import MarkdownIt

    rendered = MarkdownIt("commonmark").render(markdown)
    text = re.sub(r"<[^>]+>", "", rendered.replace("<br />", "\n"))
    return rendered, html.unescape(text)


async def test_gotify_shows_the_alert_line_by_line_with_nothing_from_the_event_as_markup(
    dispatcher, sink, js
) -> None:
    # Before: Gotify got the plain-text body flagged text/markdown, so CommonMark joined
    # "node: pve1", "vmid: 103", "seen via ..." into one paragraph line, turned the job mail's
    # "Details\n=======" into a heading and folded its per-guest table into one line, made
    # "<root@pam>" a mailto link and a syslog line's "[here](http://...)" a live link.
    gotify = await sink()
    await dispatcher(f"""\
receivers: [{{name: gotify, type: gotify, url: "{gotify.url}", token: apptoken}}]
route: {{receiver: gotify}}
""")
    mail = ev(
        source="email",
        node="pve1",
        kind="backup.failed",
        vmid=103,
        title="Backup of guest 103 (web103) failed on pve1 (4 other guests ok)",
        message=MAIL_TEXT,
        timestamp="2026-11-30T02:10:00Z",
    )
    hostile = ev(
        node="pve2",
        kind="syslog.message",
        severity="warning",
        title="pvedaemon: <root@pam> **urgent** [login here](http://phish.example/) `x` #1",
        message="pvedaemon: <root@pam> **urgent** [login here](http://phish.example/) `x` #1",
        timestamp="2026-11-30T02:11:00Z",
    )
    await publish(js, mail, hostile)
    await wait_until(lambda: len(gotify.requests) == 2)
    by_title = {r.json["title"]: r.json for r in gotify.requests}
    assert all(
        r["extras"]["client::display"]["contentType"] == "text/markdown" for r in by_title.values()
    )

    rendered, text = _gotify_view(by_title[f"[ERROR] {mail.title}"]["message"])
    lines = [line.strip() for line in text.splitlines()]
    assert "<h1>" not in rendered
    assert "<h2>" not in rendered
    # the mail's table kept, one guest a line, its columns aligned (a code block)
    assert "<pre><code>" in rendered
    assert "103     web103    err" in text
    assert "node: pve1" in lines
    assert "vmid: 103" in lines
    assert "at: 2026-11-30 02:10:00 UTC" in lines
    assert "seen via email" in lines

    rendered, text = _gotify_view(by_title[f"[WARNING] pve2: {hostile.title}"]["message"])
    lines = [line.strip() for line in text.splitlines()]
    for markup in ("<a ", "<strong>", "<em>", "<code>", "<h1>"):
        assert markup not in rendered, (markup, rendered)
    assert lines[0] == hostile.message  # shown as the text it is
    assert "node: pve2" in lines


# Discord's message markdown (docs.discord.com "Markdown Text 101"; also in embed descriptions
# and field values): masked links [text](url), mentions <@id>, **bold**, __underline__,
# ||spoiler||, headings, lists; a backslash before a punctuation character shows it as is.
_MASKED_LINK = re.compile(r"(?<!\\)\[[^\]]*(?<!\\)\]\(")
_UNESCAPED = re.compile(r"(?<!\\)(?:<@|\*\*|__|\|\||`)")


async def test_discord_shows_a_hostile_log_line_as_text_and_a_mail_table_as_a_block(
    dispatcher, sink, js
) -> None:
    # Anyone who can reach an exposed sshd writes into syslog: "Invalid user <anything>". The
    # embed's description and field values render Discord markdown, so before, the proxbus
    # bot posted the attacker's masked link ("Reset your password" → a phishing page) as a
    # live link, a <@id> as a mention, and a job mail's table folded into proportional text.
    discord = await sink()
    await dispatcher(f"""\
receivers: [{{name: discord, type: discord, url: "{discord.url}/api/webhooks/1/tok"}}]
route: {{receiver: discord}}
""")
    line = (
        "sshd[4242]: Invalid user [Reset your password](http://phish.example/) <@123> "
        "**now** __x__ ||y|| `z` from 203.0.113.9 port 52311"
    )
    hostile = ev(
        node="pve1",
        kind="auth.failed",
        severity="warning",
        title=line,
        message=line,
        metadata={"hostname": "pve1"},
    )
    mail = ev(
        source="email",
        node="pve1",
        kind="backup.failed",
        vmid=103,
        title="Backup of guest 103 (web103) failed on pve1 (4 other guests ok)",
        message=MAIL_TEXT + "``` a fence in the text\n",
    )
    await publish(js, hostile, mail)
    await wait_until(lambda: len(discord.requests) == 2)
    embeds = {
        r.json["embeds"][0]["fields"][1]["value"]: r.json["embeds"][0] for r in discord.requests
    }
    embed = embeds["auth.failed"]
    description = embed["description"]
    assert _MASKED_LINK.search(description) is None, description
    assert _UNESCAPED.search(description) is None, description
    assert "phish.example" in description  # shown, as text
    assert "node: pve1" in description.splitlines()[2]  # one fact a line, after the line
    for field in embed["fields"]:
        assert _MASKED_LINK.search(field["value"]) is None

    table = embeds["backup.failed"]["description"]
    assert table.startswith("```\n"), table
    assert table.count("```") == 2, table  # the text's own fence cannot close the block
    assert "103     web103    err" in table


def _disk_errors(start: datetime, every: timedelta, n: int) -> list[Event]:
    """The kernel's "I/O error, dev sdc" every ``every`` (ingest-syslog: disk.error, error,
    one fingerprint per node and device), received as they happened."""
    out = []
    for i in range(n):
        at = start + i * every
        out.append(
            ev(
                kind="disk.error",
                title="Disk I/O on sdc",
                message=f"I/O error, dev sdc, sector {492641280 + i} op 0x0:(READ) flags 0x0",
                timestamp=at,
                received_at=at,
            )
        )
    return out


async def test_a_disk_error_every_minute_says_how_long_it_has_been_going_on(
    dispatcher, sink, js
) -> None:
    # A failing disk logs an I/O error every minute for an hour. With repeat_interval 0 (the
    # seed's default) each INCIDENT_WINDOW (10 min) is a new incident and a new notification:
    # before, the sixth said just what the first said, as if it had just started.
    hook = await sink()
    await dispatcher(
        f"""\
receivers: [{{name: hook, type: webhook, url: "{hook.url}/hook"}}]
route: {{receiver: hook, repeat_interval: 0s}}
""",
        incident_window=600,
    )
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    await publish(js, *_disk_errors(start, timedelta(minutes=1), 60))
    await wait_until(lambda: len(hook.requests) == 6)
    bodies = [r.json["body"] for r in hook.requests]
    assert "ongoing since" not in bodies[0]
    since = (start).strftime("%Y-%m-%d %H:%M:%S UTC")
    # an incident takes the reports within 600 s of its first (both ends): 11 a minute apart
    for i, body in enumerate(bodies[1:], start=1):
        assert f"ongoing since {since}, {11 * i} earlier reports" in body.splitlines(), body
    incident = hook.requests[5].json["incident"]
    assert incident["earlier"] == 55
    assert incident["since"] == start.timestamp()


async def test_a_repeat_after_repeat_interval_summarises_the_hours_in_between(
    dispatcher, sink, js
) -> None:
    # With the routes' default repeat_interval (4h): one notification, then, if the disk is
    # still failing four hours later, one more that says since when and how often.
    hook = await sink()
    await dispatcher(
        f"""\
receivers: [{{name: hook, type: webhook, url: "{hook.url}/hook"}}]
route: {{receiver: hook}}
""",
        incident_window=600,
    )
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=5)
    errors = _disk_errors(start, timedelta(minutes=5), 50)  # 4 h 5 min
    await publish(js, *errors)
    await wait_until(lambda: len(hook.requests) == 2)
    await asyncio.sleep(0.3)
    assert len(hook.requests) == 2
    since = start.strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = hook.requests[1].json["body"].splitlines()
    assert any(line.startswith(f"ongoing since {since}, ") for line in lines), lines


async def test_apprise_escapes_event_text_for_a_target_that_renders_html_or_markdown(
    dispatcher, sink, js
) -> None:
    # Apprise converts a body to each service's format (HTML for mail and Matrix, markdown for
    # Telegram...) only when told what the body is. The body went as-is: in an HTML target a
    # syslog line's "<img src=x onerror=...>" was HTML and "<root@pam>" vanished as a tag; in a
    # markdown one "[text](url)" was a link. The body is plain text (body_format=text).
    html_target, md_target = await sink(), await sink()
    await dispatcher(f"""\
receivers:
  - name: tail
    type: apprise
    urls:
      - "json://127.0.0.1:{html_target.port}/apprise?format=html"
      - "json://127.0.0.1:{md_target.port}/apprise?format=markdown"
route: {{receiver: tail}}
""")
    line = 'pvedaemon: <root@pam> <img src=x onerror="alert(1)"> [login](http://phish.example/)'
    await publish(
        js, ev(node="pve1", severity="warning", kind="auth.failed", title=line, message=line)
    )
    await wait_until(lambda: len(html_target.requests) == 1 and len(md_target.requests) == 1)
    as_html = html_target.requests[0].json["message"]
    assert "<img" not in as_html, as_html
    assert "&lt;root@pam&gt;" in as_html, as_html
    as_md = md_target.requests[0].json["message"]
    assert _MASKED_LINK.search(as_md) is None, as_md


async def test_a_restart_in_the_middle_of_the_nightly_job_notifies_it_once(
    dispatcher, sink, js
) -> None:
    # The dispatcher restarts (an upgrade) between the guest's failure and the rest of the
    # job's reports: the incident, its UPID and its notification log come back from the state
    # bucket, so the job's end, the task's end, the mail and the webhook join it.
    hook = await sink()
    routes = f"""\
receivers:
  - {{name: hook, type: webhook, url: "{hook.url}/hook"}}
  - {{name: elsewhere, type: nats, subject: journey.info}}
route:
  receiver: elsewhere
  routes:
    - {{receiver: hook, matchers: ["severity>=warning"]}}
"""
    reports = vzdump_job_reports()
    failure = next(i for i, e in enumerate(reports) if e.kind == "backup.failed") + 1
    first = await dispatcher(routes)
    await publish(js, *reports[:failure])
    await wait_until(lambda: len(hook.requests) == 1)
    await first.stop()
    second = await dispatcher(routes)
    await publish(js, *reports[failure:])

    def settled() -> float:
        return sum(
            second.registry.get_sample_value("proxbus_dispatcher_events_total", {"outcome": o}) or 0
            for o in ("routed", "suppressed")
        )

    await wait_until(lambda: settled() >= len(reports) - failure)
    await asyncio.sleep(0.5)  # a second notification would be on its way by now
    assert len(hook.requests) == 1
    assert hook.requests[0].json["incident"]["vmid"] == 103


async def test_a_silence_set_while_a_group_gathers_holds_back_what_it_mutes(
    dispatcher, sink, js
) -> None:
    # routes.example.yaml gathers backup failures per node for 30 s before Discord hears of
    # them. The operator sees the first failure on the console (or a Gotify push) and
    # silences pve1 for the maintenance they are doing: before, the gathered notification
    # still went out with the silenced events, since silences were checked only when an event
    # arrived (Alertmanager checks them again when it notifies).
    hook = await sink()
    service = await dispatcher(f"""\
receivers: [{{name: hook, type: webhook, url: "{hook.url}/hook"}}]
route: {{receiver: hook, group_by: [node], group_wait: 1500ms}}
""")
    assert service.intake is not None
    muted = ev(kind="backup.failed", vmid=101, title="Backup of VM 101 failed: timeout")
    kept = ev(node="pve2", kind="backup.failed", vmid=201, title="Backup of VM 201 failed")
    await publish(js, muted, kept)
    await wait_until(lambda: service.intake.grouper.pending_count == 2)  # type: ignore[union-attr]
    store = await SilenceStore.open(js)
    silence = await store.add(
        Silence.for_duration([Matcher.parse("node=pve1")], timedelta(hours=1), "maintenance")
    )
    await wait_until(lambda: silence.id in service.intake.silences.silences)  # type: ignore[union-attr]
    await wait_until(lambda: len(hook.requests) >= 1)
    await asyncio.sleep(0.5)  # the other group is due at the same time
    assert [r.json["event"]["id"] for r in hook.requests] == [kept.id]
    assert (
        service.registry.get_sample_value(
            "proxbus_dispatcher_suppressed_total", {"reason": "silenced"}
        )
        == 1
    )
    # the muted event was acknowledged on the stream all the same (nothing redelivered)
    await wait_until(lambda: service.intake.grouper.pending_count == 0)  # type: ignore[union-attr]


async def test_a_receiver_can_say_the_time_in_the_operators_zone(dispatcher, sink, js) -> None:
    # UTC, said so, is unambiguous; a homelab in Berlin reads its own time faster. A
    # receiver's `timezone` (an IANA name) shows times there, with the zone's abbreviation.
    hook = await sink()
    await dispatcher(f"""\
receivers:
  - {{name: hook, type: webhook, url: "{hook.url}/hook", timezone: Europe/Berlin}}
route: {{receiver: hook}}
""")
    await publish(js, ev(kind="backup.failed", vmid=103, timestamp="2026-11-30T02:04:12Z"))
    await wait_until(lambda: len(hook.requests) == 1)
    assert "at: 2026-11-30 03:04:12 CET" in hook.requests[0].json["body"].splitlines()


def test_an_unknown_timezone_is_a_config_error_with_its_line() -> None:
    from proxbus_dispatcher.config import parse_config
    from proxbus_dispatcher.errors import ConfigError

    text = """\
receivers:
  - name: hook
    type: webhook
    url: http://127.0.0.1:1/hook
    timezone: Mars/Olympus_Mons
route: {receiver: hook}
"""
    with pytest.raises(ConfigError, match=r"timezone.*unknown time zone") as err:
        parse_config(text, "routes.yaml")
    assert "routes.yaml:5" in str(err.value)


async def test_the_seed_takes_the_time_zone_from_notify_timezone(dispatcher, sink, js) -> None:
    hook = await sink()
    await dispatcher(
        None,
        webhook_out_enabled=True,
        webhook_url=f"{hook.url}/hook",
        notify_timezone="America/New_York",
    )
    await publish(js, ev(kind="backup.failed", vmid=103, timestamp="2026-11-30T02:04:12Z"))
    await wait_until(lambda: len(hook.requests) == 1)
    assert "at: 2026-11-29 21:04:12 EST" in hook.requests[0].json["body"].splitlines()


async def test_mails_about_one_alert_share_a_thread(dispatcher, sink, js) -> None:
    # The disk that keeps failing, the backup that fails every night: each repeat was a new
    # mail thread. Every mail about one alert (fingerprint) now refers to the same thread root,
    # so mail clients keep them together; another alert is another thread.
    with mailbox() as (box, port):
        await dispatcher(
            f"""\
receivers:
  - {{name: mail, type: email, host: 127.0.0.1, port: {port}, security: none,
      from: proxbus@example.org, to: [ops@example.org]}}
route: {{receiver: mail, repeat_interval: 0s}}
""",
            incident_window=600,
        )
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        other = ev(node="pve2", kind="disk.error", title="Disk I/O on sda", timestamp=start)
        await publish(js, *_disk_errors(start, timedelta(minutes=11), 2), other)
        await wait_until(lambda: len(box.messages) == 3)
    by_node: dict[str, list[Message]] = {}
    for message in box.messages:
        by_node.setdefault(str(message["Subject"]).split(":")[0], []).append(message)
    first, repeat = by_node["[ERROR] pve1"]
    [elsewhere] = by_node["[ERROR] pve2"]
    assert first["References"]
    assert repeat["References"] == first["References"]
    assert repeat["In-Reply-To"] == first["References"]
    assert elsewhere["References"] != first["References"]
    assert first["Message-ID"] != repeat["Message-ID"]


async def test_the_seed_sends_a_nights_successes_as_one_digest_per_node(
    dispatcher, sink, js
) -> None:
    # MIN_SEVERITY=info (the default) and a mail receiver: a nightly job of five guests was
    # five mails (four "Backup of VM N finished", one failure), every night. Successes
    # (kinds *.ok) now wait SEED_OK_GROUP_WAIT (10 min) and go out as one digest per node;
    # the failure still goes out at once.
    hook = await sink()
    await dispatcher(
        None, webhook_out_enabled=True, webhook_url=f"{hook.url}/hook", seed_ok_group_wait=1.0
    )
    reports = [e for e in vzdump_job_reports() if e.source == "syslog"]
    await publish(js, *reports)
    await wait_until(lambda: len(hook.requests) >= 2)
    await asyncio.sleep(0.5)
    assert len(hook.requests) == 2, [r.json["title"] for r in hook.requests]
    failure, digest = (r.json for r in hook.requests)
    assert failure["title"] == f"[ERROR] pve1: Backup of VM 103 failed: {ENOSPC}"
    assert digest["title"] == "[INFO] 4 events: backup.ok on pve1 (guests 100, 101, 102, 104)"
    assert [e["vmid"] for e in digest["events"]] == [100, 101, 102, 104]
