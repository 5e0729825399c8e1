"""The operator docs in docs/: every example is checked where something can check it.

- YAML, JSON and env blocks parse; env blocks name variables a service reads.
- `pveum`, `proxmox-backup-manager`, `pvesh` and `proxmox-backup-debug api` lines use commands,
  options, roles and privileges that exist: commands from pve-access-control's
  `src/PVE/CLI/pveum.pm` and proxmox-backup's `src/bin/proxmox_backup_manager/{user,acl}.rs`,
  options/paths/privileges from the official API schemas in ../shared/proxmox-api.
- rsyslog configurations pass `rsyslogd -N1` (Debian's rsyslog, installed by scripts/install.sh).
- The NATS configuration runs in a real nats-server, and a `proxbus events tail` configured with
  the documented remote-subscriber env block receives an event over TLS, while the same user is
  refused when it tries to publish.
- Every README (top level, docs/, services, libs, deploy): each `proxbus ...` / `proxbus-<service>
  ...` command it shows (code blocks and inline code) uses only options its program's `--help`
  lists; each variable a service README's settings tables name is a field of that service's
  settings class with the documented default (libs/runtime's README for the shared ones), each
  range a row states ("at most 900", "1-10,000") is the field's bounds, and every field is
  documented; the top-level service table has the default ports of the code.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SCHEMAS = Path(os.environ.get("PROXMOX_API_SCHEMAS", ROOT.parent / "shared" / "proxmox-api"))
PAGES = sorted(DOCS.glob("*.md"))
VENV_BIN = Path(sys.executable).parent

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(language: str, page: Path | None = None) -> list[tuple[Path, str]]:
    out = []
    for path in [page] if page else PAGES:
        for lang, body in _FENCE.findall(path.read_text()):
            if lang == language:
                out.append((path, body))
    return out


def _schema(name: str) -> dict[str, Any]:
    path = SCHEMAS / name
    assert path.is_file(), f"{path} missing (set PROXMOX_API_SCHEMAS)"
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def pve() -> dict[str, Any]:
    return _schema("pve-9.1.json")


def pbs() -> dict[str, Any]:
    return _schema("pbs.json")


def shell_commands() -> list[tuple[Path, list[str]]]:
    """Every line of the sh blocks, continuation lines joined, split like a shell would."""
    out = []
    for path, body in blocks("sh"):
        for line in body.replace("\\\n", " ").splitlines():
            line = line.split("  #", 1)[0].strip()
            if line and not line.startswith("#"):
                out.append((path, shlex.split(line)))
    return out


def commands(program: str) -> list[list[str]]:
    return [argv[1:] for _, argv in shell_commands() if argv[0] == program]


def options(argv: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """(positional arguments, --option -> values) of a Proxmox CLI command line."""
    positional: list[str] = []
    opts: dict[str, list[str]] = {}
    i = 0
    while i < len(argv):
        if argv[i].startswith("--"):
            opts.setdefault(argv[i][2:], []).append(argv[i + 1])
            i += 2
        else:
            positional.append(argv[i])
            i += 1
    return positional, opts


def parameters(schema: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    assert path in schema, f"{path} is not an API path"
    assert method in schema[path], f"{method} {path} does not exist"
    props = schema[path][method].get("parameters", {}).get("properties", {})
    assert isinstance(props, dict)
    return props


def all_privileges(schema: dict[str, Any]) -> set[str]:
    """Privilege names the schema's ``permissions`` mention (check lists and descriptions)."""
    text = json.dumps([m.get("permissions", {}) for p in schema.values() for m in p.values()])
    return set(re.findall(r"\b(?:Sys|VM|Datastore|Pool|SDN|Mapping|Permissions|Realm|User|"
                          r"Group|Remote|Tape)\.[A-Z][A-Za-z.]*[a-z]", text))  # fmt: skip


# ---------------------------------------------------------------------------- parse checks


def test_docs_exist_and_are_linked_from_the_index() -> None:
    index = (DOCS / "README.md").read_text()
    for page in PAGES:
        if page.name != "README.md":
            assert f"({page.name})" in index, f"docs/README.md does not link {page.name}"
    for name in ("proxmox-tokens.md", "proxmox-notifications.md", "nats.md", "security.md"):
        assert (DOCS / name).is_file()


def test_yaml_blocks_parse_and_token_files_load(tmp_path: Path) -> None:
    from proxbus_mcp_gateway.config import load_tokens_file

    found = blocks("yaml")
    assert found
    for path, body in found:
        data = yaml.safe_load(body)
        assert isinstance(data, dict), path
        if "tokens" in data:
            file = tmp_path / "tokens.yaml"
            file.write_text(body)
            tokens = load_tokens_file(file)
            assert [t.name for t in tokens] == [t["name"] for t in data["tokens"]]


def _render_handlebars(template: str, values: dict[str, Any]) -> str:
    """The two helpers of PVE's webhook templates: ``escape`` (JSON-escaped, no quotes), ``json``."""

    def one(m: re.Match[str]) -> str:
        helper, name = m.group(1), m.group(2)
        value = values[name]
        if helper == "escape":
            return json.dumps(value)[1:-1]
        if helper == "json":
            return json.dumps(value)
        return str(value)

    return re.sub(r"\{\{\s*(?:(escape|json)\s+)?([a-z.]+)\s*\}\}", one, template)


def test_json_blocks_parse_and_the_webhook_body_renders_to_what_ingest_pve_ws_reads() -> None:
    from proxbus_ingest_pve_ws.notification import parse_webhook_body, webhook_event

    found = blocks("json")
    assert found
    values = {
        "title": 'vzdump backup status (pve1.lab.example): backup failed "quoted"',
        "message": "line 1\nERROR: Backup of VM 100 failed",
        "severity": "error",
        "timestamp": 1764470000,
        "fields": {"type": "vzdump", "hostname": "pve1", "job-id": "backup-1"},
    }
    for path, body in found:
        if "{{" not in body:
            json.loads(body)
            continue
        rendered = _render_handlebars(body.strip(), values).encode()
        data = parse_webhook_body(rendered)
        event = webhook_event(data, site="lab")
        assert event.node == "pve1", path
        assert event.severity == "error"
        assert "backup failed" in event.title
    # The same body is the one the CLI example base64-encodes.
    notifications = (DOCS / "proxmox-notifications.md").read_text()
    (_, json_body), *_ = blocks("json", DOCS / "proxmox-notifications.md")
    assert f"BODY='{json_body.strip()}'" in notifications


