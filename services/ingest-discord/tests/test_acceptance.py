"""Slash commands and buttons against the simulator-backed gateway over real NATS RPC."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest
from proxbus_devtools.testing import wait_until
from proxbus_ingest_discord.app import DiscordService
from proxbus_ingest_discord.testing import (
    OPERATOR,
    OPERATOR_ROLE,
    STRANGER,
    DiscordStandIn,
    Signed,
    ack_button,
    click,
    command,
    counter,
    discord_audit,
    discord_events,
    metrics_text,
    service_settings,
    silence_button,
)
from proxbus_mcp_gateway.app import Running
from proxbus_pvesim.simulator import Simulator
from proxbus_runtime import SilenceStore


def power_requests(sim: Simulator, vmid: int, action: str) -> int:
    """How many ``POST .../<vmid>/status/<action>`` reached the simulator."""
    suffix = f"/{vmid}/status/{action}"
    return sum(1 for r in sim.request_log if r.method == "POST" and r.path.endswith(suffix))


def confirm_id(answer: dict[str, Any]) -> str:
    """The custom_id of the confirm button in a command's answer."""
    buttons = answer["data"]["components"][0]["components"]
    return next(b["custom_id"] for b in buttons if b["custom_id"].startswith("pbx:do:"))


async def test_status_summarises_the_simulated_cluster(signed: Signed, gateway: Running) -> None:
    status, answer = await signed.post(command("status"))
    assert status == 200
    assert answer["type"] == 4
    content = answer["data"]["content"]
    assert "**Cluster lab**: quorate" in content
    assert "nodes online 3/3" in content
    # Guest counts from the default lab: 20 VMs (15 running), 10 containers (9 running).
    assert "VMs running 15/20" in content
    assert "containers running 9/10" in content
    for node in ("pve1", "pve2", "pve3"):
        assert re.search(rf"^{node}\s+online", content, re.MULTILINE)
    assert len(content) <= 2000


async def test_vms_lists_the_guests_of_all_nodes_or_of_one(
    signed: Signed, gateway: Running, sim: Simulator
) -> None:
    _, every = await signed.post(command("vms"))
    _, one = await signed.post(command("vms", {"node": "pve2"}))
    content = every["data"]["content"]
    assert content.startswith("**VMs** (20)")
    assert re.search(r"^100\s+mon01\s+pve1\s+running", content, re.MULTILINE)
    assert re.search(r"^105\s+vpn06\s+pve3\s+stopped", content, re.MULTILINE)
    on_pve2 = one["data"]["content"]
    expected = sorted(
        g.vmid for g in sim.lab.guests.values() if g.node == "pve2" and g.kind == "qemu"
    )
    listed = [int(m) for m in re.findall(r"^(\d+)\s", on_pve2, re.MULTILINE)]
    assert listed == expected
    assert on_pve2.startswith(f"**VMs on pve2** ({len(expected)})")
    _, bad = await signed.post(command("vms", {"node": "../etc"}))
    assert bad["data"]["flags"] == 64
    assert "not a node name" in bad["data"]["content"]


async def test_events_shows_recent_events_of_the_stream_by_severity(
    signed: Signed, gateway: Running, js: Any
) -> None:
    from proxbus_events import Event
    from proxbus_runtime import EventPublisher

    async with EventPublisher(js) as pub:
        for sev, kind, title in [
            ("info", "task.ok", "task fine"),
            ("error", "backup.failed", "backup of 100 failed"),
            ("warning", "storage.full", "local-lvm 90%"),
        ]:
            await pub.publish(
                Event(
                    source="syslog", site="lab", node="pve2", severity=sev, kind=kind, title=title
                )
            )
    _, default = await signed.post(command("events"))
    _, errors = await signed.post(command("events", {"severity": "error"}))
    _, everything = await signed.post(command("events", {"severity": "info"}))
    warn = default["data"]["content"]
    assert "**Events ≥ warning**" in warn
    assert "storage.full" in warn
    assert "backup.failed" in warn
    assert "task.ok" not in warn
    assert warn.index("storage.full") < warn.index("backup.failed")  # newest first
    assert "backup.failed" in errors["data"]["content"]
    assert "storage.full" not in errors["data"]["content"]
    assert "task fine" in everything["data"]["content"]


