from __future__ import annotations

import asyncio
from typing import Any

from proxbus_mcp_gateway.breaker import CircuitBreaker
from proxbus_mcp_gateway.cache import ReadCache
from proxbus_mcp_gateway.pool import path_node, touched_nodes
from proxbus_mcp_gateway.registry import ToolResult, compact_schema
from proxbus_mcp_gateway.schema import load, required_scope, resolve
from proxbus_mcp_gateway.tools._common import DerivedMemo


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_threshold_and_lets_one_probe_through_after_cooldown() -> None:
    clock = Clock()
    b = CircuitBreaker(threshold=2, cooldown=10, clock=clock)
    b.record_failure("refused")
    assert b.allow()
    b.record_failure("refused")
    assert b.state == "open"
    assert not b.allow()
    clock.now = 10
    assert b.state == "half-open"
    assert b.allow()
    assert not b.allow()
    b.record_failure("still refused")
    assert b.state == "open"
    clock.now = 20
    assert b.allow()
    b.record_success()
    assert b.state == "closed"
    assert b.allow()


async def test_concurrent_identical_reads_share_one_fetch() -> None:
    cache = ReadCache(ttl=2.0)
    calls = 0
    gate = asyncio.Event()

    async def fetch() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        return 42

    tasks = [asyncio.create_task(cache.get_or_fetch("lab", "k", fetch)) for _ in range(10)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*tasks) == [42] * 10
    assert calls == 1
    assert await cache.get_or_fetch("lab", "k", fetch) == 42
    assert calls == 1
    cache.invalidate("lab")
    await cache.get_or_fetch("lab", "k", fetch)
    assert calls == 2


async def test_a_read_racing_a_write_is_not_cached() -> None:
    cache = ReadCache(ttl=2.0)
    gate = asyncio.Event()

    async def slow() -> str:
        await gate.wait()
        return "stale"

    task = asyncio.create_task(cache.get_or_fetch("lab", "k", slow))
    await asyncio.sleep(0)
    cache.invalidate("lab")
    gate.set()
    assert await task == "stale"

    async def fresh() -> str:
        return "fresh"

    assert await cache.get_or_fetch("lab", "k", fresh) == "fresh"


async def test_a_node_write_keeps_other_nodes_entries_and_drops_its_own_and_cluster_wide() -> None:
    cache = ReadCache(ttl=60.0)
    fetched: list[str] = []

    def fetcher(name: str) -> Any:
        async def fetch() -> str:
            fetched.append(name)
            return name

        return fetch

    entries = {"pve1": "pve1", "pve2": "pve2", "resources": None}
    for key, node in entries.items():
        await cache.get_or_fetch("lab", key, fetcher(key), node)
    cache.invalidate("lab", {"pve1"})
    fetched.clear()
    for key, node in entries.items():
        await cache.get_or_fetch("lab", key, fetcher(key), node)
    assert sorted(fetched) == ["pve1", "resources"]  # pve2's answer was kept
    cache.invalidate("other", None)  # another cluster: nothing here changes
    cache.invalidate("lab")  # the whole cluster
    fetched.clear()
    for key, node in entries.items():
        await cache.get_or_fetch("lab", key, fetcher(key), node)
    assert sorted(fetched) == ["pve1", "pve2", "resources"]


async def test_a_read_racing_a_write_on_its_node_is_not_cached_one_on_another_node_is() -> None:
    cache = ReadCache(ttl=60.0)
    gate = asyncio.Event()

    async def slow() -> str:
        await gate.wait()
        return "first"

    mine = asyncio.create_task(cache.get_or_fetch("lab", "a", slow, "pve1"))
    other = asyncio.create_task(cache.get_or_fetch("lab", "b", slow, "pve2"))
    wide = asyncio.create_task(cache.get_or_fetch("lab", "c", slow, None))
    await asyncio.sleep(0)
    cache.invalidate("lab", {"pve1"})
    gate.set()
    assert await asyncio.gather(mine, other, wide) == ["first"] * 3

    async def second() -> str:
        return "second"

    assert await cache.get_or_fetch("lab", "a", second, "pve1") == "second"
    assert await cache.get_or_fetch("lab", "b", second, "pve2") == "first"
    assert await cache.get_or_fetch("lab", "c", second, None) == "second"


def test_writes_touch_their_node_the_migration_target_or_the_whole_cluster() -> None:
    assert path_node("/nodes/pve1/qemu/100/status/start") == "pve1"
    assert path_node("/nodes") is None
    assert path_node("/cluster/resources") is None
    assert touched_nodes("/nodes/pve1/qemu/100/status/start", None) == {"pve1"}
    assert touched_nodes("/nodes/pve1/qemu/100/migrate", {"target": "pve3"}) == {"pve1", "pve3"}
    assert touched_nodes("/cluster/ha/resources", {"sid": "vm:100"}) is None
    assert touched_nodes("/pools", None) is None


def test_derived_results_are_reused_only_for_the_very_same_answers() -> None:
    memo = DerivedMemo(max_entries=2)
    answer = [{"vmid": 100}]
    result = ToolResult({"count": 1}, "1")
    memo.put("k", (answer,), result)
    assert memo.get("k", (answer,)) is result
    assert memo.get("k", ([{"vmid": 100}],)) is None  # equal but refetched: recompute
    assert memo.get("k", (answer, answer)) is None
    assert memo.get("other", (answer,)) is None
    memo.put("a", (answer,), result)
    memo.put("b", (answer,), result)  # over the bound: starts afresh
    assert memo.get("k", (answer,)) is None
    assert memo.get("b", (answer,)) is result


def test_vendored_schema_is_compact_and_complete() -> None:
    data = load()
    assert "/nodes/{node}/qemu/{vmid}/status/start" in data["pve"]
    assert "/admin/datastore/{store}/gc" in data["pbs"]
    call = resolve("pve", "POST", "/nodes/pve1/qemu/100/status/start", {"timeout": "5"})
    assert call.params == {"timeout": 5}
    assert required_scope(call) == "operate"
    assert required_scope(resolve("pve", "PUT", "/cluster/options", {})) == "admin"


def test_compact_schema_drops_titles_but_keeps_a_parameter_named_title() -> None:
    schema = {
        "title": "X",
        "properties": {
            "title": {"title": "Title", "type": "string"},
            "n": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None},
        },
    }
    out = compact_schema(schema)
    assert out == {"properties": {"title": {"type": "string"}, "n": {"type": "integer"}}}
