import json

import pytest
from proxbus_events import (
    CALLER_HEADER,
    ERROR_CODE_HEADER,
    ERROR_HEADER,
    RpcError,
    RpcTimeout,
    call_tool,
)


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


async def test_call_tool_without_a_gateway_times_out_clearly(nc) -> None:
    with pytest.raises(RpcTimeout) as info:
        await call_tool(nc, "get_vms", timeout=0.3)
    assert "no answer from the gateway" in str(info.value)
