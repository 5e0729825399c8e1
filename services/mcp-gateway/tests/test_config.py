from __future__ import annotations

from pathlib import Path

import pytest
from proxbus_mcp_gateway.auth import Caller, TokenTable, expand_scopes
from proxbus_mcp_gateway.config import (
    env_key,
    load_tokens_file,
    normalize_fingerprint,
    parse_clusters,
    parse_tokens,
    split_host,
)
from proxbus_mcp_gateway.errors import ConfigError, Forbidden

CREDS = {"USER": "root@pam", "TOKEN_NAME": "mcp", "TOKEN_VALUE": "s3cr3t"}


def node_vars(prefix: str, host: str) -> dict[str, str]:
    return {f"{prefix}_HOST": host, **{f"{prefix}_{k}": v for k, v in CREDS.items()}}


def test_node_name_maps_to_variable_prefix() -> None:
    assert env_key("pve-main") == "PVE_MAIN"


def test_standalone_nodes_are_separate_groups() -> None:
    env = {
        "LAB_CONFIGURATION": "STANDALONE",
        "PVE_NODES": "pve-main,pve2",
        **node_vars("PVE_PVE_MAIN", "10.0.0.1"),
        **node_vars("PVE_PVE2", "10.0.0.2:8443"),
    }
    (cluster,) = parse_clusters(env, "lab")
    assert cluster.mode == "STANDALONE"
    assert [(g.name, g.endpoints[0].port, g.clustered) for g in cluster.groups] == [
        ("pve-main", 8006, False),
        ("pve2", 8443, False),
    ]
    assert "s3cr3t" not in repr(cluster)


def test_clustered_members_share_one_group_and_inherit_primary_credentials() -> None:
    env = {
        "LAB_CONFIGURATION": "CLUSTERED",
        **node_vars("PVE_CLUSTER_PRIMARY", "pve1.lab:8006"),
        "PVE_NODES": "pve2",
        "PVE_PVE2_HOST": "pve2.lab",
        "PVE2_FINGERPRINT": "AB:" * 31 + "AB",
    }
    (cluster,) = parse_clusters(env, "lab")
    (group,) = cluster.groups
    assert group.clustered
    assert [e.name for e in group.endpoints] == ["cluster-primary", "pve2"]
    assert group.endpoints[1].token_value == "s3cr3t"
    assert group.endpoints[1].fingerprint == "ab" * 32


def test_mixed_has_a_cluster_group_plus_standalone_nodes_and_pbs() -> None:
    env = {
        "LAB_CONFIGURATION": "MIXED",
        **node_vars("PVE_CLUSTER_PRIMARY", "pve1"),
        "PVE_NODES": "edge",
        **node_vars("PVE_EDGE", "edge.lab"),
        "PBS_NODES": "pbs1",
        **node_vars("PBS_PBS1", "pbs1.lab"),
    }
    (cluster,) = parse_clusters(env, "lab")
    assert [g.clustered for g in cluster.groups] == [True, False]
    assert cluster.pbs[0].port == 8007


def test_additional_clusters_use_a_prefix() -> None:
    env = {
        "PVE_NODES": "pve1",
        **node_vars("PVE_PVE1", "a"),
        "CLUSTERS": "dc2",
        "CLUSTER_DC2_PVE_NODES": "pve1",
        **node_vars("CLUSTER_DC2_PVE_PVE1", "b"),
    }
    names = [(c.name, c.groups[0].endpoints[0].host) for c in parse_clusters(env, "lab")]
    assert names == [("lab", "a"), ("dc2", "b")]


@pytest.mark.parametrize(
    "env",
    [
        {"PVE_NODES": "pve1", "PVE_PVE1_HOST": "a"},
        {"PVE_NODES": "bad_name", **node_vars("PVE_BAD_NAME", "a")},
        {"LAB_CONFIGURATION": "WEIRD", "PVE_NODES": "pve1", **node_vars("PVE_PVE1", "a")},
        {"PVE_NODES": "pve1", **node_vars("PVE_PVE1", "a:99999")},
        {"CLUSTERS": "dc2"},
    ],
)
def test_bad_configuration_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        parse_clusters(env, "lab")


def test_hosts_and_fingerprints_parse() -> None:
    assert split_host("https://pve1:8006/", 1) == ("pve1", 8006)
    assert split_host("[fe80::1]:8007", 1) == ("fe80::1", 8007)
    with pytest.raises(ConfigError):
        normalize_fingerprint("abc")


def test_gateway_tokens_and_scopes() -> None:
    tokens = parse_tokens("n8n:read+operate:s3cr3t:with:colons,ro:read:x")
    table = TokenTable(tokens)
    caller = table.lookup("s3cr3t:with:colons", "http")
    assert caller is not None
    assert caller.name == "n8n"
    assert caller.scopes == {"read", "operate"}
    assert table.lookup("nope", "http") is None
    assert expand_scopes(["admin"]) == {"read", "operate", "admin"}
    with pytest.raises(ConfigError):
        parse_tokens("x:root:secret")


def test_tokens_file_allowlists_are_enforced(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(
        "tokens:\n"
        "  - name: web-team\n    secret: abc\n    scopes: [read, operate]\n"
        "    nodes: [pve1]\n    vmids: [100, '200-299']\n    tools: [get_vms, execute_vm_command]\n"
    )
    (spec,) = load_tokens_file(path)
    caller = Caller.from_token(spec, "http")
    assert caller.vmid_allowed(250)
    assert not caller.vmid_allowed(300)
    caller.require_node("pve1")
    with pytest.raises(Forbidden):
        caller.require_node("pve2")
    with pytest.raises(Forbidden):
        caller.require_tool("proxmox_api")
