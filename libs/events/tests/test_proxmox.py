from proxbus_events.proxmox import backup_subject_vmid, guest_id, parse_vzdump_table

TABLE = """VMID  NAME   STATUS  TIME  SIZE     FILENAME
100   web1   ok      12s   1.2 GiB  vzdump-qemu-100.vma.zst
101   db1    err     3s    0 B      null
"""


def test_table_rows_are_parsed_with_names_and_outcomes() -> None:
    guests = parse_vzdump_table(TABLE)
    assert [(g.vmid, g.name, g.status) for g in guests] == [
        (100, "web1", "ok"),
        (101, "db1", "failed"),
    ]


def test_the_subject_of_a_backup_report() -> None:
    guests = parse_vzdump_table(TABLE)
    assert backup_subject_vmid(guests, failed=True) == 101
    assert backup_subject_vmid(guests[:1], failed=False) == 100
    assert backup_subject_vmid(guests, failed=False) is None
    assert backup_subject_vmid([], failed=True) is None


def test_no_table_and_garbage_give_nothing() -> None:
    assert parse_vzdump_table("backup failed: no space left") == []
    assert parse_vzdump_table("VMID STATUS TIME SIZE\nnot a row") == []
    assert guest_id("1234567890") is None
    assert guest_id("abc") is None


def test_pve_and_pbs_upids_are_decoded() -> None:
    from proxbus_events import find_upid, parse_upid

    # Format of pve-common PVE/Tools.pm upid_encode and pbs-api-types upid.rs.
    pve = parse_upid("UPID:pve1:00003039:00A1B2C3:65F0A1B2:qmstart:100:root@pam:")
    assert pve is not None
    assert (pve.node, pve.pid, pve.type, pve.id, pve.user, pve.pbs) == (
        "pve1", 0x3039, "qmstart", "100", "root@pam", False,
    )  # fmt: skip
    assert pve.vmid == 100
    assert pve.starttime == 0x65F0A1B2
    pbs = parse_upid(
        "UPID:pbs1:000004D2:0000162E:00000003:65F0A1B2:garbage_collection:store1:root@pam:"
    )
    assert pbs is not None
    assert (pbs.pbs, pbs.type, pbs.vmid) == (True, "garbage_collection", None)
    line = "Nov 24 pvedaemon[1]: end task UPID:pve2:00000001:00000002:65F0A1B2:vzdump::root@pam: OK"
    found = find_upid(line)
    assert found is not None
    assert found.node == "pve2"
    assert found.text.endswith("root@pam:")
    for bad in ("UPID:pve1:1:2:3:x:y:z:", "UPID:-bad:00003039:00A1B2C3:65F0A1B2:t::u:", "nope"):
        assert parse_upid(bad) is None


def test_short_host_names_and_guest_ids() -> None:
    from proxbus_events import short_host

    assert short_host("pve1.lab.example") == "pve1"
    assert short_host(" pve1. ") == "pve1"
    assert short_host("192.168.1.10") == "192.168.1.10"
    assert short_host("[::1]") == "::1"
    assert short_host("bad_host!") is None
    assert short_host(None) is None
    assert guest_id(100) == 100
    assert guest_id("999999999") == 999999999
    assert guest_id("99") is None
    assert guest_id(True) is None
    assert guest_id("１２３") is None  # non-ASCII digits
