"""Multi-site RPC: ``proxbus.rpc.<cluster>.<tool>`` reaches only a gateway serving that cluster."""

from __future__ import annotations

from typing import Any

import pytest
from proxbus_mcp_gateway.app import start_gateway
from proxbus_mcp_gateway.testing import make_settings, sim_env
from proxbus_pvesim.simulator import Simulator
from proxbus_runtime import RpcError, RpcUnavailable, call_tool


async def test_cluster_subject_reaches_the_gateway_of_that_site_only(
    sim: Simulator, nats_server: Any, nc: Any
) -> None:
    gateways = [
        await start_gateway(
            make_settings(nats_enabled=True, nats_url=nats_server.url, proxbus_site=site),
            sim_env(sim),
        )
        for site in ("dc1", "dc2")
    ]
    try:
        assert all(g.rpc is not None for g in gateways)
        for site in ("dc1", "dc2", "dc1", "dc2", "dc2", "dc1"):
            answer = await call_tool(nc, "list_clusters", {}, cluster=site, caller="t")
            assert answer["default"] == site
            assert [c["name"] for c in answer["clusters"]] == [site]
        # The cluster is filled in from the subject for tools that take one.
        vms = await call_tool(nc, "get_vms", {}, cluster="dc2", caller="t")
        assert vms["count"] > 0
        # Nobody serves dc9: no gateway answers (not a wrong one).
        with pytest.raises(RpcUnavailable):
            await call_tool(nc, "list_clusters", {}, cluster="dc9", caller="t")
        # A contradicting cluster argument is refused, not silently rerouted.
        with pytest.raises(RpcError) as err:
            await call_tool(nc, "get_vms", {"cluster": "dc1"}, cluster="dc2", caller="t")
        assert err.value.code == 400
        # Without a cluster, any gateway answers, as before.
        any_answer = await call_tool(nc, "list_clusters", {}, caller="t")
        assert any_answer["default"] in ("dc1", "dc2")
    finally:
        for g in gateways:
            await g.close()
