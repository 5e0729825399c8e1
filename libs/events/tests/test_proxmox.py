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