async def test_operator_stop_asks_then_a_confirm_click_stops_once_even_if_delivered_twice(
    signed: Signed, gateway: Running, sim: Simulator, js: Any
) -> None:
    assert sim.lab.guests[100].status == "running"
    _, asked = await signed.post(command("stop", {"vmid": 100}))
    assert asked["type"] == 4
    assert "**Stop VM 100** (mon01) on pve1?" in asked["data"]["content"]
    assert power_requests(sim, 100, "stop") == 0  # asking changes nothing
    custom_id = confirm_id(asked)
    assert custom_id.startswith("pbx:do:stop:qemu:100:")

    press = click(custom_id, user=OPERATOR)
    status, done = await signed.post(press)
    assert status == 200
    assert done["type"] == 7
    assert done["data"]["components"] == []
    assert "stop VM 100 (mon01) on pve1**: started" in done["data"]["content"]
    assert sim.lab.guests[100].status == "stopped"
    assert power_requests(sim, 100, "stop") == 1
    tasks = len(sim.pve_tasks.all_tasks())

    # Discord delivers the same interaction again: same answer, nothing executed.
    again_status, again = await signed.post(press)
    assert again_status == 200
    assert again == done
    assert power_requests(sim, 100, "stop") == 1
    assert len(sim.pve_tasks.all_tasks()) == tasks

    records = await discord_audit(js, 3)
    stops = [r for r in records if r["tool"] == "discord_stop"]
    assert [r["outcome"] for r in stops] == ["ok", "ok", "duplicate"]
    assert all(r["caller"] == f"discord:{OPERATOR}" for r in stops)
    assert stops[1]["arguments"]["vmid"] == 100
    assert stops[1]["arguments"]["discord_user_id"] == OPERATOR
    events = await discord_events(js, 2)
    kinds = [(e.kind, e.metadata.get("phase"), e.severity.value) for e in events]
    assert kinds == [("command.stop", "requested", "info"), ("command.stop", "confirmed", "notice")]
    assert events[1].vmid == 100
    assert events[1].correlation_id
    assert events[1].correlation_id.startswith("UPID:pve1:")


async def test_start_and_reboot_go_through_the_same_confirmation(
    signed: Signed, gateway: Running, sim: Simulator
) -> None:
    assert sim.lab.guests[105].status == "stopped"
    _, asked = await signed.post(
        command("start", {"vmid": 105}, user=STRANGER, roles=[OPERATOR_ROLE])
    )
    _, done = await signed.post(click(confirm_id(asked), user=STRANGER, roles=[OPERATOR_ROLE]))
    assert done["type"] == 7
    assert sim.lab.guests[105].status == "running"
    _, asked = await signed.post(command("reboot", {"vmid": 200}))
    assert "**Reboot container 200** (pihole21)" in asked["data"]["content"]
    assert confirm_id(asked).startswith("pbx:do:reboot:lxc:200:")
    _, done = await signed.post(click(confirm_id(asked)))
    assert "reboot CT 200" in done["data"]["content"]
    assert power_requests(sim, 200, "reboot") == 1


