from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from proxbus_mcp_gateway import validate
from proxbus_mcp_gateway.errors import InvalidArgument


@pytest.mark.parametrize("name", ["pve1", "pve-main", "a", "N0DE-2", "x" * 63])
def test_valid_node_names_pass(name: str) -> None:
    assert validate.node_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "-pve", "pve-", "pve_1", "../etc", "pve1/..", "pve%2f", "pve\n1", "x" * 64, "a b"]
)
def test_invalid_node_names_are_rejected(name: str) -> None:
    with pytest.raises(InvalidArgument):
        validate.node_name(name)


@given(st.text(max_size=80))
def test_a_node_name_that_passes_cannot_carry_path_tricks(text: str) -> None:
    try:
        validate.node_name(text)
    except InvalidArgument:
        return
    assert not any(c in text for c in "/.%\\\n\r?#: ")


@pytest.mark.parametrize("value", [100, "100", 999_999_999])
def test_vmids_in_range_pass(value: int | str) -> None:
    assert validate.vmid(value) == int(value)


@pytest.mark.parametrize("value", [99, 1_000_000_000, -1, "10a", "1e3", True, "0100000000000"])
def test_vmids_out_of_range_are_rejected(value: object) -> None:
    with pytest.raises(InvalidArgument):
        validate.vmid(value)  # type: ignore[arg-type]


def test_pve_and_pbs_upids_are_accepted() -> None:
    pve = "UPID:pve1:0000EF31:00019485:6B0619DF:qmstart:105:root@pam!admin:"
    pbs = "UPID:pbs1:000003E8:00000001:00000005:6B0619DF:garbage_collection:store1:root@pam:"
    assert validate.upid_node(pve) == "pve1"
    assert validate.upid_node(pbs) == "pbs1"


@pytest.mark.parametrize(
    "value",
    ["UPID:pve1:../../etc", "UPID:pve1:0000EF31:00019485:6B0619DF:qmstart:105:root@pam/x:", "x"],
)
def test_malformed_upids_are_rejected(value: str) -> None:
    with pytest.raises(InvalidArgument):
        validate.upid(value)


@pytest.mark.parametrize(
    "path",
    ["/nodes/../access", "/nodes/pve1%2f..", "/nodes\n/pve1", "nodes", "/a//b", "/api2/json/x"],
)
def test_api_path_tricks_are_rejected(path: str) -> None:
    with pytest.raises(InvalidArgument):
        validate.api_path(path)


def test_snapshot_and_storage_names() -> None:
    assert validate.snapshot_name("before-upgrade_1") == "before-upgrade_1"
    assert validate.storage_id("local-lvm") == "local-lvm"
    for bad in ("1snap", "current", "a", "snap/../x"):
        with pytest.raises(InvalidArgument):
            validate.snapshot_name(bad)
    with pytest.raises(InvalidArgument):
        validate.storage_id("local/../x")


def test_disk_names_are_the_schemas_disk_keys() -> None:
    """Every disk the official schema lets resize take (qemu and lxc, the vendored PVE 9.1
    schema: scsi0-30, virtio0-15, sata0-5, ide0-3, efidisk0, tpmstate0, rootfs, mp0-255)
    is accepted; anything else is refused before any request."""
    from proxbus_mcp_gateway import schema

    pve = schema.load()["pve"]
    names: set[str] = set()
    for kind in ("qemu", "lxc"):
        names.update(pve[f"/nodes/{{node}}/{kind}/{{vmid}}/resize"]["PUT"]["a"]["disk"]["e"])
    assert {"mp255", "scsi30", "virtio15", "sata5", "ide3", "efidisk0", "tpmstate0"} <= names
    for name in sorted(names):
        assert validate.disk_name(name) == name
    for bad in ("mp256", "scsi31", "virtio16", "sata6", "ide4", "efidisk1", "tpmstate1",
                "scsi01", "unused0", "net0", "rootfs0"):  # fmt: skip
        with pytest.raises(InvalidArgument):
            validate.disk_name(bad)
