"""Graceful shutdown with interactions in flight: the request being answered gets its answer,
the work that was deferred still reaches Discord through the follow-up, new requests get 503.

Real parts: a real nats-server, the real gateway over NATS RPC in front of pvesim (slowed by
its latency knob), a recording stand-in of Discord's webhook API, signed requests.
"""

from __future__ import annotations

import asyncio
from typing import Any

from proxbus_devtools.testing import wait_until
from proxbus_ingest_discord.app import DiscordService
from proxbus_ingest_discord.testing import DiscordStandIn, Signed, command, service_settings
from proxbus_mcp_gateway.app import Running
from proxbus_pvesim.simulator import Simulator


async def test_stopping_lets_the_interaction_in_flight_finish_and_follow_up(
    gateway: Running,
    sim: Simulator,
    nats_server: Any,
    keypair: Any,
    discord_api: DiscordStandIn,
    signed: Signed,
    js: Any,
) -> None:
    svc = DiscordService(service_settings(nats_server.url, keypair, discord_api.url))
    await svc.start()
    to_svc = Signed(f"http://127.0.0.1:{svc.port}/discord/interactions", keypair, signed.http)
    sim.add_latency("/cluster/resources", 3.0)
    payload = command("vms")
    ledger = await js.key_value("proxbus_discord_interactions")
    post = asyncio.create_task(to_svc.post(payload))
    closing: asyncio.Task[None] | None = None
    try:
        await wait_until(lambda: ledger.get(payload["id"]), timeout=5, ignore=(Exception,))
        closing = asyncio.create_task(svc.close())  # SIGTERM's path: the runtime's stop hooks
        # A new interaction while draining: 503 (Discord shows "interaction failed").
        await wait_until(lambda: svc.endpoint.responder is None, timeout=5, what="draining")
        refused, _ = await to_svc.post(command("status"))
        assert refused == 503
        status, answer = await post
        assert (status, answer) == (200, {"type": 5})
        await asyncio.wait_for(closing, 15)
    finally:
        if closing is None:
            await svc.close()
    # The follow-up went out before the service was gone.
    assert len(discord_api.calls) == 1
    method, path, body = discord_api.calls[0]
    assert method == "POST"
    assert path.endswith(f"/webhooks/{payload['application_id']}/{payload['token']}")
    assert body["content"].startswith("**VMs** (20)")
