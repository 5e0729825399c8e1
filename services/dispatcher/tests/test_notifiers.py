"""Enrichment over a real NATS responder, Apprise and NATS notifiers, templates."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from proxbus_dispatcher.config import parse_config
from proxbus_dispatcher.notification import Notification, delivery_body
from proxbus_dispatcher.notifiers import render_body, render_title
from proxbus_events import ERROR_CODE_HEADER, ERROR_HEADER

from .conftest import ev, publish, wait_until


async def gateway(nc: Any, delay: float = 0.0) -> Any:
    """A stand-in gateway speaking the RPC wire (proxbus.rpc.<tool>) on the real broker."""

    async def guest(msg: Any) -> None:
        args = json.loads(msg.data)
        await asyncio.sleep(delay)
        await msg.respond(json.dumps({"name": f"web{args['vmid']}", "status": "running"}).encode())

    async def task_log(msg: Any) -> None:
        await msg.respond(
            b'{"error": "no such task"}',
            headers={ERROR_HEADER: "no such task", ERROR_CODE_HEADER: "404"},
        )

    subs = [await nc.subscribe("proxbus.rpc.get_guest_status", cb=guest)]
    subs.append(await nc.subscribe("proxbus.rpc.get_task_log", cb=task_log))
    await nc.flush()
    return subs


async def test_enrichment_adds_guest_name_from_the_gateway(dispatcher, sink, js, nc) -> None:
    hook = await sink()
    await gateway(nc)
    await dispatcher(
        f"receivers: [{{name: hook, type: webhook, url: '{hook.url}/h'}}]\nroute: {{receiver: hook}}\n"
    )
    event = ev(kind="vm.crashed", vmid=101, title="VM 101 crashed")
    await publish(js, event)
    await wait_until(lambda: len(hook.requests) == 1)
    body = hook.requests[0].json
    assert body["enrichment"] == {event.id: {"guest_name": "web101", "guest_status": "running"}}
    assert "guest: web101" in body["body"]


async def test_slow_gateway_never_delays_delivery_past_the_timeout(
    dispatcher, sink, js, nc
) -> None:
    hook = await sink()
    await gateway(nc, delay=3.0)
    await dispatcher(
        f"receivers: [{{name: hook, type: webhook, url: '{hook.url}/h'}}]\nroute: {{receiver: hook}}\n",
        enrich_timeout=0.3,
    )
    started = time.monotonic()
    await publish(js, ev(kind="vm.crashed", vmid=102))
    await wait_until(lambda: len(hook.requests) == 1)
    assert time.monotonic() - started < 1.5
    assert hook.requests[0].json["enrichment"] == {}


async def test_apprise_and_nats_receivers_deliver(dispatcher, sink, js, nc) -> None:
    target = await sink()
    got: list[bytes] = []

    async def record(msg: Any) -> None:
        got.append(msg.data)

    await nc.subscribe("notifications.proxmox", cb=record)
    await dispatcher(f"""\
receivers:
  - {{name: tail, type: apprise, urls: ["json://127.0.0.1:{target.port}/apprise"]}}
  - {{name: bus, type: nats, subject: notifications.proxmox}}
route:
  receiver: tail
  routes:
    - {{matchers: ["severity>=debug"], receiver: tail, continue: true}}
    - {{matchers: ["severity>=debug"], receiver: bus}}
""")
    event = ev(title="backup failed", message="details here")
    await publish(js, event)
    await wait_until(lambda: len(target.requests) == 1 and len(got) == 1)
    assert target.requests[0].path == "/apprise"
    assert target.requests[0].json["title"] == "[ERROR] pve1: backup failed"
    assert Notification.from_json(got[0]).first["id"] == event.id


RECEIVERS = """\
receivers:
  - name: custom
    type: nats
    subject: x
    title_template: "{{{{ event.node }}}}: {{{{ event.title | upper }}}}"
    body_template: "{body}"
