from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from proxbus_ingest_pve_ws.testing import stored_events, wait_until

BODY = {
    "title": "vzdump backup status (pve1.example.com): backup failed",
    "message": "100: ERROR: storage 'pbs' is not online",
    "severity": "error",
    "timestamp": 1_732_400_000,
    "fields": {"type": "vzdump", "hostname": "pve1.example.com", "job-id": "backup-d1"},
}
AUTH = {"Authorization": "Bearer s3cret"}


async def _post(port: int, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"http://127.0.0.1:{port}/hooks/pve",
            data=body,
            headers={"Content-Type": "application/json", **headers},
        ) as r,
    ):
        return r.status, await r.json()


async def test_wrong_or_missing_secret_is_401(services: Any, js: Any) -> None:
    svc = await services.start()
    assert svc.health is not None
    body = json.dumps(BODY).encode()
    assert (await _post(svc.health.port, body, {"Authorization": "Bearer nope"}))[0] == 401
    assert (await _post(svc.health.port, body, {}))[0] == 401
    assert await stored_events(js) == []


async def test_oversize_body_is_413(services: Any, js: Any) -> None:
    svc = await services.start(pve_webhook_max_bytes=2048)
    assert svc.health is not None
    big = json.dumps({**BODY, "message": "x" * 5000}).encode()
    assert (await _post(svc.health.port, big, AUTH))[0] == 413


async def test_malformed_json_is_400_with_a_message(services: Any, js: Any) -> None:
    svc = await services.start()
    assert svc.health is not None
    status, reply = await _post(svc.health.port, b'{"title": ', AUTH)
    assert status == 400
    assert "invalid JSON" in reply["message"]


async def test_documented_body_is_stored_before_2xx(services: Any, js: Any) -> None:
    svc = await services.start()
    assert svc.health is not None
    status, reply = await _post(svc.health.port, json.dumps(BODY).encode(), AUTH)
    assert status == 202
    [ev] = await stored_events(js)
    assert ev.id == reply["id"]
    assert (ev.kind, ev.node, ev.source) == ("backup.failed", "pve1", "pve-webhook")


async def test_broker_outage_is_202_from_the_spool_and_stored_once_when_nats_is_back(
    services: Any, js: Any, nats_server: Any
) -> None:
    svc = await services.start()
    assert svc.health is not None
    assert svc.sink is not None
    body = json.dumps(BODY).encode()
    nats_server.stop()
    await wait_until(lambda: _async(not svc.sink.up))
    status, reply = await _post(svc.health.port, body, AUTH)
    assert (status, reply["status"]) == (202, "spooled")  # PVE makes one attempt: keep it
    assert svc.sink.spool.stats.pending_records == 1
    assert svc.sink.spool.stats.fsyncs >= 1  # on disk before the answer
    nats_server.start()
    await wait_until(lambda: _async(svc.sink.spool.empty), timeout=30)
    events = await stored_events(js)
    assert [e.id for e in events] == [reply["id"]]
    # A second delivery of the same body (same id) is recognised as the same event.
    status2, reply2 = await _post(svc.health.port, body, AUTH)
    assert (status2, reply2["status"]) == (202, "duplicate")
    assert [e.id for e in await stored_events(js)] == [reply["id"]]


async def test_without_a_spool_an_outage_is_503_and_never_stored_later(
    services: Any, js: Any, nats_server: Any
) -> None:
    # Issue 14: the 503 path must not leave the event in the client's reconnect buffer.
    svc = await services.start(spool_enabled=False)
    assert svc.health is not None
    refused = json.dumps({**BODY, "title": "refused while the bus was down"}).encode()
    nats_server.stop()
    assert (await _post(svc.health.port, refused, AUTH))[0] == 503
    nats_server.start()
    later = json.dumps({**BODY, "title": "sent after the bus came back"}).encode()
    for _ in range(200):  # a refusal is immediate while NATS is disconnected
        status, _reply = await _post(svc.health.port, later, AUTH)
        if status == 202:
            break
        await asyncio.sleep(0.1)
    assert status == 202
    assert [e.title for e in await stored_events(js)] == ["sent after the bus came back"]


async def _async(value: bool) -> bool:
    return value


async def test_deeply_nested_json_is_400_counted_and_logs_no_traceback(
    services: Any, js: Any, caplog: Any
) -> None:
    # Issue 19: a 4 KB body nested 2,000 deep raised RecursionError -> 500 with a traceback.
    svc = await services.start()
    assert svc.health is not None
    deep = b'{"title": "t", "message": "m", "fields": ' + b"[" * 2000 + b"]" * 2000 + b"}"
    assert len(deep) < 4200
    status, reply = await _post(svc.health.port, deep, AUTH)
    assert status == 400
    assert "nested deeper than 32" in reply["message"]
    # Brackets inside strings are text, not nesting.
    text = json.dumps({**BODY, "message": "[" * 3000}).encode()
    assert (await _post(svc.health.port, text, AUTH))[0] == 202
    metrics = svc.registry.get_sample_value(
        "proxbus_pve_webhook_requests_total", {"outcome": "too_deep"}
    )
    assert metrics == 1
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= 40]
    assert await stored_events(js) != []


async def test_a_flood_of_bad_requests_costs_counters_not_log_lines(
    services: Any, js: Any, caplog: Any
) -> None:
    svc = await services.start()
    assert svc.health is not None
    caplog.set_level("INFO", logger="proxbus_ingest_pve_ws")
    for _ in range(50):
        assert (await _post(svc.health.port, b"{}", {"Authorization": "Bearer nope"}))[0] == 401
        assert (await _post(svc.health.port, b'{"x": ', AUTH))[0] == 400
    lines = [r for r in caplog.records if r.name.startswith("proxbus_ingest_pve_ws.webhook")]
    assert len(lines) <= 4, [r.getMessage() for r in lines]
    get = svc.registry.get_sample_value
    assert get("proxbus_pve_webhook_requests_total", {"outcome": "unauthorized"}) == 50
    assert get("proxbus_pve_webhook_requests_total", {"outcome": "invalid"}) == 50


async def test_the_json_depth_limit_is_a_setting(services: Any, js: Any) -> None:
    # Issue 19: the webhook's budgets are configurable; PVE's documented body nests 2 deep.
    svc = await services.start(pve_webhook_max_depth=4)
    assert svc.health is not None
    four = json.dumps({**BODY, "fields": {"a": [{}]}}).encode()  # 4 levels
    five = json.dumps({**BODY, "fields": {"a": [[{}]]}}).encode()  # 5 levels
    assert (await _post(svc.health.port, four, AUTH))[0] == 202
    status, reply = await _post(svc.health.port, five, AUTH)
    assert status == 400
    assert "nested deeper than 4 levels" in reply["message"]
    get = svc.registry.get_sample_value
    assert get("proxbus_pve_webhook_budget", {"budget": "max_depth"}) == 4
    assert get("proxbus_pve_webhook_budget", {"budget": "max_bytes"}) == 256 * 1024
    assert (
        svc.registry.get_sample_value("proxbus_pve_webhook_requests_total", {"outcome": "too_deep"})
        == 1
    )
