"""The HTTP face: signatures, replay window, PING, and bad input refused with a counted 4xx."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from proxbus_ingest_discord.testing import Signed, command, counter, interaction, metrics_text


async def test_ping_is_answered_with_pong(signed: Signed) -> None:
    status, body = await signed.post(interaction(1))
    assert status == 200
    assert body == {"type": 1}


async def test_missing_and_bad_signatures_are_401_and_counted(signed: Signed) -> None:
    body = json.dumps(interaction(1)).encode()
    good = signed.headers(body)
    missing, _ = await signed.post(body, headers={"Content-Type": "application/json"})
    no_timestamp, _ = await signed.post(
        body, headers={"X-Signature-Ed25519": good["X-Signature-Ed25519"]}
    )
    other_key = Ed25519PrivateKey.generate()
    forged = {
        **good,
        "X-Signature-Ed25519": other_key.sign(good["X-Signature-Timestamp"].encode() + body).hex(),
    }
    wrong_key, _ = await signed.post(body, headers=forged)
    tampered, answer = await signed.post(body.replace(b'"type": 1', b'"type": 2'), headers=good)
    not_hex, _ = await signed.post(body, headers={**good, "X-Signature-Ed25519": "zz" * 64})
    # The signature covers the timestamp too: changing it breaks the signature.
    shifted = {**good, "X-Signature-Timestamp": str(int(good["X-Signature-Timestamp"]) + 1)}
    moved, _ = await signed.post(body, headers=shifted)
    assert [missing, no_timestamp, wrong_key, tampered, not_hex, moved] == [401] * 6
    assert answer["error"] == "invalid request signature"
    assert (
        counter(
            await metrics_text(signed), "proxbus_discord_requests_total", outcome="unauthorized"
        )
        == 6
    )


async def test_old_timestamp_is_refused_as_a_replay(signed: Signed) -> None:
    payload = interaction(1)
    old, answer = await signed.post(payload, timestamp=int(time.time()) - 301)
    recent, _ = await signed.post(payload, timestamp=int(time.time()) - 240)
    future, _ = await signed.post(payload, timestamp=int(time.time()) + 3600)
    assert old == 401
    assert "away from now" in answer["error"]
    assert recent == 200
    assert future == 401
    assert (
        counter(await metrics_text(signed), "proxbus_discord_requests_total", outcome="stale") == 2
    )


async def test_bad_input_gets_a_clear_4xx_and_is_counted(signed: Signed) -> None:
    huge = b'{"type": 1, "pad": "' + b"x" * (80 * 1024) + b'"}'
    too_large, _ = await signed.post(huge)
    not_json, why_json = await signed.post(b"{not json")
    not_object, _ = await signed.post(b"[1, 2]")
    no_id, why_invalid = await signed.post({"type": 2, "token": "t"})
    autocomplete, why_type = await signed.post(interaction(4, {"name": "proxbus"}))
    unknown_type, _ = await signed.post(interaction(99))
    other_cmd, why_cmd = await signed.post(
        interaction(2, {"name": "other", "options": [{"name": "status", "type": 1}]})
    )
    unknown_sub, why_sub = await signed.post(command("format-disks"))
    unknown_button, why_button = await signed.post(
        interaction(3, {"custom_id": "someone-else:thing", "component_type": 2})
    )
    assert too_large == 413
    assert (not_json, not_object, no_id) == (400, 400, 400)
    assert why_json["outcome"] == "invalid_json"
    assert why_invalid["outcome"] == "invalid"
    assert (autocomplete, unknown_type) == (400, 400)
    assert why_type["error"] == "interaction type 4 is not handled"
    assert (other_cmd, unknown_sub, unknown_button) == (400, 400, 400)
    assert "other" in why_cmd["error"]
    assert "format-disks" in why_sub["error"]
    assert why_button["outcome"] == "unknown_component"
    text = await metrics_text(signed)
    expected: dict[str, Any] = {
        "too_large": 1,
        "invalid_json": 1,
        "invalid": 2,
        "unknown_type": 2,
        "unknown_command": 2,
        "unknown_component": 1,
    }
    for outcome, n in expected.items():
        assert counter(text, "proxbus_discord_requests_total", outcome=outcome) == n, outcome
    # Nothing was refused with a 5xx and the service still answers.
    assert counter(text, "proxbus_discord_requests_total", outcome="unavailable") == 0
    status, _ = await signed.post(interaction(1))
    assert status == 200


async def test_deeply_nested_json_is_a_400_not_a_5xx(signed: Signed) -> None:
    # Under the size cap, but deeper than the JSON parser recurses: still just bad input.
    for body in (b"[" * 30_000 + b"]" * 30_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000):
        status, why = await signed.post(body)
        assert (status, why["outcome"]) == (400, "invalid_json")
    text = await metrics_text(signed)
    assert counter(text, "proxbus_discord_requests_total", outcome="invalid_json") == 2
    assert counter(text, "proxbus_discord_requests_total", outcome="unavailable") == 0


async def test_huge_body_with_a_chunked_upload_is_refused_without_a_length(signed: Signed) -> None:
    async def chunks() -> Any:
        for _ in range(200):
            yield b"x" * 1024

    async with signed.http.post(
        signed.url, data=chunks(), headers={"Content-Type": "application/json"}
    ) as r:
        assert r.status == 413


async def test_without_nats_interactions_get_a_quick_503_and_work_again_after(
    signed: Signed, nats_server: Any
) -> None:
    nats_server.stop()
    started = time.monotonic()
    status, answer = await signed.post(command("status"))
    assert status == 503
    assert answer["outcome"] == "unavailable"
    assert time.monotonic() - started < 2.5  # within Discord's 3 s
    ping, _ = await signed.post(interaction(1))
    assert ping == 200  # PING needs no bus
    nats_server.start()
    async with asyncio.timeout(20):
        while True:
            status, answer = await signed.post(command("events"))
            if status != 503:
                break
            await asyncio.sleep(0.1)
    # Claimed and answered again (no gateway runs in this test: an ephemeral error message).
    assert status == 200
    assert answer["type"] == 4
    assert "no gateway is running" in answer["data"]["content"]
    assert (
        counter(await metrics_text(signed), "proxbus_discord_requests_total", outcome="unavailable")
        >= 1
    )


async def test_a_flood_of_bad_requests_logs_a_line_not_one_per_request(
    signed: Signed, caplog: pytest.LogCaptureFixture
) -> None:
    body = json.dumps(interaction(1)).encode()
    with caplog.at_level(logging.INFO, logger="proxbus_ingest_discord"):
        for _ in range(50):
            status, _ = await signed.post(
                body, headers={"X-Signature-Ed25519": "00" * 64, "X-Signature-Timestamp": "1"}
            )
            assert status == 401
    lines = [r for r in caplog.records if r.name.startswith("proxbus_ingest_discord")]
    assert len(lines) == 1
    assert "refused Discord interaction requests: unauthorized" in lines[0].getMessage()
    assert (
        counter(
            await metrics_text(signed), "proxbus_discord_requests_total", outcome="unauthorized"
        )
        == 50
    )


async def test_a_ping_is_answered_while_the_service_still_waits_for_nats(
    nats_server: Any, keypair: Any, discord_api: Any
) -> None:
    # Saving the Interactions Endpoint URL in the Developer Portal sends a PING: it must not
    # fail because the bus is not up yet (the PING needs none).
    import aiohttp
    from proxbus_devtools.testing import wait_until
    from proxbus_ingest_discord.app import DiscordService
    from proxbus_ingest_discord.testing import service_settings

    nats_server.stop()
    svc = DiscordService(service_settings(nats_server.url, keypair, discord_api.url))
    starting = asyncio.create_task(svc.start())
    try:
        await wait_until(lambda: svc.port, timeout=10, what="listener up")
        async with aiohttp.ClientSession() as http:
            to_svc = Signed(f"http://127.0.0.1:{svc.port}/discord/interactions", keypair, http)
            ping, pong = await to_svc.post(interaction(1))
            status, _ = await to_svc.post(command("status"))
        assert (ping, pong) == (200, {"type": 1})
        assert status == 503  # everything else waits for the bus
        nats_server.start()
        await asyncio.wait_for(starting, 30)
    finally:
        if not starting.done():
            starting.cancel()
        await svc.close()
