"""One failing disk read notifies once: the kernel's burst around it stays on the bus as details.

A SATA disk that cannot read a sector writes a burst (kernel 6.8, as a PVE 8 host logs it):
libata's error handler reports the failed command first (linux drivers/ata/libata-eh.c
ata_eh_link_report: ``exception Emask``, ``irq_stat``, ``failed command:``, ``cmd ...`` with
its ``res ...`` continuation line, ``status: { DRDY ERR }``, ``error: { UNC }``; then the
reset and ``configured for``, ``EH complete``), SCSI prints the failed command and its sense
data (drivers/scsi/scsi_logging.c scsi_print_result, scsi_print_sense, scsi_print_command:
``sd H:C:T:L: [sdX] tag#N ...``), the block layer prints the event line (block/blk-core.c
blk_print_req_error: ``I/O error, dev sdc, sector ...``), the page cache its own
(fs/buffer.c buffer_io_error: ``Buffer I/O error on dev sdc1, ...``), and the ratelimited
printks their ``<func>: N callbacks suppressed`` (lib/ratelimit.c ___ratelimit). The
ata/SCSI lines come BEFORE the block layer's line, at err: with the default route
(``SEED_SYSLOG_MIN_SEVERITY=notice``: plain lines from notice notify) every one of them was a
notification of its own. They are details (``metadata.detail_of = "disk.error"``, info)
whether or not the block layer's line follows: a command libata retried successfully has no
I/O error, and a disk that is really failing produces one (or smartd's count, or zed's).

The block layer ratelimits its line (10 per 5 s) but a dying disk fills that: further
``disk.error`` lines of the same disk on the same host within ``BURST_SECONDS`` of the
notified one are details too; another disk, another host, or the same disk later notify.
"""

from __future__ import annotations

from datetime import UTC, datetime

from proxbus_events import Event, Severity
from proxbus_ingest_syslog.frames import Frame
from proxbus_ingest_syslog.pipeline import Pipeline
from proxbus_ingest_syslog.settings import Settings

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _event(line: str, pipeline: Pipeline) -> Event:
    result = pipeline.event_or_rejection(Frame(line.encode()), NOW)
    assert isinstance(result, Event), result
    return result


def _notifies(event: Event) -> bool:
    """The dispatcher's seed routing (services/dispatcher seed.py seed_config): classified
    kinds from MIN_SEVERITY (info), plain lines from SEED_SYSLOG_MIN_SEVERITY (notice)."""
    if event.kind == "syslog.message":
        return event.severity.rank >= Severity.NOTICE.rank
    return event.severity.rank >= Severity.INFO.rank


def _k(pri: int, time: str, host: str, text: str) -> str:
    return f"<{pri}>Nov 30 {time} {host} kernel: {text}"


# A read of sdc (ata3, SCSI 2:0:0:0) failing with an unrecoverable medium error.
SATA_READ_FAILURE = [
    _k(3, "10:00:00", "pve1", "ata3.00: exception Emask 0x0 SAct 0x100000 SErr 0x0 action 0x0"),
    _k(3, "10:00:00", "pve1", "ata3.00: irq_stat 0x40000008"),
    _k(3, "10:00:00", "pve1", "ata3.00: failed command: READ FPDMA QUEUED"),
    _k(3, "10:00:00", "pve1",
       "ata3.00: cmd 60/08:a0:00:1c:5d/00:00:1d:00:00/40 tag 20 ncq dma 4096 in"),
    _k(3, "10:00:00", "pve1",
       "         res 41/40:00:00:1c:5d/00:00:1d:00:00/40 Emask 0x409 (media error) <F>"),
    _k(3, "10:00:00", "pve1", "ata3.00: status: { DRDY ERR }"),
    _k(3, "10:00:00", "pve1", "ata3.00: error: { UNC }"),
    _k(6, "10:00:01", "pve1", "ata3: hard resetting link"),
    _k(6, "10:00:01", "pve1", "ata3: SATA link up 6.0 Gbps (SStatus 133 SControl 300)"),
    _k(6, "10:00:01", "pve1", "ata3.00: configured for UDMA/133"),
    _k(6, "10:00:01", "pve1",
       "sd 2:0:0:0: [sdc] tag#20 FAILED Result: hostbyte=DID_OK driverbyte=DRIVER_OK "
       "cmd_age=3s"),
    _k(6, "10:00:01", "pve1", "sd 2:0:0:0: [sdc] tag#20 Sense Key : Medium Error [current]"),
    _k(6, "10:00:01", "pve1",
       "sd 2:0:0:0: [sdc] tag#20 Add. Sense: Unrecovered read error - auto reallocate failed"),
    _k(6, "10:00:01", "pve1",
       "sd 2:0:0:0: [sdc] tag#20 CDB: Read(16) 88 00 00 00 00 00 1d 5d 1c 00 00 00 00 08 00 00"),
    _k(3, "10:00:01", "pve1",
       "I/O error, dev sdc, sector 492641280 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 2"),
    _k(6, "10:00:01", "pve1", "ata3: EH complete"),
    _k(3, "10:00:01", "pve1", "Buffer I/O error on dev sdc1, logical block 61580160, async "
       "page read"),
    # the same disk, the next sectors (readahead, retries): the same happening
    _k(4, "10:00:03", "pve1", "blk_print_req_error: 4 callbacks suppressed"),
    _k(3, "10:00:03", "pve1",
       "I/O error, dev sdc, sector 492641288 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 2"),
    _k(4, "10:00:03", "pve1", "buffer_io_error: 6 callbacks suppressed"),
    _k(3, "10:00:03", "pve1", "Buffer I/O error on dev sdc1, logical block 61580161, async "
       "page read"),
    _k(4, "10:00:03", "pve1", "scsi_io_completion_action: 2 callbacks suppressed"),
]  # fmt: skip