def test_env_blocks_name_only_variables_proxbus_reads() -> None:
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("split_env", ROOT / "deploy" / "split_env.py")
    assert spec is not None
    assert spec.loader is not None
    split_env = module_from_spec(spec)
    spec.loader.exec_module(split_env)
    found = blocks("env")
    assert len(found) >= 5
    for path, body in found:
        for line in body.splitlines():
            if not line or line.startswith("#"):
                continue
            m = re.fullmatch(r"([A-Z][A-Z0-9_]*)=(\S*)", line)
            assert m, f"{path.name}: not KEY=VALUE: {line!r}"
            assert split_env.owners(m.group(1)), f"{path.name}: no service reads {m.group(1)}"


# ---------------------------------------------------------------------------- Proxmox commands


def test_privileges_named_in_the_docs_exist_in_the_api_schemas() -> None:
    known = all_privileges(pve()) | all_privileges(_schema("pve-8.4.json")) | all_privileges(pbs())
    assert {"Sys.Syslog", "VM.Backup", "Datastore.AllocateSpace", "Datastore.Audit"} <= known
    text = "\n".join(p.read_text() for p in PAGES)
    named = set(re.findall(r"\b(?:Sys|VM|Datastore|Pool)\.[A-Z][A-Za-z.]*[a-z]", text))
    assert {"Sys.Syslog", "VM.Backup", "Datastore.AllocateSpace", "Datastore.Audit"} <= named
    unknown = sorted(named - known)
    assert not unknown, f"privileges no Proxmox API checks: {unknown}"


def test_the_monitor_role_covers_what_the_watcher_reads() -> None:
    """Sys.Syslog is what /cluster/log needs for every entry; Sys.Audit for HA and status."""
    roles = {}
    for argv in commands("pveum"):
        if argv[:2] == ["role", "add"]:
            positional, opts = options(argv[2:])
            roles[positional[0]] = set(opts["privs"][0].split(","))
    log = pve()["/cluster/log"]["GET"]["permissions"]["description"]
    assert "Sys.Syslog" in log
    ha = pve()["/cluster/ha/status/current"]["GET"]["permissions"]["check"]
    assert {"Sys.Syslog", *ha[2]} <= roles["ProxbusMonitor"]
    vzdump = pve()["/nodes/{node}/vzdump"]["POST"]["permissions"]["description"]
    assert "VM.Backup" in vzdump
    assert "Datastore.AllocateSpace" in vzdump
    assert "VM.Backup" in roles["ProxbusOperator"]
    assert "Datastore.AllocateSpace" in roles["ProxbusBackupTarget"]


def test_every_gateway_tool_is_in_the_tokens_page() -> None:
    """What each tool needs: a tool the gateway registers but the page omits fails here."""
    from proxbus_mcp_gateway.tools import build_registry

    registry = build_registry().tools
    names = {spec.name for spec in (registry.values() if isinstance(registry, dict) else registry)}
    documented = set(re.findall(r"`([a-z_]+)`", (DOCS / "proxmox-tokens.md").read_text()))
    assert len(names) > 40
    missing = sorted(names - documented)
    assert not missing, f"docs/proxmox-tokens.md does not say what these tools need: {missing}"


PVEUM = {
    ("user", "add"): ("POST", "/access/users", ["userid"]),
    ("role", "add"): ("POST", "/access/roles", ["roleid"]),
    ("acl", "modify"): ("PUT", "/access/acl", ["path"]),
    ("user", "token", "add"): ("POST", "/access/users/{userid}/token/{tokenid}", ["userid", "tokenid"]),
    ("user", "token", "permissions"): ("GET", "/access/permissions", ["userid", "tokenid"]),
}  # fmt: skip
PVE_BUILTIN_ROLES = {"PVEAuditor", "PVEVMAdmin", "PVEVMUser", "PVEDatastoreUser"}


def test_pveum_commands_use_existing_subcommands_options_and_roles() -> None:
    lines = commands("pveum")
    assert len(lines) >= 8
    created_roles = {argv[2] for argv in lines if argv[:2] == ["role", "add"]}
    tokens = {(argv[3], argv[4]) for argv in lines if argv[:3] == ["user", "token", "add"]}
    privs = all_privileges(pve())
    for argv in lines:
        key = next((k for k in PVEUM if tuple(argv[: len(k)]) == k), None)
        assert key, f"pveum {' '.join(argv[:3])}: not a pveum command (pveum.pm $cmddef)"
        method, path, args = PVEUM[key]
        positional, opts = options(argv[len(key) :])
        assert len(positional) == len(args), argv
        params = parameters(pve(), method, path)
        for name in opts:
            if key != ("user", "token", "permissions"):
                assert name in params, f"pveum {' '.join(key)}: no option --{name}"
        if key == ("user", "token", "add"):
            assert re.fullmatch(r"[A-Za-z][A-Za-z0-9.\-_]+", positional[1])
        if key == ("role", "add"):
            assert set(opts["privs"][0].split(",")) <= privs, opts["privs"]
        if key == ("acl", "modify"):
            for role in opts["roles"][0].split(","):
                assert role in created_roles | PVE_BUILTIN_ROLES, role
            for token in opts.get("tokens", []):
                user, _, name = token.partition("!")
                assert (user, name) in tokens, f"{token} is granted but never created"


