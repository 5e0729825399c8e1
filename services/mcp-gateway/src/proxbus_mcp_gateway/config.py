"""Proxmox endpoints and gateway tokens from the seed's environment variables (pure parsing).

One *cluster* (a site label, the ``cluster`` tool argument) holds *groups* of interchangeable
endpoints: a real PVE cluster is one group (any member answers for every node), a standalone
node is a group of its own. PBS servers belong to a cluster too.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any, Literal

from . import validate
from .errors import ConfigError, InvalidArgument

Product = Literal["pve", "pbs"]
Mode = Literal["STANDALONE", "CLUSTERED", "MIXED"]
SCOPES = ("read", "operate", "admin")
_FINGERPRINT_RE = re.compile(r"^[0-9a-f]{64}$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(slots=True, frozen=True)
class Endpoint:
    """One Proxmox API listener with its credentials."""

    name: str
    host: str
    port: int
    user: str
    token_name: str
    token_value: str = field(repr=False)
    product: Product = "pve"
    verify: bool | str = True
    fingerprint: str | None = None

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(slots=True)
class Group:
    """Endpoints that serve the same set of nodes (a PVE cluster, or one standalone node)."""

    name: str
    endpoints: list[Endpoint]
    nodes: set[str] = field(default_factory=set)
    clustered: bool = False


@dataclass(slots=True)
class ClusterConfig:
    """A site: PVE groups plus PBS servers."""

    name: str
    mode: Mode
    groups: list[Group]
    pbs: list[Endpoint] = field(default_factory=list)
    fingerprints: dict[str, str] = field(default_factory=dict)
    """``<NODE>_FINGERPRINT`` values by lower-case env key, for members found by discovery."""


@dataclass(slots=True, frozen=True)
class TokenSpec:
    """A gateway bearer token: scopes plus optional allowlists (``None`` = no limit)."""

    name: str
    secret_sha256: str = field(repr=False)
    scopes: frozenset[str]
    clusters: frozenset[str] | None = None
    nodes: frozenset[str] | None = None
    vmids: tuple[tuple[int, int], ...] | None = None
    tools: frozenset[str] | None = None

    def matches(self, secret: str) -> bool:
        digest = sha256(secret.encode()).hexdigest()
        return hmac.compare_digest(digest, self.secret_sha256)


def env_key(name: str) -> str:
    """Node name ``pve-main`` -> variable prefix part ``PVE_MAIN``."""
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def parse_bool(value: str | None, default: bool) -> bool:
    """Parse a boolean environment value.

    Raises:
        ConfigError: the value is neither true-ish nor false-ish.
    """
    if value is None:
        return default
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ConfigError(f"not a boolean: {value!r}")


def parse_verify(value: str | None) -> bool | str:
    """``VERIFY_SSL``: true/false, or a path to a CA bundle (verification on, with that CA)."""
    if value is None:
        return True
    v = value.strip()
    if v.lower() in _TRUE | _FALSE:
        return parse_bool(v, True)
    if not Path(v).is_file():
        raise ConfigError(f"VERIFY_SSL is neither a boolean nor an existing CA file: {v!r}")
    return v


def normalize_fingerprint(value: str) -> str:
    """``AA:BB:...`` or ``aabb...`` SHA-256 -> 64 lower-case hex digits.

    Raises:
        ConfigError: not a SHA-256 fingerprint.
    """
    fp = value.strip().replace(":", "").lower()
    if not _FINGERPRINT_RE.fullmatch(fp):
        raise ConfigError("a certificate fingerprint must be a SHA-256 (64 hex digits)")
    return fp


def split_host(value: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or ``https://host:port/`` -> (host, port).

    Raises:
        ConfigError: the port is not a number in 1..65535.
    """
    v = value.strip()
    v = re.sub(r"^https?://", "", v).split("/", 1)[0]
    if v.startswith("["):
        host, _, rest = v[1:].partition("]")
        port_text = rest.lstrip(":")
    elif v.count(":") == 1:
        host, port_text = v.split(":")
    else:
        host, port_text = v, ""
    if not host:
        raise ConfigError(f"empty host in {value!r}")
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise ConfigError(f"invalid port in {value!r}") from None
    if not 1 <= port <= 65535:
        raise ConfigError(f"invalid port in {value!r}")
    return host, port


def _names(value: str | None) -> list[str]:
    names = [n.strip() for n in (value or "").split(",") if n.strip()]
    for n in names:
        try:
            validate.node_name(n)
        except InvalidArgument as exc:
            raise ConfigError(str(exc)) from None
    return names


class _Env:
    """Variable lookup under an optional ``CLUSTER_<NAME>_`` prefix."""

    def __init__(self, env: Mapping[str, str], prefix: str = "") -> None:
        self.env = env
        self.prefix = prefix

    def get(self, key: str) -> str | None:
        value = self.env.get(self.prefix + key)
        return value if value not in (None, "") else None


