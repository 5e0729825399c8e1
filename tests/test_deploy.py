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
SPLIT_ENV = DEPLOY / "split_env.py"
LB_CONF = DEPLOY / "lb" / "nginx.conf"

# "Services, ports and entry points" in DESIGN.md: the port each service listens on by default,
# and the container port compose publishes (syslog moves to 514 in containers).
DESIGN_PORTS: dict[str, dict[str, int]] = {
    "ingest-syslog": {"syslog_port": 5514},
    "ingest-email": {"smtp_port": 2525},
    "ingest-pve-ws": {"health_port": 8090},
    "dispatcher": {"health_port": 8091},
    "mcp-gateway": {"gateway_port": 8080},
    "ingest-discord": {"discord_port": 8094},
}
CONTAINER_PORTS: dict[str, set[str]] = {
    "ingest-syslog": {"514/udp", "514/tcp"},
    "ingest-email": {"2525/tcp"},
    "ingest-pve-ws": {"8090/tcp"},
    "dispatcher": {"8091/tcp"},
    "mcp-gateway": {"8080/tcp"},
    "ingest-discord": {"8094/tcp"},
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


def split_env_module() -> Any:
    """deploy/split_env.py, loaded as a module (it is a stand-alone script in the deploy folder)."""
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("deploy_split_env", SPLIT_ENV)
    assert spec is not None
    assert spec.loader is not None
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dotenv_lines(lines: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` lines as compose's env_file reads them (no quotes are used here)."""
    out = {}
    for line in lines:
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            out[name] = value
    return out


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


def commented_default_mismatches(text: str) -> list[str]:
    """``# NAME=<number or true/false>`` lines of an env example (which show a variable "with
    its default") whose value is not the default of every service reading NAME."""
    defaults: dict[str, set[str]] = {}
    for service in PROXBUS_SERVICES:
        for name, field in settings_class(service).model_fields.items():
            value = field.get_default(call_default_factory=True)
            if isinstance(value, bool):
                defaults.setdefault(name.upper(), set()).add(str(value).lower())
            elif isinstance(value, int | float) and not field.is_required():
                shown = int(value) if float(value).is_integer() else value
                defaults.setdefault(name.upper(), set()).add(str(shown))
    wrong = []
    for line in text.splitlines():
        m = re.match(r"^# ?([A-Z][A-Z0-9_]*)=(-?\d+(?:\.\d+)?|true|false)$", line)
        if m and m.group(1) in defaults and {m.group(2)} != defaults[m.group(1)]:
            wrong.append(
                f"{m.group(1)}={m.group(2)}: the default is {sorted(defaults[m.group(1)])}"
            )
    return wrong


def test_env_example_shows_the_code_defaults_in_its_commented_lines() -> None:
    """`# SMTP_TIMEOUT=300` read as the default; ingest-email's is 60."""
    wrong = commented_default_mismatches(ENV_EXAMPLE.read_text())
    assert not wrong, "\n".join(wrong)
    assert commented_default_mismatches("# SMTP_TIMEOUT=60\n# SYSLOG_TCP=false\n") == [
        "SYSLOG_TCP=false: the default is ['true']"
    ]


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
        "ingest-discord": env.get("DISCORD_PORT"),
    }[service]
    assert {p.split("/")[0] for p in published} == {str(listen)}


def test_syslog_listens_on_514_inside_the_container() -> None:
    spec = built_services()["ingest-syslog"]
    assert spec["environment"]["SYSLOG_PORT"] == "514"
    ports = {interpolate(str(p), {}) for p in spec["ports"]}
    assert {"514:514/udp", "514:514/tcp"} <= ports


@pytest.mark.parametrize("service", PROXBUS_SERVICES)
def test_health_port_pinned_in_compose_is_the_one_the_probe_uses(service: str) -> None:
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("deploy_healthcheck", DEPLOY / "healthcheck.py")
    assert spec is not None
    assert spec.loader is not None
    probe = module_from_spec(spec)
    spec.loader.exec_module(probe)
    variable, default = probe.HEALTH_PORTS[service]
    field = variable.lower()  # GATEWAY_PORT, DISCORD_PORT or HEALTH_PORT
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


def test_each_proxbus_service_reads_only_its_own_generated_env_file() -> None:
    for service, spec in built_services().items():
        if service == "pvesim":
            assert "env_file" not in spec  # the simulator takes everything on its command line
            continue
        assert spec["env_file"] == [{"path": f"env/{service}.env", "required": True}], service
    for name, spec in compose()["services"].items():
        paths = [e["path"] if isinstance(e, dict) else e for e in spec.get("env_file", [])]
        assert ".env" not in paths, f"{name} would read the whole .env"


def test_gateway_listens_publicly_only_with_tokens_and_accepts_its_compose_name() -> None:
    env = built_services()["mcp-gateway"]["environment"]
    assert env["GATEWAY_HOST"] == "0.0.0.0"
    assert "mcp-gateway:*" in env["GATEWAY_ALLOWED_HOSTS"].split(",")
    active, _ = env_example()
    assert active.get("GATEWAY_TOKENS"), "the gateway refuses 0.0.0.0 without GATEWAY_TOKENS"


def test_dispatcher_container_starts_with_the_env_example_and_its_console_needs_tokens() -> None:
    from proxbus_dispatcher.settings import Settings

    env = built_services()["dispatcher"]["environment"]
    assert env["HEALTH_HOST"] == "0.0.0.0"  # the published 127.0.0.1:8091 reaches it
    active, _ = env_example()
    dispatcher_env = {k: v for k, v in active.items() if k.startswith("CONSOLE_")}
    assert dispatcher_env.get("CONSOLE_ENABLED") == "false"
    Settings(_env_file=None, **{k.lower(): v for k, v in {**dispatcher_env, **env}.items()})  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="CONSOLE_TOKENS"):
        Settings(_env_file=None, health_host="0.0.0.0", console_enabled=True)  # type: ignore[call-arg]
    Settings(  # type: ignore[call-arg]
        _env_file=None,
        health_host="0.0.0.0",
        console_enabled=True,
        console_tokens="admin:operate:change-me-to-a-long-random-secret",
    )


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


