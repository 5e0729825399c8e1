"""Static and live checks of deploy/multisite: compose files, NATS configurations, env examples.

The compose files are validated against the Compose Specification schema (as deploy/compose.yaml
in test_deploy.py); the NATS configurations are parsed by ``nats-server -t`` and then run for
real on loopback (ports and store rewritten): a site leaf logs in to the hub with its
password, the hub sources its events, and the hub's deliveries stay at the hub.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import nats
import pytest
import yaml
from proxbus_devtools.multisite import (
    ISOLATED_SUBJECTS,
    ConfiguredNats,
    link_sites,
    wait_for_jetstream,
)
from proxbus_devtools.testing import free_port, nats_server_binary, require_binary, wait_until
from proxbus_events import DELIVERIES_STREAM, EVENTS_STREAM
from proxbus_pvesim.tls import TlsMaterial, generate_tls
from proxbus_runtime import ServiceSettings, ensure_streams

ROOT = Path(__file__).resolve().parents[1]
MULTISITE = ROOT / "deploy" / "multisite"
COMPOSE_FILES = sorted(MULTISITE.glob("*.compose.yaml"))
NATS_CONFIGS = sorted((MULTISITE / "nats").glob("*.conf"))
BIN = Path(sys.executable).parent


def env_example(name: str) -> dict[str, str]:
    out = {}
    for line in (MULTISITE / name).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def config_env() -> dict[str, str]:
    """What the compose files give the nats containers (from the env examples)."""
    return {
        **env_example("hub.env.example"),
        **env_example("site.env.example"),
        "SERVER_NAME": "nats",
        "LEAF_ADVERTISE": "hub.example.org:7422",
    }


def test_the_multisite_files_are_there() -> None:
    assert [p.name for p in COMPOSE_FILES] == [
        "hub-cluster.compose.yaml",
        "hub.compose.yaml",
        "site.compose.yaml",
    ]
    assert [p.name for p in NATS_CONFIGS] == ["hub-cluster.conf", "hub.conf", "site.conf"]


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_file_follows_the_compose_specification(path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", NATS_CONFIGS, ids=lambda p: p.name)
def test_nats_config_parses(path: Path) -> None:
    binary = require_binary("nats-server", nats_server_binary())
    result = subprocess.run(
        [binary, "-t", "-c", str(path)],
        capture_output=True, text=True, timeout=30, env=config_env(), check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid" in result.stdout + result.stderr


def test_nats_config_check_rejects_a_missing_variable() -> None:
    binary = require_binary("nats-server", nats_server_binary())
    env = config_env()
    del env["HUB_LEAF_URL"]
    result = subprocess.run(
        [binary, "-t", "-c", str(MULTISITE / "nats" / "site.conf")],
        capture_output=True, text=True, timeout=30, env=env, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "HUB_LEAF_URL" in result.stdout + result.stderr


def test_site_config_denies_exactly_the_isolated_subjects_both_ways() -> None:
    text = (MULTISITE / "nats" / "site.conf").read_text()
    for rule in ("deny_imports", "deny_exports"):
        match = re.search(rf"^\s*{rule}:\s*(\[.*\])\s*$", text, re.MULTILINE)
        assert match, rule
        assert tuple(yaml.safe_load(match.group(1))) == ISOLATED_SUBJECTS


def test_site_services_run_in_the_site_domain_with_its_label() -> None:
    spec = yaml.safe_load((MULTISITE / "site.compose.yaml").read_text())
    fields = {name.upper() for name in ServiceSettings.model_fields}
    for name, service in spec["services"].items():
        if name == "nats":
            continue
        env = service["environment"]
        assert env["NATS_JS_DOMAIN"] == "${SITE:?set SITE in site.env}", name
        assert env["PROXBUS_SITE"] == "${SITE:?set SITE in site.env}", name
        assert {"NATS_URL", "NATS_JS_DOMAIN", "PROXBUS_SITE"} <= fields
    hub = yaml.safe_load((MULTISITE / "hub.compose.yaml").read_text())
    assert "dispatcher" in hub["services"]
    assert "dispatcher" not in spec["services"]
    link = hub["services"]["sites-link"]
    # The dispatcher is healthy once it opened its state bucket: `sites link --replicas 3`
    # (hub-cluster) then scales that bucket too, not only what existed before.
    assert link["depends_on"]["dispatcher"] == {"condition": "service_healthy"}
    assert link["build"]["args"]["SERVICE"] == "devtools"
    assert "proxbus sites link" in " ".join(link["entrypoint"])


def test_every_variable_a_multisite_compose_file_sets_is_read_by_that_service() -> None:
    """As test_deploy checks deploy/compose.yaml: a renamed setting cannot stay behind here."""
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("test_deploy", ROOT / "tests" / "test_deploy.py")
    assert spec is not None
    assert spec.loader is not None
    deploy = sys.modules.setdefault("test_deploy", module_from_spec(spec))
    spec.loader.exec_module(deploy)
    checked = 0
    for path in COMPOSE_FILES:
        for name, service in yaml.safe_load(path.read_text())["services"].items():
            build = (service.get("build") or {}).get("args", {}).get("SERVICE")
            if build in (None, "devtools"):
                continue
            known = deploy.env_names(deploy.settings_class(build))
            unknown = [var for var in service.get("environment", {})
                       if var not in known and not deploy.GATEWAY_PASS_THROUGH.match(var)]  # fmt: skip
            assert not unknown, f"{path.name}, {name}: no setting reads {unknown}"
            checked += 1
    assert checked >= 5


def test_the_devtools_image_has_its_console_script() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "libs" / "devtools" / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["proxbus-devtools"] == "proxbus_devtools.cli:main"
    assert "AS service-devtools" in (ROOT / "deploy" / "Dockerfile").read_text()


def _on_loopback(text: str, ports: dict[str, int], store: Path) -> str:
    text = text.replace("0.0.0.0:4222", f"127.0.0.1:{ports['client']}")
    text = text.replace("0.0.0.0:8222", f"127.0.0.1:{ports['http']}")
    text = text.replace("0.0.0.0:7422", f"127.0.0.1:{ports['leaf']}")
    return text.replace("store_dir: /data", f'store_dir: "{store}"')


def _uncomment_tls(text: str, tls: TlsMaterial) -> str:
    """The README's TLS step: the commented ``tls`` blocks switched on, with real files."""
    out, inside = [], False
    for line in text.splitlines():
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        if stripped.startswith("# tls {"):
            inside = not stripped.rstrip().endswith("}") and "}" not in stripped.split("#")[1]
            out.append(indent + stripped[2:])
            continue
        if inside and stripped.startswith("#"):
            out.append(indent + stripped[2:])
            inside = stripped[2:].strip() != "}"
            continue
        out.append(line)
    text = "\n".join(out) + "\n"
    text = text.replace("/etc/nats/tls/hub-key.pem", str(tls.key_path))
    text = text.replace("/etc/nats/tls/hub.pem", str(tls.cert_path))
    return text.replace("/etc/nats/tls/ca.pem", str(tls.ca_path))


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_deployed_configs_link_a_site_to_the_hub_and_keep_deliveries_apart(
    tmp_path: Path, tls: bool
) -> None:
    binary = require_binary("nats-server", nats_server_binary())
    servers = []
    ports = {
        name: {"client": free_port(), "http": free_port(), "leaf": free_port()}
        for name in ("hub", "site1")
    }
    env = config_env()
    scheme = "tls" if tls else "nats-leaf"
    env["HUB_LEAF_URL"] = (
        f"{scheme}://site1:{env['SITE1_LEAF_PASSWORD']}@127.0.0.1:{ports['hub']['leaf']}"
    )
    material = generate_tls(tmp_path / "tls") if tls else None
    for name, conf in (("hub", "hub.conf"), ("site1", "site.conf")):
        folder = tmp_path / name
        folder.mkdir()
        path = folder / conf
        text = _on_loopback((MULTISITE / "nats" / conf).read_text(), ports[name], folder / "js")
        if material is not None:
            text = _uncomment_tls(text, material)
            assert "tls {" in text.split("leafnodes", 1)[1]
        path.write_text(text)
        server = ConfiguredNats(name, binary, path, ports[name]["client"], folder / "log", env)
        servers.append(server)
        server.start()
    hub = site = None
    try:
        hub = await nats.connect(servers[0].url)
        site = await nats.connect(servers[1].url)
        hjs, sjs = hub.jetstream(timeout=5), site.jetstream(domain="site1", timeout=5)
        await wait_for_jetstream(hjs)
        await ensure_streams(sjs)
        assert await link_sites(hjs, ["site1"]) == ["site1"]
        assert await link_sites(hjs, ["site1"]) == []  # idempotent
        ack = await sjs.publish("proxbus.events.site1.syslog.info.pve1", b"{}")
        assert ack.domain == "site1"

        async def sourced() -> bool:
            return int((await hjs.stream_info(EVENTS_STREAM)).state.messages) == 1

        await wait_until(sourced, timeout=20)  # the hub sourced the site's event
        await hjs.publish("proxbus.deliveries.discord", b"x")
        assert (await sjs.stream_info(DELIVERIES_STREAM)).state.last_seq == 0
        assert (await hjs.stream_info(DELIVERIES_STREAM)).state.last_seq == 1
        log = (tmp_path / "hub" / "log").read_text()
        assert "authorization violation" not in log.lower()
        # The leaf port's INFO: with TLS on, a plain leaf could not have linked.
        with socket.create_connection(("127.0.0.1", ports["hub"]["leaf"]), timeout=5) as raw:
            info = json.loads(raw.recv(4096).decode().removeprefix("INFO ").strip())
        assert bool(info.get("tls_required")) is tls
    finally:
        for client in (hub, site):
            if client is not None:
                await client.close()
        for server in servers:
            server.kill()
