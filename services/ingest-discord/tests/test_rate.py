"""Per-user rate limit (DISCORD_USER_RATE): one member spamming /proxbus cannot keep the gateway
busy or flood the audit and the notification channel; others are still answered.

Real parts: a real nats-server, the real gateway over NATS RPC in front of pvesim, signed
requests.
"""

from __future__ import annotations

from typing import Any

from proxbus_events import AUDIT_STREAM
from proxbus_ingest_discord.app import DiscordService
from proxbus_ingest_discord.testing import (
    OPERATOR,
    STRANGER,
    Signed,
    command,
    discord_audit,
    discord_events,
    metrics_text,
    service_settings,
    stream_messages,
)
from proxbus_mcp_gateway.app import Running


async def test_a_user_over_the_rate_is_told_to_slow_down_and_others_are_answered(
    signed: Signed,
    gateway: Running,
    nats_server: Any,
    keypair: Any,
    discord_api: Any,
    js: Any,
) -> None:
    svc = DiscordService(
        service_settings(nats_server.url, keypair, discord_api.url, discord_user_rate=3)
    )
    await svc.start()
    try:
        limited = Signed(f"http://127.0.0.1:{svc.port}/discord/interactions", keypair, signed.http)
        answers = [(await limited.post(command("vms")))[1] for _ in range(5)]
        _, other = await limited.post(command("vms", user=STRANGER))
        text = await metrics_text(limited)
    finally:
        await svc.close()
    assert [a["data"]["content"].startswith("**VMs**") for a in answers] == [True] * 3 + [False] * 2
    for late in answers[3:]:
        assert late["type"] == 4
        assert late["data"]["flags"] == 64
        assert "slow down" in late["data"]["content"].lower()
    assert other["data"]["content"].startswith("**VMs**")
    assert 'proxbus_discord_commands_total{name="vms",outcome="rate_limited"} 2.0' in text
    gateway_calls = [
        r
        for r in await stream_messages(js, AUDIT_STREAM)
        if r["transport"] == "nats" and r["tool"] == "get_vms"
    ]
    assert [r["caller"] for r in gateway_calls] == [f"discord:{OPERATOR}"] * 3 + [
        f"discord:{STRANGER}"
    ]
    records = await discord_audit(js, 6)
    assert [r["outcome"] for r in records] == ["ok"] * 3 + ["rate_limited"] * 2 + ["ok"]
    # Refusals for speed are not published as events (they would be notified).
    events = await discord_events(js, 4)
    assert len(events) == 4


def test_the_bucket_refills_and_memory_stays_bounded() -> None:
    from proxbus_ingest_discord.ratelimit import UserRate

    now = [0.0]
    rate = UserRate(6, max_users=100, clock=lambda: now[0])
    assert [rate.allow("1") for _ in range(7)] == [True] * 6 + [False]
    now[0] += 10.0  # 6 a minute: one more every 10 s
    assert [rate.allow("1") for _ in range(2)] == [True, False]
    for n in range(1000):
        rate.allow(str(n + 10))
    assert len(rate) == 100