async def test_users_not_on_the_allowlist_cannot_start_stop_or_confirm(
    signed: Signed, gateway: Running, sim: Simulator, js: Any
) -> None:
    _, denied = await signed.post(command("stop", {"vmid": 101}, user=STRANGER, roles=["999"]))
    assert denied["type"] == 4
    assert denied["data"]["flags"] == 64
    assert "Only proxbus operators" in denied["data"]["content"]
    assert "components" not in denied["data"]
    # An operator asks; a stranger presses the button: still refused.
    _, asked = await signed.post(command("stop", {"vmid": 101}))
    _, pressed = await signed.post(click(confirm_id(asked), user=STRANGER))
    assert pressed["type"] == 4
    assert pressed["data"]["flags"] == 64
    _, started = await signed.post(command("start", {"vmid": 107}, user=STRANGER))
    assert "Only proxbus operators" in started["data"]["content"]
    assert sim.lab.guests[101].status == "running"
    assert sim.lab.guests[107].status == "stopped"
    assert power_requests(sim, 101, "stop") == power_requests(sim, 107, "start") == 0
    records = await discord_audit(js, 4)
    assert [(r["tool"], r["outcome"], r["code"]) for r in records] == [
        ("discord_stop", "denied", 403),
        ("discord_stop", "ok", None),
        ("discord_stop", "denied", 403),
        ("discord_start", "denied", 403),
    ]
    events = await discord_events(js, 4)
    assert [e.severity.value for e in events if e.metadata["outcome"] == "denied"] == [
        "warning"
    ] * 3


async def test_an_expired_or_cancelled_confirmation_does_nothing(
    signed: Signed, gateway: Running, sim: Simulator
) -> None:
    old = int(time.time()) - 301
    _, expired = await signed.post(click(f"pbx:do:stop:qemu:102:{old}"))
    assert expired["type"] == 7
    assert "expired" in expired["data"]["content"]
    _, cancelled = await signed.post(click("pbx:cancel"))
    assert cancelled == {
        "type": 7,
        "data": {
            "content": f"Cancelled by user{OPERATOR[:3]}.",
            "allowed_mentions": {"parse": []},
            "components": [],
        },
    }
    assert power_requests(sim, 102, "stop") == 0
    assert sim.lab.guests[102].status == "running"


async def test_silence_by_fingerprint_or_matchers_writes_the_silence_bucket(
    signed: Signed, gateway: Running, js: Any
) -> None:
    fingerprint = "0123456789abcdef0123456789abcdef"
    _, by_fp = await signed.post(command("silence", {"target": fingerprint, "duration": "1h"}))
    _, by_matchers = await signed.post(
        command("silence", {"target": "node=pve2,kind=backup.*", "duration": "30m"})
    )
    _, bad = await signed.post(command("silence", {"target": "colour=blue", "duration": "1h"}))
    _, too_long = await signed.post(command("silence", {"target": fingerprint, "duration": "30d"}))
    _, stranger = await signed.post(
        command("silence", {"target": fingerprint, "duration": "1h"}, user=STRANGER)
    )
    assert "Silenced `fingerprint=" + fingerprint + "`" in by_fp["data"]["content"]
    assert "`node=pve2`, `kind=backup.*`" in by_matchers["data"]["content"]
    assert bad["data"]["flags"] == 64
    assert too_long["data"]["flags"] == 64
    assert "7 days" in too_long["data"]["content"]
    assert "Only proxbus operators" in stranger["data"]["content"]
    silences = await (await SilenceStore.open(js)).list()
    assert sorted(str(s.matchers[0]) for s in silences) == [
        "fingerprint=" + fingerprint,
        "node=pve2",
    ]
    for s in silences:
        length = (s.ends_at - s.starts_at).total_seconds()
        assert length == (3600 if s.matchers[0].name == "fingerprint" else 1800)
        assert s.created_by == f"discord:{OPERATOR}"


