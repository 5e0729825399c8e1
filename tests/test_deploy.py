"""Static checks of deploy/: compose.yaml, the Dockerfile, .env.example and the n8n workflow.

No Docker daemon is needed: files are parsed and cross-checked against the workspace
(members, console scripts, every service's Settings), so that a renamed variable, port or
script in a service breaks here instead of in someone's `docker compose up`.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import re
import signal
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
ENV_EXAMPLE = DEPLOY / ".env.example"
WORKFLOW = DEPLOY / "n8n" / "proxbus-mcp-workflow.json"

# "Services, ports and entry points" in DESIGN.md: the port each service listens on by default,
# and the container port compose publishes (syslog moves to 514 in containers).
DESIGN_PORTS: dict[str, dict[str, int]] = {
    "ingest-syslog": {"syslog_port": 5514},
    "ingest-email": {"smtp_port": 2525},
    "ingest-pve-ws": {"health_port": 8090},
    "dispatcher": {"health_port": 8091},
    "mcp-gateway": {"gateway_port": 8080},
}
CONTAINER_PORTS: dict[str, set[str]] = {
    "ingest-syslog": {"514/udp", "514/tcp"},
    "ingest-email": {"2525/tcp"},
    "ingest-pve-ws": {"8090/tcp"},
    "dispatcher": {"8091/tcp"},
    "mcp-gateway": {"8080/tcp"},
}
PROXBUS_SERVICES = sorted(CONTAINER_PORTS)

# Variables the gateway reads from the raw environment (config.py), not through Settings.
GATEWAY_PASS_THROUGH = re.compile(
    r"^(LAB_CONFIGURATION|VERIFY_SSL|CLUSTERS|PVE_NODES|PBS_NODES"
    r"|PVE_[A-Z0-9_]+_(HOST|PORT|USER|TOKEN_NAME|TOKEN_VALUE|FINGERPRINT)"
    r"|PBS_[A-Z0-9_]+_(HOST|PORT|USER|TOKEN_NAME|TOKEN_VALUE|FINGERPRINT)"
    r"|[A-Z0-9_]+_FINGERPRINT|CLUSTER_[A-Z0-9_]+)$"
)
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\}")


# ---------------------------------------------------------------------------- helpers


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def built_services() -> dict[str, dict[str, Any]]:
    """Compose services built from deploy/Dockerfile, keyed by their SERVICE build arg."""
    out = {}
    for spec in compose()["services"].values():
        build = spec.get("build")
        if build:
            out[build["args"]["SERVICE"]] = spec
    return out


def member_dir(service: str) -> Path:
    for parent in ("services", "libs"):
        candidate = ROOT / parent / service
        if (candidate / "pyproject.toml").exists():
            return candidate
    raise AssertionError(f"no workspace member services/{service} or libs/{service}")


def member_project(service: str) -> dict[str, Any]:
    data = tomllib.loads((member_dir(service) / "pyproject.toml").read_text())
    project = data["project"]
    assert isinstance(project, dict)
    return project


def settings_class(service: str) -> Any:
    module = importlib.import_module(f"proxbus_{service.replace('-', '_')}.settings")
    return module.Settings


def env_names(settings_cls: Any) -> set[str]:
    """Environment names a pydantic-settings class reads (field names and aliases)."""
    names = set()
    for name, field in settings_cls.model_fields.items():
        names.add(name.upper())
        for alias in (field.alias, field.validation_alias):
            choices = getattr(alias, "choices", [alias])  # AliasChoices or a plain name
            names.update(c.upper() for c in choices if isinstance(c, str))
    return names


def env_example() -> tuple[dict[str, str], set[str]]:
    """(active KEY=VALUE lines, names shown as commented ``# KEY=`` defaults)."""
    active: dict[str, str] = {}
    documented: set[str] = set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        if m := re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line):
            active[m.group(1)] = m.group(2)
        elif m := re.match(r"^# ?([A-Z][A-Z0-9_]*)=", line):
            documented.add(m.group(1))
    return active, documented


@dataclass(slots=True)
class Instruction:
    keyword: str
    args: str
    stage: str | None


