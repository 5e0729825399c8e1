"""HTTP_REQUEST_TIMEOUT on the console (runtime ``http_limits``): a connection that sends no
request headers is closed, while a live page (SSE) opened in time stays open past the deadline
and still receives events.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from proxbus_devtools.testing import free_port

from .conftest import ev, publish

DEADLINE = 1.0


async def test_a_live_page_outlives_the_deadline_a_silent_connection_does_not(
    dispatcher: Any, js: Any
) -> None:
    service = await dispatcher(
        http_request_timeout=DEADLINE,
        console_tokens="alice:operate:s3cret-operator-token",
        console_health_urls=f"nowhere=http://127.0.0.1:{free_port()}/health",
    )
    assert service.console is not None
    port = service.health.port
    live_reader, live_writer = await asyncio.open_connection("127.0.0.1", port)
    live_writer.write(b"GET /events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head = await asyncio.wait_for(live_reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200"), head
    try:
        started = time.monotonic()
        silent_reader, silent_writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(silent_reader.read(), 10) == b""
        assert time.monotonic() - started >= 0.9 * DEADLINE
        silent_writer.close()
        # Past the deadline (and well past it for the live page): it still gets an event.
        await asyncio.sleep(DEADLINE)
        event = ev(title="after the deadline")
        await publish(js, event)
        seen = b""
        while event.id.encode() not in seen:
            chunk = await asyncio.wait_for(live_reader.read(65536), 10)
            assert chunk, f"live page closed: {seen[-500:]!r}"
            seen += chunk
    finally:
        live_writer.close()
    assert service.health.registry.get_sample_value("proxbus_http_request_timeouts_total") == 1