async def test_notification_buttons_silence_and_acknowledge_the_alert(
    signed: Signed, gateway: Running, js: Any
) -> None:
    fingerprint = "fedcba9876543210fedcba9876543210"
    _, silenced = await signed.post(click(silence_button(fingerprint)))
    _, acked = await signed.post(click(ack_button(fingerprint)))
    _, refused = await signed.post(click(ack_button(fingerprint), user=STRANGER))
    assert silenced["type"] == 7
    assert silenced["data"]["components"] == []
    assert f"`fingerprint={fingerprint}`" in silenced["data"]["content"]
    assert acked["type"] == 7
    assert acked["data"]["content"] == f"Acknowledged by user{OPERATOR[:3]}."
    assert refused["type"] == 4
    assert refused["data"]["flags"] == 64
    silences = await (await SilenceStore.open(js)).list()
    assert [str(m) for s in silences for m in s.matchers] == [f"fingerprint={fingerprint}"]
    events = await discord_events(js, 3)
    assert [(e.kind, e.metadata["outcome"]) for e in events] == [
        ("command.silence", "ok"),
        ("command.ack", "ok"),
        ("command.ack", "denied"),
    ]
    assert all(e.metadata["alert_fingerprint"] == fingerprint for e in events[:2])
    records = await discord_audit(js, 3)
    assert [(r["tool"], r["outcome"]) for r in records] == [
        ("discord_silence", "ok"),
        ("discord_ack", "ok"),
        ("discord_ack", "denied"),
    ]


async def test_forged_changed_untagged_or_expired_notification_buttons_change_nothing(
    signed: Signed, gateway: Running, js: Any
) -> None:
    fingerprint, other = "fedcba9876543210fedcba9876543210", "0123456789abcdef0123456789abcdef"
    genuine = silence_button(fingerprint)
    expired = int(time.time()) - 1
    tries = {
        "forged fingerprint": click(genuine.replace(fingerprint, other)),
        "changed duration": click(genuine.replace(":3600:", ":604800:")),
        "another secret": click(silence_button(fingerprint, secret="not-the-secret" * 3)),
        "untagged silence": click(f"pbx:silence:{fingerprint}:3600"),
        "untagged ack": click(f"pbx:ack:{fingerprint}"),
        "expired silence": click(silence_button(fingerprint, expires=expired)),
        "expired ack": click(ack_button(fingerprint, expires=expired)),
        "forged ack": click(ack_button(other).replace(other, fingerprint)),
    }
    answers = {what: await signed.post(body) for what, body in tries.items()}
    for what, (status, answer) in answers.items():
        # Shown to the clicker only: the notification and its buttons stay as they are.
        assert (status, answer["type"], answer["data"]["flags"]) == (200, 4, 64), what
        assert "nothing done" in answer["data"]["content"], what
    assert "not made by proxbus" in answers["forged fingerprint"][1]["data"]["content"]
    assert "expired" in answers["expired ack"][1]["data"]["content"]
    assert "predates signed buttons" in answers["untagged silence"][1]["data"]["content"]
    assert await (await SilenceStore.open(js)).list() == []
    records = await discord_audit(js, len(tries))
    assert [r["outcome"] for r in records] == ["refused"] * len(tries)
    assert [r["code"] for r in records] == [403, 403, 403, 410, 410, 410, 410, 403]
    events = await discord_events(js, len(tries))
    assert {e.metadata["outcome"] for e in events} == {"refused"}
    assert not any("alert_fingerprint" in e.metadata for e in events)  # nothing acknowledged
    text = await metrics_text(signed)
    counts = {
        reason: counter(text, "proxbus_discord_buttons_refused_total", reason=reason)
        for reason in ("forged", "missing", "expired", "disabled")
    }
    assert counts == {"forged": 4.0, "missing": 2.0, "expired": 2.0, "disabled": 0.0}
    # The genuine button works, once: the answer removes it from the message, and its id
    # copied into another message (whoever holds the webhook URL can post one) does nothing.
    _, silenced = await signed.post(click(genuine))
    assert silenced["type"] == 7
    assert silenced["data"]["components"] == []
    _, again = await signed.post(click(genuine))
    assert (again["type"], again["data"]["flags"]) == (4, 64)
    assert again["data"]["content"] == (
        f"This button was already used by user{OPERATOR[:3]}; nothing done."
    )
    silences = await (await SilenceStore.open(js)).list()
    assert [str(m) for s in silences for m in s.matchers] == [f"fingerprint={fingerprint}"]
    records = await discord_audit(js, len(tries) + 2)
    assert [r["outcome"] for r in records[-2:]] == ["ok", "duplicate"]