def _endpoint(
    e: _Env,
    prefix: str,
    name: str,
    product: Product,
    verify: bool | str,
    fallback: Endpoint | None = None,
) -> Endpoint | None:
    host_value = e.get(f"{prefix}_HOST")
    if host_value is None:
        if fallback is None:
            return None
        host_value = name
    default_port = 8007 if product == "pbs" else 8006
    if fallback is not None:
        default_port = fallback.port
    host, port = split_host(host_value, default_port)
    if e.get(f"{prefix}_PORT"):
        host, port = split_host(f"{host}:{e.get(f'{prefix}_PORT')}", default_port)
    user = e.get(f"{prefix}_USER") or (fallback.user if fallback else None)
    token_name = e.get(f"{prefix}_TOKEN_NAME") or (fallback.token_name if fallback else None)
    token_value = e.get(f"{prefix}_TOKEN_VALUE") or (fallback.token_value if fallback else None)
    if user and "!" in user and not token_name:
        user, token_name = user.split("!", 1)
    if not (user and token_name and token_value):
        raise ConfigError(
            f"{e.prefix}{prefix}: USER, TOKEN_NAME and TOKEN_VALUE are required (API token auth)"
        )
    if "@" not in user:
        user = f"{user}@pam" if product == "pve" else f"{user}@pbs"
    fp_value = e.get(f"{prefix}_FINGERPRINT") or e.get(f"{env_key(name)}_FINGERPRINT")
    fingerprint = normalize_fingerprint(fp_value) if fp_value else None
    if fingerprint is None and fallback is not None and host == fallback.host:
        fingerprint = fallback.fingerprint
    return Endpoint(
        name=name,
        host=host,
        port=port,
        user=user,
        token_name=token_name,
        token_value=token_value,
        product=product,
        verify=verify,
        fingerprint=fingerprint,
    )


def parse_cluster(env: Mapping[str, str], name: str, prefix: str = "") -> ClusterConfig | None:
    """One cluster from the seed variables (under ``prefix``); ``None`` if nothing is set.

    Raises:
        ConfigError: a variable is malformed or credentials are missing.
    """
    e = _Env(env, prefix)
    verify = parse_verify(e.get("VERIFY_SSL") or env.get("VERIFY_SSL"))
    pve_nodes = _names(e.get("PVE_NODES"))
    pbs_nodes = _names(e.get("PBS_NODES"))
    primary = _endpoint(e, "PVE_CLUSTER_PRIMARY", "cluster-primary", "pve", verify)
    mode_text = (e.get("LAB_CONFIGURATION") or "").upper()
    if not mode_text:
        mode_text = "CLUSTERED" if primary and not pve_nodes else "STANDALONE"
    if mode_text not in ("STANDALONE", "CLUSTERED", "MIXED"):
        raise ConfigError(f"{prefix}LAB_CONFIGURATION must be STANDALONE, CLUSTERED or MIXED")
    mode: Mode = mode_text  # type: ignore[assignment]  # checked just above
    if mode in ("CLUSTERED", "MIXED") and primary is None and not pve_nodes:
        raise ConfigError(f"{prefix}LAB_CONFIGURATION={mode} needs PVE_CLUSTER_PRIMARY_HOST")
    groups: list[Group] = []
    node_endpoints = []
    for node in pve_nodes:
        ep = _endpoint(e, f"PVE_{env_key(node)}", node, "pve", verify, fallback=primary)
        assert ep is not None
        node_endpoints.append(ep)
    if mode == "CLUSTERED":
        members = ([primary] if primary else []) + node_endpoints
        groups.append(Group("cluster", members, set(pve_nodes), clustered=True))
    else:
        if primary is not None:
            groups.append(Group("cluster", [primary], set(), clustered=True))
        groups.extend(Group(ep.name, [ep], {ep.name}) for ep in node_endpoints)
    pbs = []
    for node in pbs_nodes:
        ep = _endpoint(e, f"PBS_{env_key(node)}", node, "pbs", verify)
        if ep is None:
            raise ConfigError(f"{prefix}PBS_{env_key(node)}_HOST is required")
        pbs.append(ep)
    if not groups and not pbs:
        return None
    fingerprints = {}
    for key, value in env.items():
        if key.startswith(prefix) and key.endswith("_FINGERPRINT") and value:
            try:
                fingerprints[key[len(prefix) : -len("_FINGERPRINT")].lower()] = (
                    normalize_fingerprint(value)
                )
            except ConfigError:
                continue  # not ours to judge: configured endpoints validated theirs above
    return ClusterConfig(name=name, mode=mode, groups=groups, pbs=pbs, fingerprints=fingerprints)


