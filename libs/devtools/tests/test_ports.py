"""Ports for local processes: kernel-chosen by default, or from PROXBUS_TEST_PORT_RANGE (the
range scripts/test.sh gives each of the two pytest processes it runs side by side)."""

from __future__ import annotations

import re
import socket
from contextlib import ExitStack
from pathlib import Path

import pytest
from proxbus_devtools.multisite import _free_ports
from proxbus_devtools.ports import PORT_RANGE_ENV, bound_socket, configured_range
from proxbus_devtools.testing import free_port


def _ephemeral() -> range:
    lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return range(int(lo), int(hi) + 1)


def test_without_a_range_the_kernel_chooses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PORT_RANGE_ENV, raising=False)
    assert configured_range() is None
    with bound_socket() as s:
        assert s.getsockname()[1] in _ephemeral()


def test_with_a_range_every_helper_chooses_in_it_never_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PORT_RANGE_ENV, "21000-21999")
    got = [free_port() for _ in range(300)]
    got += [free_port(socket.SOCK_DGRAM) for _ in range(50)]
    got += _free_ports(100)
    assert all(21000 <= p <= 21999 for p in got), got
    assert len(set(got)) == len(got)  # handed out, not bound by anybody yet: still never twice


def test_a_taken_port_is_skipped_and_a_full_range_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PORT_RANGE_ENV, "22000-22063")
    with ExitStack() as stack:
        held = []
        for port in range(22000, 22064):
            s = stack.enter_context(socket.socket())
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken by something else on this machine: still taken
            held.append(port)
        with pytest.raises(
            OSError, match=re.escape("no free port on 127.0.0.1 in PROXBUS_TEST_PORT_RANGE")
        ):
            bound_socket()
    assert held


@pytest.mark.parametrize("raw", ["20000", "x-y", "80-2000", "20000-20010", "60000-70000", "5-3"])
def test_a_malformed_range_is_refused(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(PORT_RANGE_ENV, raw)
    with pytest.raises(ValueError, match=PORT_RANGE_ENV):
        configured_range()


def test_the_test_script_gives_its_two_pytest_processes_disjoint_ranges_below_the_kernels() -> None:
    """scripts/test.sh's two ranges: disjoint, and below the ephemeral range the kernel chooses
    from for bind(0) and outgoing connections, so no other socket takes a chosen port."""
    script = (Path(__file__).parents[3] / "scripts" / "test.sh").read_text()
    ranges = [
        range(int(a), int(b) + 1) for a, b in re.findall(rf"{PORT_RANGE_ENV}=(\d+)-(\d+)", script)
    ]
    assert len(ranges) == 2, script
    assert not set(ranges[0]) & set(ranges[1])
    assert all(r.stop <= _ephemeral().start for r in ranges)