def dockerfile() -> list[Instruction]:
    """Dockerfile instructions with continuation lines joined; stage = current ``AS`` name."""
    out: list[Instruction] = []
    stage: str | None = None
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = pending + line
        pending = ""
        keyword, _, args = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            m = re.search(r"\s+AS\s+(\S+)$", args, re.IGNORECASE)
            stage = m.group(1) if m else None
        out.append(Instruction(keyword, args.strip(), stage))
    return out


def stage_instructions(stage: str) -> list[Instruction]:
    return [i for i in dockerfile() if i.stage == stage]


# ---------------------------------------------------------------------------- compose


def test_compose_builds_every_proxbus_service_and_the_demo_simulator() -> None:
    assert set(built_services()) == {*PROXBUS_SERVICES, "pvesim"}
    for spec in built_services().values():
        assert spec["build"]["context"] == ".."
        assert spec["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (COMPOSE.parent / spec["build"]["context"] / spec["build"]["dockerfile"]).exists()


@pytest.mark.parametrize("service", [*PROXBUS_SERVICES, "pvesim"])
def test_build_arg_names_a_member_declaring_its_console_script(service: str) -> None:
    project = member_project(service)
    assert project["name"] == f"proxbus-{service}"
    assert f"proxbus-{service}" in project.get("scripts", {})
    workspace = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert f"proxbus-{service}" in workspace["tool"]["uv"]["sources"]


@pytest.mark.parametrize("service", PROXBUS_SERVICES)
def test_compose_environment_names_are_read_by_the_service(service: str) -> None:
    spec = built_services()[service]
    known = env_names(settings_class(service))
    unknown = sorted(
        name
        for name in spec.get("environment", {})
        if name not in known and not (service == "mcp-gateway" and GATEWAY_PASS_THROUGH.match(name))
    )
    assert not unknown, f"{service} has no setting for {unknown} (renamed in its settings.py?)"


def test_env_example_names_are_all_read_by_some_service() -> None:
    active, documented = env_example()
    read = set().union(*(env_names(settings_class(s)) for s in PROXBUS_SERVICES))
    compose_only = set(_INTERPOLATION.findall(COMPOSE.read_text()))
    unknown = sorted(
        name
        for name in {*active, *documented}
        if name not in read and name not in compose_only and not GATEWAY_PASS_THROUGH.match(name)
    )
    assert not unknown, f".env.example documents variables no service reads: {unknown}"


def test_env_example_covers_every_compose_interpolation() -> None:
    active, documented = env_example()
    referenced = set(_INTERPOLATION.findall(COMPOSE.read_text()))
    assert referenced, "compose.yaml is expected to interpolate a few .env values"
    missing = sorted(referenced - set(active) - documented)
    assert not missing, f"${{VAR}} used in compose.yaml but not in .env.example: {missing}"


def test_env_example_documents_the_main_switches_of_every_service() -> None:
    active, documented = env_example()
    names = {*active, *documented}
    for required in (
        "PROXBUS_SITE",
        "LOG_LEVEL",
        "LOG_FORMAT",
        "EVENT_EMAIL_ENABLED",
        "EVENT_WS_ENABLED",
        "DISCORD_OUT_ENABLED",
        "DISCORD_WEBHOOK_URL",
        "GOTIFY_OUT_ENABLED",
        "GOTIFY_URL",
        "GOTIFY_TOKEN",
        "WEBHOOK_OUT_ENABLED",
        "WEBHOOK_URL",
        "ROUTES_FILE",
        "GATEWAY_TOKENS",
        "READ_ONLY",
        "LAB_CONFIGURATION",
        "PVE_NODES",
        "PBS_NODES",
        "VERIFY_SSL",
    ):
        assert required in names, required
    # Every option of a service's Settings is documented (its own section of the file).
    pinned = {name for spec in built_services().values() for name in spec.get("environment", {})}
    for service in PROXBUS_SERVICES:
        undocumented = sorted(env_names(settings_class(service)) - names - pinned)
        assert not undocumented, f"{service}: .env.example lacks {undocumented}"


def test_gateway_token_in_env_example_is_well_formed() -> None:
    from proxbus_mcp_gateway.config import parse_tokens

    active, _ = env_example()
    tokens = parse_tokens(active["GATEWAY_TOKENS"])
    assert [t.name for t in tokens] == ["n8n"]
    assert {"read", "operate"} <= tokens[0].scopes


@pytest.mark.parametrize("service", PROXBUS_SERVICES)
def test_service_defaults_match_design_ports(service: str) -> None:
    fields = settings_class(service).model_fields
    for field, port in DESIGN_PORTS[service].items():
        assert fields[field].default == port, f"{service}.{field} default != DESIGN.md's {port}"


@pytest.mark.parametrize("service", PROXBUS_SERVICES)
def test_published_ports_are_the_container_ports_the_service_listens_on(service: str) -> None:
    spec = built_services()[service]
    env = spec["environment"]
    published = set()
    for entry in spec["ports"]:
        text = str(entry)
        proto = text.rsplit("/", 1)[1] if "/" in text else "tcp"
        container_port = text.split("/", 1)[0].rsplit(":", 1)[1]
        published.add(f"{container_port}/{proto}")
    assert published == CONTAINER_PORTS[service]
    listen = {
        "ingest-syslog": env.get("SYSLOG_PORT"),
        "ingest-email": env.get("SMTP_PORT"),
        "ingest-pve-ws": env.get("HEALTH_PORT"),
        "dispatcher": env.get("HEALTH_PORT"),
        "mcp-gateway": env.get("GATEWAY_PORT"),
    }[service]
    assert {p.split("/")[0] for p in published} == {str(listen)}


def test_syslog_listens_on_514_inside_the_container() -> None:
    spec = built_services()["ingest-syslog"]
    assert spec["environment"]["SYSLOG_PORT"] == "514"
    assert {"514:514/udp", "514:514/tcp"} <= set(spec["ports"])


@pytest.mark.parametrize("service", PROXBUS_SERVICES)
def test_health_port_pinned_in_compose_is_the_one_the_probe_uses(service: str) -> None:
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("deploy_healthcheck", DEPLOY / "healthcheck.py")
    assert spec is not None
    assert spec.loader is not None
    probe = module_from_spec(spec)
    spec.loader.exec_module(probe)
    variable, default = probe.HEALTH_PORTS[service]
    field = "gateway_port" if variable == "GATEWAY_PORT" else "health_port"
    assert settings_class(service).model_fields[field].default == default
    pinned = built_services()[service]["environment"].get(variable)
    assert pinned is not None, f"compose should pin {variable} for {service}"
    assert int(pinned) == default


@pytest.mark.parametrize("service", PROXBUS_SERVICES)
def test_services_reach_nats_by_its_compose_name_after_it_is_healthy(service: str) -> None:
    spec = built_services()[service]
    assert spec["environment"]["NATS_URL"] == "nats://nats:4222"
    assert spec["depends_on"]["nats"]["condition"] == "service_healthy"


def test_nats_runs_jetstream_on_a_volume_with_a_healthcheck() -> None:
    nats = compose()["services"]["nats"]
    assert nats["image"].startswith("nats:2.10")
    command = nats["command"]
    assert "-js" in command
    assert command[command.index("-sd") + 1] == "/data"
    assert any(str(v).endswith(":/data") for v in nats["volumes"])
    volume = nats["volumes"][0].split(":")[0]
    assert volume in compose()["volumes"]
    assert "8222" in command  # the monitoring port its healthcheck asks
    assert "8222/healthz" in " ".join(nats["healthcheck"]["test"])


@pytest.mark.parametrize("name", ["nats", *PROXBUS_SERVICES, "pvesim"])
def test_services_restart_stop_gracefully_and_have_healthchecks(name: str) -> None:
    spec = next(
        s
        for key, s in compose()["services"].items()
        if key == name or s.get("build", {}).get("args", {}).get("SERVICE") == name
    )
    assert spec["restart"] == "unless-stopped"
    assert spec["stop_grace_period"] == "15s"
    assert spec["healthcheck"]["test"]


def test_proxbus_services_read_an_optional_env_file() -> None:
    for service, spec in built_services().items():
        assert spec["env_file"] == [{"path": ".env", "required": False}], service


def test_gateway_listens_publicly_only_with_tokens_and_accepts_its_compose_name() -> None:
    env = built_services()["mcp-gateway"]["environment"]
    assert env["GATEWAY_HOST"] == "0.0.0.0"
    assert "mcp-gateway:*" in env["GATEWAY_ALLOWED_HOSTS"].split(",")
    active, _ = env_example()
    assert active.get("GATEWAY_TOKENS"), "the gateway refuses 0.0.0.0 without GATEWAY_TOKENS"


def test_demo_profile_runs_the_simulator_against_the_ingest_services() -> None:
    services = compose()["services"]
    sim = services["pvesim"]
    assert sim["profiles"] == ["demo"]
    args = dict(a.removeprefix("--").split("=", 1) for a in sim["command"])
    assert args["host"] == "0.0.0.0"
    syslog = built_services()["ingest-syslog"]["environment"]["SYSLOG_PORT"]
    smtp = built_services()["ingest-email"]["environment"]["SMTP_PORT"]
    hooks = built_services()["ingest-pve-ws"]["environment"]["HEALTH_PORT"]
    assert args["syslog-target"] == f"ingest-syslog:{syslog}"
    assert args["smtp-target"] == f"ingest-email:{smtp}"
    assert args["webhook-url"] == f"http://ingest-pve-ws:{hooks}/hooks/pve"
    assert args["webhook-secret"] == "${PVE_WEBHOOK_SECRET:-}"
    # The scenario is mounted where the command reads it, from a file that exists here.
    mount = next(v for v in sim["volumes"] if v.endswith(":ro"))
    source, target, _ = mount.split(":")
    scenario = Path(args["scenario"])
    assert scenario.is_relative_to(target)
    assert (DEPLOY / source / scenario.relative_to(target)).is_file()
    # No proxbus service depends on the simulator (it is off without the profile).
    for name, spec in services.items():
        if name != "pvesim":
            assert "pvesim" not in spec.get("depends_on", {}), name


def test_env_example_points_the_gateway_at_the_demo_simulator_with_its_tokens() -> None:
    from proxbus_pvesim.scenario import load_scenario

    scenario = load_scenario(str(DEPLOY / "demo" / "scenario.yaml"))
    active, _ = env_example()
    node = scenario.lab.local_node
    prefix = f"PVE_{node.upper()}"
    assert active["PVE_NODES"] == node
    assert active[f"{prefix}_HOST"] == "pvesim:8006"
    assert active[f"{prefix}_USER"] == "root@pam"
    assert active[f"{prefix}_TOKEN_NAME"] == "admin"
    assert active[f"{prefix}_TOKEN_VALUE"] == scenario.tokens["admin"]
    assert scenario.lab.pbs is not None
    pbs = f"PBS_{scenario.lab.pbs.name.upper()}"
    assert active["PBS_NODES"] == scenario.lab.pbs.name
    assert active[f"{pbs}_HOST"] == "pvesim:8007"
    assert active[f"{pbs}_TOKEN_VALUE"] == scenario.tokens["pbs_admin"]
    assert active["PROXBUS_SITE"] == scenario.lab.site
    # The demo's certificate is self-signed for localhost/pve1, not "pvesim".
    assert active["VERIFY_SSL"] == "false"


def test_env_example_seed_variables_parse_as_a_gateway_cluster() -> None:
    from proxbus_mcp_gateway.config import parse_clusters

    active, _ = env_example()
    clusters = parse_clusters(active, active["PROXBUS_SITE"])
    assert [c.name for c in clusters] == ["lab"]
    endpoints = [ep for g in clusters[0].groups for ep in g.endpoints]
    assert [(ep.host, ep.port) for ep in endpoints] == [("pvesim", 8006)]
    assert [(ep.host, ep.port, ep.product) for ep in clusters[0].pbs] == [("pvesim", 8007, "pbs")]


def _compose_spec_check(path: Path) -> subprocess.CompletedProcess[str]:
    """Validate a compose file against the official Compose Specification JSON schema.

    No Docker engine (nor compose plugin) runs here; check-jsonschema ships the spec's schema.
    """
    return subprocess.run(
        [str(Path(sys.executable).parent / "check-jsonschema"),
         "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_compose_file_follows_the_compose_specification() -> None:
    result = _compose_spec_check(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_specification_check_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text("services:\n  web:\n    image: nginx\n    ports: 8080\n    restrat: always\n")
    result = _compose_spec_check(broken)
    assert result.returncode != 0
    assert "restrat" in result.stdout + result.stderr


# ---------------------------------------------------------------------------- Dockerfile


def test_dockerfile_declares_service_before_using_it() -> None:
    instructions = dockerfile()
    first_use = next(n for n, i in enumerate(instructions) if "${SERVICE}" in i.args)
    assert any(i.keyword == "ARG" and i.args == "SERVICE" for i in instructions[:first_use])
    # FROM lines see the global ARG (before the first FROM); other instructions only an ARG
    # re-declared in their own stage.
    first_from = next(n for n, i in enumerate(instructions) if i.keyword == "FROM")
    assert any(i.keyword == "ARG" and i.args == "SERVICE" for i in instructions[:first_from])
    for instruction in instructions:
        if "${SERVICE}" in instruction.args and instruction.keyword != "FROM":
            assert instruction.stage is not None
            declared = [
                i
                for i in stage_instructions(instruction.stage)
                if i.keyword == "ARG" and i.args.split("=")[0] == "SERVICE"
            ]
            assert declared, f"stage {instruction.stage} uses ${{SERVICE}} without ARG SERVICE"


def test_dockerfile_builds_on_python_311_slim_in_two_stages() -> None:
    bases = {i.stage: i.args.split()[0] for i in dockerfile() if i.keyword == "FROM"}
    assert bases["builder"] == "python:3.11-slim"
    assert bases["runtime"] == "python:3.11-slim"
    copies = [i.args for i in stage_instructions("runtime") if i.keyword == "COPY"]
    assert any(c.startswith("--from=builder /app/.venv /app/.venv") for c in copies)


def test_dockerfile_installs_one_member_from_the_lock_without_dev_tools() -> None:
    runs = [i.args for i in stage_instructions("builder") if i.keyword == "RUN"]
    sync = next(r for r in runs if "uv sync" in r)
    for flag in ("--locked", "--no-dev", "--no-editable"):
        assert flag in sync.split(), flag
    assert '--package "proxbus-${SERVICE}"' in sync
    copied = " ".join(i.args for i in stage_instructions("builder") if i.keyword == "COPY")
    for source in ("pyproject.toml", "uv.lock", "libs/", "services/"):
        assert source in copied, source


def test_dockerfile_runtime_is_non_root_with_healthcheck_and_sigterm() -> None:
    runtime = {i.keyword: i.args for i in stage_instructions("runtime")}
    user = runtime["USER"].split(":")[0]
    assert user not in ("root", "0")
    assert "PATH=/app/.venv/bin:$PATH" in runtime["ENV"]
    assert "PROXBUS_SERVICE=${SERVICE}" in runtime["ENV"]
    assert runtime["STOPSIGNAL"] == "SIGTERM"
    assert "/app/healthcheck.py" in runtime["HEALTHCHECK"]
    entrypoint = json.loads(runtime["ENTRYPOINT"])
    assert 'exec "proxbus-${PROXBUS_SERVICE}" "$@"' in entrypoint


@pytest.mark.parametrize("service", [*PROXBUS_SERVICES, "pvesim"])
def test_dockerfile_has_a_final_stage_exposing_the_service_ports(service: str) -> None:
    final = [i for i in dockerfile() if i.keyword == "FROM"][-1]
    assert final.args.startswith("service-${SERVICE}")
    stage = stage_instructions(f"service-{service}")
    assert stage, f"no stage service-{service}: the build of SERVICE={service} would fail"
    exposed = {
        p if "/" in p else f"{p}/tcp"
        for i in stage
        if i.keyword == "EXPOSE"
        for p in i.args.split()
    }
    assert CONTAINER_PORTS.get(service, set()) <= exposed


def test_dockerignore_keeps_everything_the_dockerfile_copies() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    kept = {line[1:] for line in ignore if line.startswith("!")}
    assert "**" in ignore  # everything else stays out of the context (.venv, .git, …)
    for instruction in dockerfile():
        if instruction.keyword == "COPY" and "--from=" not in instruction.args:
            for source in instruction.args.split()[:-1]:
                assert source in kept, f"COPY {source} but the ignore file drops it"
                assert (ROOT / source).exists(), source


# ---------------------------------------------------------------------------- n8n


def test_n8n_workflow_wires_webhook_if_agent_and_mcp_tool() -> None:
    workflow = json.loads(WORKFLOW.read_text())
    nodes = {n["name"]: n for n in workflow["nodes"]}
    assert len(nodes) == len(workflow["nodes"]), "node names must be unique"
    for node in nodes.values():
        assert {"id", "name", "type", "typeVersion", "position", "parameters"} <= set(node)
    by_type = {n["type"]: n for n in nodes.values()}

    webhook = by_type["n8n-nodes-base.webhook"]["parameters"]
    assert webhook["httpMethod"] == "POST"
    assert webhook["path"] == "proxbus"

    condition = json.dumps(by_type["n8n-nodes-base.if"]["parameters"])
    assert "$json.body.severity" in condition

    mcp = by_type["@n8n/n8n-nodes-langchain.mcpClientTool"]
    assert mcp["parameters"]["endpointUrl"] == "http://mcp-gateway:8080/mcp"
    assert mcp["parameters"]["serverTransport"] == "httpStreamable"
    assert mcp["parameters"]["authentication"] == "headerAuth"
    assert "httpHeaderAuth" in mcp["credentials"]
    assert "@n8n/n8n-nodes-langchain.agent" in by_type

    # Every connection names existing nodes; the graph is webhook -> if -> agent <- tool/model.
    edges = set()
    for source, outputs in workflow["connections"].items():
        assert source in nodes, source
        for kind, branches in outputs.items():
            for branch in branches:
                for target in branch:
                    assert target["node"] in nodes, target
                    assert target["type"] == kind
                    edges.add((nodes[source]["type"], kind, nodes[target["node"]]["type"]))
    assert ("n8n-nodes-base.webhook", "main", "n8n-nodes-base.if") in edges
    assert ("n8n-nodes-base.if", "main", "@n8n/n8n-nodes-langchain.agent") in edges
    assert (
        "@n8n/n8n-nodes-langchain.mcpClientTool",
        "ai_tool",
        "@n8n/n8n-nodes-langchain.agent",
    ) in edges
    assert any(kind == "ai_languageModel" for _, kind, _ in edges)


def test_n8n_profile_and_dispatcher_webhook_agree_on_the_url() -> None:
    n8n = compose()["services"]["n8n"]
    assert n8n["profiles"] == ["n8n"]
    assert any(str(p).endswith(":5678") for p in n8n["ports"])
    text = ENV_EXAMPLE.read_text()
    assert "WEBHOOK_URL=http://n8n:5678/webhook/proxbus" in text


# ------------------------------------------------------- container commands as plain processes
#
# What `docker run proxbus/<service>` executes, run here without Docker: the Dockerfile's
# ENTRYPOINT with its ENV, the .env.example values, compose's `environment:`, and only the
# addresses changed to free loopback ports. The HEALTHCHECK probe then has to pass.

VENV_BIN = Path(sys.executable).parent


def entrypoint() -> list[str]:
    runtime = {i.keyword: i.args for i in stage_instructions("runtime")}
    command = json.loads(runtime["ENTRYPOINT"])
    assert isinstance(command, list)
    return [str(part) for part in command]


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ``${VAR}`` / ``${VAR:-default}`` against ``variables``."""

    def one(m: re.Match[str]) -> str:
        name, _, default = m.group(1).partition(":-")
        return variables.get(name) or default

    return re.sub(r"\$\{([^}]+)\}", one, value)


def container_env(service: str, overrides: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "TMPDIR", "SYSTEMROOT")}
    runtime_env = " ".join(i.args for i in stage_instructions("runtime") if i.keyword == "ENV")
    for item in runtime_env.split():
        name, _, value = item.partition("=")
        value = value.replace("${SERVICE}", service).replace("/app/.venv/bin", str(VENV_BIN))
        env[name] = value.replace("$PATH", os.environ.get("PATH", "/usr/bin:/bin"))
    active, _ = env_example()
    env.update(active)
    spec = compose()["services"].get(service) or built_services()[service]
    for name, value in spec.get("environment", {}).items():
        env[name] = interpolate(str(value), active)
    env.update(overrides)
    return env


@pytest.mark.parametrize("service", [*PROXBUS_SERVICES, "pvesim"])
def test_container_command_is_an_installed_console_script(service: str) -> None:
    script = VENV_BIN / f"proxbus-{service}"
    assert script.is_file(), f"{script} missing: run `uv sync --all-packages`"
    result = subprocess.run(
        [*entrypoint(), "--help"],
        env=container_env(service, {}),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert f"proxbus-{service}" in result.stdout


async def _healthy(service: str, env: dict[str, str], proc: Any, log: Path) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        probe = await asyncio.create_subprocess_exec(
            sys.executable,
            str(DEPLOY / "healthcheck.py"),
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        if await probe.wait() == 0:
            return
        if proc.returncode is not None:
            raise AssertionError(f"{service} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{service} not healthy after 30 s:\n{log.read_text()[-3000:]}")
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("service", PROXBUS_SERVICES)
async def test_container_command_becomes_healthy_and_stops_on_sigterm(
    service: str, nats_server: Any, tmp_path: Path
) -> None:
    from proxbus_events.testing import free_port
    from proxbus_pvesim.testing import run_simulator

    overrides = {
        "NATS_URL": nats_server.url,
        "HEALTH_HOST": "127.0.0.1",
        "HEALTH_PORT": str(free_port()),
        "SYSLOG_HOST": "127.0.0.1",
        "SYSLOG_PORT": str(free_port()),
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(free_port()),
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(free_port()),
        "LOG_FORMAT": "console",
    }
    async with run_simulator(DEPLOY / "demo" / "scenario.yaml") as sim:
        # The gateway reaches the demo simulator on loopback instead of https://pvesim:8006.
        overrides["PVE_PVE1_HOST"] = f"127.0.0.1:{sim.pve_port}"
        overrides["PBS_PBS1_HOST"] = f"127.0.0.1:{sim.pbs_port}"
        env = container_env(service, overrides)
        log = tmp_path / f"{service}.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                *entrypoint(), env=env, cwd=tmp_path, stdout=out, stderr=out
            )
            try:
                await _healthy(service, env, proc, log)
                proc.send_signal(signal.SIGTERM)
                code = await asyncio.wait_for(proc.wait(), timeout=10)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
        assert code == 0, log.read_text()[-3000:]


async def test_demo_credentials_in_env_example_open_the_demo_simulator() -> None:
    import aiohttp
    from proxbus_pvesim.testing import run_simulator

    active, _ = env_example()
    pve = (
        f"PVEAPIToken={active['PVE_PVE1_USER']}!{active['PVE_PVE1_TOKEN_NAME']}"
        f"={active['PVE_PVE1_TOKEN_VALUE']}"
    )
    pbs = (
        f"PBSAPIToken={active['PBS_PBS1_USER']}!{active['PBS_PBS1_TOKEN_NAME']}"
        f":{active['PBS_PBS1_TOKEN_VALUE']}"
    )
    async with (
        run_simulator(DEPLOY / "demo" / "scenario.yaml") as sim,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as http,
    ):
        # VERIFY_SSL=false in the demo: the certificate is not checked here either.
        async with http.get(f"{sim.pve_url}/api2/json/nodes", headers={"Authorization": pve}) as r:
            assert r.status == 200
            nodes = {n["node"] for n in (await r.json())["data"]}
        assert nodes == {"pve1", "pve2", "pve3"}
        async with http.get(
            f"{sim.pbs_url}/api2/json/admin/datastore", headers={"Authorization": pbs}
        ) as r:
            assert r.status == 200


def test_fields_the_n8n_workflow_reads_are_in_the_dispatcher_webhook_body() -> None:
    from proxbus_dispatcher.config import WebhookReceiver
    from proxbus_dispatcher.notification import Notification
    from proxbus_dispatcher.notifiers.webhook import webhook_payload
    from proxbus_events import Event

    event = Event(
        source="syslog",
        site="lab",
        node="pve1",
        severity="error",
        kind="vm.crashed",
        title="VM 100 crashed",
        message="kvm: segfault",
        vmid=100,
    )
    receiver = WebhookReceiver(
        name="webhook", type="webhook", url="http://n8n:5678/webhook/proxbus"
    )
    notification = Notification(id="d1", receiver="webhook", route="root", events=[event])
    # n8n's Webhook node puts the POSTed JSON under $json.body.
    body = json.loads(json.dumps(webhook_payload(receiver, notification)))
    workflow = WORKFLOW.read_text()
    paths = set(re.findall(r"\$json\.body\.([a-z_]+(?:\.[a-z_]+)*)", workflow))
    assert paths >= {"severity", "title", "body", "event.node", "event.vmid", "event.kind"}
    for path in paths:
        value: Any = body
        for key in path.split("."):
            assert key in value, (
                f"the workflow reads $json.body.{path}; the dispatcher sends no {key}"
            )
            value = value[key]
    assert body["severity"] == "error"