# ------------------------------------------------- per-container environments (split_env.py)

# Secret variables, by the one service allowed to hold them. NATS credentials are shared on
# purpose (every service connects to NATS; per-service users go in PROXBUS_<SERVICE>_NATS_*).
SECRETS: dict[str, re.Pattern[str]] = {
    "mcp-gateway": re.compile(
        r"^(GATEWAY_TOKENS|GATEWAY_TOKENS_FILE|(CLUSTER_[A-Z0-9_]+_)?(PVE|PBS)_[A-Z0-9_]+_TOKEN_VALUE)$"
    ),
    "dispatcher": re.compile(
        r"^(DISCORD_WEBHOOK_URL|WEBHOOK_URL|GOTIFY_TOKEN|WEBHOOK_SECRET|EMAIL_OUT_PASSWORD|APPRISE_URLS|CONSOLE_TOKENS|DISCORD_BUTTON_SECRET)$"
    ),
    "ingest-email": re.compile(r"^(SMTP_PASSWORD|IMAP_PASSWORD|SMTP_TLS_KEY)$"),
    "ingest-syslog": re.compile(r"^SYSLOG_TLS_KEY$"),
    "ingest-pve-ws": re.compile(r"^(PVE_WEBHOOK_SECRET|GOTIFY_CLIENT_TOKEN)$"),
    # A public key, but it decides which requests are Discord's: one owner like a secret.
    "ingest-discord": re.compile(r"^(DISCORD_PUBLIC_KEY|DISCORD_BUTTON_SECRET)$"),
}
SHARED_SECRETS = {"NATS_PASSWORD", "NATS_TOKEN", "NATS_CREDS", "NATS_TLS_KEY"}
SECRET_WORDS = re.compile(
    r"(?<!PER_)TOKEN(?!_NAME)|SECRET|PASSWORD|_KEY$|WEBHOOK_URL|APPRISE|CREDS"
)


# Secrets two services share on purpose: the dispatcher signs its Discord notifications'
# buttons with DISCORD_BUTTON_SECRET, ingest-discord checks them with it.
PAIR_SECRETS = {"DISCORD_BUTTON_SECRET": {"dispatcher", "ingest-discord"}}


def secret_owners(name: str) -> set[str]:
    owners = {service for service, pattern in SECRETS.items() if pattern.match(name)}
    assert len(owners) <= 1 or owners == PAIR_SECRETS.get(name), name
    return owners


def full_env() -> dict[str, str]:
    """Every variable .env.example mentions, plus dynamic gateway names, each with its own value."""
    active, documented = env_example()
    names = {*active, *documented}
    names |= {
        "PVE_PVE2_TOKEN_VALUE",
        "PBS_PBS2_TOKEN_VALUE",
        "PVE_CLUSTER_PRIMARY_TOKEN_VALUE",
        "CLUSTER_DC2_PVE_PVE9_TOKEN_VALUE",
        "PVE9_FINGERPRINT",
    }
    return {name: f"value-of-{name.lower()}" for name in sorted(names)}


