"""Served routes versus the official schema."""

import json
import os
from pathlib import Path

import pytest
from proxbus_pvesim import pbs_routes, pve_routes
from proxbus_pvesim.router import Route
from proxbus_pvesim.schema import SchemaIndex, load_schema, route_problems
from proxbus_pvesim.simulator import Simulator
from proxbus_pvesim.testing import api_session


async def _noop(call: object) -> None:
    return None


def test_every_served_route_and_parameter_is_in_the_schema() -> None:
    pve = [(r.method, r.path, r.reads) for r in pve_routes()]
    pbs = [(r.method, r.path, r.reads) for r in pbs_routes()]
    assert route_problems(pve, SchemaIndex("pve")) == []
    assert route_problems(pbs, SchemaIndex("pbs")) == []


def test_route_missing_from_schema_is_reported() -> None:
    routes = [
        *pve_routes(),
        Route("GET", "/nodes/{node}/made-up", _noop),
        Route("POST", "/nodes/{node}/qemu/{vmid}/status/start", _noop, ("turbo",)),
    ]
    problems = route_problems([(r.method, r.path, r.reads) for r in routes], SchemaIndex("pve"))
    assert "GET /nodes/{node}/made-up: not in the pve schema" in problems
    assert any("'turbo' not in the schema" in p for p in problems)


def _official(name: str) -> Path | None:
    for base in (
        Path(__file__).resolve().parents[3].parent / "shared" / "proxmox-api",
        Path("/work/shared/proxmox-api"),
    ):
        if (base / name).is_file():
            return base / name
    return None


@pytest.mark.parametrize(("product", "file"), [("pve", "pve-9.1.json"), ("pbs", "pbs.json")])
def test_vendored_schema_equals_official_subset(product: str, file: str) -> None:
    src = _official(file)
    if src is None:
        message = "official schemas not available beside the repository (../shared/proxmox-api)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)  # CI always has shared/ beside the clone
        pytest.skip(message)
    full = json.loads(src.read_text())
    for path, methods in load_schema(product).items():
        for method, entry in methods.items():
            assert full[path][method] == entry, f"{method} {path} drifted"


def _required(route: Route, index: SchemaIndex) -> list[str]:
    ms = index.method(route.path, route.method)
    assert ms is not None
    in_path = {seg[1:-1] for seg in route.path.split("/") if seg.startswith("{")}
    return [n for n, s in ms.params.items() if not s.optional and n not in in_path]


async def test_required_parameters_are_enforced(pvesim: Simulator) -> None:
    index = SchemaIndex("pve")
    checked = 0
    async with api_session(pvesim) as s:
        for route in pve_routes():
            required = _required(route, index)
            if not required or route.public:
                continue
            path = (
                route.path.replace("{node}", "pve1")
                .replace("{vmid}", "100")
                .replace("{snapname}", "snap1")
                .replace("{storage}", "local")
            )
            async with s.request(route.method, f"/api2/json{path}") as r:
                assert r.status == 400, route.path
                body = await r.json()
                assert set(required) <= set(body["errors"]), route.path
            checked += 1
    assert checked >= 4


async def test_unknown_and_malformed_parameters_get_400(pvesim: Simulator) -> None:
    async with api_session(pvesim) as s:
        async with s.get("/api2/json/cluster/resources", params={"type": "bogus"}) as r:
            assert r.status == 400
            assert "type" in (await r.json())["errors"]
        async with s.get("/api2/json/nodes", params={"frobnicate": "1"}) as r:
            assert r.status == 400
            assert (await r.json()) == {
                "data": None,
                "errors": {
                    "frobnicate": "property is not defined in schema and the schema does not "
                    "allow additional properties"
                },
            }
        async with s.post(
            "/api2/json/nodes/pve1/qemu/100/snapshot", data={"snapname": "../etc"}
        ) as r:
            assert r.status == 400