route: {{receiver: custom}}
"""


def notification_for(**kw: Any) -> Notification:
    return Notification(id="d1", receiver="custom", route="root", events=[ev(**kw)])


def test_templates_render_documented_fields() -> None:
    cfg = parse_config(
        RECEIVERS.format(body="{{ count }} {{ severity }} {{ receiver }} {{ events[0].kind }}")
    )
    receiver = cfg.receivers["custom"]
    n = notification_for(title="disk full")
    assert render_title(receiver, n) == "pve1: DISK FULL"
    assert render_body(receiver, n) == "1 error custom task.failed"


@pytest.mark.parametrize(
    "body",
    ["{{ event.__class__.__mro__ }}", "{{ events.append(1) }}", "{{ nothing.there.at.all }}"],
)
def test_template_errors_and_sandbox_escapes_fall_back_to_the_default(body: str) -> None:
    cfg = parse_config(RECEIVERS.format(body=body))
    out = render_body(cfg.receivers["custom"], notification_for(message="the detail"))
    assert out.startswith("the detail")
    assert "template error" in out


BUTTON_SECRET = "dispatcher-test-button-secret-0123456789abcdef"


def test_discord_buttons_carry_the_alert_fingerprint_signed_only_when_enabled() -> None:
    from proxbus_dispatcher.notifiers.discord import DiscordReceiver, discord_payload
    from proxbus_events import tag_matches

    n = notification_for(title="backup failed")
    url = "https://discord.example/api/webhooks/1/t"
    plain = DiscordReceiver(name="d", type="discord", url=url)
    secret = BUTTON_SECRET.encode()
    assert "components" not in discord_payload(plain, n, button_secret=secret)
    with_buttons = DiscordReceiver(name="d", type="discord", url=url, buttons=True)
    # Without DISCORD_BUTTON_SECRET no buttons: unsigned ones would be refused anyway.
    assert "components" not in discord_payload(with_buttons, n)
    now = 1_790_000_000
    [row] = discord_payload(with_buttons, n, button_secret=secret, now=now)["components"]
    fp = n.first["fingerprint"]
    ids = [(b["label"], b["custom_id"]) for b in row["components"]]
    assert [(label, i.rsplit(":", 1)[0]) for label, i in ids] == [
        ("Silence 1h", f"pbx:silence:{fp}:3600:{now + 24 * 3600}"),
        ("Acknowledge", f"pbx:ack:{fp}:{now + 24 * 3600}"),
    ]
    for _, custom_id in ids:
        signed, tag = custom_id.rsplit(":", 1)
        assert tag_matches(secret, signed, tag)
        assert not tag_matches(b"another secret, just as long as the first one", signed, tag)
        assert len(custom_id) <= 100
    # A Discord click's own event (command.*) is not an alert: no buttons.
    click = notification_for(kind="command.silence", source="discord", severity="notice")
    assert "components" not in discord_payload(with_buttons, click, button_secret=secret)
    # A fingerprint too long for a signed id within Discord's 100 characters: no buttons.
    long_fp = n.first | {"fingerprint": "a" * 64}
    too_long = Notification(id="d2", receiver="d", route="r", events=[long_fp])
    assert "components" not in discord_payload(with_buttons, too_long, button_secret=secret)


def test_a_delivery_body_sends_incidents_once_and_the_notification_names_the_first() -> None:
    first = {"id": "i1", "title": "backup failed", "sources": ["syslog", "email"]}
    second = {"id": "i2", "title": "backup failed", "sources": ["syslog"]}
    body = delivery_body(
        "d1",
        "hook",
        "root",
        [ev(title="ä").to_json()],
        None,
        incidents=[first, second],
        created_at="2026-11-30T06:00:00Z",
    )
    raw = json.loads(body)
    assert "incident" not in raw
    assert raw["incidents"] == [first, second]
    notification = Notification.from_json(body)
    assert notification.incident == first
    assert notification.incidents == [first, second]
    assert notification.events[0]["title"] == "ä"
    assert notification.created_at.isoformat() == "2026-11-30T06:00:00+00:00"
    alone = delivery_body("d2", "hook", "root", [ev().to_json()], None)
    assert Notification.from_json(alone).incident is None


async def test_discord_buttons_ask_the_webhook_to_keep_the_components(dispatcher, sink, js) -> None:
    # Discord ignores a webhook message's components unless the execute-webhook call says
    # ?with_components=true (docs.discord.com, "Using Message Components").
    buttons, plain = await sink(), await sink()
    await dispatcher(
        f"""\
receivers:
  - {{name: buttons, type: discord, url: "{buttons.url}/api/webhooks/1/tok", buttons: true}}
  - {{name: plain, type: discord, url: "{plain.url}/api/webhooks/2/tok?thread_id=9"}}
route:
  receiver: buttons
  routes:
    - {{matchers: ["node=~.+"], receiver: plain, continue: true}}
    - {{matchers: ["node=~.+"], receiver: buttons}}
""",
        discord_button_secret=BUTTON_SECRET,
    )
    await publish(js, ev(kind="backup.failed", vmid=100, title="backup of 100 failed"))
    await wait_until(lambda: len(buttons.requests) == 1 and len(plain.requests) == 1)
    assert buttons.requests[0].query == {"wait": "true", "with_components": "true"}
    assert buttons.requests[0].json["components"][0]["components"][1]["label"] == "Acknowledge"
    assert plain.requests[0].query == {"thread_id": "9", "wait": "true"}
    assert "components" not in plain.requests[0].json


async def test_discord_buttons_without_a_secret_are_left_out_and_said_so(
    dispatcher, sink, js, caplog
) -> None:
    # Unsigned buttons would be refused by ingest-discord: the notification goes without them,
    # and the log says why at start.
    hook = await sink()
    caplog.set_level("WARNING", logger="proxbus_dispatcher")
    await dispatcher(f"""\
receivers:
  - {{name: chat, type: discord, url: "{hook.url}/api/webhooks/1/tok", buttons: true}}
route:
  receiver: chat
""")
    assert any(
        "DISCORD_BUTTON_SECRET is not set" in r.getMessage() and "chat" in r.getMessage()
        for r in caplog.records
    ), caplog.text
    await publish(js, ev(kind="backup.failed", vmid=100, title="backup of 100 failed"))
    await wait_until(lambda: len(hook.requests) == 1)
    assert "components" not in hook.requests[0].json
    assert hook.requests[0].query == {"wait": "true"}


def test_a_short_button_secret_is_refused_at_start() -> None:
    from proxbus_dispatcher.settings import Settings
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings(discord_button_secret="x" * 31, _env_file=None)  # type: ignore[call-arg]
    ok = Settings(discord_button_secret="x" * 32, _env_file=None)  # type: ignore[call-arg]
    assert ok.button_secret == b"x" * 32
    assert "x" * 32 not in repr(ok)
    assert Settings(discord_button_secret="", _env_file=None).button_secret is None  # type: ignore[call-arg]