def test_one_failing_sata_read_notifies_once() -> None:
    pipeline = Pipeline(Settings())
    events = [_event(line, pipeline) for line in SATA_READ_FAILURE]
    notifying = [e for e in events if _notifies(e)]
    assert [(e.kind, e.title) for e in notifying] == [("disk.error", "I/O error on sdc")], [
        (e.kind, e.severity.value, e.title) for e in notifying
    ]
    assert notifying[0].severity == Severity.ERROR
    details = [e for e in events if e is not notifying[0]]
    assert len(details) == len(SATA_READ_FAILURE) - 1  # kept on the bus, not dropped
    for e in details:
        assert (e.kind, e.severity) == ("syslog.message", Severity.INFO), e.message
        assert e.metadata["detail_of"] == "disk.error", e.message
    devices = {e.metadata.get("device") for e in details}
    assert {"ata3.00", "ata3", "sdc", "sdc1"} <= devices


def test_another_disk_another_host_or_the_same_disk_later_notify_again() -> None:
    pipeline = Pipeline(Settings())
    for line in SATA_READ_FAILURE:
        _event(line, pipeline)
    io = "I/O error, dev {dev}, sector 77824 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 2"
    other_disk = _event(_k(3, "10:00:04", "pve1", io.format(dev="sdd")), pipeline)
    other_host = _event(_k(3, "10:00:04", "pve2", io.format(dev="sdc")), pipeline)
    an_hour_later = _event(_k(3, "11:00:01", "pve1", io.format(dev="sdc")), pipeline)
    for e in (other_disk, other_host, an_hour_later):
        assert (e.kind, e.severity) == ("disk.error", Severity.ERROR), e.message
        assert "detail_of" not in e.metadata
    # and an hour later it is a new burst: its repeat is a detail of the new event
    repeat = _event(_k(3, "11:00:02", "pve1", io.format(dev="sdc")), pipeline)
    assert (repeat.kind, repeat.metadata.get("detail_of")) == ("syslog.message", "disk.error")


def test_a_disk_burst_window_is_per_disk_not_per_partition() -> None:
    """``sdc`` and its partition ``sdc1``, ``nvme0`` and its namespace ``nvme0n1``: one disk.
    A btrfs error on ``sdc1`` right after the block layer's I/O error on ``sdc`` is the same
    failing read (fs/btrfs/volumes.c btrfs_dev_stat_inc_and_print)."""
    pipeline = Pipeline(Settings())
    first = _event(SATA_READ_FAILURE[14], pipeline)
    btrfs = _event(
        _k(3, "10:00:02", "pve1",
           "BTRFS error (device sdc1): bdev /dev/sdc1 errs: wr 0, rd 1, flush 0, corrupt 0, gen 0"),
        pipeline,
    )  # fmt: skip
    assert first.kind == "disk.error"
    assert (btrfs.kind, btrfs.metadata.get("detail_of")) == ("syslog.message", "disk.error")


# An NVMe controller that stops answering (kernel 6.8, drivers/nvme/host/pci.c nvme_timeout,
# nvme_warn_reset; drivers/nvme/host/core.c nvme_log_error; block/blk-core.c).
NVME_TIMEOUT = [
    _k(4, "10:10:00", "pve3",
       "nvme nvme0: I/O tag 512 (1200) opcode 0x2 (Read) QID 5 timeout, aborting req_op:READ(0) "
       "size:4096"),
    _k(4, "10:10:30", "pve3",
       "nvme nvme0: I/O tag 512 (1200) opcode 0x2 (Read) QID 5 timeout, reset controller"),
    _k(4, "10:10:30", "pve3",
       "nvme nvme0: controller is down; will reset: CSTS=0xffffffff, PCI_STATUS=0xffff"),
    _k(4, "10:10:30", "pve3",
       "nvme nvme0: Does your device have a faulty power saving mode enabled?"),
    _k(4, "10:10:30", "pve3",
       'nvme nvme0: Try "nvme_core.default_ps_max_latency_us=0 pcie_aspm=off '
       'pcie_port_pm=off" and report a bug'),
    _k(3, "10:10:31", "pve3",
       "nvme0n1: I/O Cmd(0x2) @ LBA 1953525, 8 blocks, I/O Error (sct 0x3 / sc 0x71)"),
    _k(3, "10:10:31", "pve3",
       "I/O error, dev nvme0n1, sector 1953525 op 0x0:(READ) flags 0x80700 phys_seg 1 prio "
       "class 2"),
    _k(4, "10:10:31", "pve3", "nvme nvme0: Abort status: 0x371"),
]  # fmt: skip


