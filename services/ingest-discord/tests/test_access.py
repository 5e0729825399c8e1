"""Who may use /proxbus, and where: DISCORD_GUILDS (and DISCORD_CHANNELS) bound every command
and click to your own server; with nothing configured nobody may read or act.

A Discord application is "Public Bot" by default: anyone can add it to their own server, and a
globally registered command is usable in DMs with the bot. Discord signs those interactions
too, so the signature alone does not say they come from the lab owner's server.
Real parts: a real nats-server, the real gateway over NATS RPC, signed requests.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from proxbus_ingest_discord.app import DiscordService
from proxbus_ingest_discord.testing import (
    CHANNEL,
    GUILD,
    STRANGER,
    Signed,
    click,
    command,
    discord_audit,
    discord_events,
    metrics_text,
    service_settings,
)
from proxbus_mcp_gateway.app import Running
from proxbus_pvesim.simulator import Simulator

OTHER_GUILD = "410000000000000009"
OTHER_CHANNEL = "510000000000000009"
THREAD = "520000000000000001"


def power_requests(sim: Simulator, vmid: int, action: str) -> int:
    suffix = f"/{vmid}/status/{action}"
    return sum(1 for r in sim.request_log if r.method == "POST" and r.path.endswith(suffix))


@asynccontextmanager
async def running(
    nats_server: Any, keypair: Any, discord_api: Any, signed: Signed, **settings: Any
) -> AsyncIterator[Signed]:
    svc = DiscordService(service_settings(nats_server.url, keypair, discord_api.url, **settings))
    await svc.start()
    try:
        yield Signed(f"http://127.0.0.1:{svc.port}/discord/interactions", keypair, signed.http)
    finally:
        await svc.close()


def refused(answer: dict[str, Any]) -> bool:
    return (
        answer["type"] == 4
        and answer["data"].get("flags") == 64
        and "components" not in answer["data"]
        and "Cluster" not in answer["data"]["content"]
    )


async def test_commands_from_another_server_or_a_dm_are_refused(
    signed: Signed, gateway: Running, sim: Simulator, js: Any
) -> None:
    _, read_elsewhere = await signed.post(command("status", user=STRANGER, guild=OTHER_GUILD))
    _, read_in_dm = await signed.post(command("vms", user=STRANGER, guild=None))
    _, stop_elsewhere = await signed.post(command("stop", {"vmid": 100}, guild=OTHER_GUILD))
    _, stop_in_dm = await signed.post(command("stop", {"vmid": 100}, guild=None))
    _, ack_in_dm = await signed.post(click("pbx:ack:0123456789abcdef", guild=None))
    for answer in (read_elsewhere, read_in_dm, stop_elsewhere, stop_in_dm, ack_in_dm):
        assert refused(answer), answer
        assert "DISCORD_GUILDS" in answer["data"]["content"]
    records = await discord_audit(js, 5)
    assert [r["outcome"] for r in records] == ["denied"] * 5
    assert records[0]["arguments"]["discord_guild_id"] == OTHER_GUILD
    # The same reads from the configured server answer.
    _, here = await signed.post(command("status", user=STRANGER))
    assert "**Cluster lab**" in here["data"]["content"]
    assert not any(r.path.endswith("/status/stop") for r in sim.request_log)


async def test_with_nothing_configured_nobody_may_read_or_act(
    signed: Signed,
    gateway: Running,
    sim: Simulator,
    nats_server: Any,
    keypair: Any,
    discord_api: Any,
) -> None:
    async with running(
        nats_server, keypair, discord_api, signed, discord_guilds="", discord_operators=""
    ) as bare:
        answers = [
            (await bare.post(command("status")))[1],
            (await bare.post(command("vms", user=STRANGER)))[1],
            (await bare.post(command("stop", {"vmid": 101})))[1],
            (await bare.post(click("pbx:ack:0123456789abcdef")))[1],
        ]
    assert all(refused(a) for a in answers), answers
    assert power_requests(sim, 101, "stop") == 0


async def test_without_discord_guilds_only_operators_may_read(
    signed: Signed,
    gateway: Running,
    nats_server: Any,
    keypair: Any,
    discord_api: Any,
) -> None:
    async with running(nats_server, keypair, discord_api, signed, discord_guilds="") as open_:
        _, stranger = await open_.post(command("status", user=STRANGER, guild=OTHER_GUILD))
        _, operator = await open_.post(command("status"))
    assert refused(stranger)
    assert "DISCORD_GUILDS" in stranger["data"]["content"]
    assert "**Cluster lab**" in operator["data"]["content"]


async def test_discord_channels_limits_commands_to_those_channels_and_their_threads(
    signed: Signed,
    gateway: Running,
    sim: Simulator,
    nats_server: Any,
    keypair: Any,
    discord_api: Any,
) -> None:
    async with running(
        nats_server, keypair, discord_api, signed, discord_channels=CHANNEL
    ) as scoped:
        _, elsewhere = await scoped.post(command("status", channel=OTHER_CHANNEL))
        _, stop_elsewhere = await scoped.post(command("stop", {"vmid": 102}, channel=OTHER_CHANNEL))
        _, in_thread = await scoped.post(command("status", channel=THREAD, parent=CHANNEL))
        _, here = await scoped.post(command("status"))
    assert refused(elsewhere)
    assert "DISCORD_CHANNELS" in elsewhere["data"]["content"]
    assert refused(stop_elsewhere)
    assert "**Cluster lab**" in in_thread["data"]["content"]
    assert "**Cluster lab**" in here["data"]["content"]
    assert power_requests(sim, 102, "stop") == 0


async def test_refusals_from_outside_are_audited_but_not_published_as_events(
    signed: Signed, gateway: Running, js: Any
) -> None:
    # Anyone on Discord can add a public bot to their own server: their refused commands must
    # not become warning events, which the dispatcher would post to the lab's channel.
    for _ in range(3):
        _, answer = await signed.post(command("stop", {"vmid": 100}, guild=OTHER_GUILD))
        assert refused(answer)
    _, member = await signed.post(command("stop", {"vmid": 100}, user=STRANGER))
    assert refused(member)  # a member of your own server who is no operator: an event
    records = await discord_audit(js, 4)
    assert [r["outcome"] for r in records] == ["denied"] * 4
    events = await discord_events(js, 1)
    assert [(e.metadata["discord_guild_id"], e.metadata["outcome"]) for e in events] == [
        (GUILD, "denied")
    ]


async def test_interactions_from_outside_store_nothing_in_the_ledger(
    signed: Signed, gateway: Running, js: Any
) -> None:
    # Anyone can add a public bot to a server of theirs and click away: their refusals are
    # answered without claiming a key in proxbus_discord_interactions (which keeps every
    # answer for 15 minutes and has no size bound of its own).
    from nats.js.errors import KeyNotFoundError

    ledger = await js.key_value("proxbus_discord_interactions")
    outside = [
        command("status", user=STRANGER, guild=OTHER_GUILD),
        command("stop", {"vmid": 100}, guild=None),
        click("pbx:ack:0123456789abcdef", guild=OTHER_GUILD),
    ]
    for payload in outside:
        _, answer = await signed.post(payload)
        assert refused(answer)
    inside = command("status", user=STRANGER)
    await signed.post(inside)
    assert await ledger.get(inside["id"])
    for payload in outside:
        try:
            await ledger.get(payload["id"])
        except KeyNotFoundError:
            continue
        raise AssertionError(f"{payload['id']} was claimed")
    records = await discord_audit(js, 4)
    assert [r["outcome"] for r in records].count("denied") == 3


async def test_refusals_from_outside_cannot_flood_the_audit_stream(
    signed: Signed, gateway: Running, js: Any
) -> None:
    # PROXBUS_AUDIT keeps a bounded number of bytes: a flood of refusals from servers anyone
    # can set up would push the lab's real audit records out. At most OUTSIDE_AUDITS_PER_MINUTE
    # of them are recorded (the rest counted in the metrics and the rate-limited log).
    from proxbus_ingest_discord.responder import OUTSIDE_AUDITS_PER_MINUTE

    flood = OUTSIDE_AUDITS_PER_MINUTE + 40
    started = time.monotonic()
    for n in range(flood):
        user = str(600000000000000000 + n)  # many accounts, each under its own rate
        _, answer = await signed.post(command("status", user=user, guild=OTHER_GUILD))
        assert refused(answer)
    # The budget refills at one a second: a slow machine may audit a few more.
    refilled = int(time.monotonic() - started) + 1
    await discord_audit(js, OUTSIDE_AUDITS_PER_MINUTE)
    _, mine = await signed.post(command("status"))
    assert "**Cluster lab**" in mine["data"]["content"]
    records = await discord_audit(js, OUTSIDE_AUDITS_PER_MINUTE + 1)
    denied = [r["outcome"] for r in records].count("denied")
    assert (
        OUTSIDE_AUDITS_PER_MINUTE <= denied <= min(flood - 1, OUTSIDE_AUDITS_PER_MINUTE + refilled)
    )
    assert [r["outcome"] for r in records].count("ok") == 1
    text = await metrics_text(signed)
    assert f'proxbus_discord_commands_total{{name="status",outcome="denied"}} {flood}.0' in text
