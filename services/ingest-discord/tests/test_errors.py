"""Failures a Discord member can trigger over and over: the member gets a short answer with no
trace or internals, the log gets one line with the traceback then a summary (not one per
command). Real parts: a real nats-server whose silences bucket is gone, signed requests."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from proxbus_ingest_discord.app import DiscordService
from proxbus_ingest_discord.testing import (
    DiscordStandIn,
    Signed,
    click,
    command,
    discord_audit,
    service_settings,
)


async def test_a_repeated_internal_failure_is_logged_once_and_shown_without_a_trace(
    signed: Signed, js: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # The silences bucket is deleted under the running service (an operator's mistake, a
    # broken JetStream): every /proxbus silence now fails inside the service.
    await js.delete_key_value("proxbus_silences")
    fingerprint = "0123456789abcdef0123456789abcdef"
    with caplog.at_level(logging.INFO, logger="proxbus_ingest_discord"):
        answers = [
            (await signed.post(command("silence", {"target": fingerprint, "duration": "1h"})))[1]
            for _ in range(5)
        ]
    for answer in answers:
        assert answer["type"] == 4
        assert answer["data"]["flags"] == 64
        assert answer["data"]["content"] == "internal error, see the service log"
    tracebacks = [
        r for r in caplog.records if r.name.startswith("proxbus_ingest_discord") and r.exc_info
    ]
    assert len(tracebacks) == 1
    records = await discord_audit(js, 5)
    assert [(r["outcome"], r["code"]) for r in records] == [("error", 500)] * 5


async def test_a_power_action_the_gateway_did_not_answer_in_time_is_not_called_failed(
    signed: Signed,
    gateway: Any,
    sim: Any,
    nats_server: Any,
    keypair: Any,
    discord_api: DiscordStandIn,
    js: Any,
) -> None:
    # The gateway did send the stop to Proxmox; only its answer came after DISCORD_RPC_TIMEOUT.
    # "failed" would invite a second try of something that ran.
    svc = DiscordService(
        service_settings(nats_server.url, keypair, discord_api.url, discord_rpc_timeout=1.0)
    )
    await svc.start()
    try:
        to_svc = Signed(f"http://127.0.0.1:{svc.port}/discord/interactions", keypair, signed.http)
        _, asked = await to_svc.post(command("stop", {"vmid": 108}))
        sim.add_latency("/nodes/pve3/qemu/108/status/stop", 2.5)
        buttons = asked["data"]["components"][0]["components"]
        confirm = next(b["custom_id"] for b in buttons if b["custom_id"].startswith("pbx:do:"))
        _, answer = await to_svc.post(click(confirm))
    finally:
        await svc.close()
    assert answer["type"] == 7
    content = answer["data"]["content"]
    assert "failed" not in content
    assert "no answer from the gateway within 1s" in content
    assert "may still" in content
    assert answer["data"]["components"] == []
    records = await discord_audit(js, 2)
    assert [(r["outcome"], r["code"]) for r in records] == [("ok", None), ("error", 504)]