def test_one_nvme_controller_timeout_notifies_once() -> None:
    pipeline = Pipeline(Settings())
    events = [_event(line, pipeline) for line in NVME_TIMEOUT]
    notifying = [e for e in events if _notifies(e)]
    assert [(e.kind, e.title) for e in notifying] == [("disk.error", "I/O timeout on nvme0")], [
        (e.kind, e.severity.value, e.title) for e in notifying
    ]
    for e in events[1:]:
        assert (e.kind, e.severity, e.metadata.get("detail_of")) == (
            "syslog.message",
            Severity.INFO,
            "disk.error",
        ), e.message


def test_md_array_losing_a_member_notifies_once() -> None:
    """raid1_error prints two lines in one pr_crit (linux drivers/md/raid1.c): the second,
    ``Operation continuing on N devices``, is a detail of the first."""
    pipeline = Pipeline(Settings())
    failure = _event(
        _k(2, "10:20:00", "pve2", "md/raid1:md0: Disk failure on sdb1, disabling device."),
        pipeline,
    )
    continuing = _event(
        _k(2, "10:20:00", "pve2", "md/raid1:md0: Operation continuing on 1 devices."), pipeline
    )
    assert (failure.kind, failure.severity) == ("disk.error", Severity.CRITICAL)
    assert (continuing.kind, continuing.severity) == ("syslog.message", Severity.INFO)
    assert continuing.metadata["detail_of"] == "disk.error"


def test_windows_are_bounded() -> None:
    from proxbus_ingest_syslog.classify import MAX_WINDOWS

    pipeline = Pipeline(Settings())
    for n in range(MAX_WINDOWS + 10):
        _event(_k(3, "10:00:00", f"h{n}", "I/O error, dev sdc, sector 1 op 0x0:(READ) flags 0x0"),
               pipeline)  # fmt: skip
    assert len(pipeline.classifier._windows) == MAX_WINDOWS


def test_the_same_drivers_at_boot_are_no_details() -> None:
    """A disk found at boot: sd.c's notices (sd_probe ``Attached SCSI disk``, sd_read_capacity,
    sd_read_write_protect_flag), its cache warning (sd_read_cache_type) and libata's probe
    lines are no detail of any disk.error: no error report, no burst open on the host."""
    pipeline = Pipeline(Settings())
    boot = [
        _k(5, "09:00:00", "pve1", "sd 2:0:0:0: [sdc] 7814037168 512-byte logical blocks: "
           "(4.00 TB/3.64 TiB)"),
        _k(5, "09:00:00", "pve1", "sd 2:0:0:0: [sdc] Write Protect is off"),
        _k(4, "09:00:00", "pve1", "sd 0:0:0:0: [sda] Assuming drive cache: write through"),
        _k(5, "09:00:00", "pve1", "sd 2:0:0:0: [sdc] Attached SCSI disk"),
        _k(5, "09:00:00", "pve1", "scsi 2:0:0:0: Direct-Access     ATA      ST4000NM0035-1V4 "
           "SN03 PQ: 0 ANSI: 5"),
        _k(6, "09:00:00", "pve1", "ata3: SATA link up 6.0 Gbps (SStatus 133 SControl 300)"),
        _k(6, "09:00:00", "pve1", "ata3.00: configured for UDMA/133"),
    ]  # fmt: skip
    events = [_event(line, pipeline) for line in boot]
    assert [e.metadata.get("detail_of") for e in events] == [None] * len(boot)
    assert [e.severity.value for e in events] == [
        "notice", "notice", "warning", "notice", "notice", "info", "info"
    ]  # fmt: skip


def test_another_sender_cannot_turn_a_hosts_disk_error_into_a_detail() -> None:
    # A window is the sending address's and the claimed host's together: a line from another
    # address that only claims to be pve1 (forged, or a misconfigured relay) opens a window of
    # its own, so pve1's own I/O error on sdc a second later still notifies.
    pipeline = Pipeline(Settings())
    io_error = (
        "I/O error, dev sdc, sector 492641280 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 2"
    )
    forged = pipeline.process([Frame(_k(3, "10:00:00", "pve1", io_error).encode())], "udp",
                              "127.0.0.9")  # fmt: skip
    real = pipeline.process([Frame(_k(3, "10:00:01", "pve1", io_error).encode())], "udp",
                            "127.0.0.2")  # fmt: skip
    assert [e.kind for e in forged + real] == ["disk.error", "disk.error"]
    assert "detail_of" not in real[0].metadata
    assert _notifies(real[0])
    # the same sender's second line in the window is still a detail
    again = pipeline.process([Frame(_k(3, "10:00:02", "pve1", io_error).encode())], "udp",
                             "127.0.0.2")  # fmt: skip
    assert again[0].metadata.get("detail_of") == "disk.error"
