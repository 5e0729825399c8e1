import asyncio
import json
from typing import Any

from proxbus_events import CURSORS_BUCKET
from proxbus_ingest_pve_ws.lease import Lease


async def test_one_holder_and_takeover_after_expiry(js: Any) -> None:
    kv = await js.key_value(CURSORS_BUCKET)
    a = Lease(kv, "pve-ws.lab.lease", "a", ttl=0.3)
    b = Lease(kv, "pve-ws.lab.lease", "b", ttl=0.3)
    assert await a.renew()
    assert not await b.renew()
    assert b.current_holder == "a"
    assert await a.renew()  # renewing our own lease keeps it
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not await b.renew():  # a stops renewing: b takes over once it expired
        assert loop.time() < deadline
        await asyncio.sleep(0.05)
    assert not await a.renew()
    assert not a.held


async def test_concurrent_acquire_has_exactly_one_winner(js: Any) -> None:
    kv = await js.key_value(CURSORS_BUCKET)
    leases = [Lease(kv, "pve-ws.race.lease", f"r{i}", ttl=30) for i in range(5)]
    results = await asyncio.gather(*(lease.renew() for lease in leases))
    assert sum(results) == 1


async def test_release_lets_another_replica_take_over_at_once(js: Any) -> None:
    kv = await js.key_value(CURSORS_BUCKET)
    a = Lease(kv, "pve-ws.rel.lease", "a", ttl=30)
    b = Lease(kv, "pve-ws.rel.lease", "b", ttl=30)
    assert await a.renew()
    await a.release()
    assert await b.renew()
    entry = await kv.get("pve-ws.rel.lease")
    assert json.loads(entry.value)["holder"] == "b"