def split_full_env() -> dict[str, dict[str, str]]:
    lines = [f"{k}={v}" for k, v in full_env().items()]
    files, unknown = split_env_module().split(lines)
    assert not unknown, f"split_env.py routes no service to {unknown}"
    return {service: dotenv_lines(body) for service, body in files.items()}


def test_every_secret_looking_variable_has_one_owner() -> None:
    for name in full_env():
        if SECRET_WORDS.search(name) and name not in SHARED_SECRETS:
            assert secret_owners(name), f"{name} looks secret: add it to SECRETS with its service"


@pytest.mark.parametrize("service", PROXBUS_SERVICES)
def test_no_container_gets_a_secret_meant_for_another_service(service: str) -> None:
    env = split_full_env()[service]
    foreign = {
        name: value
        for name, value in full_env().items()
        if (owners := secret_owners(name)) and service not in owners
    }
    leaked = sorted(name for name in env if name in foreign)
    assert not leaked, f"{service}'s env file holds {leaked}"
    # By value too: compose's environment: block and the file, whatever the variable is called.
    spec = built_services()[service]
    container = {
        **env,
        **{k: interpolate(str(v), full_env()) for k, v in spec["environment"].items()},
    }
    for name, value in foreign.items():
        assert value not in " ".join(container.values()), f"{service} receives {name}'s value"


@pytest.mark.parametrize("name", ["nats", "n8n", "ingest-lb", "pvesim"])
def test_other_containers_get_no_proxbus_secret_in_their_environment(name: str) -> None:
    spec = compose()["services"][name]
    assert "env_file" not in spec
    environment = spec.get("environment", {})
    text = " ".join(interpolate(str(v), full_env()) for v in environment.values())
    for variable, value in full_env().items():
        if secret_owners(variable) or variable in SHARED_SECRETS:
            assert value not in text, f"{name} receives {variable}"


@pytest.mark.parametrize("service", PROXBUS_SERVICES)
def test_each_service_gets_every_variable_it_reads(service: str) -> None:
    env = split_full_env()[service]
    pinned = set(built_services()[service]["environment"])
    active, documented = env_example()
    missing = sorted(
        name
        for name in env_names(settings_class(service)) & {*active, *documented}
        if name not in env and name not in pinned
    )
    assert not missing, f"split_env.py does not give {service} {missing}"
    if service == "mcp-gateway":
        for name in (
            "PVE_PVE2_TOKEN_VALUE",
            "CLUSTER_DC2_PVE_PVE9_TOKEN_VALUE",
            "PVE9_FINGERPRINT",
        ):
            assert name in env


def test_split_env_tables_name_only_variables_some_service_reads() -> None:
    module = split_env_module()
    read = set().union(*(env_names(settings_class(s)) for s in PROXBUS_SERVICES))
    for service, names in module.OWN.items():
        own = env_names(settings_class(service))
        stale = sorted(n for n in names if n not in own and not GATEWAY_PASS_THROUGH.match(n))
        assert not stale, f"split_env.py gives {service} {stale}, which it does not read"
    assert read >= module.SHARED
    for name, services in module.SHARED_BY.items():
        for service in services:
            assert name in env_names(settings_class(service)), f"{service} does not read {name}"
    assert set(module.SERVICES) == set(PROXBUS_SERVICES)


def test_per_service_override_reaches_that_service_only_and_wins() -> None:
    files, unknown = split_env_module().split(
        ["NATS_USER=proxbus", "PROXBUS_DISPATCHER_NATS_USER=dispatcher", "export LOG_LEVEL=DEBUG"]
    )
    assert not unknown
    assert dotenv_lines(files["dispatcher"])["NATS_USER"] == "dispatcher"
    assert files["dispatcher"].index("NATS_USER=dispatcher") > files["dispatcher"].index(
        "NATS_USER=proxbus"
    )
    assert dotenv_lines(files["mcp-gateway"]) == {"NATS_USER": "proxbus", "LOG_LEVEL": "DEBUG"}


