"""Discord round trip: the dispatcher's notification carries buttons, a click on "Silence 1h"
comes back through ingest-discord, and the dispatcher then mutes the same alert; a click on
"Acknowledge" marks the alert's incident acknowledged and stops its repeats.

The dispatcher runs as its console script with a discord receiver (``buttons: true``) pointed at
the loopback sink standing in for Discord, and signs the buttons with DISCORD_BUTTON_SECRET;
ingest-discord runs in-process with the same secret; the click is signed with the test's
Ed25519 key as Discord signs it. Look-alike buttons (another fingerprint, another duration, no
tag) are refused and change nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from proxbus_events import Event, tag_matches
from proxbus_ingest_discord.app import DiscordService
from proxbus_ingest_discord.testing import (
    BUTTON_SECRET,
    OPERATOR,
    STRANGER,
    Signed,
    click,
    service_settings,
)
from proxbus_runtime import EventPublisher, SilenceStore

ROUTES = """\
receivers:
  - {name: discord, type: discord, url: "${SINK_URL}/discord", buttons: true}
route:
  receiver: discord
  group_by: ["..."]
  repeat_interval: 0s
"""


def alert(title: str, node: str = "pve2") -> Event:
    return Event(
        source="syslog", site="lab", node=node, severity="error", kind="backup.failed", title=title
    )


def alerts_delivered(sink: Any) -> list[dict[str, Any]]:
    """The embeds of backup.failed notifications (the command.* events of the clicks are
    notified too: the route takes everything)."""
    embeds = [json.loads(r.body)["embeds"][0] for r in sink.on("/discord")]
    return [
        e
        for e in embeds
        if {"name": "kind", "value": "backup.failed", "inline": True} in e["fields"]
    ]


async def suppressed(port: int, reason: str = "silenced") -> float:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as r:
        text = await r.text()
    for line in text.splitlines():
        if line.startswith(f'proxbus_dispatcher_suppressed_total{{reason="{reason}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@contextlib.asynccontextmanager
async def discord_round_trip(
    stack: Any, sink: Any, nats_server: Any
) -> AsyncIterator[tuple[Any, DiscordService, Ed25519PrivateKey]]:
    """The dispatcher (its console script; a discord receiver with buttons; INCIDENT_WINDOW=0
    and repeat_interval 0s, so every report of an alert is notified again), ingest-discord
    in-process, and the key that signs the clicks as Discord does."""
    routes = stack.dir / "routes-discord.yaml"
    routes.write_text(ROUTES)
    dispatcher = stack.dispatcher(
        routes, sink, INCIDENT_WINDOW="0", DISCORD_BUTTON_SECRET=BUTTON_SECRET
    )
    await stack.healthy(dispatcher)
    key = Ed25519PrivateKey.generate()
    discord = DiscordService(service_settings(nats_server.url, key, f"{sink.url}/api"))
    await discord.start()
    try:
        yield dispatcher, discord, key
    finally:
        await discord.close()


async def test_a_silence_button_click_mutes_the_alert_at_the_dispatcher(
    stack: Any, sink: Any, nats_server: Any, js: Any
) -> None:
    async with discord_round_trip(stack, sink, nats_server) as (dispatcher, discord, key):
        async with EventPublisher(js) as pub:
            first = alert("backup of 100 failed")
            await pub.publish(first)
            await stack.wait_until(lambda: len(sink.on("/discord")) >= 1, "first notification")
            payload = json.loads(sink.on("/discord")[0].body)
            buttons = payload["components"][0]["components"]
            silence_id = next(b["custom_id"] for b in buttons if b["label"] == "Silence 1h")
            signed_part, tag = silence_id.rsplit(":", 1)
            assert signed_part.startswith(f"pbx:silence:{first.fingerprint}:3600:")
            assert tag_matches(BUTTON_SECRET.encode(), signed_part, tag)

            async with aiohttp.ClientSession() as http:
                signed = Signed(f"http://127.0.0.1:{discord.port}/discord/interactions", key, http)
                status, answer = await signed.post(click(silence_id))
            assert status == 200
            assert answer["type"] == 7
            silences = await (await SilenceStore.open(js)).list()
            assert [str(m) for s in silences for m in s.matchers] == [
                f"fingerprint={first.fingerprint}"
            ]

            # The same alert again (same fingerprint, new event): muted. Another alert: delivered.
            again = alert("backup of 100 failed")
            assert again.fingerprint == first.fingerprint
            await pub.publish(again)
            other = alert("backup of 100 failed", node="pve3")
            await pub.publish(other)
            await stack.wait_until(lambda: len(alerts_delivered(sink)) == 2, "the other alert")
        async with asyncio.timeout(10):
            while await suppressed(dispatcher.health_port) < 1:
                await asyncio.sleep(0.05)
        nodes = [
            f["value"] for e in alerts_delivered(sink) for f in e["fields"] if f["name"] == "node"
        ]
        assert nodes == ["pve2", "pve3"], stack.report()
        # The click's own event (command.silence) is notified without buttons.
        command_embeds = [
            json.loads(r.body) for r in sink.on("/discord") if b"command.silence" in r.body
        ]
        assert command_embeds, stack.report()
        assert all("components" not in c for c in command_embeds)


async def acked_incident(js: Any, fingerprint: str) -> dict[str, Any] | None:
    """The dispatcher's stored incident of ``fingerprint`` once it is acknowledged."""
    kv = await js.key_value("proxbus_dispatcher_state")
    try:
        entry = await kv.get(f"inc.{fingerprint}")
    except Exception:
        return None
    incident: dict[str, Any] = json.loads(entry.value or b"{}")
    return incident if incident.get("acked") else None