async def test_without_a_button_secret_every_notification_button_is_refused(
    signed: Signed, gateway: Running, nats_server: Any, keypair: Any, discord_api: Any, js: Any
) -> None:
    settings = service_settings(nats_server.url, keypair, discord_api.url, discord_button_secret="")
    async with DiscordService(settings) as bare:
        url = f"http://127.0.0.1:{bare.port}/discord/interactions"
        plain = Signed(url, keypair, signed.http)
        fingerprint = "fedcba9876543210fedcba9876543210"
        _, silence = await plain.post(click(silence_button(fingerprint)))
        _, ack = await plain.post(click(ack_button(fingerprint)))
        for answer in (silence, ack):
            assert (answer["type"], answer["data"]["flags"]) == (4, 64)
            assert "DISCORD_BUTTON_SECRET is not set" in answer["data"]["content"]
        text = await metrics_text(plain)
        assert counter(text, "proxbus_discord_buttons_refused_total", reason="disabled") == 2
    assert await (await SilenceStore.open(js)).list() == []


async def test_every_command_is_audited_and_published_as_an_event(
    signed: Signed, gateway: Running, js: Any
) -> None:
    for payload in (
        command("status"),
        command("vms"),
        command("events", {"severity": "critical"}),
        command("vms", {"node": "nope"}),
    ):
        status, _ = await signed.post(payload)
        assert status == 200
    records = await discord_audit(js, 4)
    assert [r["tool"] for r in records] == [
        "discord_status",
        "discord_vms",
        "discord_events",
        "discord_vms",
    ]
    for r in records:
        assert r["schema"] == "proxbus.audit/v1"
        assert r["transport"] == "discord"
        assert r["site"] == "lab"
        assert r["subject"] == f"proxbus.audit.lab.{r['tool']}"
        assert r["duration_ms"] >= 0
    assert records[2]["arguments"]["severity"] == "critical"
    # vms on an unknown node: the gateway's error is shown and audited.
    assert records[3]["outcome"] == "error"
    assert records[3]["code"] == 404
    events = await discord_events(js, 4)
    assert [e.kind for e in events] == [
        "command.status",
        "command.vms",
        "command.events",
        "command.vms",
    ]
    assert all(e.source.value == "discord" and e.site == "lab" for e in events)


async def test_a_slow_gateway_answer_is_deferred_then_followed_up(
    signed: Signed, gateway: Running, sim: Simulator, discord_api: DiscordStandIn
) -> None:
    sim.add_latency("/cluster/resources", 3.0)
    payload = command("vms")
    started = time.monotonic()
    status, answer = await signed.post(payload)
    elapsed = time.monotonic() - started
    assert status == 200
    assert answer == {"type": 5}
    assert elapsed < 3.0
    await discord_api.wait(1, timeout=15)
    method, path, body = discord_api.calls[0]
    assert (method, path) == (
        "POST",
        f"/api/v10/webhooks/{payload['application_id']}/{payload['token']}",
    )
    assert body["content"].startswith("**VMs** (20)")
    # A retry of the deferred interaction after the follow-up replays the answer, nothing more.
    status, again = await signed.post(payload)
    assert again["type"] == 4
    assert again["data"]["content"] == body["content"]
    text = await metrics_text(signed)
    assert (
        counter(text, "proxbus_discord_interactions_total", type="command", answer="duplicate") == 1
    )
    assert counter(text, "proxbus_discord_followups_total", outcome="sent") == 1
    assert len(discord_api.calls) == 1