def test_proxmox_backup_manager_commands_match_the_pbs_api() -> None:
    lines = commands("proxmox-backup-manager")
    assert len(lines) >= 6
    roles = set(parameters(pbs(), "PUT", "/access/acl")["role"]["enum"])
    generated = {(a[2], a[3]) for a in lines if a[:2] == ["user", "generate-token"]}
    for argv in lines:
        positional, opts = options(argv[2:])
        if argv[:2] == ["user", "create"]:
            assert set(opts) <= set(parameters(pbs(), "POST", "/access/users")), opts
        elif argv[:2] == ["user", "generate-token"]:
            assert len(positional) == 2
            params = parameters(pbs(), "POST", "/access/users/{userid}/token/{token-name}")
            assert set(opts) <= set(params)
        elif argv[:2] == ["acl", "update"]:
            path, role = positional
            assert role in roles, f"PBS has no role {role}"
            assert re.fullmatch(r"/|(/[A-Za-z0-9_][A-Za-z0-9._\-]*)+", path)
            assert set(opts) <= set(parameters(pbs(), "PUT", "/access/acl")), opts
            user, _, token = opts["auth-id"][0].partition("!")
            assert not token or (user, token) in generated, opts["auth-id"]
        elif argv[:2] == ["user", "permissions"]:
            assert "auth-id" in parameters(pbs(), "GET", "/access/permissions")
        elif argv[:2] == ["cert", "info"]:
            continue
        else:
            raise AssertionError(f"proxmox-backup-manager {argv[:2]}: not documented here")


@pytest.mark.parametrize(
    ("program", "prefix", "schema"),
    [
        ("pvesh", ["create"], "pve-9.1.json"),
        ("proxmox-backup-debug", ["api", "create"], "pbs.json"),
    ],
)
def test_notification_target_commands_use_existing_paths_and_options(
    program: str, prefix: list[str], schema: str
) -> None:
    lines = [a for a in commands(program) if a[: len(prefix)] == prefix]
    assert len(lines) >= 2
    api = _schema(schema)
    for argv in lines:
        positional, opts = options(argv[len(prefix) :])
        params = parameters(api, "POST", positional[0])
        unknown = sorted(set(opts) - set(params))
        assert not unknown, f"{program} {positional[0]}: no option {unknown}"
        if "mode" in opts:
            assert opts["mode"][0] in params["mode"]["enum"]
        if "method" in opts:
            assert opts["method"][0] in params["method"]["enum"]
        for header in opts.get("header", []) + opts.get("secret", []):
            assert re.fullmatch(r"name=[\w-]+,value=\$\(.*\)", header), header
    targets = {o["name"][0] for a in lines for _, o in [options(a[len(prefix) :])] if "name" in o}
    for argv in lines:
        positional, opts = options(argv[len(prefix) :])
        if positional[0].endswith("/matchers"):
            assert opts["target"][0] in targets, "a matcher targets an endpoint created above"


# ---------------------------------------------------------------------------- rsyslog


def _rsyslogd() -> str:
    found = shutil.which("rsyslogd") or (
        "/usr/sbin/rsyslogd" if Path("/usr/sbin/rsyslogd").exists() else None
    )
    assert found, "rsyslogd missing: run ./scripts/install.sh (Debian package rsyslog)"
    return found