def test_split_env_script_writes_private_files_and_reports_unknown_names(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        ENV_EXAMPLE.read_text() + "\nNOT_A_PROXBUS_SETTING=1\nSYSLOG_PUBLISH=127.0.0.1:\n"
    )
    result = subprocess.run(
        [sys.executable, str(SPLIT_ENV), "--env", str(env), "--out", str(tmp_path / "env")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "NOT_A_PROXBUS_SETTING" in result.stderr
    assert "SYSLOG_PUBLISH" not in result.stderr  # read by compose itself
    for service in PROXBUS_SERVICES:
        path = tmp_path / "env" / f"{service}.env"
        assert path.stat().st_mode & 0o777 == 0o600
        assert "NOT_A_PROXBUS_SETTING" not in path.read_text()
    gateway = dotenv_lines((tmp_path / "env" / "mcp-gateway.env").read_text().splitlines())
    assert gateway["GATEWAY_TOKENS"] == env_example()[0]["GATEWAY_TOKENS"]
    missing = subprocess.run(
        [sys.executable, str(SPLIT_ENV), "--env", str(tmp_path / "nope")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert missing.returncode == 2
    assert "cp .env.example .env" in missing.stderr


@pytest.mark.parametrize("service", PROXBUS_SERVICES)
def test_a_service_with_a_disk_spool_keeps_it_on_a_volume_its_user_owns(service: str) -> None:
    """Read-only containers: the spool (SpoolSettings) needs a writable, persistent directory."""
    from proxbus_runtime.spooling import SpoolSettings

    if not issubclass(settings_class(service), SpoolSettings):
        assert "SPOOL_DIR" not in built_services()[service].get("environment", {})
        return
    spec = built_services()[service]
    assert spec["read_only"] is True
    spool = spec["environment"]["SPOOL_DIR"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in spec.get("volumes", [])}
    assert spool in mounts, f"{service}: SPOOL_DIR {spool} is not on a volume"
    assert mounts[spool] in compose()["volumes"], "a named volume (kept across restarts)"
    runtime = " ".join(i.args for i in stage_instructions("runtime") if i.keyword == "RUN")
    assert re.search(rf"install -d -o proxbus -g proxbus .*{re.escape(spool)}", runtime)
    # One volume per service: a restarted service takes over the segments of its own slots only.
    others = [
        v.split(":")[0]
        for name, other in built_services().items()
        if name != service
        for v in other.get("volumes", [])
    ]
    assert mounts[spool] not in others


# ------------------------------------------------------------------ replicas behind one port

REPLICA_PORTS = {
    "ingest-syslog": ("SYSLOG_PUBLISH", {"514/udp", "514/tcp"}),
    "ingest-email": ("SMTP_PUBLISH", {"2525/tcp"}),
    "ingest-pve-ws": ("WEBHOOK_PUBLISH", {"8090/tcp"}),
}


def _host_binding(entry: str) -> tuple[str, str]:
    """("host ip:port" or "port", "container/proto") of a short-syntax port entry."""
    spec, _, proto = entry.partition("/")
    host, _, container = spec.rpartition(":")
    return host, f"{container}/{proto or 'tcp'}"


def test_replicas_mode_publishes_no_fixed_host_port_on_scaled_services(tmp_path: Path) -> None:
    variables = {variable: "127.0.0.1:" for variable, _ in REPLICA_PORTS.values()}
    text = re.sub(
        r"\$\{([A-Z_]+)-([^}]*)\}", lambda m: variables.get(m.group(1), m.group(2)),
        COMPOSE.read_text(),
    )  # fmt: skip
    data = yaml.safe_load(text)
    balancer = {_host_binding(str(p)) for p in data["services"]["ingest-lb"]["ports"]}
    for service, (_, container_ports) in REPLICA_PORTS.items():
        bindings = {_host_binding(str(p)) for p in data["services"][service]["ports"]}
        # "127.0.0.1:" + ":514" = an ephemeral loopback port per replica: `--scale` cannot clash.
        assert bindings == {("127.0.0.1:", port) for port in container_ports}, service
        for port in container_ports:
            assert (port.split("/")[0], port) in balancer, f"ingest-lb does not publish {port}"
    # The default (variables unset) keeps the plain published ports.
    defaults = {
        _host_binding(interpolate(str(p), {})) for p in built_services()["ingest-syslog"]["ports"]
    }
    assert defaults == {("514", "514/udp"), ("514", "514/tcp")}
    rendered = tmp_path / "compose.yaml"
    rendered.write_text(text)
    result = _compose_spec_check(rendered)
    assert result.returncode == 0, result.stdout + result.stderr


def test_load_balancer_forwards_each_port_to_its_service_resolved_at_run_time() -> None:
    lb = compose()["services"]["ingest-lb"]
    assert lb["profiles"] == ["replicas"]
    mount = next(v for v in lb["volumes"] if v.endswith("/etc/nginx/nginx.conf:ro"))
    assert (DEPLOY / mount.split(":")[0]).resolve() == LB_CONF
    assert lb["image"].startswith("nginx:")
    assert not lb["image"].endswith(":latest")
    conf = LB_CONF.read_text()
    assert re.search(r"^\s*resolver 127\.0\.0\.11 valid=\d+s", conf, re.MULTILINE)
    servers = re.findall(r"server \{(.*?)\}", conf, re.DOTALL)
    routes = {}
    for body in servers:
        listen = re.search(r"listen (\d+)( udp)?;", body)
        target = re.search(r"set \$(\w+) ([\w-]+):(\d+);", body)
        assert listen, body
        assert target, body
        assert f"proxy_pass ${target.group(1)};" in body  # a variable: resolved per session
        proto = "udp" if listen.group(2) else "tcp"
        routes[f"{listen.group(1)}/{proto}"] = (target.group(2), target.group(3))
        if proto == "udp":
            assert "proxy_responses 0;" in body
    for service, (_, container_ports) in REPLICA_PORTS.items():
        env = built_services()[service]["environment"]
        listen = env.get("SYSLOG_PORT") or env.get("SMTP_PORT") or env["HEALTH_PORT"]
        for port in container_ports:
            assert routes[port] == (service, listen), port


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


# Node versions of the workflow: the newest each node type offers in the pinned n8n release
# (n8n-io/n8n packages/nodes-base/nodes/{Webhook,If}, packages/@n8n/nodes-langchain/nodes/
# agents/Agent/Agent.node.ts, mcp/McpClientTool, llms/LMChatOpenAi).
N8N_NODE_VERSIONS = {
    "n8n-nodes-base.webhook": 2.1,
    "n8n-nodes-base.if": 2.2,
    "@n8n/n8n-nodes-langchain.agent": 2.2,
    "@n8n/n8n-nodes-langchain.mcpClientTool": 1.2,
    "@n8n/n8n-nodes-langchain.lmChatOpenAi": 1.2,
    "n8n-nodes-base.noOp": 1,
}


def test_n8n_workflow_imports_with_the_cli() -> None:
    """`n8n import:workflow` stores the file as is: it needs a top-level id (NOT NULL column)."""
    workflow = json.loads(WORKFLOW.read_text())
    assert re.fullmatch(r"[A-Za-z0-9]{16}", workflow["id"]), "n8n ids are 16 alphanumerics"
    assert workflow["active"] is False  # activated by the user once credentials exist
    assert {"name", "nodes", "connections", "settings"} <= set(workflow)
    for node in workflow["nodes"]:
        assert node["typeVersion"] == N8N_NODE_VERSIONS[node["type"]], node["name"]
    ids = [n["id"] for n in workflow["nodes"]]
    assert len(set(ids)) == len(ids)


def test_n8n_image_is_pinned_with_a_healthcheck() -> None:
    n8n = compose()["services"]["n8n"]
    image, _, tag = n8n["image"].rpartition(":")
    assert image.endswith("n8nio/n8n")
    assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"pin an n8n release, not {tag!r}"
    probe = " ".join(n8n["healthcheck"]["test"])
    assert "127.0.0.1:5678/healthz" in probe
    assert n8n["stop_grace_period"] == "15s"
    # The compose README tells the user how to import it with the CLI.
    readme = (DEPLOY / "README.md").read_text()
    assert "n8n import:workflow --input=/import/proxbus-mcp-workflow.json" in readme


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
        name, sep, default = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(:?-)?(.*)", m.group(1)).groups()  # type: ignore[union-attr]
        if sep == "-":  # ${VAR-default}: the default only when VAR is unset
            return variables.get(name, default)
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
    # What compose gives the container: its own env file, generated from .env.example.
    if service in PROXBUS_SERVICES:
        files, _ = split_env_module().split(ENV_EXAMPLE.read_text().splitlines())
        env.update(dotenv_lines(files[service]))
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
    from proxbus_devtools.testing import free_port
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
        "SPOOL_DIR": str(tmp_path / "spool"),  # the container's volume, here a temp dir
        "DISCORD_HOST": "127.0.0.1",
        "DISCORD_PORT": str(free_port()),
        # .env.example leaves the Discord application's key empty (the profile is opt-in).
        "DISCORD_PUBLIC_KEY": "ab" * 32,
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
    from proxbus_dispatcher.notification import Notification
    from proxbus_dispatcher.notifiers.webhook import WebhookReceiver, webhook_payload
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