async def test_an_acknowledge_click_stops_the_repeats_of_that_incident_only(
    stack: Any, sink: Any, nats_server: Any, js: Any
) -> None:
    async with discord_round_trip(stack, sink, nats_server) as (dispatcher, discord, key):
        proxbus = str(Path(sys.executable).parent / "proxbus")
        tail = await asyncio.create_subprocess_exec(
            proxbus, "--nats-url", nats_server.url, "events", "tail", "--incidents",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert tail.stderr is not None
            assert tail.stdout is not None
            assert b"listening" in await asyncio.wait_for(tail.stderr.readline(), 15)
            async with EventPublisher(js) as pub:
                first = alert("backup of 100 failed")
                await pub.publish(first)
                await stack.wait_until(
                    lambda: len(alerts_delivered(sink)) >= 1, "first notification"
                )
                payload = json.loads(sink.on("/discord")[0].body)
                buttons = payload["components"][0]["components"]
                ack_id = next(b["custom_id"] for b in buttons if b["label"] == "Acknowledge")
                assert ack_id.startswith(f"pbx:ack:{first.fingerprint}:")
                # Without the ack, a repeat is notified (the route says so).
                await pub.publish(alert("backup of 100 failed"))
                await stack.wait_until(lambda: len(alerts_delivered(sink)) == 2, "a repeat")

                async with aiohttp.ClientSession() as http:
                    signed = Signed(
                        f"http://127.0.0.1:{discord.port}/discord/interactions", key, http
                    )
                    refused_status, refused = await signed.post(click(ack_id, user=STRANGER))
                    status, answer = await signed.post(click(ack_id))
                assert (refused_status, refused["type"]) == (200, 4)  # not an operator
                assert status == 200
                assert answer["type"] == 7
                assert answer["data"]["content"] == f"Acknowledged by user{OPERATOR[:3]}."
                incident: dict[str, Any] | None = None
                async with asyncio.timeout(15):
                    while incident is None:
                        incident = await acked_incident(js, first.fingerprint)
                        if incident is None:
                            await asyncio.sleep(0.05)
                # The stranger's click came first and did not count.
                # Named by the member's user id; the display name is only a label.
                assert incident["acked"]["by"] == f"discord:{OPERATOR}", incident
                assert incident["acked"]["user_id"] == OPERATOR
                assert incident["acked"]["label"] == f"user{OPERATOR[:3]}"
                # What the operator sees in `proxbus events tail --incidents`:
                line = b""
                async with asyncio.timeout(15):
                    while b"acknowledged by" not in line:
                        line = await tail.stdout.readline()
                        assert line, "events tail ended"
                assert (
                    line.decode()
                    .rstrip()
                    .endswith(
                        f"backup of 100 failed (acknowledged by user{OPERATOR[:3]}"
                        f" (discord:{OPERATOR}))"
                    )
                )

                # The acknowledged alert again: not notified. Another alert: delivered.
                await pub.publish(alert("backup of 100 failed"))
                await pub.publish(alert("backup of 100 failed", node="pve3"))
                await stack.wait_until(lambda: len(alerts_delivered(sink)) == 3, "the other alert")
            async with asyncio.timeout(10):
                while await suppressed(dispatcher.health_port, "acknowledged") < 1:
                    await asyncio.sleep(0.05)
            nodes = [
                f["value"]
                for e in alerts_delivered(sink)
                for f in e["fields"]
                if f["name"] == "node"
            ]
            assert nodes == ["pve2", "pve2", "pve3"], stack.report()
        finally:
            tail.terminate()
            await tail.wait()


async def test_look_alike_buttons_are_refused_and_the_genuine_one_works(
    stack: Any, sink: Any, nats_server: Any, js: Any
) -> None:
    """Whoever holds the notifications' webhook URL can post buttons of their own: another
    alert's fingerprint, a week's silence, the unsigned ids of earlier versions. An operator's
    click on them silences and acknowledges nothing; the dispatcher's own button works."""
    async with (
        discord_round_trip(stack, sink, nats_server) as (_, discord, key),
        EventPublisher(js) as pub,
    ):
        first = alert("backup of 100 failed")
        victim = alert("backup of 100 failed", node="pve3")  # what a forger wants muted
        await pub.publish(first)
        await stack.wait_until(lambda: len(alerts_delivered(sink)) >= 1, "first notification")
        await pub.publish(victim)
        await stack.wait_until(lambda: len(alerts_delivered(sink)) == 2, "the victim's alert")
        payload = json.loads(sink.on("/discord")[0].body)
        buttons = payload["components"][0]["components"]
        genuine = next(b["custom_id"] for b in buttons if b["label"] == "Silence 1h")
        genuine_ack = next(b["custom_id"] for b in buttons if b["label"] == "Acknowledge")
        look_alikes = [
            genuine.replace(first.fingerprint, victim.fingerprint),
            genuine.replace(":3600:", ":604800:"),
            genuine_ack.replace(first.fingerprint, victim.fingerprint),
            f"pbx:silence:{victim.fingerprint}:604800",
            f"pbx:ack:{victim.fingerprint}",
        ]
        async with aiohttp.ClientSession() as http:
            signed = Signed(f"http://127.0.0.1:{discord.port}/discord/interactions", key, http)
            answers = [await signed.post(click(custom_id)) for custom_id in look_alikes]
            for status, answer in answers:
                assert (status, answer["type"], answer["data"]["flags"]) == (200, 4, 64)
                assert "nothing done" in answer["data"]["content"]
            assert await (await SilenceStore.open(js)).list() == []
            # The victim's alert is still notified (neither muted nor acknowledged).
            await pub.publish(alert("backup of 100 failed", node="pve3"))
            await stack.wait_until(lambda: len(alerts_delivered(sink)) == 3, "the victim again")
            assert await acked_incident(js, victim.fingerprint) is None
            # The dispatcher's own button works, once.
            status, answer = await signed.post(click(genuine))
            _, again = await signed.post(click(genuine))
        assert (status, answer["type"]) == (200, 7)
        assert (again["type"], again["data"]["flags"]) == (4, 64)
        assert "already used" in again["data"]["content"]
        silences = await (await SilenceStore.open(js)).list()
        assert [str(m) for s in silences for m in s.matchers] == [
            f"fingerprint={first.fingerprint}"
        ]
        assert [s.ends_at - s.starts_at for s in silences] == [timedelta(hours=1)]
