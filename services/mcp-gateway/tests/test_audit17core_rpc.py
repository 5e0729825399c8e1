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


# -- the audit record of a call with huge arguments stays small ------------------------------


async def test_huge_arguments_make_a_bounded_audit_record(
    rpc_gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """A 4 MiB body fits the HTTP limit; its audit record must still fit JetStream's 1 MiB
    payload (else it is lost) and not keep the caller's arguments alive while queued."""
    from proxbus_mcp_gateway.testing import ADMIN

    huge = {"x": [[["a" * 500] * 60] * 60] * 2}  # ~3.6 MB of JSON, an unknown argument
    with caplog.at_level(logging.INFO, logger="proxbus.audit"):
        out = await rpc_gateway.call("get_vms", huge, ADMIN)
    assert out.code == 400
    (line,) = [r.getMessage() for r in caplog.records if r.name == "proxbus.audit"]
    assert len(line) < 32 * 1024, len(line)
    record = json.loads(line.removeprefix("audit "))
    assert record["arguments"] == {"_omitted": "arguments too large for the audit (x)"}
    assert record["message"].startswith("invalid arguments: x: unknown argument")


def test_an_audit_record_keeps_a_bounded_copy_not_the_callers_arguments() -> None:
    from proxbus_mcp_gateway.audit import AuditRecord

    args: dict[str, Any] = {"vmid": 100, "password": "hunter2", "big": "b" * 10_000}
    rec = AuditRecord("t", "c", "nats", args, "ok", 1.0, "lab")
    assert rec.arguments is not args
    assert rec.arguments["password"] != "hunter2"
    assert len(rec.arguments["big"]) < 600
    long = AuditRecord("t", "c", "nats", {}, "error", 1.0, "lab", message="e" * 100_000)
    assert long.message is not None
    assert len(long.message) <= 8 * 1024 + 1


async def test_read_only_rpc_metadata_calls_proxmox_api_not_destructive(
    sim: Simulator, nats_server: NatsServer, nc: Any
) -> None:
    """As tools/list does (readOnlyHint, no destructiveHint), the RPC service's metadata
    ($SRV.INFO) does not call proxmox_api destructive when READ_ONLY=true."""
    gw = Gateway.from_settings(make_settings(read_only=True), sim_env(sim))
    gw.start()
    service = await start_rpc(gw, nc)
    try:
        reply = await nc.request("$SRV.INFO.proxbus-gateway", b"", timeout=5)
        info = json.loads(reply.data)
        meta = {e["name"]: e.get("metadata") or {} for e in info["endpoints"]}
        assert meta["proxmox_api"]["destructive"] == "false"
        assert "execute_vm_command" not in meta
    finally:
        await service.stop()
        await gw.close()
