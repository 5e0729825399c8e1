"""Loopback ports for the processes that tests and ``proxbus up --sites`` start.

A port is chosen by binding a socket to it and closing that socket; the process that gets the
port binds it a moment later. By default the kernel chooses (bind to port 0), from its
ephemeral range. With ``PROXBUS_TEST_PORT_RANGE=LO-HI`` set (``scripts/test.sh`` sets one per
pytest process it runs side by side), ports are chosen at random in that range instead: two
pytest processes with disjoint ranges cannot hand out the same port, and since a range below
the kernel's ephemeral range (``/proc/sys/net/ipv4/ip_local_port_range``, 32768-60999 by
default) is never used for the kernel's own choices, a port between "chosen" and "bound" is not
given to anybody else either.
"""

from __future__ import annotations

import collections
import os
import secrets
import socket

__all__ = ["PORT_RANGE_ENV", "bound_socket", "configured_range"]

PORT_RANGE_ENV = "PROXBUS_TEST_PORT_RANGE"
# The range ports this process handed out last: not again soon, bound yet or not.
_RECENT: collections.deque[int] = collections.deque(maxlen=512)


def configured_range() -> range | None:
    """The ``PROXBUS_TEST_PORT_RANGE`` ports (``LO-HI``, both included), or None when unset.

    Raises:
        ValueError: the variable is set but is not ``LO-HI`` with 1024 <= LO, LO + 63 <= HI,
            HI <= 65535.
    """
    raw = os.environ.get(PORT_RANGE_ENV, "").strip()
    if not raw:
        return None
    lo, sep, hi = raw.partition("-")
    if not (sep and lo.strip().isdigit() and hi.strip().isdigit()):
        raise ValueError(f"{PORT_RANGE_ENV} must be LO-HI, e.g. 20000-25999, not {raw!r}")
    ports = range(int(lo), int(hi) + 1)
    if not (ports.start >= 1024 and ports.stop - 1 <= 65535 and len(ports) >= 64):
        raise ValueError(f"{PORT_RANGE_ENV}={raw}: need 1024 <= LO, HI <= 65535, 64 ports or more")
    return ports


def bound_socket(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> socket.socket:
    """A socket of ``kind`` bound on ``host`` to a free port (the caller closes it).

    In ``PROXBUS_TEST_PORT_RANGE`` never one of the last 512 handed out by this process (the
    caller may not have bound it yet).

    Raises:
        OSError: no port of ``PROXBUS_TEST_PORT_RANGE`` could be bound (all taken).
    """
    ports = configured_range()
    if ports is None:
        sock = socket.socket(socket.AF_INET, kind)
        try:
            sock.bind((host, 0))
        except OSError:
            sock.close()
            raise
        return sock
    # Random probes, then one pass over the whole range: a busy range still finds its last port.
    candidates = [secrets.choice(ports) for _ in range(64)] + list(ports)
    for port in candidates:
        if port in _RECENT:
            continue
        sock = socket.socket(socket.AF_INET, kind)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            continue
        _RECENT.append(port)
        return sock
    raise OSError(f"no free port on {host} in {PORT_RANGE_ENV}={ports.start}-{ports.stop - 1}")