def test_rsyslog_configurations_pass_rsyslogd_validation(tmp_path: Path) -> None:
    from proxbus_pvesim.tls import generate_tls

    tls = generate_tls(tmp_path / "tls")
    found = blocks("rsyslog")
    assert len(found) >= 2
    for n, (_, body) in enumerate(found):
        conf = tmp_path / f"proxbus-{n}.conf"
        conf.write_text(body.replace("/etc/rsyslog.d/proxbus-ca.pem", str(tls.ca_path)))
        result = subprocess.run(
            [_rsyslogd(), "-N1", "-f", str(conf)], capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_rsyslog_validation_rejects_a_typo(tmp_path: Path) -> None:
    conf = tmp_path / "typo.conf"
    conf.write_text('*.* action(type="omfwd" target="proxbus.lan" port="514" protocl="tcp")\n')
    result = subprocess.run(
        [_rsyslogd(), "-N1", "-f", str(conf)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0
    assert "protocl" in result.stderr


def test_rsyslog_is_installed_before_it_is_configured() -> None:
    text = (DOCS / "proxmox-notifications.md").read_text()
    install = text.index("apt-get install -y rsyslog")
    assert install < text.index("90-proxbus.conf")
    assert "journal" in text[:install]


# ---------------------------------------------------------------------------- NATS


def _env_block(page: Path, user: str) -> dict[str, str]:
    for _, body in blocks("env", page):
        env = dict(line.split("=", 1) for line in body.splitlines() if "=" in line)
        if env.get("NATS_USER") == user:
            return env
    raise AssertionError(f"no env block for NATS user {user} in {page.name}")


def test_nats_configuration_is_accepted_by_nats_server(tmp_path: Path) -> None:
    from proxbus_pvesim.tls import generate_tls

    (_, conf), = blocks("nats")  # fmt: skip
    tls = generate_tls(tmp_path / "tls")
    path = tmp_path / "nats.conf"
    path.write_text(
        conf.replace("/etc/nats/tls/server.pem", str(tls.cert_path))
        .replace("/etc/nats/tls/server-key.pem", str(tls.key_path))
        .replace("/var/lib/nats", str(tmp_path / "js"))
    )
    env = {**os.environ, "PROXBUS_NATS_PASSWORD": "a", "WATCHER_NATS_PASSWORD": "b",
           "REPLAY_NATS_PASSWORD": "c"}  # fmt: skip
    server = VENV_BIN / "nats-server"
    ok = subprocess.run([str(server), "-t", "-c", str(path)], env=env, capture_output=True,
                        text=True, timeout=30)  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # Without the passwords in its environment the server refuses the file: no secret in it.
    bare = {k: v for k, v in env.items() if not k.endswith("_NATS_PASSWORD")}
    refused = subprocess.run([str(server), "-t", "-c", str(path)], env=bare, capture_output=True,
                             text=True, timeout=30)  # fmt: skip
    assert refused.returncode != 0


async def test_remote_subscriber_from_the_docs_tails_events_over_tls_and_cannot_publish(
    tmp_path: Path,
) -> None:
    from proxbus_devtools.testing import free_port
    from proxbus_pvesim.tls import generate_tls

    (_, conf), = blocks("nats")  # fmt: skip
    tls = generate_tls(tmp_path / "tls")
    port, monitor = free_port(), free_port()
    path = tmp_path / "nats.conf"
    path.write_text(
        conf.replace("0.0.0.0:4222", f"127.0.0.1:{port}")
        .replace("127.0.0.1:8222", f"127.0.0.1:{monitor}")
        .replace("/etc/nats/tls/server.pem", str(tls.cert_path))
        .replace("/etc/nats/tls/server-key.pem", str(tls.key_path))
        .replace("/var/lib/nats", str(tmp_path / "js"))
    )
    passwords = {"PROXBUS_NATS_PASSWORD": "services-pw", "WATCHER_NATS_PASSWORD": "watcher-pw",
                 "REPLAY_NATS_PASSWORD": "replay-pw"}  # fmt: skip
    server = await asyncio.create_subprocess_exec(
        str(VENV_BIN / "nats-server"), "-c", str(path), env={**os.environ, **passwords},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    base = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "PROXBUS_"))}
    page = DOCS / "nats.md"

    def client_env(user: str, password: str) -> dict[str, str]:
        documented = _env_block(page, user)
        env = {**base, **documented, "NATS_PASSWORD": password, "NATS_TLS_CA": str(tls.ca_path)}
        env["NATS_URL"] = documented.get("NATS_URL", f"tls://nats:{port}").replace(
            "proxbus.lan:4222", f"127.0.0.1:{port}"
        )
        if user == "proxbus":
            env["NATS_URL"] = f"tls://127.0.0.1:{port}"
        return env

    try:
        deadline = asyncio.get_running_loop().time() + 15
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                assert asyncio.get_running_loop().time() < deadline, "nats-server did not start"
                await asyncio.sleep(0.05)
        proxbus = str(VENV_BIN / "proxbus")
        tail = await asyncio.create_subprocess_exec(
            proxbus, "events", "tail", "--count", "1", "--json",
            env=client_env("watcher", "watcher-pw"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert tail.stderr is not None
        # "listening on ..." once the subscription is in place.
        line = await asyncio.wait_for(tail.stderr.readline(), 20)
        assert b"listening on proxbus.events" in line, line
        publish = await asyncio.create_subprocess_exec(
            proxbus, "events", "publish", "--site", "lab", "--title", "over TLS",
            env=client_env("proxbus", "services-pw"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(publish.communicate(), 30)
        assert publish.returncode == 0, out + err
        received, _ = await asyncio.wait_for(tail.communicate(), 20)
        event = json.loads(received.splitlines()[0])
        assert event["title"] == "over TLS"
        # The watcher may read, not write.
        denied = await asyncio.create_subprocess_exec(
            proxbus, "events", "publish", "--title", "from the watcher",
            env=client_env("watcher", "watcher-pw"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await asyncio.wait_for(denied.communicate(), 30)
        assert denied.returncode != 0
        # A wrong password is refused outright.
        wrong = await asyncio.create_subprocess_exec(
            proxbus, "check", env=client_env("watcher", "not-the-password"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(wrong.communicate(), 30)
        assert wrong.returncode != 0
        assert b"not-the-password" not in out + err
    finally:
        server.terminate()
        await server.wait()


# ---------------------------------------------------------------------------- every README


MEMBER_PAGES = [
    ROOT / "README.md",
    *PAGES,
    *sorted(ROOT.glob("services/*/README.md")),
    *sorted(ROOT.glob("libs/*/README.md")),
    *sorted(ROOT.glob("deploy/**/README.md")),
]
_INLINE = re.compile(r"`([^`\n]+)`")
_PROGRAM = re.compile(
    r"^(?:[A-Z][A-Z0-9_]*=\S+\s+)*(?:uv run (?:--no-sync |--package \S+ )*)?"
    r"(proxbus(?:-[a-z-]+)?)(?=\s|$)"
)
_OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])")


def documented_commands(pages: list[Path]) -> list[tuple[str, str]]:
    """(page, command line) of every ``proxbus ...`` / ``proxbus-<service> ...`` a page shows:
    lines of its code blocks and inline code spans; comments and env assignments dropped."""
    out = []
    for page in pages:
        text = page.read_text()
        spans = [line for _, body in _FENCE.findall(text)
                 for line in body.replace("\\\n", " ").splitlines()]  # fmt: skip
        spans += _INLINE.findall(_FENCE.sub("", text))
        for span in spans:
            line = span.split("#", 1)[0].strip()
            m = _PROGRAM.match(line)
            # A lone name that is no console script is a name (the NATS service proxbus-gateway).
            if m and (line != m.group(1) or (VENV_BIN / m.group(1)).exists()):
                out.append(
                    (
                        page.name
                        if ROOT not in page.parents
                        else page.relative_to(ROOT).as_posix(),
                        line,
                    )
                )
    return out


_HELP: dict[tuple[str, ...], str] = {}


def _help(argv: tuple[str, ...]) -> str:
    """``<program> <sub commands> --help`` of an installed console script (cached)."""
    if argv not in _HELP:
        result = subprocess.run(
            [str(VENV_BIN / argv[0]), *argv[1:], "--help"],
            capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"},
        )  # fmt: skip
        assert result.returncode == 0, f"{' '.join(argv)} --help: {result.stderr}"
        _HELP[argv] = result.stdout
    return _HELP[argv]


def unknown_options(line: str) -> list[str]:
    """The options of a documented command line its program's ``--help`` does not list.

    Sub-commands are followed through the ``{a,b,c}`` choices each usage line shows.
    """
    m = _PROGRAM.match(line)
    assert m
    program, rest = m.group(1), line[m.end() :]
    words = [w.strip("[]|'\"()") for w in rest.split()]
    path: tuple[str, ...] = (program,)
    for word in words:
        # argparse's "{serve,parse}", or a hand-written "[run | check-config FILE | dlq ...]"
        usage = _help(path).split("\n\n", 1)[0]
        choices = {c for group in re.findall(r"\{([a-z,-]+)\}", usage) for c in group.split(",")}
        choices |= set(re.findall(r"(?:\[|\| )([a-z][a-z-]*)", usage))
        if word not in choices:
            break
        path = (*path, word)
    text = _help(path)
    listed = set(re.findall(r"(?<![\w-])(--?[a-zA-Z][a-z0-9-]*)", text))
    return [f"{' '.join(path)} {o}" for o in _OPTION.findall(rest) if o not in listed]


def test_every_command_in_a_readme_uses_options_its_help_lists() -> None:
    found = documented_commands(MEMBER_PAGES)
    programs = {_PROGRAM.match(line).group(1) for _, line in found}  # type: ignore[union-attr]
    assert {
        "proxbus",
        "proxbus-dispatcher",
        "proxbus-ingest-syslog",
        "proxbus-mcp-gateway",
    } <= programs
    wrong = [f"{page}: `{line}`: {bad}" for page, line in found if (bad := unknown_options(line))]
    assert not wrong, "\n".join(wrong)


def test_a_wrong_option_in_a_readme_is_found(tmp_path: Path) -> None:
    page = tmp_path / "README.md"
    page.write_text("Run `uv run proxbus events tail --severty error` or\n\n```sh\n"
                    "proxbus-dispatcher silence add 'node=pve1' --duration-typo 2h\n```\n")  # fmt: skip
    found = documented_commands([page])
    assert len(found) == 2
    assert sorted(bad for _, line in found for bad in unknown_options(line)) == [
        "proxbus events tail --severty",
        "proxbus-dispatcher silence add --duration-typo",
    ]


SERVICE_SETTINGS = {
    "services/dispatcher": "proxbus_dispatcher.settings",
    "services/ingest-discord": "proxbus_ingest_discord.settings",
    "services/ingest-email": "proxbus_ingest_email.settings",
    "services/ingest-pve-ws": "proxbus_ingest_pve_ws.settings",
    "services/ingest-syslog": "proxbus_ingest_syslog.settings",
    "services/mcp-gateway": "proxbus_mcp_gateway.settings",
}
# Read by the gateway's topology loader (config.py), not by its Settings class.
GATEWAY_TOPOLOGY = ROOT / "services/mcp-gateway/src/proxbus_mcp_gateway/config.py"
_NAME = re.compile(r"`([A-Z][A-Z0-9_]{2,})`")
_SIZE = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def settings_table_rows(page: Path) -> list[tuple[list[str], list[str | None]]]:
    """(variables, documented defaults) of every row of the page's ``| variable | default |``
    tables; a default that is no literal (a placeholder, another variable, prose) is None."""
    rows = []
    default_column: int | None = None
    for line in page.read_text().splitlines():
        if not line.startswith("|"):
            default_column = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] in ("variable", "setting (env)"):
            default_column = cells.index("default") if "default" in cells else -1
            continue
        names = _NAME.findall(cells[0])
        if default_column is None or not names or not cells[0].startswith("`"):
            continue
        values: list[str | None] = []
        if default_column > 0:
            cell = re.sub(r"\s*\([^)]*\)", "", cells[default_column])
            for part in re.split(r", | / ", cell):
                part = part.strip()
                literal = re.fullmatch(r"`([^`]*)`(?: s)?|(\d+(?:\.\d+)?)(?: (KiB|MiB|GiB))?", part)
                if literal is None:
                    values.append("" if part in ("unset", "empty") else None)
                elif literal.group(1) is not None:
                    placeholder = "<" in literal.group(1) or _NAME.fullmatch(part)
                    values.append(None if placeholder else literal.group(1))
                else:
                    number = float(literal.group(2)) * _SIZE.get(literal.group(3) or "", 1)
                    values.append(f"{number:g}" if not number.is_integer() else str(int(number)))
        rows.append((names, values))
    return rows


def _as_doc(value: object) -> str:
    """A settings default written the way the READMEs write it."""
    value = getattr(value, "value", value)  # enums
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    if value is None or value == [] or value == "":
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _defaults(settings: type[Any]) -> dict[str, str | None]:
    """Environment variable -> its default as documented ('' for none; None when required)."""
    out: dict[str, str | None] = {}
    for name, field in settings.model_fields.items():
        out[name.upper()] = (
            None if field.is_required() else _as_doc(field.get_default(call_default_factory=True))
        )
    return out


def readme_settings_mismatches(page: Path, settings: type[Any], others: str = "") -> list[str]:
    """Variables a README's settings tables name that ``settings`` does not read (and are not
    in ``others``), and documented defaults that differ from the code's."""
    known = _defaults(settings)
    wrong = []
    for names, values in settings_table_rows(page):
        for name in names:
            if name not in known and name not in others:
                wrong.append(f"{name}: no such setting")
        pairs = list(zip(names, values, strict=False)) if len(values) in (1, len(names)) else []
        for name, value in pairs:
            if (
                value is not None
                and name in known
                and known[name] is not None
                and known[name] != value
            ):
                wrong.append(f"{name}: documented default {value!r}, the code's {known[name]!r}")
    text = page.read_text()
    for name, value in prose_defaults(text):
        if name in known and known[name] not in (None, value):
            wrong.append(f"{name}: documented default {value!r}, the code's {known[name]!r}")
    return wrong


# "`SMTP_TIMEOUT` (60 s)", "`HEALTH_PORT` (default **8091**)", "`RPC_SCOPES` (default `read`)"
_PROSE_DEFAULT = re.compile(
    r"`([A-Z][A-Z0-9_]+)` \((?:default:? (\*\*|`?)([0-9.]+|[a-z][a-z0-9_.+-]*)\2"
    r"|(`?)([0-9.]+)\4)(?: s)?\)"
)


def prose_defaults(text: str) -> list[tuple[str, str]]:
    """(variable, default) pairs a page states in its text."""
    return [(m.group(1), m.group(3) or m.group(5)) for m in _PROSE_DEFAULT.finditer(text)]


def test_defaults_stated_in_the_text_of_every_page_are_the_codes() -> None:
    """The root README, docs/, deploy/ and libs/ pages too: a variable some service reads,
    stated with a default in the text, has that default in every service reading it."""
    from importlib import import_module

    from proxbus_runtime.spooling import SpoolSettings

    defaults: dict[str, set[str | None]] = {}
    for settings in [
        SpoolSettings,
        *(import_module(m).Settings for m in SERVICE_SETTINGS.values()),
    ]:
        for name, value in _defaults(settings).items():
            defaults.setdefault(name, set()).add(value)
    wrong = []
    checked = 0
    for page in MEMBER_PAGES:
        if page.parent.parent.name == "services":
            continue  # per service, against its own settings (above)
        for name, value in prose_defaults(page.read_text()):
            if name in defaults and None not in defaults[name]:
                checked += 1
                if defaults[name] != {value}:
                    wrong.append(f"{page.relative_to(ROOT)}: {name} ({value}), the code's "
                                 f"{sorted(d for d in defaults[name] if d is not None)}")  # fmt: skip
    assert checked >= 5
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("member", sorted(SERVICE_SETTINGS))
def test_every_variable_a_service_readme_documents_is_a_setting_with_that_default(
    member: str,
) -> None:
    from importlib import import_module

    settings = import_module(SERVICE_SETTINGS[member]).Settings
    others = GATEWAY_TOPOLOGY.read_text() if member == "services/mcp-gateway" else ""
    page = ROOT / member / "README.md"
    assert len(settings_table_rows(page)) >= 8
    wrong = readme_settings_mismatches(page, settings, others)
    assert not wrong, f"{member}/README.md:\n" + "\n".join(wrong)


def test_every_setting_of_a_service_is_documented() -> None:
    """A setting nobody can find is a setting nobody can use: each one's variable is named in
    its service's README, or in libs/runtime's for the shared ones."""
    from importlib import import_module

    from proxbus_runtime.spooling import SpoolSettings

    runtime = (ROOT / "libs/runtime/README.md").read_text()
    shared = set(SpoolSettings.model_fields)
    missing = [f"libs/runtime: {n.upper()}" for n in shared if f"`{n.upper()}`" not in runtime]
    for member, module in SERVICE_SETTINGS.items():
        text = (ROOT / member / "README.md").read_text()
        fields = import_module(module).Settings.model_fields
        missing += [f"{member}: {n.upper()}" for n in fields
                    if n not in shared and n.upper() not in text]  # fmt: skip
    assert not missing, "settings no README documents:\n" + "\n".join(sorted(missing))


def test_the_runtime_readme_documents_the_shared_settings_with_their_defaults() -> None:
    from proxbus_runtime.spooling import SpoolSettings

    wrong = readme_settings_mismatches(ROOT / "libs/runtime/README.md", SpoolSettings)
    assert not wrong, "\n".join(wrong)


# "at most 60", "(< 10)", "≥ 24", "2-200", "100 - 1,000,000" in a setting's row; not "at least 3 ×
# the receiver timeout" nor "at least 32 characters" (a rule the field's bounds do not hold).
_RANGE = re.compile(
    r"(?P<op>at most|at least|≤|≥|<|>)\s*`?(?P<n>\d[\d,]*(?:\.\d+)?)`?(?![\d.])"
    r"|(?<![\w.`/-])(?P<lo>\d[\d,]*(?:\.\d+)?)\s?(?:-|–)\s?(?P<hi>\d[\d,]*(?:\.\d+)?)(?![\w.%-])"
)
_NOT_A_BOUND = re.compile(r"\s*(?:×|characters?\b)")


def _bounds(field: Any) -> dict[str, float]:
    """The field's ``ge``/``gt``/``le``/``lt`` (pydantic's ``Field`` constraints)."""
    out = {}
    for constraint in field.metadata:
        for key in ("ge", "gt", "le", "lt"):
            value = getattr(constraint, key, None)
            if value is not None:
                out[key] = float(value)
    return out


def readme_range_mismatches(page: Path, settings: type[Any]) -> list[str]:
    """Ranges a settings table row states for its one variable ("at most 900", "1-10,000")
    that are not the bounds the settings class enforces; the default column is not read."""
    wrong = []
    skip: int | None = None
    for line in page.read_text().splitlines():
        if not line.startswith("|"):
            skip = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] in ("variable", "setting (env)"):
            skip = cells.index("default") if "default" in cells else None
            continue
        names = _NAME.findall(cells[0])
        field = settings.model_fields.get(names[0].lower()) if len(names) == 1 else None
        if field is None or not cells[0].startswith("`"):
            continue
        bounds = _bounds(field)
        text = " | ".join(c for i, c in enumerate(cells[1:], 1) if i != skip)
        for m in _RANGE.finditer(text):
            if _NOT_A_BOUND.match(text, m.end()):
                continue
            n, lo, hi = (float(v.replace(",", "")) if v else 0.0 for v in m.group("n", "lo", "hi"))
            if m.group("op"):
                low = m.group("op") in ("at least", "≥", ">")
                claims = [(("ge", "gt") if low else ("le", "lt"), n)]
            else:
                claims = [(("ge", "gt"), lo), (("le", "lt"), hi)]
            for keys, value in claims:
                if not any(bounds.get(k) == value for k in keys):
                    wrong.append(f"{names[0]}: documented {m.group(0)!r}, the code's {bounds}")
    return wrong


@pytest.mark.parametrize("member", ["libs/runtime", *sorted(SERVICE_SETTINGS)])
def test_ranges_a_settings_table_states_are_the_bounds_the_code_enforces(member: str) -> None:
    from importlib import import_module

    from proxbus_runtime.spooling import SpoolSettings

    settings = (
        SpoolSettings
        if member == "libs/runtime"
        else import_module(SERVICE_SETTINGS[member]).Settings
    )
    wrong = readme_range_mismatches(ROOT / member / "README.md", settings)
    assert not wrong, f"{member}/README.md:\n" + "\n".join(wrong)


def test_a_wrong_range_in_a_readme_is_found(tmp_path: Path) -> None:
    from proxbus_ingest_syslog.settings import Settings

    page = tmp_path / "README.md"
    page.write_text(
        "| variable | default | meaning |\n| --- | --- | --- |\n"
        "| `SYSLOG_MAX_LINE` | `65536` | 256-16,777,216 bytes: right |\n"
        "| `RATE_LIMIT_HOSTS_PER_PEER` | `256` | 1-1,000 names: wrong |\n"
        "| `SYSLOG_DRAIN_TIMEOUT` | `1.5` | seconds (at most 10): wrong |\n"
        "| `SYSLOG_PEER_SHARE` | `0.1` | share (≥ 0.5): wrong; at least 3 × the rest: no bound |\n"
    )
    assert readme_range_mismatches(page, Settings) == [
        "RATE_LIMIT_HOSTS_PER_PEER: documented '1-1,000', the code's {'ge': 1.0, 'le': 10000.0}",
        "SYSLOG_DRAIN_TIMEOUT: documented 'at most 10', the code's {'ge': 0.0, 'le': 5.0}",
        "SYSLOG_PEER_SHARE: documented '≥ 0.5', the code's {'gt': 0.0, 'le': 1.0}",
    ]


def test_a_wrong_default_or_variable_in_a_readme_is_found(tmp_path: Path) -> None:
    from proxbus_ingest_syslog.settings import Settings

    page = tmp_path / "README.md"
    page.write_text(
        "| variable | default | meaning |\n| --- | --- | --- |\n"
        "| `SYSLOG_PORT` | `5514` | right |\n| `SYSLOG_MAX_LINE` | 4096 | wrong |\n"
        "| `SYSLOG_UDP`, `SYSLOG_TCP` | `true`, `false` | the second is wrong |\n"
        "| `SYSLOG_NO_SUCH` | unset | no such setting |\n| `HOSTNAME_MAP` | empty | right |\n"
        "| `EVENTS_MAX_BYTES` | 2 GiB | wrong |\n| `SYSLOG_TLS_PORT` | unset | right |\n\n"
        "and `PUBLISH_BUFFER` (500) in the text: wrong\n"
    )  # fmt: skip
    assert readme_settings_mismatches(page, Settings) == [
        "SYSLOG_MAX_LINE: documented default '4096', the code's '65536'",
        "SYSLOG_TCP: documented default 'false', the code's 'true'",
        "SYSLOG_NO_SUCH: no such setting",
        "EVENTS_MAX_BYTES: documented default '2147483648', the code's '1073741824'",
        "PUBLISH_BUFFER: documented default '500', the code's '10000'",
    ]


def test_the_readme_service_table_gives_each_service_its_default_ports() -> None:
    from proxbus_events.ports import HTTP_PORTS, SMTP_PORT, SYSLOG_PORT

    rows = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        m = re.match(r"\| ([a-z-]+) \| `proxbus-([a-z-]+)` \| ([^|]+) \|", line)
        if m:
            rows[m.group(1)] = [int(p) for p in re.findall(r"\b\d{3,5}\b", m.group(3))]
    assert set(HTTP_PORTS) <= set(rows), sorted(rows)
    wanted = {name: [port] for name, port in HTTP_PORTS.items()}
    wanted["ingest-syslog"] = [SYSLOG_PORT, 514, HTTP_PORTS["ingest-syslog"]]
    wanted["ingest-email"] = [SMTP_PORT, HTTP_PORTS["ingest-email"]]
    for name, ports in wanted.items():
        assert rows[name] == ports, f"README.md, {name}: ports {rows[name]}, the code's {ports}"


# ---------------------------------------------------------------------------- first five minutes


def test_the_readme_starts_with_install_test_demo_and_ci_runs_the_first_two() -> None:
    (_, first), *_ = [
        (lang, body) for lang, body in _FENCE.findall((ROOT / "README.md").read_text())
    ]
    commands = [line.split("#", 1)[0].strip() for line in first.splitlines()]
    assert commands == ["./scripts/install.sh", "./scripts/test.sh", "uv run proxbus up --demo"]
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line and not line.startswith(("#", "set ", "cd "))]  # fmt: skip
    assert ci == commands[:2]


def test_install_finds_a_uv_that_pip_put_in_the_users_local_bin(tmp_path: Path) -> None:
    """Debian's python3 refuses a system-wide pip install (PEP 668), so install.sh puts uv in
    ~/.local/bin, which is often not on PATH: scripts/find_uv.py still finds it."""
    userbase = tmp_path / "local"
    (userbase / "bin").mkdir(parents=True)
    uv = userbase / "bin" / "uv"
    uv.write_text("#!/bin/sh\n")
    uv.chmod(0o755)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONUSERBASE": str(userbase)}
    found = subprocess.run(["/usr/bin/python3", str(ROOT / "scripts" / "find_uv.py")],
                           env=env, capture_output=True, text=True, timeout=30)  # fmt: skip
    assert found.stdout.strip() == str(uv), found.stderr
    install = (ROOT / "scripts" / "install.sh").read_text()
    assert "--user --break-system-packages" in install
    assert "scripts/find_uv.py" in install
    assert "scripts/find_uv.py" in (ROOT / "scripts" / "test.sh").read_text()


_TOP = ("libs/", "services/", "deploy/", "docs/", "tests/", "scripts/", "bench/", "tools/", ".ci/")


def broken_references(page: Path) -> list[str]:
    """Relative Markdown links of ``page`` that lead nowhere, and backticked repository paths
    (``services/dispatcher/routes.example.yaml``) that do not exist."""
    text = page.read_text()
    wrong = []
    for m in re.finditer(r"\]\(([^)\s]+)\)", text):
        target = m.group(1).split("#")[0]
        if (
            target
            and not re.match(r"[a-z]+:|.*[\[{]", target)
            and not (page.parent / target).exists()
        ):
            wrong.append(f"link ({target})")
    # A member's README names its own files from its folder (`tests/test_spool.py`) or its
    # package (`tools/provisioning.py`); `tools/list` (an MCP method) has no extension.
    bases = [ROOT, page.parent, *page.parent.glob("src/*/")]
    for m in re.finditer(r"`([\w./-]+(?:\.[a-z]+|/))`", text):
        path = m.group(1).rstrip("/")
        if path.startswith(_TOP) and not any((base / path).exists() for base in bases):
            wrong.append(f"path `{path}`")
    return wrong


def test_links_and_repository_paths_in_every_readme_exist() -> None:
    wrong = [f"{page.relative_to(ROOT)}: {bad}" for page in MEMBER_PAGES
             for bad in broken_references(page)]  # fmt: skip
    assert not wrong, "\n".join(wrong)


def test_a_broken_link_or_path_is_found(tmp_path: Path) -> None:
    page = tmp_path / "README.md"
    (tmp_path / "there.md").write_text("")
    page.write_text(
        "[ok](there.md) [gone](missing.md#x) [web](https://example.org) `libs/events` "
        "`services/dispatcher/routes.example.yaml` `services/dispatcher/no-such.yaml`\n"
    )
    assert broken_references(page) == [
        "link (missing.md)", "path `services/dispatcher/no-such.yaml`"
    ]  # fmt: skip


def test_every_dependency_is_in_the_readmes_table() -> None:
    import tomllib

    names = set()
    for path in [ROOT / "pyproject.toml", *ROOT.glob("libs/*/pyproject.toml"),
                 *ROOT.glob("services/*/pyproject.toml")]:  # fmt: skip
        data = tomllib.loads(path.read_text())
        specs = data.get("project", {}).get("dependencies", [])
        specs += [s for group in data.get("dependency-groups", {}).values() for s in group]
        names |= {re.split(r"[<>=\[ ;~!]", s)[0].lower() for s in specs if isinstance(s, str)}
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Dependencies") : readme.index("## Testing")].lower()
    missing = sorted(n for n in names if not n.startswith("proxbus") and n not in table)
    assert not missing, f"README.md's dependency table does not say why: {missing}"
    install = (ROOT / "scripts" / "install.sh").read_text()
    debian = re.search(r'pkgs="([^"]+)"', install)
    assert debian
    missing = sorted(p for p in debian.group(1).split() if p not in table)
    assert not missing, f"Debian packages install.sh installs, not in the table: {missing}"


def test_json_examples_in_every_readme_parse_and_events_validate() -> None:
    from proxbus_events import Event

    events = 0
    for page in MEMBER_PAGES:
        for lang, body in _FENCE.findall(page.read_text()):
            if lang != "json" or "{{" in body:  # PVE's webhook templates: checked above
                continue
            data = json.loads(body)
            if isinstance(data, dict) and data.get("schema") == "proxbus.event/v1":
                Event.model_validate(data)
                events += 1
    assert events >= 1


def unresolved_names(text: str) -> list[str]:
    """Backticked dotted names of proxbus packages (`proxbus_runtime.ServiceSettings`) that
    do not import or have no such attribute."""
    from importlib import import_module

    wrong = []
    for dotted in re.findall(r"`(proxbus_[a-z_]+(?:\.[A-Za-z_]\w*)+)", text):
        parts = dotted.split(".")
        for i in range(len(parts), 0, -1):
            try:
                obj: Any = import_module(".".join(parts[:i]))
            except ImportError:
                continue
            try:
                for name in parts[i:]:
                    obj = getattr(obj, name)
            except AttributeError:
                wrong.append(dotted)
            break
        else:
            wrong.append(dotted)
    return wrong


def test_python_names_the_readmes_give_exist() -> None:
    wrong = [f"{page.relative_to(ROOT)}: `{name}`" for page in MEMBER_PAGES
             for name in unresolved_names(page.read_text())]  # fmt: skip
    assert not wrong, "\n".join(wrong)
    assert unresolved_names("`proxbus_runtime.ServiceSettings` `proxbus_devtools.testing`") == []
    assert unresolved_names("`proxbus_events.ServiceSettings` `proxbus_nothing.x`") == [
        "proxbus_events.ServiceSettings", "proxbus_nothing.x"
    ]  # fmt: skip


def test_yaml_examples_in_every_readme_load_with_the_projects_loaders(tmp_path: Path) -> None:
    from proxbus_mcp_gateway.config import load_tokens_file
    from proxbus_pvesim.scenario import load_scenario

    loaded = {"tokens": 0, "scenario": 0}
    for page in MEMBER_PAGES:
        for lang, body in _FENCE.findall(page.read_text()):
            if lang != "yaml":
                continue
            data = yaml.safe_load(body)
            assert isinstance(data, dict), page
            file = tmp_path / "example.yaml"
            file.write_text(body)
            if "tokens" in data and isinstance(data["tokens"], list):
                assert [t.name for t in load_tokens_file(file)] == [
                    t["name"] for t in data["tokens"]
                ]
                loaded["tokens"] += 1
            elif "guests" in data or "cluster" in data:
                load_scenario(file)
                loaded["scenario"] += 1
    assert loaded["tokens"] >= 2
    assert loaded["scenario"] >= 1


def test_the_token_pages_env_blocks_configure_the_gateway_as_described() -> None:
    """Loaded by the gateway's own topology loader: a PVE node with its pinned certificate and
    a PBS, with the users and tokens the page creates."""
    from proxbus_mcp_gateway.config import parse_clusters

    env: dict[str, str] = {}
    for _, body in blocks("env", DOCS / "proxmox-tokens.md"):
        env.update(line.split("=", 1) for line in body.splitlines() if "=" in line)
    (cluster,) = parse_clusters(env, "lab")
    (pve1,) = [e for group in cluster.groups for e in group.endpoints]
    assert (pve1.name, pve1.host, pve1.port, pve1.user) == (
        "pve1",
        "pve1.lab.example",
        8006,
        "proxbus@pve",
    )
    assert pve1.fingerprint is not None
    (pbs1,) = cluster.pbs
    assert (pbs1.name, pbs1.port, pbs1.user) == ("pbs1", 8007, "proxbus@pbs")
    created = {a[4] for a in commands("pveum") if a[:3] == ["user", "token", "add"]}
    assert pve1.token_name in created


def test_every_secret_setting_is_in_the_security_pages_secrets_table() -> None:
    """A new secret (DISCORD_BUTTON_SECRET, CONSOLE_TOKENS) gets a row saying who holds it."""
    from importlib import import_module

    from proxbus_runtime import ServiceSettings

    text = (DOCS / "security.md").read_text()
    table = text[text.index("## Secrets and where they live") : text.index("## Gateway tokens")]
    named = set(_NAME.findall(table))
    secrets = {}
    for settings in [
        ServiceSettings,
        *(import_module(m).Settings for m in SERVICE_SETTINGS.values()),
    ]:
        for name, field in settings.model_fields.items():
            if "SecretStr" in str(field.annotation):
                secrets.setdefault(name.upper(), settings.__module__)
    assert {"NATS_PASSWORD", "GATEWAY_TOKENS", "PVE_WEBHOOK_SECRET"} <= set(secrets)
    missing = sorted(f"{n} ({m})" for n, m in secrets.items() if n not in named)
    assert not missing, f"docs/security.md's secrets table does not name: {missing}"
