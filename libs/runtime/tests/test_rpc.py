import json

import pytest
from proxbus_events import CALLER_HEADER, ERROR_CODE_HEADER, ERROR_HEADER
from proxbus_runtime import RpcError, RpcTimeout, RpcUnavailable, call_tool


async def test_call_tool_returns_the_structured_result(nc) -> None:
    async def responder(msg) -> None:
        args = json.loads(msg.data)
        await msg.respond(json.dumps({"echo": args, "caller": msg.headers[CALLER_HEADER]}).encode())

    await nc.subscribe("proxbus.rpc.echo", cb=responder)
    result = await call_tool(nc, "echo", {"node": "pve1"}, caller="tests")
    assert result == {"echo": {"node": "pve1"}, "caller": "tests"}


async def test_call_tool_raises_the_gateway_error_with_its_code(nc) -> None:
    async def responder(msg) -> None:
        await nc.publish(
            msg.reply,
            b'{"error": "node pve9 is not in cluster lab"}',
            headers={ERROR_HEADER: "node pve9 is not in cluster lab", ERROR_CODE_HEADER: "404"},
        )

    await nc.subscribe("proxbus.rpc.get_node_status", cb=responder)
    with pytest.raises(RpcError) as info:
        await call_tool(nc, "get_node_status", {"node": "pve9"})
    assert info.value.code == 404
    assert "pve9" in info.value.message


async def test_call_tool_without_a_gateway_fails_at_once_and_clearly(nc) -> None:
    import time

    started = time.monotonic()
    with pytest.raises(RpcUnavailable) as info:
        await call_tool(nc, "get_vms", timeout=5)
    assert time.monotonic() - started < 2
    assert info.value.code == 503
    assert "no gateway is running" in str(info.value)
    assert isinstance(info.value, RpcTimeout)


async def test_call_tool_with_a_silent_gateway_times_out(nc) -> None:
    async def silent(msg) -> None:
        return None

    await nc.subscribe("proxbus.rpc.get_vms", cb=silent)
    with pytest.raises(RpcTimeout) as info:
        await call_tool(nc, "get_vms", timeout=0.3)
    assert "no answer from the gateway within 0.3s" in str(info.value)


async def test_callers_that_must_not_wait_can_skip_the_no_responders_grace(nc) -> None:
    import time

    started = time.monotonic()
    with pytest.raises(RpcUnavailable):
        await call_tool(nc, "get_vms", timeout=5, no_responders_grace=0)
    assert time.monotonic() - started < 0.3
