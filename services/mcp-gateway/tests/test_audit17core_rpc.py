"""Audit of issue 17, items 2 and 7 over NATS RPC: bad request bodies get an error reply (never
silence, never a crash of the handler), and every refused request is audited exactly once."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from proxbus_devtools.testing import NatsServer
from proxbus_mcp_gateway.gateway import Gateway
from proxbus_mcp_gateway.rpc import MAX_REQUEST, start_rpc
from proxbus_mcp_gateway.testing import make_settings, sim_env
from proxbus_pvesim.simulator import Simulator


@pytest.fixture
async def rpc_gateway(sim: Simulator, nats_server: NatsServer, nc: Any) -> AsyncIterator[Gateway]:
    gw = Gateway.from_settings(make_settings(), sim_env(sim))
    gw.start()
    service = await start_rpc(gw, nc)
    try:
        yield gw
    finally:
        await service.stop()
        await gw.close()


def audited(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        json.loads(r.getMessage().removeprefix("audit "))
        for r in caplog.records
        if r.name == "proxbus.audit"
    ]


@pytest.mark.parametrize(
    ("subject", "body", "code"),
    [
        ("proxbus.rpc.get_vms", b"[" * 100_000 + b"]" * 100_000, "400"),
        ("proxbus.rpc.get_vms", b'{"a":' + b"[" * 50_000 + b"]" * 50_000 + b"}", "400"),
        ("proxbus.rpc.get_vms", b"{", "400"),
        ("proxbus.rpc.get_vms", b"\xff\xfe", "400"),
        ("proxbus.rpc.get_vms", b"[1]", "400"),
        ("proxbus.rpc.get_vms", b'{"x":"' + b"a" * MAX_REQUEST + b'"}', "413"),
        ("proxbus.rpc.lab.get_vms", b'{"cluster":"other"}', "400"),
        ("proxbus.rpc.lab.no_such_tool", b"{}", "404"),
        ("proxbus.rpc.get_guest_status", b'{"vmid":"abc"}', "400"),
    ],
)
async def test_bad_rpc_requests_get_an_error_reply_and_one_audit_record(
    rpc_gateway: Gateway,
    nc: Any,
    caplog: pytest.LogCaptureFixture,
    subject: str,
    body: bytes,
    code: str,
) -> None:
    with caplog.at_level(logging.INFO, logger="proxbus.audit"):
        reply = await nc.request(subject, body, timeout=10, headers={"Proxbus-Caller": "audit"})
    assert reply.headers is not None, reply.data[:200]
    assert reply.headers.get("Nats-Service-Error-Code") == code, reply.headers
    assert json.loads(reply.data)["error"]
    records = audited(caplog)
    assert len(records) == 1, records
    assert records[0]["outcome"] == "error"
    assert records[0]["code"] == int(code)
    assert records[0]["caller"] == "audit"
    assert records[0]["transport"] == "nats"
