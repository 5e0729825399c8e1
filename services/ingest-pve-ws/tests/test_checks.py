"""``--test-connection`` checks of ingest-pve-ws: the gateway and its Proxmox token, Gotify."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from proxbus_devtools.testing import free_port, serve_app
from proxbus_ingest_pve_ws.checks import (
    check_endpoints,
    check_gotify,
    check_privileges,
    connection_checks,
)
from proxbus_ingest_pve_ws.testing import make_settings
from proxbus_mcp_gateway.app import start_gateway
from proxbus_mcp_gateway.testing import make_settings as gateway_settings
from proxbus_mcp_gateway.testing import sim_env
from proxbus_pvesim.testing import run_simulator


@pytest.fixture
async def sim() -> AsyncIterator[Any]:
    async with run_simulator(instant=True) as simulator:
        yield simulator


async def _gateway(nats_url: str, sim: Any, token: Any = None) -> Any:
    settings = gateway_settings(nats_url=nats_url, nats_enabled=True)
    return await start_gateway(settings, sim_env(sim, token=token))


async def test_endpoints_and_privileges_pass_with_a_full_token(nats_server: Any, sim: Any) -> None:
    gateway = await _gateway(nats_server.url, sim)
    try:
        settings = make_settings(nats_server.url, event_ws_enabled=True)
        assert "endpoints answer" in await check_endpoints(settings, "lab")
        assert await check_privileges(settings, "lab") == "Sys.Audit and Sys.Syslog on /"
    finally:
        await gateway.close()


async def test_a_token_without_sys_syslog_is_reported(nats_server: Any, sim: Any) -> None:
    """PVEAuditor lacks Sys.Syslog: the watcher would see only the token's own log entries."""
    gateway = await _gateway(nats_server.url, sim, token=sim.tokens.auditor)
    try:
        settings = make_settings(nats_server.url, event_ws_enabled=True)
        with pytest.raises(PermissionError) as failed:
            await check_privileges(settings, "lab")
        assert "lacks Sys.Syslog on /" in str(failed.value)
        assert "docs/proxmox-tokens.md" in str(failed.value)
    finally:
        await gateway.close()


async def test_no_gateway_is_a_clear_failure(nats_server: Any) -> None:
    settings = make_settings(nats_server.url, event_ws_enabled=True)
    with pytest.raises(ConnectionError, match="no mcp-gateway answers"):
        await check_endpoints(settings, "lab")


async def test_a_stopped_proxmox_fails_the_endpoint_check(nats_server: Any) -> None:
    async with run_simulator(instant=True) as sim:
        gateway = await _gateway(nats_server.url, sim)
    try:  # the simulator is gone, the gateway still points at it
        settings = make_settings(nats_server.url, event_ws_enabled=True)
        with pytest.raises(ConnectionError, match=r"2 of 2 endpoints fail"):
            await check_endpoints(settings, "lab")
    finally:
        await gateway.close()


def gotify_app() -> web.Application:
    async def current_user(request: web.Request) -> web.Response:
        if request.headers.get("X-Gotify-Key") != "client-tok":
            return web.json_response({"error": "Unauthorized"}, status=401)
        return web.json_response({"id": 1, "name": "admin", "admin": True})

    app = web.Application()
    app.router.add_get("/current/user", current_user)
    return app


async def test_gotify_check_proves_the_client_token(nats_server: Any) -> None:
    async with serve_app(gotify_app()) as port:
        url = f"http://127.0.0.1:{port}"
        ok = make_settings(nats_server.url, gotify_listen_url=url, gotify_client_token="client-tok")
        assert await check_gotify(ok) == f"Gotify at 127.0.0.1:{port}, client token of user admin"
        bad = make_settings(nats_server.url, gotify_listen_url=url, gotify_client_token="wrong-tok")
        with pytest.raises(PermissionError) as failed:
            await check_gotify(bad)
        assert "refused the client token (HTTP 401)" in str(failed.value)
        assert "wrong-tok" not in str(failed.value)
    closed = make_settings(
        nats_server.url,
        gotify_listen_url=f"http://127.0.0.1:{free_port()}",
        gotify_client_token="x",
    )
    with pytest.raises(ConnectionError, match=r"Gotify at 127\.0\.0\.1"):
        await check_gotify(closed)


def test_checks_follow_the_settings(nats_server: Any) -> None:
    on = make_settings(nats_server.url, event_ws_enabled=True, pve_ws_clusters="lab,dc2")
    assert list(connection_checks(on)) == [
        "proxmox lab", "proxmox lab privileges", "proxmox dc2", "proxmox dc2 privileges",
    ]  # fmt: skip
    off = make_settings(nats_server.url, gotify_listen_url="http://127.0.0.1:1")
    assert list(connection_checks(off)) == ["gotify"]