async def test_the_answer_stays_within_3_s_when_nats_goes_away_after_the_claim(
    signed: Signed, gateway: Running, sim: Simulator, nats_server: Any, js: Any
) -> None:
    sim.add_latency("/cluster/resources", 3.0)
    payload = command("vms")
    ledger = await js.key_value("proxbus_discord_interactions")
    started = time.monotonic()
    post = asyncio.create_task(signed.post(payload))
    try:
        # Claimed (the work has begun): now the bus goes away, as a broker restart would.
        await wait_until(lambda: ledger.get(payload["id"]), timeout=5, ignore=(Exception,))
        # In a thread: the server takes a while to stop, and the service shares this loop.
        await asyncio.to_thread(nats_server.stop)
        status, answer = await post
        elapsed = time.monotonic() - started
    finally:
        if nats_server.proc is None:
            nats_server.start()
    assert status == 200
    assert answer["type"] in (4, 5)  # the gateway's answer, or "deferred" while it is missing
    assert elapsed < 3.0  # Discord's limit: the bookkeeping must not hold the answer back


async def test_a_slow_confirmed_action_is_deferred_and_edits_the_message(
    signed: Signed, gateway: Running, sim: Simulator, discord_api: DiscordStandIn
) -> None:
    _, asked = await signed.post(command("stop", {"vmid": 103}))
    sim.add_latency("/nodes/pve1/qemu/103/status/stop", 3.0)
    press = click(confirm_id(asked))
    status, answer = await signed.post(press)
    assert (status, answer) == (200, {"type": 6})
    await discord_api.wait(1, timeout=15)
    method, path, body = discord_api.calls[0]
    assert method == "PATCH"
    assert (
        path == f"/api/v10/webhooks/{press['application_id']}/{press['token']}/messages/@original"
    )
    assert "stop VM 103 (web04) on pve1**: started" in body["content"]
    assert body["components"] == []
    assert sim.lab.guests[103].status == "stopped"
    assert power_requests(sim, 103, "stop") == 1


async def test_follow_ups_honour_429_and_give_up_on_a_refusal(
    signed: Signed, gateway: Running, sim: Simulator, discord_api: DiscordStandIn
) -> None:
    sim.add_latency("/cluster/resources", 2.5)
    discord_api.statuses = [429]
    discord_api.retry_after = 1.5  # longer than the client's own first backoff (0.5 s)
    _, answer = await signed.post(command("vms"))
    assert answer == {"type": 5}
    await discord_api.wait(2, timeout=15)
    assert [c[0] for c in discord_api.calls] == ["POST", "POST"]
    assert discord_api.calls[0][2] == discord_api.calls[1][2]
    assert discord_api.times[1] - discord_api.times[0] >= 1.5  # waited as told
    discord_api.statuses = [404]
    sim.add_latency("/cluster/status", 2.5)  # /cluster/resources is in the gateway's cache now
    _, answer = await signed.post(command("status"))
    assert answer == {"type": 5}
    await discord_api.wait(3, timeout=15)
    async with asyncio.timeout(5):
        while (
            counter(await metrics_text(signed), "proxbus_discord_followups_total", outcome="failed")
            < 1
        ):
            await asyncio.sleep(0.05)
    text = await metrics_text(signed)
    assert counter(text, "proxbus_discord_followups_total", outcome="sent") == 1
    assert len(discord_api.calls) == 3  # a 4xx is not retried


async def test_two_replicas_given_the_same_click_at_once_stop_the_guest_once(
    signed: Signed,
    gateway: Running,
    sim: Simulator,
    nats_server: Any,
    keypair: Any,
    discord_api: DiscordStandIn,
) -> None:
    second = DiscordService(service_settings(nats_server.url, keypair, discord_api.url))
    await second.start()
    try:
        other = Signed(f"http://127.0.0.1:{second.port}/discord/interactions", keypair, signed.http)
        _, asked = await signed.post(command("stop", {"vmid": 104}))
        press = click(confirm_id(asked))
        (s1, a1), (s2, a2) = await asyncio.gather(signed.post(press), other.post(press))
    finally:
        await second.close()
    assert (s1, s2) == (200, 200)
    assert sorted([a1["type"], a2["type"]]) in ([6, 7], [7, 7])
    assert sim.lab.guests[104].status == "stopped"
    assert power_requests(sim, 104, "stop") == 1