def parse_clusters(env: Mapping[str, str], default_name: str) -> list[ClusterConfig]:
    """The default cluster (un-prefixed variables) plus every ``CLUSTERS`` entry.

    ``CLUSTERS=dc2,edge`` reads ``CLUSTER_DC2_PVE_NODES``, ``CLUSTER_DC2_PVE_<NODE>_HOST``...:
    the seed variables again, under a ``CLUSTER_<NAME>_`` prefix.

    Raises:
        ConfigError: a variable is malformed, credentials are missing or names collide.
    """
    out: list[ClusterConfig] = []
    default = parse_cluster(env, default_name)
    if default is not None:
        out.append(default)
    for name in [n.strip() for n in (env.get("CLUSTERS") or "").split(",") if n.strip()]:
        try:
            validate.cluster_name(name)
        except InvalidArgument as exc:
            raise ConfigError(f"CLUSTERS: {exc}") from None
        if any(c.name == name for c in out):
            raise ConfigError(f"cluster {name!r} is defined twice")
        cluster = parse_cluster(env, name, prefix=f"CLUSTER_{env_key(name)}_")
        if cluster is None:
            raise ConfigError(f"CLUSTERS names {name!r} but no CLUSTER_{env_key(name)}_* is set")
        out.append(cluster)
    return out


def _vmid_ranges(items: list[Any]) -> tuple[tuple[int, int], ...]:
    ranges = []
    for item in items:
        text = str(item).strip()
        lo, _, hi = text.partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            raise ConfigError(f"invalid vmid allowlist entry {text!r}") from None
        if a > b:
            raise ConfigError(f"invalid vmid range {text!r}")
        ranges.append((a, b))
    return tuple(ranges)


def _scopes(value: Any, token: str) -> frozenset[str]:
    items = value.split("+") if isinstance(value, str) else list(value or [])
    scopes = frozenset(str(s).strip() for s in items if str(s).strip())
    unknown = scopes - set(SCOPES)
    if unknown or not scopes:
        raise ConfigError(f"token {token!r}: scopes must be among read, operate, admin")
    return scopes


def _token_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", name):
        raise ConfigError(f"invalid token name {name!r}")
    return name


def parse_tokens(value: str | None) -> list[TokenSpec]:
    """``GATEWAY_TOKENS=name:scopes:secret,...`` (scopes joined with ``+``).

    Raises:
        ConfigError: an entry is malformed.
    """
    out = []
    for entry in [x.strip() for x in (value or "").split(",") if x.strip()]:
        parts = entry.split(":", 2)
        if len(parts) != 3 or not parts[2]:
            raise ConfigError("GATEWAY_TOKENS entries are name:scopes:secret")
        name = _token_name(parts[0])
        out.append(
            TokenSpec(
                name=name,
                secret_sha256=sha256(parts[2].encode()).hexdigest(),
                scopes=_scopes(parts[1], name),
            )
        )
    _check_unique(out)
    return out


def load_tokens_file(path: Path) -> list[TokenSpec]:
    """``GATEWAY_TOKENS_FILE``: YAML or JSON ``{tokens: [{name, secret|secret_sha256, scopes,
    clusters?, nodes?, vmids?, tools?}]}``.

    Raises:
        ConfigError: unreadable or malformed.
    """
    import yaml  # only when a tokens file is configured

    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read tokens file {path}: {exc}") from None
    items = data.get("tokens") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ConfigError(f"{path}: expected a list under 'tokens'")
    out = []
    for item in items:
        if not isinstance(item, dict) or "name" not in item:
            raise ConfigError(f"{path}: every token needs a name")
        name = _token_name(str(item["name"]))
        if "secret_sha256" in item:
            digest = str(item["secret_sha256"]).lower()
            if not _FINGERPRINT_RE.fullmatch(digest):
                raise ConfigError(f"token {name!r}: secret_sha256 must be 64 hex digits")
        elif item.get("secret"):
            digest = sha256(str(item["secret"]).encode()).hexdigest()
        else:
            raise ConfigError(f"token {name!r}: secret or secret_sha256 is required")

        def opt(key: str, item: dict[str, Any] = item) -> frozenset[str] | None:
            v = item.get(key)
            return None if v is None else frozenset(str(x) for x in v)

        out.append(
            TokenSpec(
                name=name,
                secret_sha256=digest,
                scopes=_scopes(item.get("scopes", "read"), name),
                clusters=opt("clusters"),
                nodes=opt("nodes"),
                vmids=None if item.get("vmids") is None else _vmid_ranges(list(item["vmids"])),
                tools=opt("tools"),
            )
        )
    _check_unique(out)
    return out


def _check_unique(tokens: list[TokenSpec]) -> None:
    seen: set[str] = set()
    for t in tokens:
        if t.name in seen:
            raise ConfigError(f"token name {t.name!r} is used twice")
        seen.add(t.name)