async def test_with_the_gateways_default_read_only_rpc_scope_a_confirm_explains_itself(
    signed: Signed, sim: Simulator, nats_server: Any, js: Any
) -> None:
    from proxbus_mcp_gateway.app import start_gateway
    from proxbus_mcp_gateway.testing import make_settings, sim_env

    running = await start_gateway(
        make_settings(nats_enabled=True, nats_url=nats_server.url), sim_env(sim)
    )
    try:
        _, asked = await signed.post(command("stop", {"vmid": 106}))  # a read: allowed
        _, pressed = await signed.post(click(confirm_id(asked)))
    finally:
        await running.close()
    assert pressed["type"] == 7
    assert pressed["data"]["components"] == []
    assert "**stop 106 failed**: forbidden" in pressed["data"]["content"]
    assert "RPC_SCOPES" in pressed["data"]["content"]
    assert power_requests(sim, 106, "stop") == 0
    assert sim.lab.guests[106].status == "running"
    records = await discord_audit(js, 2)
    assert [(r["outcome"], r["code"]) for r in records] == [("ok", None), ("error", 403)]


async def test_a_deferred_command_that_ends_in_an_error_answers_it_privately(
    signed: Signed, gateway: Running, sim: Simulator, discord_api: DiscordStandIn
) -> None:
    # Discord gives the first follow-up of a deferral the deferral's visibility (everyone saw
    # "thinking…"): the thinking message is resolved first, then the error follows with the
    # ephemeral flag (docs.discord.com, "Receiving and Responding": followup messages).
    sim.add_latency("/cluster/resources", 3.0)
    payload = command("stop", {"vmid": 999})  # no such guest: the gateway says so, late
    _, answer = await signed.post(payload)
    assert answer == {"type": 5}
    await discord_api.wait(2, timeout=15)
    base = f"/api/v10/webhooks/{payload['application_id']}/{payload['token']}"
    (m1, p1, b1), (m2, p2, b2) = discord_api.calls
    assert (m1, p1) == ("PATCH", f"{base}/messages/@original")
    assert "999" not in b1["content"]
    assert b1["allowed_mentions"] == {"parse": []}
    assert (m2, p2) == ("POST", base)
    assert b2["flags"] == 64
    assert "stop failed" in b2["content"]


@pytest.mark.parametrize("retry_after", [None, float("nan"), -5.0])
async def test_a_429_with_an_unreadable_retry_after_is_still_retried(
    signed: Signed,
    gateway: Running,
    sim: Simulator,
    discord_api: DiscordStandIn,
    retry_after: float | None,
) -> None:
    sim.add_latency("/cluster/resources", 2.5)
    discord_api.statuses = [429]
    discord_api.retry_after = retry_after  # type: ignore[assignment]  # null, NaN, negative
    _, answer = await signed.post(command("vms"))
    assert answer == {"type": 5}
    await discord_api.wait(2, timeout=15)
    assert [c[0] for c in discord_api.calls] == ["POST", "POST"]
    async with asyncio.timeout(5):
        while (
            counter(await metrics_text(signed), "proxbus_discord_followups_total", outcome="sent")
            < 1
        ):
            await asyncio.sleep(0.05)


async def test_a_refusal_with_a_broken_body_is_counted_not_a_lost_task(
    signed: Signed, gateway: Running, sim: Simulator, discord_api: DiscordStandIn
) -> None:
    sim.add_latency("/cluster/resources", 2.5)
    discord_api.statuses = [400]
    discord_api.refusal_body = b"\xff\xfe not utf-8 \xc3"
    payload = command("vms")
    _, answer = await signed.post(payload)
    assert answer == {"type": 5}
    await discord_api.wait(1, timeout=15)
    async with asyncio.timeout(5):
        while (
            counter(await metrics_text(signed), "proxbus_discord_followups_total", outcome="failed")
            < 1
        ):
            await asyncio.sleep(0.05)
    # The interaction was settled: a retry gets the answer, nothing runs again.
    _, again = await signed.post(payload)
    assert again["type"] == 4
    assert again["data"]["content"].startswith("**VMs**")
